//! Training sets (the point-in-time join), side by side in one run: lake
//! (`lake_features::TrainingSet` over Delta tables in the `raw` zone), DuckDB
//! 1.5 (ASOF LEFT JOINs over the same rows as Parquet: the exact rule with
//! ttl and the created-timestamp tie-break, and the plain form without
//! them), and Feast's `get_historical_features` (local file offline store,
//! at a smaller size: it joins every spine row with every feature row of its
//! key). Lake's answer is checked against DuckDB's exact one, column by
//! column, before anything is reported; the online lookup latency (100 keys
//! per request over Flight on loopback, p50/p99) is measured too.
//!
//! Data: `benches/features_data.py` (numpy + pyarrow + deltalake), written
//! once under `LAKE_FEATURES_DIR` (`target/featbench`): a spine of 1M rows
//! and three feature views of 10M rows each over 100k entities (ttl 30 days,
//! 7 days, none), and a smaller copy (100k / 3x1M / 10k) for Feast.
//!
//! `LAKE_BENCH_VENV=... cargo bench --bench features`; knobs:
//! `LAKE_FEATURES_RUNS` (3), `LAKE_FEATURES_SPINE` (1000000),
//! `LAKE_FEATURES_ROWS` (10000000), `LAKE_FEATURES_ENTITIES` (100000),
//! `LAKE_FEATURES_FEAST` (1: also run Feast, from `<venv>-feast`),
//! `LAKE_FEATURES_LOOKUPS` (2000 online lookups of 100 keys).

mod common;

use std::collections::HashMap;
use std::future::IntoFuture as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use lake_compiler::{CompileOptions, Manifest, compile};
use lake_engine::{LakeSession, SessionOptions};
use lake_features::{FeatureSelection, OnlineRefresh, Spine, TrainingSet};
use lake_flight::FlightServer;
use lake_storage::LakeRoot;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The data set of one size: generated (or reused) by features_data.py.
fn data(venv: &Path, dir: &Path, spine: usize, rows: usize, entities: usize) -> Json {
    common::run_peer_script(
        venv,
        "features_data.py",
        &json!({
            "dir": dir, "spine_rows": spine, "feature_rows": rows, "views": 3,
            "entities": entities, "seed": 42, "delta": true,
        }),
    )
}

/// A project over the data's Delta tables: sources in `raw` (the lake root's
/// `raw/<table>` are links to the generated tables), one feature view per
/// table, a service with every feature.
fn project(data: &Json, root: &Path) -> Manifest {
    let project = root.join("project");
    std::fs::create_dir_all(project.join("models")).unwrap();
    std::fs::create_dir_all(root.join("raw")).unwrap();
    let delta = data["delta"].as_object().expect("Delta copies of the data");
    for (name, path) in delta {
        let link = root.join("raw").join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(path.as_str().unwrap(), &link).unwrap();
        }
    }
    let mut yaml = String::from(
        "version: 2\nsources:\n  - name: bench\n    tables:\n      - {name: spine, identifier: spine}\n",
    );
    for view in data["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        yaml.push_str(&format!("      - {{name: {name}, identifier: {name}}}\n"));
    }
    yaml.push_str("entities:\n  - {name: customer, join_keys: [customer_id]}\nfeature_views:\n");
    let mut service = Vec::new();
    for view in data["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        let ttl = view["ttl_seconds"].as_u64().unwrap_or(0);
        let features: Vec<&str> = view["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        yaml.push_str(&format!(
            "  - name: {name}\n    entities: [customer]\n    source: bench.{name}\n    timestamp_field: event_ts\n    created_timestamp_field: created_ts\n    ttl: {ttl}\n    features: [{}]\n",
            features.join(", ")
        ));
        service.push(name.to_string());
    }
    yaml.push_str(&format!(
        "feature_services:\n  - name: all\n    features: [{}]\n",
        service.join(", ")
    ));
    std::fs::write(
        project.join("lake_project.yml"),
        "name: bench\nversion: '1'\n",
    )
    .unwrap();
    std::fs::write(project.join("models/features.yml"), yaml).unwrap();
    compile(&project, &CompileOptions::default())
        .expect("the benchmark project compiles")
        .manifest
}

async fn open(root: &Path) -> LakeSession {
    let lake = LakeRoot::open(root.to_str().unwrap(), root, HashMap::new()).unwrap();
    LakeSession::open(Arc::new(lake), &SessionOptions::default())
        .await
        .unwrap()
}

/// One training set through lake: (time, batches).
async fn lake_run(session: &LakeSession, manifest: &Manifest) -> (Duration, Vec<RecordBatch>) {
    let start = Instant::now();
    let set = TrainingSet::new(
        manifest,
        &FeatureSelection::Service("all".into()),
        Spine::Table("raw.spine".into()),
        true,
    )
    .unwrap();
    let stream = set.execute(session.context()).await.unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    (start.elapsed(), batches)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Peak resident memory of this process so far.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Lake's answer equals DuckDB's, column by column (NaN-free data; floats
/// compared exactly: both read the same values).
async fn check_equal(lake: &[RecordBatch], duckdb_parquet: &Path) {
    let ctx = SessionContext::new();
    let theirs = ctx
        .read_parquet(
            duckdb_parquet.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ours = concat_batches(&lake[0].schema(), lake).unwrap();
    let theirs = concat_batches(&theirs[0].schema(), &theirs).unwrap();
    assert_eq!(ours.num_rows(), theirs.num_rows(), "row counts differ");
    for field in ours.schema().fields() {
        let a = ours.column_by_name(field.name()).unwrap();
        let b = theirs
            .column_by_name(field.name())
            .unwrap_or_else(|| panic!("DuckDB has no column {}", field.name()));
        let b = datafusion::arrow::compute::cast(b, a.data_type()).unwrap();
        let differ = (0..a.len())
            .filter(|i| a.slice(*i, 1).to_data() != b.slice(*i, 1).to_data())
            .count();
        assert_eq!(
            differ,
            0,
            "column {} differs in {differ} rows",
            field.name()
        );
    }
}

/// Online lookups over Flight on loopback: refresh every view's online
/// table (a full write), start a `FlightServer` for the project on port 0,
/// and time `do_get(Ticket(json))` for `requests` lookups of `keys` random
/// entities each from a client on a runtime of its own (as in a process of
/// its own). Prints the refresh time and the latency percentiles.
fn online_lookups(
    runtime: &tokio::runtime::Runtime,
    session: &LakeSession,
    manifest: &Manifest,
    entities: usize,
    keys: usize,
    requests: usize,
) {
    let start = Instant::now();
    let mut online_rows = 0;
    for view in manifest.feature_views.values() {
        let outcome = runtime
            .block_on(
                OnlineRefresh::new(session, view)
                    .with_full_refresh(true)
                    .into_future(),
            )
            .unwrap();
        online_rows += outcome.rows;
    }
    let refresh = start.elapsed().as_secs_f64();

    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(
        FlightServer::new(session.clone())
            .with_project(Arc::new(manifest.clone()))
            .with_request_log(|_| {})
            .serve_with_listener(listener, async {
                let _ = stop_rx.await;
            }),
    );
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = client_rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        arrow_flight::FlightClient::new(channel)
    });
    // A fixed pseudo-random sequence of keys (an LCG: no dependency).
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_key = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % entities
    };
    let mut lookup = || {
        let ids: Vec<usize> = (0..keys).map(|_| next_key()).collect();
        let ticket = json!({"online_features": {"feature_service": "all",
                            "entities": {"customer_id": ids}}})
        .to_string();
        let start = Instant::now();
        let batches: Vec<RecordBatch> = client_rt.block_on(async {
            client
                .do_get(arrow_flight::Ticket::new(ticket))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap()
        });
        let elapsed = start.elapsed().as_secs_f64();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, keys, "one row per requested key");
        elapsed
    };
    // The first lookup loads the online tables into memory.
    let first = lookup();
    for _ in 0..20 {
        lookup();
    }
    let mut times: Vec<f64> = (0..requests).map(|_| lookup()).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)] * 1e3;
    println!(
        "\nOnline lookups over Flight (loopback, {keys} keys x 3 views per request, {requests} requests): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; first lookup (loads the online tables) {:.0} ms; \
         online refresh of {online_rows} rows (full) {refresh:.2} s",
        at(0.5),
        at(0.99),
        times[times.len() - 1] * 1e3,
        first * 1e3,
    );
    let _ = stop_tx.send(());
    runtime.block_on(server).unwrap().unwrap();
}

fn peer_times(result: &Json) -> f64 {
    median(
        result["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect(),
    )
}

fn views_request(data: &Json) -> Json {
    Json::Array(
        data["views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                json!({"name": v["name"], "path": v["glob"], "ttl_seconds": v["ttl_seconds"],
                       "features": v["features"]})
            })
            .collect(),
    )
}

fn main() {
    let Some(venv) = common::peer_venv() else {
        eprintln!(
            "features bench: no peer venv (run benches/setup-peers.sh or set LAKE_BENCH_VENV); skipped"
        );
        return;
    };
    let runs = env_usize("LAKE_FEATURES_RUNS", 3).max(1);
    let spine = env_usize("LAKE_FEATURES_SPINE", 1_000_000);
    let rows = env_usize("LAKE_FEATURES_ROWS", 10_000_000);
    let entities = env_usize("LAKE_FEATURES_ENTITIES", 100_000);
    let base = std::env::var_os("LAKE_FEATURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/featbench"));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let full_dir = base.join(format!("s{spine}_r{rows}_e{entities}"));
    let full = data(&venv, &full_dir, spine, rows, entities);
    let manifest = project(&full, &full_dir.join("lake"));
    let session = runtime.block_on(open(&full_dir.join("lake")));
    let mut lake_times = Vec::new();
    let mut answer = Vec::new();
    for _ in 0..runs {
        let (time, batches) = runtime.block_on(lake_run(&session, &manifest));
        lake_times.push(time.as_secs_f64());
        answer = batches;
    }
    let lake_peak = peak_rss();
    let lake_rows: usize = answer.iter().map(RecordBatch::num_rows).sum();

    let duckdb_out = full_dir.join("duckdb_answer.parquet");
    let request = |engine: &str, output: Option<&Path>| {
        json!({"engine": engine, "dir": full_dir.join("scratch"), "spine": full["spine"]["path"],
               "views": views_request(&full), "runs": runs, "threads": 2, "output": output})
    };
    let duckdb = common::run_peer_script(
        &venv,
        "features_peers.py",
        &request("duckdb", Some(&duckdb_out)),
    );
    runtime.block_on(check_equal(&answer, &duckdb_out));
    drop(answer);
    let plain = common::run_peer_script(&venv, "features_peers.py", &request("duckdb_plain", None));

    println!(
        "\nTraining set: spine {spine} rows x 3 feature views x {rows} rows, {entities} entities; median of {runs}"
    );
    println!("| engine | median s | peak RSS | vs lake |");
    println!("|---|---:|---:|---:|");
    let lake_median = median(lake_times.clone());
    let row = |name: &str, t: f64, rss: u64| {
        println!(
            "| {name} | {t:.2} | {:.2} GB | {:.2}x |",
            rss as f64 / 1e9,
            t / lake_median
        );
    };
    row("lake", lake_median, lake_peak);
    row(
        &format!(
            "DuckDB {} (exact rule: ttl + created tie-break)",
            duckdb["version"].as_str().unwrap_or("?")
        ),
        peer_times(&duckdb),
        duckdb["peak_rss_bytes"].as_u64().unwrap_or(0),
    );
    row(
        "DuckDB (plain ASOF, no ttl, no tie-break)",
        peer_times(&plain),
        plain["peak_rss_bytes"].as_u64().unwrap_or(0),
    );
    println!(
        "lake rows {lake_rows}, equal to DuckDB's exact answer: yes (checked column by column)"
    );
    online_lookups(
        &runtime,
        &session,
        &manifest,
        entities,
        100,
        env_usize("LAKE_FEATURES_LOOKUPS", 2000),
    );

    if env_usize("LAKE_FEATURES_FEAST", 1) == 1 {
        let feast_venv = PathBuf::from(format!("{}-feast", venv.display()));
        if !feast_venv.join("bin/python").is_file() {
            println!(
                "Feast: no venv at {} (benches/setup-peers.sh makes it); skipped",
                feast_venv.display()
            );
            return;
        }
        let (s, r, e) = (spine / 10, rows / 10, entities / 10);
        let small_dir = base.join(format!("s{s}_r{r}_e{e}"));
        let small = data(&venv, &small_dir, s, r, e);
        let small_manifest = project(&small, &small_dir.join("lake"));
        let small_session = runtime.block_on(open(&small_dir.join("lake")));
        let mut times = Vec::new();
        for _ in 0..runs {
            times.push(
                runtime
                    .block_on(lake_run(&small_session, &small_manifest))
                    .0
                    .as_secs_f64(),
            );
        }
        let feast = common::run_peer_script(
            &feast_venv,
            "features_peers.py",
            &json!({"engine": "feast", "dir": small_dir.join("scratch"), "spine": small["spine"]["path"],
                    "views": views_request(&small), "runs": 1, "threads": 2}),
        );
        let lake_small = median(times);
        let feast_time = peer_times(&feast);
        println!(
            "\nFeast {} at spine {s} x 3 x {r} rows, {e} entities: Feast {feast_time:.2} s (peak {:.2} GB), lake {lake_small:.3} s: Feast/lake {:.0}x (Feast returned {} of {s} rows: see docs/features.md)",
            feast["version"].as_str().unwrap_or("?"),
            feast["peak_rss_bytes"].as_u64().unwrap_or(0) as f64 / 1e9,
            feast_time / lake_small,
            feast["rows"],
        );
    }
}
