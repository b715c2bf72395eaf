//! The command line: compile, ls, init, help and docs, exit codes, pipes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::{example_project, lake, project, repo_root, stderr, stdout};

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = lake(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("lake {}", env!("CARGO_PKG_VERSION"))
    );
    for cmd in ["compile", "ls", "init"] {
        let out = lake(dir.path(), &[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        assert!(
            stdout(&out).contains("Usage: lake"),
            "{cmd}: {}",
            stdout(&out)
        );
    }
    let out = lake(dir.path(), &["compile", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1), "a bad flag is a user error");
}

#[test]
fn cli_docs_are_generated_from_the_definitions() {
    let out = lake(&repo_root(), &["generate-docs"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo_root().join("docs/cli.md")).unwrap();
    assert!(
        committed == stdout(&out),
        "docs/cli.md is stale: run `cargo run --bin lake -- generate-docs > docs/cli.md`"
    );
}

#[test]
fn compile_writes_manifest_and_compiled_sql() {
    let dir = example_project();
    let out = lake(dir.path(), &["compile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Compiled 9 models, 5 seeds, 24 tests, 1 sources"),
        "{}",
        stdout(&out)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("target/manifest.json")).unwrap())
            .unwrap();
    let node = &manifest["nodes"]["model.shop_ai.customer_summary"];
    assert_eq!(node["config"]["materialized"], "table");
    assert_eq!(node["relation_name"], "curated.customer_summary");
    let compiled = std::fs::read_to_string(
        dir.path()
            .join("target/compiled/shop_ai/models/marts/customer_summary.sql"),
    )
    .unwrap();
    assert!(
        compiled.contains("from curated.stg_customers c"),
        "{compiled}"
    );
    assert!(!compiled.contains("{{"), "{compiled}");
    let test_sql = dir
        .path()
        .join("target/compiled/shop_ai/models/schema.yml/unique_stg_orders_order_id.sql");
    assert!(test_sql.is_file());
}

#[test]
fn compile_one_model_prints_its_sql_and_writes_only_selected() {
    let dir = example_project();
    let out = lake(
        dir.path(),
        &["compile", "--select", "daily_revenue", "--project-dir", "."],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("-- model.shop_ai.daily_revenue\n"),
        "{text}"
    );
    assert!(text.contains("from curated.stg_orders"), "{text}");
    assert!(
        dir.path()
            .join("target/compiled/shop_ai/models/marts/daily_revenue.sql")
            .is_file()
    );
    assert!(
        !dir.path()
            .join("target/compiled/shop_ai/models/marts/customer_summary.sql")
            .exists()
    );
}

#[test]
fn compile_json_log_format() {
    let dir = example_project();
    let out = lake(dir.path(), &["compile", "--log-format", "json"]);
    assert!(out.status.success());
    let event: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(event["models"], 9);
    assert_eq!(event["tests"], 24);
}

#[test]
fn broken_project_exits_1_naming_file_and_line() {
    let dir = project(&[
        ("lake_project.yml", "name: p\n"),
        ("models/stg_orders.sql", "select 1 as id\n"),
        (
            "models/orders.sql",
            "select *\nfrom {{ ref('stg_ordrs') }}\n",
        ),
    ]);
    let out = lake(dir.path(), &["compile"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: models/orders.sql:2: orders refers to unknown model 'stg_ordrs'"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean 'stg_orders'?"), "{err}");
    assert!(
        !dir.path().join("target/manifest.json").exists(),
        "no manifest from a broken project"
    );
}

#[test]
fn missing_project_exits_1_with_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = lake(dir.path(), &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no lake_project.yml or dbt_project.yml"),
        "{err}"
    );
    assert!(err.contains("lake init"), "{err}");
}

#[test]
fn ls_outputs_and_filters() {
    let dir = example_project();
    let names = stdout(&lake(
        dir.path(),
        &[
            "ls",
            "-s",
            "+customer_summary",
            "--resource-type",
            "model,seed",
            "-o",
            "name",
        ],
    ));
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "customer_summary",
            "customers",
            "orders",
            "stg_customers",
            "stg_orders",
            "stg_support_tickets",
            "stg_web_events",
            "support_tickets",
            "web_events"
        ]
    );
    let selectors = stdout(&lake(
        dir.path(),
        &["ls", "-s", "tag:marts", "--resource-type", "model"],
    ));
    assert_eq!(
        selectors.lines().collect::<Vec<_>>(),
        [
            "shop_ai.marts.customer_activity_daily",
            "shop_ai.marts.customer_orders_daily",
            "shop_ai.marts.customer_summary",
            "shop_ai.marts.daily_revenue"
        ]
    );
    let paths = stdout(&lake(
        dir.path(),
        &[
            "ls",
            "-s",
            "stg_orders",
            "--exclude",
            "resource_type:test",
            "-o",
            "path",
        ],
    ));
    assert_eq!(paths.trim(), "models/staging/stg_orders.sql");
    let json = stdout(&lake(
        dir.path(),
        &[
            "ls",
            "-s",
            "config.materialized:incremental",
            "-o",
            "json",
            "--resource-type",
            "model",
        ],
    ));
    let node: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(node["unique_id"], "model.shop_ai.customer_activity_daily");
    assert_eq!(node["depends_on"][0], "model.shop_ai.stg_web_events");
    let bad = lake(dir.path(), &["ls", "-s", "nosuchmethod:x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("unknown selector method 'nosuchmethod'"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn init_creates_a_project_that_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = lake(dir.path(), &["init", "my_lake"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lake(&dir.path().join("my_lake"), &["compile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Compiled 2 models, 1 seeds, 4 tests"),
        "{}",
        stdout(&out)
    );
    let again = lake(dir.path(), &["init", "my_lake"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    // Enough output that it cannot all sit in the pipe's buffer.
    let mut files: Vec<(String, String)> = vec![("lake_project.yml".into(), "name: wide\n".into())];
    for i in 0..3000 {
        files.push((
            format!("models/model_with_a_long_name_{i:05}.sql"),
            "select 1 as x\n".into(),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = project(&refs);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(["ls", "-o", "path"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("models/"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn recompiling_rewrites_changed_and_missing_files_only() {
    let dir = example_project();
    assert!(lake(dir.path(), &["compile"]).status.success());
    let compiled = dir
        .path()
        .join("target/compiled/shop_ai/models/marts/daily_revenue.sql");
    let other = dir
        .path()
        .join("target/compiled/shop_ai/models/marts/customer_summary.sql");
    let before = std::fs::metadata(&other).unwrap().modified().unwrap();
    // A changed model is written again...
    let model = dir.path().join("models/marts/daily_revenue.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, sql.replace("as buyers", "as distinct_buyers")).unwrap();
    // ...and so is a compiled file someone deleted.
    let deleted = dir
        .path()
        .join("target/compiled/shop_ai/models/staging/stg_orders.sql");
    std::fs::remove_file(&deleted).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(lake(dir.path(), &["compile"]).status.success());
    assert!(
        std::fs::read_to_string(&compiled)
            .unwrap()
            .contains("as distinct_buyers")
    );
    assert!(deleted.is_file());
    assert_eq!(
        std::fs::metadata(&other).unwrap().modified().unwrap(),
        before,
        "unchanged files are left alone"
    );
}
