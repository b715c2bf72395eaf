//! Shared pieces of the benchmarks: synthetic projects, TPC-H data, timing
//! a child process with its peak memory, medians, and the Python peers' venv.

#![allow(dead_code)]

pub mod project_gen;
pub mod tpch_data;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One timed run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub wall: Duration,
    pub peak_rss_bytes: u64,
    pub success: bool,
}

/// Runs `cmd` to completion, measuring wall time and the child's own peak
/// resident memory (from `wait4`, so runs do not mix).
#[allow(unsafe_code)] // wait4: the only way to get one child's own rusage
pub fn timed(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: plain FFI call with valid out-pointers; the child is ours and
    // is reaped exactly once, here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    std::mem::forget(child);
    Run {
        wall,
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// The median of `runs` by wall time (the upper one of an even count).
pub fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs[runs.len() / 2]
}

/// Where the peers (dbt-core + dbt-duckdb, duckdb, deltalake, pyarrow) are
/// installed: `LAKE_BENCH_VENV`, else `benches/.venv` (made by
/// `benches/setup-peers.sh`).
pub fn peer_venv() -> Option<PathBuf> {
    let venv = std::env::var_os("LAKE_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/.venv"));
    venv.join("bin/python").is_file().then_some(venv)
}

/// `benches/<script>` run by the peers' Python, with stdin and stdout piped
/// (the scripts read a request on stdin and answer on stdout).
pub fn spawn_peer_script(venv: &Path, script: &str) -> std::process::Child {
    Command::new(venv.join("bin/python"))
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches")
                .join(script),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python from the bench venv")
}

/// Runs a peer script of `benches/` with one JSON request on stdin and
/// returns the JSON it prints.
pub fn run_peer_script(
    venv: &Path,
    script: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    use std::io::Write as _;
    let mut child = spawn_peer_script(venv, script);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "benches/{script} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn env_usize_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .filter_map(|s| s.trim().replace('_', "").parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
