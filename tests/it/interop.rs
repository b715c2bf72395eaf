//! Real readers and clients: the tables lake writes are plain Delta tables
//! (Python `deltalake` and DuckDB's delta extension read them back with the
//! same rows), and `lake serve` answers the ADBC Flight SQL driver. Needs a
//! Python with `deltalake`, `duckdb==1.5.*`, `duckdb-extension-delta`,
//! `pyarrow`, `adbc-driver-flightsql==1.13.*` and
//! `adbc-driver-manager==1.13.*`: `.ci/run` makes one and runs these with
//! `--ignored`.

use std::process::Command;

use super::lakeread::query;
use super::serve::{
    Credential, Served, built_example, hash_password, new_token, seed_customers, write_auth_file,
};
use super::{example_project, lake, repo_root, stderr, stdout};

/// The Python of the interop tests (here and in the S3 tests).
pub fn python() -> String {
    std::env::var("LAKE_TEST_PYTHON").expect(
        "set LAKE_TEST_PYTHON to a Python with deltalake, duckdb==1.5.*, duckdb-extension-delta, \
         pyarrow, adbc-driver-flightsql==1.13.*, adbc-driver-manager==1.13.* and moto[server] \
         (.ci/run makes one)",
    )
}

/// What `python` printed running `args`; a failure panics with what it
/// printed on both streams.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let output = Command::new(python())
        .args(args)
        .output()
        .expect("run python");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

#[test]
#[ignore = "needs the Python readers; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn python_deltalake_and_duckdb_read_what_lake_writes() {
    let dir = example_project();
    let root = dir.path().join(".lake");
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // Run the incremental model a second time so a table has several versions.
    assert!(
        lake(dir.path(), &["build", "-s", "customer_activity_daily"])
            .status
            .success()
    );
    let spec = serde_json::json!({
        "raw.customers": ["customer_id", "email", "segment"],
        "raw.orders": ["order_id", "customer_id", "amount_cents", "status"],
        "raw.support_tickets": ["ticket_id", "satisfaction", "closed_at"],
        "curated.customer_summary": ["customer_id", "email", "orders", "tickets"],
        "curated.daily_revenue": ["orders", "buyers"],
        "curated.customer_activity_daily": ["customer_id", "events", "sessions", "checkouts"],
    });
    let printed = run_python([
        repo_root()
            .join("tests/interop/read_lake.py")
            .into_os_string(),
        root.clone().into_os_string(),
        spec.to_string().into(),
    ]);
    let read: serde_json::Value = serde_json::from_str(&printed).unwrap();
    for (table, columns) in spec.as_object().unwrap() {
        let columns: Vec<&str> = columns
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let sql = format!(
            "select {} from {table}",
            columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut ours = query(&root, &sql);
        // Timestamps print differently per engine; compare their presence.
        if table.ends_with("support_tickets") {
            for row in ours.iter_mut() {
                row[2] = if row[2] == "NULL" {
                    "NULL".into()
                } else {
                    "set".into()
                };
            }
        }
        ours.sort();
        for reader in ["deltalake", "duckdb"] {
            let mut theirs: Vec<Vec<String>> =
                serde_json::from_value(read[table][reader].clone()).unwrap();
            if table.ends_with("support_tickets") {
                for row in theirs.iter_mut() {
                    row[2] = if row[2] == "NULL" {
                        "NULL".into()
                    } else {
                        "set".into()
                    };
                }
            }
            theirs.sort();
            assert_eq!(
                ours.len(),
                theirs.len(),
                "{table}: row count differs for {reader}"
            );
            assert_eq!(ours, theirs, "{table}: rows differ for {reader}");
        }
    }
    assert_eq!(read["curated.customer_activity_daily"]["version"], 1);
}

/// The ADBC Flight SQL driver (a real client, in Go, through Python's
/// DBAPI) against `lake serve --auth`: passwords and an API token, queries
/// with PII masked, metadata, a prepared statement, bulk ingest, and the
/// errors a client sees. Needs
/// `adbc-driver-flightsql==1.13.*` and `adbc-driver-manager==1.13.*` in the
/// Python of LAKE_TEST_PYTHON.
#[test]
#[ignore = "needs the ADBC Flight SQL driver; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_flight_adbc_driver_against_lake_serve() {
    let dir = built_example();
    let passwords = [
        ("alice", "reader", "alice's password"),
        ("loader", "writer", "loader: pass"),
        ("root", "admin", "r00t pass"),
    ];
    let hashes: Vec<String> = passwords
        .iter()
        .map(|(_, _, password)| hash_password(dir.path(), password))
        .collect();
    let mut principals: Vec<(&str, &str, Credential<'_>)> = passwords
        .iter()
        .zip(&hashes)
        .map(|((name, role, _), hash)| (*name, *role, Credential::PasswordHash(hash)))
        .collect();
    let (token, token_sha256) = new_token(dir.path());
    principals.push(("bot", "trainer", Credential::TokenSha256(&token_sha256)));
    let auth = write_auth_file(dir.path(), &principals);
    let server = Served::start(dir.path(), &["--auth", auth.to_str().unwrap()]);
    let mut script = Command::new(python());
    script
        .arg(repo_root().join("tests/interop/flight_adbc.py"))
        .args(["--uri", &server.uri()])
        .args(["--customers", &seed_customers().to_string()])
        .args(["--trainer-token", &token]);
    for (name, role, password) in passwords {
        script.args([&format!("--{role}"), name, password]);
    }
    let output = script.output().expect("run python");
    let (status, log) = server.stop();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("8 passed, 0 failed"), "{printed}");
    assert!(status.success(), "lake serve: {status}\n{log}");
    assert!(log.contains("lake serve: stopped"), "{log}");
    // The driver's calls reached the server as the principals.
    for needle in [
        "principal=alice command=DoGet(statement)",
        "principal=loader command=DoPut(ingest)",
        "principal=root",
        "principal=bot",
    ] {
        assert!(
            log.contains(needle),
            "{needle} not in the server log:\n{log}"
        );
    }
}

/// pyarrow.flight (no generated code, JSON commands) against `lake serve`
/// on the built example: the `churn` training set through GetFlightInfo and
/// DoGet, the same ticket fetched twice, online features, the feature
/// services and bad commands; then new data lands (an order of customer 16,
/// `lake build` while the server runs) and the saved ticket still returns
/// identical bytes while a new request and the online features see the
/// order. Also runs examples/fetch_training_set.py against the server.
#[test]
#[ignore = "needs pyarrow; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_pyarrow_flight_training_sets_and_online_features() {
    let dir = built_example();
    let spine_rows = std::fs::read_to_string(repo_root().join("seeds/churn_labels.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let server = Served::start(dir.path(), &[]);
    let state = tempfile::tempdir().unwrap();
    let script = repo_root().join("tests/interop/flight_features.py");
    let phase = |phase: &str| {
        run_python([
            script.to_str().unwrap(),
            "--uri",
            &server.uri(),
            "--spine-rows",
            &spine_rows.to_string(),
            "--state",
            state.path().to_str().unwrap(),
            "--phase",
            phase,
        ])
    };
    let before = phase("before");
    assert!(before.contains("6 passed, 0 failed"), "{before}");
    // New data lands while the server runs.
    let orders = dir.path().join("seeds/orders.csv");
    let mut text = std::fs::read_to_string(&orders).unwrap();
    text.push_str("61,16,2026-11-20 20:00:00,completed,1000,web\n");
    std::fs::write(&orders, text).unwrap();
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let after = phase("after");
    assert!(after.contains("3 passed, 0 failed"), "{after}");

    let example = repo_root().join("examples/fetch_training_set.py");
    let printed = run_python([example.to_str().unwrap(), &server.uri()]);
    assert!(
        printed.contains(&format!("shape ({spine_rows}, 8)")),
        "{printed}"
    );
    let (status, log) = server.stop();
    assert!(status.success(), "lake serve: {status}\n{log}");
    for needle in [
        "command=GetFlightInfo(TrainingSet)",
        "command=DoGet(TrainingSet)",
        "command=DoGet(OnlineFeatures)",
        "status=InvalidArgument",
    ] {
        assert!(
            log.contains(needle),
            "{needle} not in the server log:\n{log}"
        );
    }
}
