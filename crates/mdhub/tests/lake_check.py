"""Independent checks of an mdhub lake, with DuckDB (and Python's decimal).

Usage:
  lake_check.py positions LAKE
      {"trades": [[partition, rows, distinct offsets, min, max], ...], "quotes": [...]}
  lake_check.py sql QUERY
      the query's rows as JSON arrays of text
  lake_check.py bars LAKE SYMBOL INTERVAL_NS FROM_NS TO_NS [VENUE]
      [{"ts", "venue", "open", "high", "low", "close", "volume", "vwap", "trades"}, ...]
      one per venue and bar with trades (only VENUE's when given), ordered
      by ts, then venue; each venue's bars from its own trades alone;
      decimals as exact normalized text; ts in Unix nanoseconds. vwap is
      computed in Python's decimal with 80 digits and rounded half away
      from zero to 18 places.
"""

import decimal
import json
import os
import sys

import duckdb

decimal.getcontext().prec = 80


def text(d):
    return format(d.normalize(), "f")


def source(lake, table):
    glob = os.path.join(lake, table, "*", "*", "*.parquet")
    return f"read_parquet('{glob}', hive_partitioning = true)"


def positions(lake):
    out = {}
    for table in ("trades", "quotes"):
        out[table] = duckdb.sql(
            "SELECT log_partition, count(*), count(DISTINCT log_offset), min(log_offset), "
            f"max(log_offset) FROM {source(lake, table)} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    print(json.dumps(out))


def bars(lake, symbol, interval, start, end, venue=None):
    where = (
        f"symbol = '{symbol}' AND epoch_ns(ts_exchange) >= {start} AND epoch_ns(ts_exchange) < {end}"
        + (f" AND venue = '{venue}'" if venue else "")
    )
    rows = duckdb.sql(
        f"SELECT epoch_ns(ts_exchange) AS t, log_offset, venue, price, size "
        f"FROM {source(lake, 'trades')} WHERE {where} ORDER BY t, log_offset"
    ).fetchall()
    # OHLCV by DuckDB too, to compare two engines on the same files.
    ohlc = {
        (b, v): (o, h, l, c, vol, n)
        for b, v, o, h, l, c, vol, n in duckdb.sql(
            f"SELECT (epoch_ns(ts_exchange) // {interval}) * {interval} AS b, venue, "
            "first(price ORDER BY ts_exchange, log_offset), max(price), min(price), "
            "last(price ORDER BY ts_exchange, log_offset), sum(size), count(*) "
            f"FROM {source(lake, 'trades')} WHERE {where} GROUP BY 1, 2"
        ).fetchall()
    }
    groups = {}
    for t, _, v, price, size in rows:
        groups.setdefault(((t // interval) * interval, v), []).append((price, size))
    out = []
    for b, v in sorted(groups):
        trades = groups[(b, v)]
        volume = sum((s for _, s in trades), decimal.Decimal(0))
        notional = sum((p * s for p, s in trades), decimal.Decimal(0))
        vwap = None
        if volume != 0:
            vwap = text((notional / volume).quantize(decimal.Decimal(1).scaleb(-18), rounding=decimal.ROUND_HALF_UP))
        o, h, l, c, vol, n = ohlc[(b, v)]
        assert n == len(trades) and vol == volume and o == trades[0][0] and c == trades[-1][0], b
        assert h == max(p for p, _ in trades) and l == min(p for p, _ in trades), b
        out.append(
            {"ts": b, "venue": v, "open": text(o), "high": text(h), "low": text(l), "close": text(c),
             "volume": text(vol), "vwap": vwap, "trades": n}
        )
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "positions":
        positions(sys.argv[2])
    elif sys.argv[1] == "sql":
        print(json.dumps([[str(v) for v in row] for row in duckdb.sql(sys.argv[2]).fetchall()]))
    elif sys.argv[1] == "bars":
        bars(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
             sys.argv[7] if len(sys.argv) > 7 else None)
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
