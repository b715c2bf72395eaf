//! The tables lake writes are plain Delta tables: Python `deltalake` and
//! DuckDB's delta extension read them back with the same rows. Needs a
//! Python with `deltalake`, `duckdb==1.5.*` and `duckdb-extension-delta`:
//! `.ci/run` makes one and runs these with `--ignored`.

use std::process::Command;

use super::lakeread::query;
use super::{example_project, lake, repo_root, stdout};

fn python() -> String {
    std::env::var("LAKE_TEST_PYTHON").expect(
        "set LAKE_TEST_PYTHON to a Python with deltalake, duckdb==1.5.* and duckdb-extension-delta (.ci/run does)",
    )
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
    let output = Command::new(python())
        .arg(repo_root().join("tests/interop/read_lake.py"))
        .arg(&root)
        .arg(spec.to_string())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
