"""Synthetic data of the training-set (point-in-time join) benchmark
(benches/features.rs runs it). Needs numpy and pyarrow; deltalake only for
the Delta copies.

Reads a JSON request on stdin (every key but "dir" optional):
  {"dir": "/abs/out", "spine_rows": 1000000, "feature_rows": 10000000,
   "views": 3, "entities": 100000, "seed": 42,
   "rows_per_file": 2000000,     # Parquet part size of the views
   "row_group_rows": 1000000,    # row group size of every file
   "spine_duplicates": 0.0,      # fraction of extra spine rows repeating
                                 # another row's (customer_id, event_timestamp)
   "delta": true}                # also write Delta tables (needs deltalake)
and prints one JSON object on stdout (the same object is kept in
<dir>/done.json; when that file already describes the same data, nothing is
written again):
  {"request": {...the data parameters...}, "generator": 2,
   "spine": {"path": "<dir>/parquet/spine.parquet", "rows": N,
             "columns": ["customer_id", "event_timestamp", "label"],
             "planted": {"eq_view_1": n, ...}},
   "views": [{"name": "view_1", "path": "<dir>/parquet/view_1",
              "glob": "<dir>/parquet/view_1/*.parquet",
              "files": [...], "rows": N, "duplicate_rows": n,
              "ttl_seconds": 2592000, "features": ["f1_a", "f1_b", "f1_c"],
              "timestamp_field": "event_ts",
              "created_timestamp_field": "created_ts"}, ...],
   "delta": {"spine": "<dir>/delta/spine", "view_1": "<dir>/delta/view_1", ...}
            or null,
   "versions": {"numpy": ..., "pyarrow": ..., "deltalake": ...},
   "seconds": S}                 # time spent writing (0 when reused)

The data (deterministic from the seed; all timestamps timestamp[us, UTC],
whole seconds except created_ts):
  spine.parquet    customer_id int64 in [0, entities), event_timestamp
                   uniform over 2025-01-01 .. 2026-01-01, label int64 (0/1,
                   ~10% ones); rows in random order, one file. About 5% of the
                   rows are planted on the rule's boundaries (see `plant`):
                   event_timestamp equal to a feature row's event_ts (upper
                   bound, inclusive), equal to event_ts + ttl of a row its
                   key follows by nothing for longer than the ttl (lower
                   bound, inclusive: that row is the answer), 1 s later
                   (just outside: no answer), and equal to the event_ts of
                   a duplicated (customer_id, event_ts) pair (the
                   created_ts tie-break decides). Unless
                   spine_duplicates > 0, (customer_id, event_timestamp) is
                   unique in the spine.
  view_<i>/part-<n>.parquet
                   customer_id int64, event_ts uniform over 2024-11-02 ..
                   2026-01-01 (60 days of history before the spine starts),
                   created_ts = event_ts + uniform 0..3600 s (microseconds),
                   f<i>_a float64 (normal), f<i>_b int64 (0..999), f<i>_c
                   float64 (uniform, 1% NULL). Keys skewed: floor(entities
                   * u^2) (density ~ 1/sqrt(key); the busiest key holds
                   ~entities^-1/2 of the rows, the sparsest half the mean),
                   then keys with key % 50 == i % 50 moved to key + 1 (2% of
                   the entities have no rows in a view). 1% of the rows
                   repeat another row's (customer_id, event_ts) with a
                   different created_ts and other feature values;
                   (customer_id, event_ts, created_ts) is unique.
                   Rows shuffled (not sorted by key or time), split in parts
                   of rows_per_file rows, row groups of row_group_rows rows,
                   snappy.
  ttl              view_1 30 days, view_2 7 days, view_3 none, then the
                   cycle repeats (view_4 30 days, ...).
  delta/<table>    the same rows written with deltalake.write_deltalake,
                   one append per Parquet part (so the Delta files mirror
                   the parts), same row group size.
"""

import json
import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SECOND = 1_000_000  # microseconds
DAY = 86_400 * SECOND
SPINE_START = 1_735_689_600 * SECOND  # 2025-01-01T00:00:00Z
SPINE_END = SPINE_START + 365 * DAY
FEATURE_START = SPINE_START - 60 * DAY
TTLS = [30 * 86_400, 7 * 86_400, None]
TS = pa.timestamp("us", tz="UTC")
# bumped whenever the data this script makes changes: done.json of another
# version does not count
GENERATOR = 2

DEFAULTS = {
    "spine_rows": 1_000_000,
    "feature_rows": 10_000_000,
    "views": 3,
    "entities": 100_000,
    "seed": 42,
    "rows_per_file": 2_000_000,
    "row_group_rows": 1_000_000,
    "spine_duplicates": 0.0,
}


def ttl_seconds(i):
    return TTLS[(i - 1) % len(TTLS)]


def ts_array(micros):
    return pa.array(np.asarray(micros, dtype=np.int64)).view(TS)


def make_unique(keys, times, step):
    """Moves rows whose (keys, times) repeat an earlier row by `step` until
    every pair is unique."""
    while True:
        order = np.lexsort((times, keys))
        k, t = keys[order], times[order]
        same = np.flatnonzero((k[1:] == k[:-1]) & (t[1:] == t[:-1])) + 1
        if same.size == 0:
            return times
        times[order[same]] += step


def make_view(i, p, rng):
    """One view's columns as numpy arrays, rows shuffled."""
    n = p["feature_rows"]
    entities = p["entities"]
    n_dup = n // 100
    n_base = n - n_dup
    # skewed: key = floor(entities * u^2), density ~ 1/sqrt(key): the
    # busiest key has ~entities^-1/2 of the rows, the sparsest half of the
    # mean (so some keys go quiet for longer than a ttl)
    keys = np.minimum(
        (entities * rng.random(n_base) ** 2).astype(np.int64), entities - 1
    )
    if entities > 50:
        hole = keys % 50 == i % 50
        keys[hole] = (keys[hole] + 1) % entities
    seconds = (FEATURE_START // SECOND) + rng.integers(
        0, (SPINE_END - FEATURE_START) // SECOND, n_base, dtype=np.int64
    )
    ets = seconds * SECOND
    offset = rng.integers(0, 3600 * SECOND + 1, n_base, dtype=np.int64)
    # duplicates: copies of (key, event_ts) of distinct base rows, another
    # created offset (never the source's)
    src = rng.choice(n_base, n_dup, replace=False)
    dup_offset = (offset[src] + rng.integers(1, 3600 * SECOND + 1, n_dup, dtype=np.int64)) % (
        3600 * SECOND + 1
    )
    keys = np.concatenate([keys, keys[src]])
    ets = np.concatenate([ets, ets[src]])
    offset = np.concatenate([offset, dup_offset])
    created = ets + offset
    # (key, event_ts, created_ts) unique: re-draw created offsets of any
    # accidental repeat (natural (key, event_ts) collisions)
    while True:
        order = np.lexsort((created, ets, keys))
        k, e, c = keys[order], ets[order], created[order]
        same = np.flatnonzero((k[1:] == k[:-1]) & (e[1:] == e[:-1]) & (c[1:] == c[:-1])) + 1
        if same.size == 0:
            break
        idx = order[same]
        created[idx] = ets[idx] + rng.integers(0, 3600 * SECOND + 1, idx.size, dtype=np.int64)
    a = rng.normal(0.0, 1.0, n)
    b = rng.integers(0, 1000, n, dtype=np.int64)
    c = rng.random(n)
    c_null = rng.random(n) < 0.01
    perm = rng.permutation(n)
    cols = {
        "customer_id": keys[perm],
        "event_ts": ets[perm],
        "created_ts": created[perm],
        f"f{i}_a": a,
        f"f{i}_b": b,
        f"f{i}_c": c,
    }
    is_dup_src = np.zeros(n, dtype=bool)
    is_dup_src[src] = True
    is_dup_src[n_base:] = True
    return cols, c_null, is_dup_src[perm], n_dup


def quiet_rows(keys, ets, gap):
    """Indices of the rows after which their key has no row for more than
    `gap` microseconds."""
    order = np.lexsort((ets, keys))
    k, e = keys[order], ets[order]
    nxt = np.empty_like(e)
    nxt[:-1] = e[1:]
    nxt[-1] = np.iinfo(np.int64).max
    last = np.ones(k.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    nxt[last] = np.iinfo(np.int64).max
    # the later rows of an equal (key, event_ts) group carry the real gap
    quiet = np.flatnonzero(nxt - e > gap)
    return order[quiet]


def view_table(i, cols, c_null):
    return pa.table(
        {
            "customer_id": pa.array(cols["customer_id"]),
            "event_ts": ts_array(cols["event_ts"]),
            "created_ts": ts_array(cols["created_ts"]),
            f"f{i}_a": pa.array(cols[f"f{i}_a"]),
            f"f{i}_b": pa.array(cols[f"f{i}_b"]),
            f"f{i}_c": pa.array(cols[f"f{i}_c"], mask=c_null),
        }
    )


def write_parts(table, folder, rows_per_file, row_group_rows):
    os.makedirs(folder, exist_ok=True)
    files = []
    for n, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        path = os.path.join(folder, f"part-{n}.parquet")
        pq.write_table(
            table.slice(start, rows_per_file),
            path,
            row_group_size=row_group_rows,
            compression="snappy",
        )
        files.append(path)
    return files


def write_delta(table, uri, rows_per_file, row_group_rows):
    from deltalake import WriterProperties, write_deltalake

    props = WriterProperties(max_row_group_size=row_group_rows, compression="SNAPPY")
    for n, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        write_deltalake(
            uri,
            table.slice(start, rows_per_file),
            mode="overwrite" if n == 0 else "append",
            writer_properties=props,
            target_file_size=1 << 40,
        )


def plant(rng, spine_keys, spine_ts, planted_from, n):
    """Overwrites rows of the spine with boundary cases taken from feature
    rows. `planted_from[name] = (keys, times)` of candidate rows; returns the
    count planted per kind."""
    counts = {}
    kinds = [(name, frac) for name, (frac, _, _) in planted_from.items()]
    total = sum(int(n * frac) for _, frac in kinds)
    slots = rng.choice(n, total, replace=False) if total else np.array([], dtype=np.int64)
    at = 0
    for name, (frac, keys, times) in planted_from.items():
        m = min(int(n * frac), keys.size)
        if m == 0:
            counts[name] = 0
            continue
        pick = rng.choice(keys.size, m, replace=False)
        rows = slots[at : at + m]
        at += m
        spine_keys[rows] = keys[pick]
        spine_ts[rows] = times[pick]
        counts[name] = int(m)
    return counts


def generate(p, out_dir, want_delta):
    rng_views = [np.random.default_rng([p["seed"], i]) for i in range(1, p["views"] + 1)]
    parquet_dir = os.path.join(out_dir, "parquet")
    delta_dir = os.path.join(out_dir, "delta")
    shutil.rmtree(parquet_dir, ignore_errors=True)
    shutil.rmtree(delta_dir, ignore_errors=True)
    os.makedirs(parquet_dir)
    views = []
    candidates = {}
    for i, rng in enumerate(rng_views, start=1):
        name = f"view_{i}"
        cols, c_null, is_dup, n_dup = make_view(i, p, rng)
        ttl = ttl_seconds(i)
        keys, ets = cols["customer_id"], cols["event_ts"]
        pick = np.random.default_rng([p["seed"], 1000 + i])
        sample = pick.choice(keys.size, min(keys.size, p["spine_rows"]), replace=False)
        if i == 1:
            candidates["eq_view_1"] = (0.01, keys[sample], ets[sample])
            dups = np.flatnonzero(is_dup)
            candidates["eq_duplicate_view_1"] = (0.01, keys[dups], ets[dups])
        elif i == 3:
            candidates["eq_view_3"] = (0.005, keys[sample], ets[sample])
        if ttl is not None and i <= 2:
            # rows followed (same key) by nothing for longer than ttl + 1 s:
            # at event_ts + ttl the row is the answer, 1 s later nothing is
            quiet = quiet_rows(keys, ets, (ttl + 1) * SECOND)
            quiet = quiet[pick.permutation(quiet.size)[: p["spine_rows"]]]
            candidates[f"eq_ttl_view_{i}"] = (0.01, keys[quiet], ets[quiet] + ttl * SECOND)
            candidates[f"past_ttl_view_{i}"] = (
                0.005,
                keys[quiet],
                ets[quiet] + ttl * SECOND + SECOND,
            )
        table = view_table(i, cols, c_null)
        del cols
        folder = os.path.join(parquet_dir, name)
        files = write_parts(table, folder, p["rows_per_file"], p["row_group_rows"])
        if want_delta:
            write_delta(table, os.path.join(delta_dir, name), p["rows_per_file"], p["row_group_rows"])
        views.append(
            {
                "name": name,
                "path": folder,
                "glob": os.path.join(folder, "*.parquet"),
                "files": files,
                "rows": table.num_rows,
                "duplicate_rows": int(n_dup),
                "ttl_seconds": ttl,
                "features": [f"f{i}_a", f"f{i}_b", f"f{i}_c"],
                "timestamp_field": "event_ts",
                "created_timestamp_field": "created_ts",
            }
        )
        del table

    rng = np.random.default_rng([p["seed"], 0])
    n = p["spine_rows"]
    keys = rng.integers(0, p["entities"], n, dtype=np.int64)
    seconds = rng.integers(SPINE_START // SECOND, SPINE_END // SECOND, n, dtype=np.int64)
    ts = seconds * SECOND
    planted = plant(rng, keys, ts, candidates, n)
    label = (rng.random(n) < 0.1).astype(np.int64)
    ts = make_unique(keys, ts, SECOND)
    n_extra = int(n * p["spine_duplicates"])
    if n_extra:
        src = rng.choice(n, n_extra, replace=False)
        keys = np.concatenate([keys, keys[src]])
        ts = np.concatenate([ts, ts[src]])
        label = np.concatenate([label, 1 - label[src]])
        perm = rng.permutation(keys.size)
        keys, ts, label = keys[perm], ts[perm], label[perm]
    spine = pa.table(
        {"customer_id": pa.array(keys), "event_timestamp": ts_array(ts), "label": pa.array(label)}
    )
    spine_path = os.path.join(parquet_dir, "spine.parquet")
    pq.write_table(spine, spine_path, row_group_size=p["row_group_rows"], compression="snappy")
    delta = None
    if want_delta:
        write_delta(spine, os.path.join(delta_dir, "spine"), 1 << 62, p["row_group_rows"])
        delta = {"spine": os.path.join(delta_dir, "spine")}
        delta.update({v["name"]: os.path.join(delta_dir, v["name"]) for v in views})
    return {
        "spine": {
            "path": spine_path,
            "rows": spine.num_rows,
            "columns": spine.column_names,
            "planted": planted,
            "duplicate_rows": n_extra,
        },
        "views": views,
        "delta": delta,
    }


def versions(want_delta):
    out = {"numpy": np.__version__, "pyarrow": pa.__version__}
    if want_delta:
        import deltalake

        out["deltalake"] = deltalake.__version__
    return out


def main():
    request = json.load(sys.stdin)
    out_dir = os.path.abspath(request["dir"])
    p = {k: type(v)(request.get(k, v)) for k, v in DEFAULTS.items()}
    want_delta = bool(request.get("delta", True))
    done_path = os.path.join(out_dir, "done.json")
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        if done.get("request") == p and done.get("generator") == GENERATOR and (done.get("delta") is not None or not want_delta):
            done["seconds"] = 0.0
            json.dump(done, sys.stdout)
            return
        os.remove(done_path)
    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()
    summary = {"request": p, "generator": GENERATOR}
    summary.update(generate(p, out_dir, want_delta))
    summary["versions"] = versions(want_delta)
    summary["seconds"] = time.perf_counter() - started
    with open(done_path, "w") as f:
        json.dump(summary, f, indent=1)
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main()
