"""DuckDB's side of the TPC-H benchmark (benches/tpch.rs runs it).

Reads a JSON request on stdin:
  {"files": {"lineitem": ["/abs/part-0.parquet", ...], ...},
   "runs": 3, "threads": 2, "queries": [1, 2, ...]}
and prints one JSON object on stdout:
  {"version": "1.5.5",
   "queries": {"1": "SELECT ...", ...},      # the tpch extension's texts
   "times": {"1": [0.31, 0.30, 0.30], ...},  # seconds, after one warm-up
   "answers": {"1": [["A", "F", "380456", ...], ...], ...}}

The query texts come from DuckDB's `tpch` extension (PyPI package
duckdb-extension-tpch), so every engine runs the same SQL. Tables are views
over `read_parquet` of the given files: DuckDB reads the very files that
back lake's Delta tables.
"""

import datetime
import decimal
import glob
import json
import os
import sys
import time

import duckdb
import duckdb_extension_tpch


def load_tpch(con):
    base = os.path.dirname(duckdb_extension_tpch.__file__)
    found = sorted(glob.glob(os.path.join(base, "extensions", "v*", "tpch.duckdb_extension")))
    if not found:
        sys.exit(f"no tpch.duckdb_extension under {base}")
    con.execute(f"LOAD '{found[-1]}'")


def text(value):
    """One cell as text, the way the Rust side prints it."""
    if value is None:
        return None
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def main():
    request = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute(f"SET threads = {int(request.get('threads', os.cpu_count()))}")
    load_tpch(con)
    for table, files in request["files"].items():
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}])")
    texts = dict(con.execute("SELECT query_nr, query FROM tpch_queries()").fetchall())
    wanted = request.get("queries") or sorted(texts)
    runs = max(1, int(request.get("runs", 3)))
    out = {"version": duckdb.__version__, "queries": {}, "times": {}, "answers": {}}
    for nr in wanted:
        sql = texts[nr]
        rows = con.execute(sql).fetchall()  # warm-up, and the answer
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - start)
        out["queries"][str(nr)] = sql
        out["times"][str(nr)] = times
        out["answers"][str(nr)] = [[text(v) for v in row] for row in rows]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
