"""History over REST as pyarrow Tables: the hub answers SQL, trades and
quotes as an Arrow IPC stream (`format=arrow`), so nothing goes through JSON
on the way. `trades()` and `quotes()` follow the hub's cursor (`x-mdhub-next`)
page by page, so a long range comes back whole, each row once.

Needs pyarrow (`pip install "./clients/python[arrow]"`); `.to_pandas()` and
Polars (`polars.from_arrow`) take the table from there.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, Optional, Tuple, Union

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class HistoryError(Exception):
    """The hub refused or failed a history request: `status` (HTTP) and
    `code` (stable, docs/protocol.md) say which."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _get(
    url: str, token: Optional[str], timeout: float, accept: str = ARROW_STREAM
) -> Tuple[bytes, Dict[str, str]]:
    """One GET: the answer's body and headers, or HistoryError."""
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        try:
            err = json.loads(e.read())["error"]
            raise HistoryError(e.code, err["code"], err["message"]) from None
        except (ValueError, KeyError, TypeError):
            raise HistoryError(e.code, "http_error", str(e)) from None


def _range(
    kind: str,
    base_url: str,
    symbols: Union[str, Iterable[str]],
    start: int,
    end: int,
    venue: Optional[str],
    token: Optional[str],
    page_rows: int,
    timeout: float,
) -> Any:
    import pyarrow
    import pyarrow.ipc

    names = [symbols] if isinstance(symbols, str) else list(symbols)
    params = {
        "symbol": ",".join(names),
        "from": str(start),
        "to": str(end),
        "limit": str(page_rows),
        "format": "arrow",
    }
    if venue:
        params["venue"] = venue
    pages = []
    cursor: Optional[str] = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        url = f"{base_url.rstrip('/')}/v1/history/{kind}?{urllib.parse.urlencode(query)}"
        body, headers = _get(url, token, timeout)
        pages.append(pyarrow.ipc.open_stream(body).read_all())
        cursor = headers.get("x-mdhub-next")
        if not cursor:
            break
    return pyarrow.concat_tables(pages) if len(pages) > 1 else pages[0]


def trades(
    base_url: str,
    symbols: Union[str, Iterable[str]],
    start: int,
    end: int,
    *,
    venue: Optional[str] = None,
    token: Optional[str] = None,
    page_rows: int = 100_000,
    timeout: float = 60.0,
) -> Any:
    """Every trade of `symbols` (one, or several) with `ts_exchange` in
    `[start, end)` (integer UTC nanoseconds) — of one `venue` when given — as
    a `pyarrow.Table` in the hub's order (time, then log position). Fetched
    `page_rows` at a time through the hub's cursor: each row exactly once.
    Prices and sizes are exact `decimal128(38, 18)`, times
    `timestamp[ns, UTC]`."""
    return _range("trades", base_url, symbols, start, end, venue, token, page_rows, timeout)


def quotes(
    base_url: str,
    symbols: Union[str, Iterable[str]],
    start: int,
    end: int,
    *,
    venue: Optional[str] = None,
    token: Optional[str] = None,
    page_rows: int = 100_000,
    timeout: float = 60.0,
) -> Any:
    """Every quote of `symbols` in `[start, end)`, as `trades()` does."""
    return _range("quotes", base_url, symbols, start, end, venue, token, page_rows, timeout)


def bars(
    base_url: str,
    symbol: str,
    start: int,
    end: int,
    *,
    interval: str = "1m",
    venue: Optional[str] = None,
    token: Optional[str] = None,
    timeout: float = 60.0,
) -> Any:
    """OHLCV bars of `symbol` over `[start, end)` (integer UTC nanoseconds)
    of width `interval` (`1s`, `5m`, `1h`, …), one series per venue (or
    `venue`'s only), as a `pyarrow.Table`: `ts` (`timestamp[ns, UTC]`, the
    bar's start), `venue`, `open`, `high`, `low`, `close`, `volume`, `vwap`
    (exact `decimal128(38, 18)`) and `trades`. Minutes without trades have
    no bar. The hub answers bars as JSON; the decimals are parsed exactly."""
    import pyarrow
    from decimal import Decimal

    params = {"symbol": symbol, "interval": interval, "from": str(start), "to": str(end)}
    if venue:
        params["venue"] = venue
    url = f"{base_url.rstrip('/')}/v1/history/bars?{urllib.parse.urlencode(params)}"
    # Exact: integers stay ints, decimals arrive as strings.
    rows = json.loads(_get(url, token, timeout, "application/json")[0])["bars"]
    dec = pyarrow.decimal128(38, 18)

    def decimals(name: str) -> Any:
        return pyarrow.array([None if b.get(name) is None else Decimal(b[name]) for b in rows], dec)

    return pyarrow.table(
        {
            "ts": pyarrow.array([b["ts"] for b in rows], pyarrow.timestamp("ns", tz="UTC")),
            "venue": pyarrow.array([b.get("venue") for b in rows], pyarrow.string()),
            **{k: decimals(k) for k in ("open", "high", "low", "close", "volume", "vwap")},
            "trades": pyarrow.array([b["trades"] for b in rows], pyarrow.int64()),
        }
    )


def sql(
    base_url: str,
    query: str,
    *,
    token: Optional[str] = None,
    limit: Optional[int] = None,
    timeout: float = 60.0,
) -> Any:
    """Runs one read-only SQL statement over the hub's history (tables
    `trades` and `quotes`) and returns a `pyarrow.Table`. `base_url` is the
    hub's HTTP address (`http://127.0.0.1:8080`). The table's schema metadata
    says whether the answer stopped at `limit` rows (`mdhub.truncated`)."""
    import pyarrow.ipc

    params = {"q": query, "format": "arrow"}
    if limit is not None:
        params["limit"] = str(limit)
    url = f"{base_url.rstrip('/')}/v1/history/sql?{urllib.parse.urlencode(params)}"
    body, headers = _get(url, token, timeout)
    truncated = headers.get("x-mdhub-truncated", "false")
    table = pyarrow.ipc.open_stream(body).read_all()
    meta = dict(table.schema.metadata or {})
    meta[b"mdhub.truncated"] = truncated.encode()
    return table.replace_schema_metadata(meta)
