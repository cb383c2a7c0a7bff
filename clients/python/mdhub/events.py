"""What a `Client` yields: market events with exact types, and the
connection's own events."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, Optional, Union


@dataclass(frozen=True)
class Quote:
    """Best bid and offer. Prices and sizes are exact decimals; times are
    integer UTC nanoseconds (`ts_exchange`: the venue's clock,
    `ts_received`: when the hub read it)."""

    venue: str
    symbol: str
    ts_exchange: int
    ts_received: int
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal


@dataclass(frozen=True)
class Trade:
    """One trade (`side`: the aggressor, `buy` or `sell`, when the venue says)."""

    venue: str
    symbol: str
    ts_exchange: int
    ts_received: int
    price: Decimal
    size: Decimal
    side: Optional[str]
    trade_id: Optional[str]


@dataclass(frozen=True)
class Status:
    """A venue's feed state for a symbol: `connected`, `disconnected`, `gap`
    or `resync` (the `status` channel)."""

    venue: str
    symbol: str
    ts_exchange: int
    ts_received: int
    status: str
    detail: Optional[str]


Event = Union[Quote, Trade, Status]


@dataclass(frozen=True)
class Data:
    """A snapshot or update of one symbol and channel, with its log position
    (`CHANNEL:PARTITION:OFFSET`), delivered once. `skipped`: updates of this
    stream the server left out while this client read too slowly (0
    normally)."""

    kind: str
    channel: str
    pos: str
    event: Event
    skipped: int = 0

    @property
    def symbol(self) -> str:
        return self.event.symbol

    @property
    def offset(self) -> int:
        return int(self.pos.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Reset:
    """The stream of `symbol` on `channel` starts over: the hub could not
    replay what was missed (`epoch_changed`, `position_expired`,
    `position_ahead`, `replay_limit`: a snapshot follows; `data_lost`: the
    replay goes on after records damaged on the hub's disk)."""

    symbol: str
    channel: str
    reason: str


@dataclass(frozen=True)
class Connected:
    """A connection got its `welcome` and the subscriptions were sent;
    `resumed`: streams asked to continue from a position."""

    url: str
    epoch: str
    resumed: int
    epoch_changed: bool


@dataclass(frozen=True)
class Disconnected:
    """A connection ended; the client reconnects (after `retry_after`
    seconds at least, when the server said)."""

    url: str
    reason: str
    retry_after: float


@dataclass(frozen=True)
class ErrorEvent:
    """An `error` frame: a request the server refused (`code` is stable)."""

    code: str
    message: str
    symbols: tuple
    id: Any = None


@dataclass(frozen=True)
class Stopped:
    """The client stopped for good: the server said not to come back (a
    refused credential), or `close()` was called."""

    reason: str


def parse_event(data: Dict[str, Any]) -> Event:
    """The typed event of a data frame's `data` (mdhub's JSON encoding:
    decimals as strings, so nothing is lost)."""
    t = data.get("type")
    common = (data["venue"], data["symbol"], int(data["ts_exchange"]), int(data["ts_received"]))
    if t == "quote":
        return Quote(
            *common,
            Decimal(data["bid_price"]),
            Decimal(data["bid_size"]),
            Decimal(data["ask_price"]),
            Decimal(data["ask_size"]),
        )
    if t == "trade":
        return Trade(
            *common,
            Decimal(data["price"]),
            Decimal(data["size"]),
            data.get("side"),
            data.get("trade_id"),
        )
    if t == "status":
        return Status(*common, data["status"], data.get("detail"))
    raise ValueError(f"unknown event type {t!r}")
