//! Build speed, side by side: `lake build` against dbt-core 1.11 +
//! dbt-duckdb's `dbt build` on the same projects, from an empty lake (and
//! an empty DuckDB file) each run: dbt's classic example (3 seeds, 5
//! models, 20 tests) and a generated project (`LAKE_BENCH_BUILD_MODELS`
//! models in layers, two tests each).
//!
//! `cargo bench --bench build` (after `benches/setup-peers.sh`). Knobs:
//! `LAKE_BENCH_RUNS=5` (lake), `LAKE_BENCH_DBT_RUNS=3`,
//! `LAKE_BENCH_BUILD_MODELS=200`, `LAKE_BENCH_THREADS=4` (both tools),
//! `LAKE_BENCH_VENV=path`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Run, env_usize, median, mib, project_gen, secs, timed};

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// Removes what a previous build left, so every run starts empty.
fn clean(dir: &Path) {
    for leftover in [
        ".lake",
        "target",
        "bench.duckdb",
        "jaffle_shop.duckdb",
        "logs",
    ] {
        let p = dir.join(leftover);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else if p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

fn lake_build(dir: &Path, threads: usize) -> Run {
    clean(dir);
    let r = timed(
        Command::new(env!("CARGO_BIN_EXE_lake"))
            .args(["build", "--threads", &threads.to_string(), "--project-dir"])
            .arg(dir)
            .stdout(Stdio::null()),
    );
    assert!(r.success, "lake build failed in {}", dir.display());
    r
}

fn dbt_build(dbt: &Path, dir: &Path, threads: usize) -> Run {
    clean(dir);
    let r = timed(
        Command::new(dbt)
            .args([
                "build",
                "--no-version-check",
                "--threads",
                &threads.to_string(),
                "--project-dir",
            ])
            .arg(dir)
            .arg("--profiles-dir")
            .arg(dir)
            // dbt-duckdb resolves the profile's database file against the
            // working directory.
            .current_dir(dir)
            .env("DO_NOT_TRACK", "1")
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .stdout(Stdio::null()),
    );
    assert!(r.success, "dbt build failed in {}", dir.display());
    r
}

fn main() {
    let runs = env_usize("LAKE_BENCH_RUNS", 5).max(1);
    let dbt_runs = env_usize("LAKE_BENCH_DBT_RUNS", 3).max(1);
    let generated_models = env_usize("LAKE_BENCH_BUILD_MODELS", 200);
    // Both tools get the same number of threads (lake's default on a
    // small machine).
    let threads = env_usize("LAKE_BENCH_THREADS", 4).max(1);
    let dbt = common::peer_venv()
        .map(|v| v.join("bin/dbt"))
        .filter(|d| d.is_file());
    if dbt.is_none() {
        eprintln!(
            "note: no dbt found; run benches/setup-peers.sh (or set LAKE_BENCH_VENV) for the side-by-side numbers"
        );
    }

    let jaffle = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/compiler/tests/fixtures/jaffle_shop"),
        jaffle.path(),
    );
    let generated = tempfile::tempdir().unwrap();
    project_gen::generate(generated.path(), generated_models).unwrap();

    println!("threads: {threads} for both tools\n");
    println!(
        "| project | nodes | lake build (median of {runs}) | lake per model | lake peak RSS | dbt build (median of {dbt_runs}) | dbt peak RSS | dbt / lake |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let cases = [
        (
            "jaffle_shop (dbt's classic example)",
            jaffle.path(),
            3 + 5 + 20,
            5,
        ),
        (
            "generated",
            generated.path(),
            1 + 3 * generated_models,
            generated_models,
        ),
    ];
    for (name, dir, nodes, models) in cases {
        let lake_run = median((0..runs).map(|_| lake_build(dir, threads)).collect());
        let dbt_run = dbt
            .as_ref()
            .map(|d| median((0..dbt_runs).map(|_| dbt_build(d, dir, threads)).collect()));
        let (dbt_time, dbt_mem, ratio) = match dbt_run {
            Some(d) => (
                format!("{:.2} s", secs(d.wall)),
                format!("{:.0} MiB", mib(d.peak_rss_bytes)),
                format!("{:.1}x", secs(d.wall) / secs(lake_run.wall)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {name} | {nodes} | {:.2} s | {:.1} ms | {:.0} MiB | {dbt_time} | {dbt_mem} | {ratio} |",
            secs(lake_run.wall),
            secs(lake_run.wall) * 1000.0 / models as f64,
            mib(lake_run.peak_rss_bytes)
        );
    }
}
