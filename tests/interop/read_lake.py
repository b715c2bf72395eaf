"""Reads Delta tables that lake wrote, with two independent readers:
Python `deltalake` (delta-rs) and DuckDB's delta extension.

usage: read_lake.py ROOT SPEC_JSON
SPEC_JSON maps "zone.table" to the columns to read. Prints, per table, the
table version and the rows each reader returns (sorted, values as text).
"""

import glob
import json
import os
import sys

import deltalake
import duckdb
import duckdb_extension_delta


def text(value):
    return "NULL" if value is None else str(value)


def delta_extension():
    base = os.path.dirname(duckdb_extension_delta.__file__)
    found = sorted(glob.glob(os.path.join(base, "extensions", "v*", "delta.duckdb_extension")))
    if not found:
        sys.exit(f"no delta.duckdb_extension under {base}")
    return found[-1]


def main():
    root, spec = sys.argv[1], json.loads(sys.argv[2])
    con = duckdb.connect()
    con.execute(f"LOAD '{delta_extension()}'")
    out = {}
    for table, columns in spec.items():
        zone, name = table.split(".")
        path = os.path.join(root, zone, name)
        dt = deltalake.DeltaTable(path)
        arrow = dt.to_pyarrow_table(columns=columns)
        by_delta_rs = sorted([[text(row[c]) for c in columns] for row in arrow.to_pylist()])
        quoted = ", ".join(f'"{c}"' for c in columns)
        by_duckdb = sorted(
            [[text(v) for v in row] for row in con.execute(f"select {quoted} from delta_scan('{path}')").fetchall()]
        )
        out[table] = {"version": dt.version(), "deltalake": by_delta_rs, "duckdb": by_duckdb}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
