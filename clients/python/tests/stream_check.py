"""Streams symbols with mdhub's Python client until stdin closes, printing
every event as a JSON line (data events in mdhub's JSON encoding), for
crates/mdhub/tests/python_client.rs to check against the log:

    python clients/python/tests/stream_check.py --url ws://127.0.0.1:8080/v1/ws --symbols MSFT,ETH-USDT
"""

import argparse
import asyncio
import dataclasses
import json
import sys
from decimal import Decimal

from mdhub import Client, Connected, Data, Disconnected, Quote, Reset, Status, Trade

KINDS = {Quote: "quote", Trade: "trade", Status: "status"}


def event_json(ev):
    """The event back in mdhub's JSON encoding (decimals as their exact text)."""
    out = {"type": KINDS[type(ev)]}
    for k, v in dataclasses.asdict(ev).items():
        if v is not None:
            out[k] = str(v) if isinstance(v, Decimal) else v
    return out


def line(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", action="append", required=True)
    p.add_argument("--symbols", required=True)
    a = p.parse_args()
    client = Client(a.url, backoff_base=0.05, backoff_cap=0.4, connect_timeout=1.0)
    await client.subscribe(a.symbols.split(","))
    stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    events = asyncio.ensure_future(client.__anext__())
    while True:
        done, _ = await asyncio.wait({events, stdin_closed}, return_when=asyncio.FIRST_COMPLETED)
        if stdin_closed in done:
            break
        ev = events.result()
        if isinstance(ev, Data):
            line({"kind": "data", "type": ev.kind, "channel": ev.channel, "offset": ev.offset,
                  "skipped": ev.skipped, "event": event_json(ev.event)})
        elif isinstance(ev, Reset):
            line({"kind": "reset", "symbol": ev.symbol, "channel": ev.channel, "reason": ev.reason})
        elif isinstance(ev, Connected):
            line({"kind": "connected", "resumed": ev.resumed, "epoch_changed": ev.epoch_changed})
        elif isinstance(ev, Disconnected):
            line({"kind": "disconnected", "reason": ev.reason})
        events = asyncio.ensure_future(client.__anext__())
    events.cancel()
    await client.close()
    line({"kind": "stats", **client.stats})


asyncio.run(main())
