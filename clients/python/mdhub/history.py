"""History over REST as pyarrow Tables: the hub answers SQL as an Arrow IPC
stream (`format=arrow`), so nothing goes through JSON on the way.

Needs pyarrow (`pip install "./clients/python[arrow]"`); `.to_pandas()` and
Polars (`polars.from_arrow`) take the table from there.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class HistoryError(Exception):
    """The hub refused or failed a history request: `status` (HTTP) and
    `code` (stable, docs/protocol.md) say which."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


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
    headers = {"Accept": ARROW_STREAM}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            body = r.read()
            truncated = r.headers.get("x-mdhub-truncated", "false")
    except urllib.error.HTTPError as e:
        try:
            err = json.loads(e.read())["error"]
            raise HistoryError(e.code, err["code"], err["message"]) from None
        except (ValueError, KeyError, TypeError):
            raise HistoryError(e.code, "http_error", str(e)) from None
    table = pyarrow.ipc.open_stream(body).read_all()
    meta = dict(table.schema.metadata or {})
    meta[b"mdhub.truncated"] = truncated.encode()
    return table.replace_schema_metadata(meta)
