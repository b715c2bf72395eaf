"""The peers of the training-set benchmark (benches/features.rs runs it):
DuckDB and Feast computing the point-in-time join of a spine with feature
views (the rule: /work/shared/DESIGN.md, "Feature views and training sets").

Reads a JSON request on stdin:
  {"engine": "duckdb" | "duckdb_plain" | "feast",
   "dir": "/abs/scratch",              # Feast's temporary feature repo goes
                                       # under it (removed afterwards)
   "spine": "/abs/parquet/spine.parquet",
   "views": [{"name": "view_1",
              "path": "/abs/parquet/view_1",   # a folder (its *.parquet),
                                               # a glob or one file
              "ttl_seconds": 2592000,          # or null: no ttl
              "features": ["f1_a", "f1_b", "f1_c"],
              "timestamp_field": "event_ts",            # optional, default
              "created_timestamp_field": "created_ts"}, # optional, default
             ...],
   "entity_key": "customer_id",        # optional, default customer_id
   "runs": 3, "threads": 2,
   "warmup": 0,                        # optional untimed runs first
   "output": "/abs/result.parquet"}    # optional
and prints one JSON object on stdout:
  {"engine": "duckdb", "version": "1.5.5", "venv": "/abs/venv",
   "times": [1.23, 1.20, 1.21],        # seconds per timed run
   "peak_rss_bytes": N,                # ru_maxrss of this process: loading
                                       # included
   "rows": N,                          # rows of the last run's result
   "spine_rows": N}

The engines (each run's time covers the whole query and materializing its
result as an Arrow table in this process):
  duckdb        the exact rule, one SQL statement: per view an ASOF LEFT
                JOIN on key equality and
                  {t: spine.event_timestamp, c: 'infinity'}
                    >= {t: f.timestamp_field, c: f.created_timestamp_field}
                (struct comparison is lexicographic, so the match is the row
                with the latest timestamp <= event_timestamp, ties broken by
                the latest created timestamp: no separate dedup pass); the
                features are NULLed when the match is older than
                event_timestamp - ttl (both bounds inclusive); spine order
                kept by ORDER BY the spine's file_row_number. Result columns:
                the spine's, then <view>__<feature>.
  duckdb_plain  the anchor: the same ASOF LEFT JOINs on
                spine.event_timestamp >= f.timestamp_field only (no ttl, no
                created tie-break, no ORDER BY); same column names.
  feast         feast.FeatureStore.get_historical_features(entity_df,
                features, full_feature_names=True).to_arrow() with the
                local provider and the file (Dask) offline store, in a
                feature repo made programmatically in a temporary folder
                (registry and sqlite online store there too): one Entity
                (join key entity_key, INT64), per view a FileSource over the
                view's Parquet (timestamp_field and created_timestamp_column
                set) and a FeatureView with ttl = timedelta(seconds) or
                timedelta(0) for null (Feast's "no ttl"). The spine is read
                into a pandas entity_df (outside the timing) with an extra
                __row_id column. Dask's threaded scheduler with `threads`
                workers.

With "output", the last run's result is written as Parquet, columns: the
spine's, then <view>__<feature> per view in request order, rows in spine
order (for Feast: sorted back by __row_id, which is then dropped, and cast
back to the spine's and the views' column types: Feast's own result, made
with pandas, has timestamp[ns, UTC] and float64 for integer features with
NULLs). Feast's result can have fewer rows than the spine (see `rows`): its
file offline store drops a spine row when, in some view, the key has rows
but none in the window, and keeps one row per (key, event_timestamp).
"""

import glob
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_glob(path):
    if os.path.isdir(path):
        return os.path.join(path, "*.parquet")
    return path


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def ident(s):
    return '"' + s.replace('"', '""') + '"'


def view_fields(view):
    return view.get("timestamp_field", "event_ts"), view.get(
        "created_timestamp_field", "created_ts"
    )


def duckdb_sql(request, exact):
    key = ident(request.get("entity_key", "customer_id"))
    spine_cols = pq.read_schema(request["spine"]).names
    selects = [f"s.{ident(c)}" for c in spine_cols]
    joins = []
    for n, view in enumerate(request["views"]):
        alias = f"f{n}"
        ts, created = view_fields(view)
        cols = [key, ident(ts)] + ([ident(created)] if exact else [])
        cols += [ident(f) for f in view["features"]]
        source = f"(SELECT {', '.join(cols)} FROM read_parquet({sql_str(parquet_glob(view['path']))}))"
        if exact:
            cond = (
                f"{{'t': s.event_timestamp, 'c': 'infinity'::TIMESTAMPTZ}}"
                f" >= {{'t': {alias}.{ident(ts)}, 'c': {alias}.{ident(created)}}}"
            )
        else:
            cond = f"s.event_timestamp >= {alias}.{ident(ts)}"
        joins.append(f"ASOF LEFT JOIN {source} {alias} ON s.{key} = {alias}.{key} AND {cond}")
        ttl = view.get("ttl_seconds")
        for feature in view["features"]:
            out = ident(f"{view['name']}__{feature}")
            col = f"{alias}.{ident(feature)}"
            if exact and ttl is not None:
                col = (
                    f"CASE WHEN {alias}.{ident(ts)} >= s.event_timestamp - "
                    f"INTERVAL {int(ttl)} SECOND THEN {col} END"
                )
            selects.append(f"{col} AS {out}")
    spine = (
        f"read_parquet({sql_str(request['spine'])}, file_row_number = true)"
        if exact
        else f"read_parquet({sql_str(request['spine'])})"
    )
    sql = f"SELECT {', '.join(selects)}\nFROM {spine} s\n" + "\n".join(joins)
    if exact:
        sql += "\nORDER BY s.file_row_number"
    return sql


def run_duckdb(request, exact):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(request.get('threads', os.cpu_count()))}")
    con.execute("SET TimeZone = 'UTC'")
    sql = duckdb_sql(request, exact)

    def once():
        return con.execute(sql).to_arrow_table()

    return duckdb.__version__, once, sql


def run_feast(request):
    from datetime import timedelta

    import dask
    import feast
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float32, Float64, Int32, Int64, String, UnixTimestamp

    threads = int(request.get("threads", os.cpu_count()))
    dask.config.set(scheduler="threads", num_workers=threads)
    key = request.get("entity_key", "customer_id")
    base = request.get("dir") or None
    if base:
        os.makedirs(base, exist_ok=True)
    repo = tempfile.mkdtemp(prefix="feast-repo-", dir=base)
    config = RepoConfig(
        project="lake_bench",
        provider="local",
        registry=os.path.join(repo, "registry.db"),
        online_store=SqliteOnlineStoreConfig(path=os.path.join(repo, "online.db")),
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=[key], value_type=ValueType.INT64)
    types = {
        pa.float64(): Float64,
        pa.float32(): Float32,
        pa.int64(): Int64,
        pa.int32(): Int32,
        pa.string(): String,
    }
    objects = [customer]
    refs = []
    for view in request["views"]:
        ts, created = view_fields(view)
        path = view["path"]
        files = sorted(glob.glob(parquet_glob(path)))
        schema = pq.read_schema(files[0])
        fields = [Field(name=key, dtype=Int64)]
        for f in view["features"]:
            t = schema.field(f).type
            fields.append(Field(name=f, dtype=types.get(t, UnixTimestamp)))
        source = FileSource(
            name=f"{view['name']}_source",
            path=os.path.abspath(path),
            timestamp_field=ts,
            created_timestamp_column=created,
        )
        ttl = view.get("ttl_seconds")
        objects.append(
            FeatureView(
                name=view["name"],
                entities=[customer],
                ttl=timedelta(seconds=ttl) if ttl is not None else timedelta(0),
                schema=fields,
                source=source,
                online=False,
            )
        )
        refs += [f"{view['name']}:{f}" for f in view["features"]]
    store.apply(objects)

    entity_df = pq.read_table(request["spine"]).to_pandas()
    entity_df["__row_id"] = range(len(entity_df))

    def once():
        return store.get_historical_features(
            entity_df=entity_df, features=refs, full_feature_names=True
        ).to_arrow()

    def cleanup():
        shutil.rmtree(repo, ignore_errors=True)

    return feast.__version__, once, cleanup


def restore(table, request, engine):
    """The result as the output file wants it: spine columns, then
    <view>__<feature> in request order, spine order."""
    spine_cols = pq.read_schema(request["spine"]).names
    feature_cols = [
        f"{v['name']}__{f}" for v in request["views"] for f in v["features"]
    ]
    if engine == "feast":
        import pyarrow.compute as pc

        table = table.take(pc.sort_indices(table, [("__row_id", "ascending")]))
    table = table.select(spine_cols + feature_cols).replace_schema_metadata(None)
    # Feast goes through pandas: timestamps come back as timestamp[ns, UTC]
    # and integer features with NULLs as float64; cast back to the source
    # types (exact for these values)
    spine_schema = pq.read_schema(request["spine"])
    wanted = [spine_schema.field(c).type for c in spine_cols]
    for v in request["views"]:
        files = sorted(glob.glob(parquet_glob(v["path"])))
        schema = pq.read_schema(files[0])
        wanted += [schema.field(f).type for f in v["features"]]
    for i, (name, want) in enumerate(zip(table.column_names, wanted)):
        if table.schema.field(name).type != want:
            table = table.set_column(i, name, table.column(name).cast(want))
    return table


def main():
    request = json.load(sys.stdin)
    # stdout is the answer's channel: whatever the engines print goes to stderr
    answer = sys.stdout
    sys.stdout = sys.stderr
    engine = request["engine"]
    cleanup = None
    if engine in ("duckdb", "duckdb_plain"):
        version, once, _sql = run_duckdb(request, exact=engine == "duckdb")
    elif engine == "feast":
        version, once, cleanup = run_feast(request)
    else:
        sys.exit(f"unknown engine {engine!r}")
    try:
        for _ in range(int(request.get("warmup", 0))):
            once()
        times = []
        result = None
        for _ in range(max(1, int(request.get("runs", 3)))):
            result = None
            start = time.perf_counter()
            result = once()
            times.append(time.perf_counter() - start)
        if request.get("output"):
            pq.write_table(restore(result, request, engine), request["output"])
    finally:
        if cleanup:
            cleanup()
    out = {
        "engine": engine,
        "version": version,
        "venv": sys.prefix,
        "times": times,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rows": result.num_rows,
        "spine_rows": pq.read_metadata(request["spine"]).num_rows,
    }
    json.dump(out, answer)
    answer.flush()


if __name__ == "__main__":
    main()
