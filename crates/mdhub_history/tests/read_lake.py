"""Read an mdhub lake with two independent Parquet readers, DuckDB and pyarrow.

Usage: read_lake.py LAKE_DIR TABLE

Prints one JSON object per row and reader, in each file's row order:
{"reader", "file", "row", "date", "symbol", <every column>}, with timestamps
as integer nanoseconds and decimals as exact normalized text (never a float),
then one {"reader", "schema"} line per reader with the column types it saw.
Exits non-zero (loudly) when pyarrow or duckdb is missing.
"""

import decimal
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds


def text(value):
    """Exact text of a value: decimals normalized (`1.50` -> `1.5`, no exponent)."""
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    if value is None or isinstance(value, (int, str)):
        return value
    return str(value)


def emit(reader, rows):
    counters = {}
    for row in rows:
        row = {k: text(v) for k, v in row.items()}
        row["file"] = os.path.basename(row.pop("filename"))
        row["row"] = counters.get(row["file"], 0)
        counters[row["file"]] = row["row"] + 1
        row["reader"] = reader
        print(json.dumps(row, sort_keys=True))


def read_duckdb(lake, table):
    con = duckdb.connect()
    glob = os.path.join(lake, table, "**", "*.parquet")
    source = (
        f"read_parquet('{glob}', hive_partitioning = true, filename = true, "
        "file_row_number = true)"
    )
    described = con.sql(f"SELECT * FROM {source}")
    types = {c: str(t) for c, t in zip(described.columns, described.types)}
    # Integer nanoseconds from DuckDB itself (Python datetimes stop at microseconds).
    rel = con.sql(
        "SELECT * EXCLUDE (file_row_number) REPLACE (epoch_ns(ts_exchange) AS ts_exchange, "
        f"epoch_ns(ts_received) AS ts_received) FROM {source} ORDER BY filename, file_row_number"
    )
    emit("duckdb", [dict(zip(rel.columns, values)) for values in rel.fetchall()])
    print(json.dumps({"reader": "duckdb", "schema": types}, sort_keys=True))


def read_pyarrow(lake, table):
    dataset = ds.dataset(os.path.join(lake, table), format="parquet", partitioning="hive")
    scanner = dataset.scanner(columns=dataset.schema.names + ["__filename"], use_threads=False)
    tbl = scanner.to_table()
    # Integer nanoseconds straight from the Arrow arrays.
    for ts in ("ts_exchange", "ts_received"):
        i = tbl.schema.get_field_index(ts)
        tbl = tbl.set_column(i, ts, tbl.column(ts).cast("int64"))
    rows = tbl.to_pylist()
    for row in rows:
        row["filename"] = row.pop("__filename")
    emit("pyarrow", rows)
    types = {f.name: str(f.type) for f in dataset.schema}
    print(json.dumps({"reader": "pyarrow", "schema": types}, sort_keys=True))


def main():
    lake, table = sys.argv[1], sys.argv[2]
    read_duckdb(lake, table)
    read_pyarrow(lake, table)


if __name__ == "__main__":
    main()
