//! Compile speed, side by side: `lake compile` (load, render, DAG, manifest
//! and compiled SQL written) against dbt-core 1.11 + dbt-duckdb's `dbt parse`
//! on the same generated project.
//!
//! `cargo bench --bench compile` (after `benches/setup-peers.sh` for the
//! peer). Knobs: `LAKE_BENCH_SIZES=1000,10000`, `LAKE_BENCH_RUNS=5` (lake),
//! `LAKE_BENCH_DBT_RUNS=3` (dbt at 1,000 models; 1 run above that),
//! `LAKE_BENCH_VENV=path`, `LAKE_BENCH_GENERATE=DIR` (only write a project
//! of the first size there).

mod common;

use std::process::{Command, Stdio};

use common::{env_usize, env_usize_list, median, mib, project_gen, secs, timed};

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass
    // nothing; run either way.
    let sizes = env_usize_list("LAKE_BENCH_SIZES", &[1_000, 10_000]);
    // Only write a project (for profiling, or to look at): the first size.
    if let Some(dir) = std::env::var_os("LAKE_BENCH_GENERATE") {
        let n = sizes.first().copied().unwrap_or(1_000);
        project_gen::generate(std::path::Path::new(&dir), n).expect("generate project");
        println!(
            "wrote a {n}-model project to {}",
            std::path::Path::new(&dir).display()
        );
        return;
    }
    let runs = env_usize("LAKE_BENCH_RUNS", 5).max(1);
    let dbt_runs = env_usize("LAKE_BENCH_DBT_RUNS", 3).max(1);
    let venv = common::peer_venv();
    let dbt = venv
        .as_ref()
        .map(|v| v.join("bin/dbt"))
        .filter(|d| d.is_file());
    if dbt.is_none() {
        eprintln!(
            "note: no dbt found; run benches/setup-peers.sh (or set LAKE_BENCH_VENV) for the side-by-side numbers"
        );
    }
    let lake = env!("CARGO_BIN_EXE_lake");
    println!(
        "| models | tests | lake compile, cold | lake compile, warm (median of {runs}) | lake peak RSS | dbt parse (median) | dbt peak RSS | dbt / lake warm |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        project_gen::generate(dir.path(), n).expect("generate project");
        // Cold: no target/ yet, so every compiled SQL file is created.
        let lake_compile = || {
            let r = timed(
                Command::new(lake)
                    .args(["compile", "--project-dir"])
                    .arg(dir.path())
                    .stdout(Stdio::null()),
            );
            assert!(r.success, "lake compile failed on {n} models");
            r
        };
        let cold = lake_compile();
        // Warm: the edit-compile loop, where only changed files are written.
        let lake_runs: Vec<_> = (0..runs).map(|_| lake_compile()).collect();
        let lake_run = median(lake_runs);
        let dbt_run = dbt.as_ref().map(|dbt| {
            let k = if n <= 1_000 { dbt_runs } else { 1 };
            median(
                (0..k)
                    .map(|_| {
                        let r = timed(
                            Command::new(dbt)
                                .args([
                                    "parse",
                                    "--no-partial-parse",
                                    "--no-version-check",
                                    "--project-dir",
                                ])
                                .arg(dir.path())
                                .arg("--profiles-dir")
                                .arg(dir.path())
                                .current_dir(dir.path())
                                .env("DO_NOT_TRACK", "1")
                                .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
                                .stdout(Stdio::null()),
                        );
                        assert!(r.success, "dbt parse failed on {n} models");
                        r
                    })
                    .collect(),
            )
        });
        let (dbt_time, dbt_mem, ratio) = match dbt_run {
            Some(d) => (
                format!("{:.2} s", secs(d.wall)),
                format!("{:.0} MiB", mib(d.peak_rss_bytes)),
                format!("{:.0}x", secs(d.wall) / secs(lake_run.wall)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {n} | {} | {:.3} s | {:.3} s | {:.0} MiB | {dbt_time} | {dbt_mem} | {ratio} |",
            2 * n,
            secs(cold.wall),
            secs(lake_run.wall),
            mib(lake_run.peak_rss_bytes.max(cold.peak_rss_bytes))
        );
    }
}
