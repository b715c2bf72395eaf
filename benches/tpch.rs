//! TPC-H, three ways in one run: lake (Delta tables in the `raw` zone,
//! through `lake sql`'s statement path), plain DataFusion over the very
//! Parquet files behind those Delta tables (the floor for lake's overhead;
//! once with lake's session settings, once with DataFusion's defaults), and
//! DuckDB over the same files (`benches/tpch_duckdb.py`, with the query texts
//! from DuckDB's `tpch` extension, so every engine runs the same SQL).
//! Lake's answers are checked against DuckDB's before anything is timed,
//! and the timed rounds interleave all four, DuckDB included.
//!
//! The data is made by the `tpchgen` crates and loaded with
//! `CREATE TABLE raw.<table> AS SELECT * FROM '<generated>.parquet'`, once
//! per scale factor, under `target/tpch/sf<SF>` (kept between runs; see
//! `benches/common/tpch_data.rs`, shared with the `flight` benchmark).
//!
//! `cargo bench --bench tpch`; knobs: `LAKE_TPCH_SF` (1), `LAKE_TPCH_RUNS`
//! (5, after one warm-up), `LAKE_TPCH_QUERIES` (1..22), `LAKE_TPCH_DIR`,
//! `LAKE_TPCH_THREADS` (the number of cores, for every engine),
//! `LAKE_TPCH_SET` (`key=value,...`: DataFusion settings tried on top of
//! lake's, for lake and for DataFusion with lake's settings),
//! `LAKE_TPCH_EXPLAIN=DIR` (+ `LAKE_TPCH_ANALYZE=1`: each engine's plans),
//! `LAKE_TPCH_PROFILE=ENGINE` (only that engine runs, for a profiler).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use common::tpch_data::{self, TABLES};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use lake_engine::{Executed, LakeSession, SessionOptions};
use serde_json::Value as Json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// DuckDB in a Python process of its own (`benches/tpch_duckdb.py`), which
/// answered every query once and now runs one query per request.
struct DuckDb {
    version: String,
    texts: BTreeMap<usize, String>,
    answers: BTreeMap<usize, Vec<Vec<Option<String>>>>,
    process: std::process::Child,
    replies: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl DuckDb {
    fn start(
        venv: &Path,
        files: &BTreeMap<String, Vec<String>>,
        queries: &[usize],
        threads: usize,
    ) -> DuckDb {
        use std::io::{BufRead as _, Write as _};
        let request = serde_json::json!({"files": files, "threads": threads, "queries": queries});
        let mut process = common::spawn_peer_script(venv, "tpch_duckdb.py");
        let stdin = process.stdin.as_mut().unwrap();
        writeln!(stdin, "{request}").unwrap();
        let mut replies = std::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let first = replies
            .next()
            .expect("benches/tpch_duckdb.py ended before its answers")
            .unwrap();
        let json: Json = serde_json::from_str(&first).unwrap();
        let per_query = |key: &str| -> BTreeMap<usize, &Json> {
            json[key]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v))
                .collect()
        };
        DuckDb {
            version: json["version"].as_str().unwrap_or("?").to_string(),
            texts: per_query("queries")
                .into_iter()
                .map(|(q, v)| (q, v.as_str().unwrap().to_string()))
                .collect(),
            answers: per_query("answers")
                .into_iter()
                .map(|(q, v)| {
                    let rows = v.as_array().unwrap().iter().map(|row| {
                        row.as_array()
                            .unwrap()
                            .iter()
                            .map(|c| c.as_str().map(str::to_string))
                            .collect()
                    });
                    (q, rows.collect())
                })
                .collect(),
            process,
            replies,
        }
    }

    /// Runs query `q` once; its time as DuckDB measured it.
    fn run(&mut self, q: usize) -> f64 {
        use std::io::Write as _;
        let stdin = self.process.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", serde_json::json!({"run": q})).unwrap();
        let reply = self
            .replies
            .next()
            .expect("benches/tpch_duckdb.py ended")
            .unwrap();
        let json: Json = serde_json::from_str(&reply).unwrap();
        json["seconds"].as_f64().unwrap()
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        drop(self.process.stdin.take());
        let _ = self.process.wait();
    }
}

/// `LAKE_TPCH_SET`: `key=value` pairs, comma-separated.
fn extra_settings() -> Vec<(String, String)> {
    std::env::var("LAKE_TPCH_SET")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("LAKE_TPCH_SET: {pair:?} is not key=value"));
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One engine of the Rust side.
enum Engine {
    Lake(LakeSession),
    DataFusion(SessionContext),
}

impl Engine {
    async fn run(&self, sql: &str) -> Vec<RecordBatch> {
        let result = match self {
            Engine::Lake(session) => match session.execute_sql(sql).await {
                Ok(Executed::Rows(df)) => df.collect().await.map_err(|e| e.to_string()),
                Ok(Executed::Done(message)) => panic!("a query answered {message}"),
                Err(e) => Err(e.to_string()),
            },
            Engine::DataFusion(ctx) => match ctx.sql(sql).await {
                Ok(df) => df.collect().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        result.unwrap_or_else(|e| panic!("{e}\n{sql}"))
    }
}

/// A plain DataFusion session reading the given Parquet files.
async fn datafusion_over(config: SessionConfig, files: &BTreeMap<String, Vec<String>>) -> Engine {
    let ctx = SessionContext::new_with_config(config);
    for (table, paths) in files {
        let df = ctx
            .read_parquet(paths.clone(), ParquetReadOptions::default())
            .await
            .unwrap();
        ctx.register_table(table.as_str(), df.into_view()).unwrap();
    }
    Engine::DataFusion(ctx)
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                    .collect(),
            );
        }
    }
    rows
}

/// Equal cells: the same text, or numbers within rounding (DataFusion keeps
/// `avg` of a decimal as a decimal, DuckDB makes it a double).
fn same_cell(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a != b => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        (a, b) => a == b,
    }
}

fn same_rows(a: &[Vec<Option<String>>], b: &[Vec<Option<String>>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(c, d)| same_cell(c, d)))
}

/// Compares answers in order, then as multisets (ties in ORDER BY may come
/// out in any order).
fn check_answer(
    query: usize,
    engine: &str,
    got: &[Vec<Option<String>>],
    want: &[Vec<Option<String>>],
) {
    if same_rows(got, want) {
        return;
    }
    let sorted = |rows: &[Vec<Option<String>>]| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows
    };
    assert!(
        same_rows(&sorted(got), &sorted(want)),
        "Q{query}: {engine}'s answer differs from DuckDB's\n{engine}: {:?}\nduckdb: {:?}",
        &got[..got.len().min(5)],
        &want[..want.len().min(5)],
    );
}

fn main() {
    let sf = tpch_data::scale_factor();
    let runs = common::env_usize("LAKE_TPCH_RUNS", 5).max(1);
    let threads = common::env_usize(
        "LAKE_TPCH_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let queries = common::env_usize_list("LAKE_TPCH_QUERIES", &(1..=22).collect::<Vec<_>>());
    let dir = tpch_data::data_dir(sf);
    let Some(venv) = common::peer_venv() else {
        eprintln!("no peers' venv: run benches/setup-peers.sh (or set LAKE_BENCH_VENV)");
        std::process::exit(1);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let root = tpch_data::open_root(&dir);
        tpch_data::load(&root, &dir, sf, &TABLES).await;
        let files = tpch_data::data_files(&root, &TABLES).await;

        eprintln!("running DuckDB ...");
        let profile = std::env::var("LAKE_TPCH_PROFILE").ok();
        let mut duck = DuckDb::start(&venv, &files, &queries, threads);

        let options = SessionOptions {
            target_partitions: Some(threads),
            ..SessionOptions::default()
        };
        let lake = LakeSession::open(root.clone(), &options).await.unwrap();
        lake.execute_sql("SET datafusion.catalog.default_schema = 'raw'")
            .await
            .unwrap();
        let mut tuned = lake_engine::query_config(Some(threads));
        for (key, value) in extra_settings() {
            lake.execute_sql(&format!("SET {key} = '{value}'"))
                .await
                .unwrap();
            tuned.options_mut().set(&key, &value).unwrap();
        }
        let engines = [
            ("lake", Engine::Lake(lake)),
            ("datafusion", datafusion_over(tuned, &files).await),
            (
                "datafusion-defaults",
                datafusion_over(SessionConfig::new().with_target_partitions(threads), &files).await,
            ),
        ];

        // `LAKE_TPCH_PROFILE=ENGINE`: only that engine runs the queries,
        // `LAKE_TPCH_RUNS` times, for a profiler attached to this process.
        if let Some(only) = profile {
            let Some((_, engine)) = engines.iter().find(|(name, _)| *name == only) else {
                eprintln!("LAKE_TPCH_PROFILE: no engine {only} (lake, datafusion, datafusion-defaults)");
                std::process::exit(2);
            };
            for _ in 0..runs {
                for &q in &queries {
                    engine.run(&duck.texts[&q]).await;
                }
            }
            return;
        }

        // `LAKE_TPCH_EXPLAIN=DIR`: each engine's physical plan of each
        // query, to compare lake's plans with DataFusion's (with
        // `LAKE_TPCH_ANALYZE=1`, as run, with each operator's metrics).
        if let Some(dir) = std::env::var_os("LAKE_TPCH_EXPLAIN") {
            std::fs::create_dir_all(&dir).unwrap();
            let explain = match std::env::var_os("LAKE_TPCH_ANALYZE") {
                Some(_) => "EXPLAIN ANALYZE",
                None => "EXPLAIN",
            };
            for &q in &queries {
                let sql = format!("{explain} {}", duck.texts[&q]);
                for (name, engine) in &engines {
                    let rows = rows_of(&engine.run(&sql).await);
                    let plan = rows.last().and_then(|r| r[1].clone()).unwrap_or_default();
                    std::fs::write(Path::new(&dir).join(format!("q{q}.{name}.txt")), plan).unwrap();
                }
            }
        }

        // Warm-up round, which also checks every answer.
        for &q in &queries {
            let sql = &duck.texts[&q];
            for (name, engine) in &engines {
                let got = rows_of(&engine.run(sql).await);
                check_answer(q, name, &got, &duck.answers[&q]);
            }
        }
        eprintln!("answers of {} queries equal DuckDB's", queries.len());

        // Rounds interleave the engines, DuckDB included, query by query, so
        // that a noisy neighbour hurts them alike (DuckDB answering all its
        // rounds in one block before the others moved its total between
        // 2.9 and 3.9 s within an hour), and each round starts with the next
        // engine: whichever runs a query first after another query pays for
        // memory the allocator gave back (measured: up to 15% on the total).
        // The last slot is DuckDB, timed by its own process.
        let slots = engines.len() + 1;
        let mut times: Vec<BTreeMap<usize, Vec<f64>>> = vec![BTreeMap::new(); slots];
        for round in 0..runs {
            for &q in &queries {
                for step in 0..slots {
                    let i = (round + step) % slots;
                    let seconds = match engines.get(i) {
                        Some((_, engine)) => {
                            let started = Instant::now();
                            engine.run(&duck.texts[&q]).await;
                            started.elapsed().as_secs_f64()
                        }
                        None => duck.run(q),
                    };
                    times[i].entry(q).or_default().push(seconds);
                }
            }
        }
        let medians: Vec<BTreeMap<usize, f64>> = times
            .into_iter()
            .map(|per_query| {
                per_query
                    .into_iter()
                    .map(|(q, mut t)| (q, median_f64(&mut t)))
                    .collect()
            })
            .collect();

        println!(
            "TPC-H SF{sf}, {threads} threads, median of {runs} runs after a warm-up; DuckDB {}\n",
            duck.version
        );
        println!("| query | lake (Delta) | DataFusion, lake's settings (Parquet) | DataFusion defaults (Parquet) | DuckDB (Parquet) | lake / DataFusion | lake / DuckDB |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut totals = [0.0f64; 4];
        for &q in &queries {
            let row = [
                medians[0][&q],
                medians[1][&q],
                medians[2][&q],
                medians[3][&q],
            ];
            for (t, x) in totals.iter_mut().zip(row) {
                *t += x;
            }
            println!(
                "| Q{q} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} |",
                row[0],
                row[1],
                row[2],
                row[3],
                row[0] / row[1],
                row[0] / row[3]
            );
        }
        println!(
            "| **total** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** |",
            totals[0],
            totals[1],
            totals[2],
            totals[3],
            totals[0] / totals[1],
            totals[0] / totals[3]
        );
        println!(
            "\nDelta overhead over plain Parquet: {:+.1}%; lake / DuckDB: {:.2}x; DataFusion defaults / DuckDB: {:.2}x",
            (totals[0] / totals[1] - 1.0) * 100.0,
            totals[0] / totals[3],
            totals[2] / totals[3]
        );
    });
}
