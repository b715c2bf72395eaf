"""DuckDB's side of the TPC-H benchmark (benches/tpch.rs runs it).

Reads one JSON request line on stdin:
  {"files": {"lineitem": ["/abs/part-0.parquet", ...], ...},
   "threads": 2, "queries": [1, 2, ...]}
and prints one JSON line on stdout, after a warm-up run of each query:
  {"version": "1.5.5",
   "queries": {"1": "SELECT ...", ...},      # the tpch extension's texts
   "answers": {"1": [["A", "F", "380456", ...], ...], ...}}
Then, for each line {"run": 1} it reads, it runs that query once and
prints {"seconds": 0.31}, until stdin ends: the Rust side interleaves
DuckDB's runs with the other engines' runs, query by query.

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
    request = json.loads(sys.stdin.readline())
    con = duckdb.connect()
    con.execute(f"SET threads = {int(request.get('threads', os.cpu_count()))}")
    load_tpch(con)
    for table, files in request["files"].items():
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}])")
    texts = dict(con.execute("SELECT query_nr, query FROM tpch_queries()").fetchall())
    wanted = request.get("queries") or sorted(texts)
    out = {"version": duckdb.__version__, "queries": {}, "answers": {}}
    for nr in wanted:
        rows = con.execute(texts[nr]).fetchall()  # warm-up, and the answer
        out["queries"][str(nr)] = texts[nr]
        out["answers"][str(nr)] = [[text(v) for v in row] for row in rows]
    print(json.dumps(out), flush=True)
    for line in sys.stdin:
        sql = texts[json.loads(line)["run"]]
        start = time.perf_counter()
        con.execute(sql).fetchall()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
