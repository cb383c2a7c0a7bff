"""The streaming client: one task keeps a connection to one of the gateways,
resubscribes with the last positions after every reconnect, and hands the
application each update once."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from .events import (
    Connected,
    Data,
    Disconnected,
    ErrorEvent,
    Reset,
    Stopped,
    parse_event,
)

DEFAULT_CHANNELS = ("quotes", "trades")


class _Refused(Exception):
    """The server said not to come back (a refused credential)."""


class _Dead(Exception):
    """Nothing arrived for `dead_after` seconds."""


class Client:
    """A resumable subscription to one or several gateways of the same hub.

    Iterate it (``async for event in client``) for `Data`, `Reset`,
    `Connected`, `Disconnected`, `ErrorEvent` and, last, `Stopped`.

    - Each update is delivered once, in log order per symbol and channel:
      after a reconnect the client resumes from the last position it
      delivered, and drops anything at or before it.
    - Reconnects rotate through `urls`, waiting a random time up to
      `backoff_base * 2**attempt` (capped at `backoff_cap`; "full jitter"),
      and at least what the server's `closing` frame asked.
    - A connection on which nothing arrives for `dead_after` seconds (default
      two of the server's heartbeat intervals) is given up and replaced.
    - Events wait in a queue of `event_capacity`; when it is full the client
      stops reading, and the server's slow-client rule applies (conflated
      updates with an exact `skipped` count).
    """

    def __init__(
        self,
        urls: Union[str, Sequence[str]],
        *,
        token: Optional[str] = None,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        connect_timeout: float = 10.0,
        dead_after: Optional[float] = None,
        event_capacity: int = 65536,
    ) -> None:
        self._urls: List[str] = [urls] if isinstance(urls, str) else list(urls)
        if not self._urls:
            raise ValueError("at least one gateway URL")
        self._token = token
        self._backoff = (backoff_base, backoff_cap)
        self._connect_timeout = connect_timeout
        self._dead_after = dead_after
        self._events: asyncio.Queue = asyncio.Queue(event_capacity)
        self._wanted: Dict[str, Set[str]] = {}
        self._last: Dict[Tuple[str, str], Tuple[int, str]] = {}
        self._epoch: Optional[str] = None
        self._ws: Any = None
        self._task: Optional[asyncio.Task] = None
        self._stopped = False
        self.stats = {"delivered": 0, "duplicates": 0, "resets": 0, "reconnects": 0}

    # -- the application's side ------------------------------------------

    async def __aenter__(self) -> "Client":
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting (subscribe and `async with` do it too)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def subscribe(
        self, symbols: Iterable[str], channels: Iterable[str] = DEFAULT_CHANNELS
    ) -> None:
        """Add `symbols` on `channels` (`quotes`, `trades`, `status`)."""
        symbols, channels = list(symbols), list(channels)
        for s in symbols:
            self._wanted.setdefault(s, set()).update(channels)
        self.start()
        if self._ws is not None:
            await self._send({"action": "subscribe", "symbols": symbols, "channels": channels})

    async def unsubscribe(
        self, symbols: Iterable[str], channels: Optional[Iterable[str]] = None
    ) -> None:
        """Remove `symbols` (on `channels`, default all of them)."""
        symbols = list(symbols)
        chans = None if channels is None else list(channels)
        for s in symbols:
            left = set() if chans is None else self._wanted.get(s, set()) - set(chans)
            if left:
                self._wanted[s] = left
            else:
                self._wanted.pop(s, None)
            for c in chans or ("quotes", "trades", "status"):
                self._last.pop((s, c), None)
        if self._ws is not None:
            msg: Dict[str, Any] = {"action": "unsubscribe", "symbols": symbols}
            if chans is not None:
                msg["channels"] = chans
            await self._send(msg)

    @property
    def epoch(self) -> Optional[str]:
        """The log the positions belong to (from the last `welcome`)."""
        return self._epoch

    def positions(self) -> Dict[str, Dict[str, str]]:
        """The last position delivered per symbol and channel: what a resume sends."""
        out: Dict[str, Dict[str, str]] = {}
        for (symbol, channel), (_, pos) in self._last.items():
            out.setdefault(symbol, {})[channel] = pos
        return out

    def __aiter__(self) -> "Client":
        return self

    async def __anext__(self) -> Any:
        if self._stopped and self._events.empty():
            raise StopAsyncIteration
        return await self._events.get()

    async def close(self) -> None:
        """Close the connection and stop; iteration ends after `Stopped`."""
        if self._stopped:
            return
        self._stopped = True
        ws = self._ws
        if ws is not None:
            # Drop the socket at once: a close handshake with a server that
            # does not answer would hold the task (and asyncio.run's exit).
            transport = getattr(ws, "transport", None)
            if transport is not None:
                transport.abort()
        if self._task is not None:
            self._task.cancel()
            # Bounded, and without a second cancel (wait_for would await it).
            await asyncio.wait({self._task}, timeout=self._connect_timeout)
        self._put_nowait(Stopped("closed by the application"))

    # -- the connection's side -------------------------------------------

    async def _run(self) -> None:
        attempt, turn = 0, 0
        while not self._stopped:
            url = self._urls[turn % len(self._urls)]
            turn += 1
            retry_after, reason = 0.0, "connection ended"
            try:
                retry_after = await self._session(url)
                attempt = 0
            except _Refused as e:
                self._stopped = True
                await self._events.put(Stopped(str(e)))
                return
            except _Dead:
                reason = "nothing from the server within dead_after"
            except (OSError, WebSocketException, asyncio.TimeoutError, ValueError) as e:
                reason = f"{type(e).__name__}: {e}"
            if self._stopped:
                return
            self.stats["reconnects"] += 1
            await self._events.put(Disconnected(url, reason, retry_after))
            base, cap = self._backoff
            jitter = random.uniform(0, min(cap, base * 2**attempt))
            attempt += 1
            await asyncio.sleep(max(retry_after, jitter))

    async def _session(self, url: str) -> float:
        """One connection, until it ends: the delay the server asked for."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                open_timeout=self._connect_timeout,
                max_size=16 << 20,
                ping_interval=None,  # the server pings; the watchdog below
                close_timeout=self._connect_timeout,
            )
        except InvalidStatus as e:
            if e.response.status_code in (401, 403):
                raise _Refused(f"{url} refused the credential ({e.response.status_code})")
            raise
        async with ws:
            first = await asyncio.wait_for(ws.recv(), self._connect_timeout)
            welcome = json.loads(first)
            if welcome.get("type") != "welcome":
                raise ValueError(f"expected welcome, got {first[:200]!r}")
            epoch = welcome["epoch"]
            dead = self._dead_after or 2 * welcome.get("heartbeat_ms", 20000) / 1000
            epoch_changed = self._epoch is not None and epoch != self._epoch
            self._ws = ws
            try:
                resumed = await self._resubscribe()
                self._epoch = epoch
                await self._events.put(Connected(url, epoch, resumed, epoch_changed))
                return await self._read(ws, dead)
            finally:
                self._ws = None

    async def _resubscribe(self) -> int:
        """The whole wanted set, one request per distinct channel set, each
        stream with a position resuming from it; the streams resumed."""
        by_channels: Dict[Tuple[str, ...], List[str]] = {}
        for symbol, channels in sorted(self._wanted.items()):
            by_channels.setdefault(tuple(sorted(channels)), []).append(symbol)
        resumed = 0
        for channels, symbols in by_channels.items():
            msg: Dict[str, Any] = {
                "action": "subscribe",
                "symbols": symbols,
                "channels": list(channels),
            }
            positions: Dict[str, Dict[str, str]] = {}
            for name in symbols:
                # Positions are per symbol and channel, also for a
                # subscription narrowed to a venue (BTC-USD@kraken).
                s = name.split("@", 1)[0]
                for c in channels:
                    if (s, c) in self._last and c not in positions.get(s, {}):
                        positions.setdefault(s, {})[c] = self._last[(s, c)][1]
                        resumed += 1
            if positions and self._epoch is not None:
                # The epoch the positions belong to: a hub on another log
                # answers with epoch_changed resets, never wrong data.
                msg["resume"] = {"epoch": self._epoch, "positions": positions}
            await self._send(msg)
        return resumed

    async def _read(self, ws: Any, dead: float) -> float:
        retry_after = 0.0
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), dead)
            except asyncio.TimeoutError:
                raise _Dead() from None
            except ConnectionClosed:
                return retry_after
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind in ("update", "snapshot"):
                await self._on_data(frame)
            elif kind == "reset":
                self.stats["resets"] += 1
                self._last.pop((frame["symbol"], frame["channel"]), None)
                await self._events.put(Reset(frame["symbol"], frame["channel"], frame["reason"]))
            elif kind == "closing":
                if not frame.get("reconnect", True):
                    raise _Refused(frame.get("reason", "the server said not to reconnect"))
                retry_after = frame.get("retry_after_ms", 0) / 1000
            elif kind == "error":
                await self._events.put(
                    ErrorEvent(
                        frame.get("code", ""),
                        frame.get("message", ""),
                        tuple(frame.get("symbols", ())),
                        frame.get("id"),
                    )
                )

    async def _on_data(self, frame: Dict[str, Any]) -> None:
        event = parse_event(frame["data"])
        channel, pos = frame["channel"], frame["pos"]
        offset = int(pos.rsplit(":", 1)[1])
        key = (event.symbol, channel)
        # Wanted as the symbol (every venue) or as SYMBOL@venue; else it
        # was in flight when it was unsubscribed.
        if channel not in self._wanted.get(event.symbol, ()) and channel not in self._wanted.get(
            f"{event.symbol}@{event.venue}", ()
        ):
            return
        last = self._last.get(key)
        if last is not None and offset <= last[0]:
            self.stats["duplicates"] += 1
            return
        self._last[key] = (offset, pos)
        self.stats["delivered"] += 1
        await self._events.put(Data(frame["type"], channel, pos, event, frame.get("skipped", 0)))

    async def _send(self, msg: Dict[str, Any]) -> None:
        await self._ws.send(json.dumps(msg))

    def _put_nowait(self, event: Any) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            pass
