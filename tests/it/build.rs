//! `lake build` end to end: materializations and incremental strategies,
//! schema changes, failures and skips, retry, atomicity under kill -9,
//! concurrent builds, and dbt's classic example building to known rows.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::lakeread::{query, scalar, try_query};
use super::{copy_tree, example_project, lake, project, repo_root, stderr, stdout};

fn build(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    lake(dir, &all)
}

fn run_results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap()).unwrap()
}

fn status_of(results: &serde_json::Value, unique_id: &str) -> String {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unique_id"] == unique_id)
        .map(|r| r["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "absent".into())
}

const EVENTS: &str = "id,day,kind,amount,batch
1,2026-01-01,click,10,1
2,2026-01-01,view,20,1
3,2026-01-02,click,30,1
2,2026-01-01,view,25,2
4,2026-01-03,view,40,2
5,2026-01-03,click,50,2
";

fn incremental(strategy: &str, extra: &str) -> String {
    format!(
        "{{{{ config(materialized='incremental', incremental_strategy='{strategy}'{extra}) }}}}\nselect id, day, kind, amount from {{{{ ref('base') }}}}\n"
    )
}

fn materializations_project() -> tempfile::TempDir {
    project(&[
        ("lake_project.yml", "name: mats\nvars:\n  batch: 1\n"),
        ("seeds/events.csv", EVENTS),
        (
            "models/base.sql",
            "{{ config(materialized='ephemeral') }}\nselect id, cast(day as date) as day, kind, amount\nfrom {{ ref('events') }}\nwhere batch = {{ var('batch') }}\n",
        ),
        (
            "models/by_kind.sql",
            "{{ config(materialized='view') }}\nselect kind, count(*) as n from {{ ref('events') }} group by kind\n",
        ),
        (
            "models/snapshot.sql",
            "{{ config(materialized='table', partition_by='kind') }}\nselect * from {{ ref('base') }}\n",
        ),
        ("models/inc_append.sql", &incremental("append", "")),
        (
            "models/inc_merge.sql",
            &incremental("merge", ", unique_key='id'"),
        ),
        (
            "models/inc_delete_insert.sql",
            &incremental("delete+insert", ", unique_key=['id']"),
        ),
        (
            "models/inc_insert_overwrite.sql",
            &incremental("insert_overwrite", ", partition_by=['day']"),
        ),
    ])
}

fn ids_and_amounts(root: &Path, table: &str) -> Vec<String> {
    query(
        root,
        &format!("select id, amount from {table} order by id, amount"),
    )
    .into_iter()
    .map(|r| format!("{}:{}", r[0], r[1]))
    .collect()
}

#[test]
fn materializations_and_incremental_strategies() {
    let dir = materializations_project();
    let root = dir.path().join(".lake");
    let out = build(dir.path(), &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("OK loaded seed raw.events"), "{text}");
    assert!(text.contains("OK created view curated.by_kind"), "{text}");
    assert!(
        text.contains("OK created table curated.snapshot [") && text.contains("3 rows"),
        "{text}"
    );
    assert!(
        !text.contains("base"),
        "ephemeral models do not run: {text}"
    );
    // First run: every incremental model holds batch 1.
    for t in [
        "inc_append",
        "inc_merge",
        "inc_delete_insert",
        "inc_insert_overwrite",
    ] {
        assert_eq!(ids_and_amounts(&root, t), ["1:10", "2:20", "3:30"], "{t}");
    }
    assert_eq!(
        query(&root, "select kind, n from curated.by_kind order by kind"),
        [["click", "3"], ["view", "3"]]
    );
    assert!(
        root.join("curated/snapshot/kind=click").is_dir(),
        "partition_by makes Delta partitions"
    );
    assert!(
        root.join("_lake/views/curated/by_kind.json").is_file(),
        "views live in the lake's catalog"
    );

    // Second run: batch 2 (an update of id 2, new ids 4 and 5).
    let out = build(dir.path(), &["--vars", "{batch: 2}"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("OK append into curated.inc_append"), "{text}");
    assert!(text.contains("OK merged into curated.inc_merge"), "{text}");
    assert_eq!(
        ids_and_amounts(&root, "inc_append"),
        ["1:10", "2:20", "2:25", "3:30", "4:40", "5:50"]
    );
    assert_eq!(
        ids_and_amounts(&root, "inc_merge"),
        ["1:10", "2:25", "3:30", "4:40", "5:50"]
    );
    assert_eq!(
        ids_and_amounts(&root, "inc_delete_insert"),
        ["1:10", "2:25", "3:30", "4:40", "5:50"]
    );
    // Partitions 2026-01-01 and 2026-01-03 are replaced, 2026-01-02 kept.
    assert_eq!(
        ids_and_amounts(&root, "inc_insert_overwrite"),
        ["2:25", "3:30", "4:40", "5:50"]
    );
    // Each materialization was one commit per run.
    let results = run_results(dir.path());
    let version = |id: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"] == id)
            .unwrap()["adapter_response"]["delta_version"]
            .as_u64()
            .unwrap()
    };
    for t in [
        "inc_append",
        "inc_merge",
        "inc_delete_insert",
        "inc_insert_overwrite",
        "snapshot",
    ] {
        assert_eq!(version(&format!("model.mats.{t}")), 1, "{t}");
    }

    // Full refresh: rebuilt from batch 2 alone.
    let out = build(
        dir.path(),
        &["--vars", "{batch: 2}", "--full-refresh", "-s", "inc_append"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("OK rebuilt incremental curated.inc_append"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        ids_and_amounts(&root, "inc_append"),
        ["2:25", "4:40", "5:50"]
    );
}

fn schema_project(mode: &str) -> tempfile::TempDir {
    project(&[
        (
            "lake_project.yml",
            "name: sc\nvars:\n  batch: 1\n  cols: 'id, amount'\n",
        ),
        ("seeds/events.csv", EVENTS),
        (
            "models/sc.sql",
            &format!(
                "{{{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='{mode}') }}}}\nselect {{{{ var('cols') }}}} from {{{{ ref('events') }}}} where batch = {{{{ var('batch') }}}}\n"
            ),
        ),
    ])
}

fn columns(root: &Path, table: &str) -> Vec<String> {
    query(
        root,
        &format!("select column_name from information_schema.columns where table_schema = 'curated' and table_name = '{table}' order by ordinal_position"),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

#[test]
fn on_schema_change_modes() {
    // ignore: a new column is dropped.
    let dir = schema_project("ignore");
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    let out = build(
        dir.path(),
        &["--vars", "{batch: 2, cols: 'id, amount, kind'}"],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(columns(&root, "sc"), ["id", "amount"]);
    assert_eq!(scalar(&root, "select count(*) from sc"), "6");

    // fail: the run fails and the table stays as it was.
    let dir = schema_project("fail");
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    let out = build(
        dir.path(),
        &["--vars", "{batch: 2, cols: 'id, amount, kind'}"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("the columns of curated.sc changed (new: kind)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(scalar(&root, "select count(*) from sc"), "3");

    // append_new_columns: the column is added, NULL in the old rows.
    let dir = schema_project("append_new_columns");
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    let out = build(
        dir.path(),
        &["--vars", "{batch: 2, cols: 'id, amount, kind'}"],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(columns(&root, "sc"), ["id", "amount", "kind"]);
    assert_eq!(
        scalar(&root, "select count(*) from sc where kind is null"),
        "3"
    );
    assert_eq!(
        scalar(&root, "select count(*) from sc where kind is not null"),
        "3"
    );

    // sync_all_columns: the table takes the new columns exactly.
    let dir = schema_project("sync_all_columns");
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    let out = build(dir.path(), &["--vars", "{batch: 2, cols: 'id, kind'}"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(columns(&root, "sc"), ["id", "kind"]);
    assert_eq!(scalar(&root, "select count(*) from sc"), "6");
}

fn failure_project(bad_sql: &str) -> tempfile::TempDir {
    project(&[
        (
            "lake_project.yml",
            "name: fs\nmodels:\n  +materialized: table\n",
        ),
        ("models/good.sql", "select 1 as id\n"),
        (
            "models/good_child.sql",
            "select id + 1 as id from {{ ref('good') }}\n",
        ),
        ("models/bad.sql", bad_sql),
        ("models/bad_child.sql", "select * from {{ ref('bad') }}\n"),
    ])
}

#[test]
fn a_failure_skips_downstream_keeps_the_old_version_and_retry_finishes() {
    let dir = failure_project("select 1 as id, 'v1' as version\n");
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    // Break the model: it plans against a column that does not exist.
    std::fs::write(
        dir.path().join("models/bad.sql"),
        "select id, no_such_column from {{ ref('good') }}\n",
    )
    .unwrap();
    let out = build(dir.path(), &["--threads", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("ERROR table model curated.bad"), "{text}");
    assert!(
        text.contains("models/bad.sql"),
        "the error names the file: {text}"
    );
    assert!(
        text.contains("target/compiled/fs/models/bad.sql"),
        "and the compiled SQL: {text}"
    );
    assert!(text.contains("no_such_column"), "{text}");
    assert!(
        text.contains("SKIP table model curated.bad_child"),
        "{text}"
    );
    let results = run_results(dir.path());
    assert_eq!(status_of(&results, "model.fs.good"), "success");
    assert_eq!(status_of(&results, "model.fs.good_child"), "success");
    assert_eq!(status_of(&results, "model.fs.bad"), "error");
    assert_eq!(status_of(&results, "model.fs.bad_child"), "skipped");
    // The failed model's table is still the previous version.
    assert_eq!(query(&root, "select version from bad"), [["v1"]]);

    // Fix it; retry runs only what errored or was skipped.
    std::fs::write(
        dir.path().join("models/bad.sql"),
        "select 2 as id, 'v2' as version\n",
    )
    .unwrap();
    let out = lake(dir.path(), &["retry"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let results = run_results(dir.path());
    let ran: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["model.fs.bad", "model.fs.bad_child"]);
    assert_eq!(query(&root, "select version from bad_child"), [["v2"]]);
    let again = lake(dir.path(), &["retry"]);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("Nothing to retry"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn syntax_errors_fail_the_run_before_anything_is_written() {
    let dir = failure_project("select 1 as id,, 2\n");
    let out = build(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("models/bad.sql: SQL syntax error"),
        "{}",
        stdout(&out)
    );
    let results = run_results(dir.path());
    assert_eq!(
        status_of(&results, "model.fs.good"),
        "skipped",
        "nothing ran"
    );
    assert!(!dir.path().join(".lake/curated/good").exists());
}

#[test]
fn fail_fast_stops_the_run() {
    let dir = failure_project("select no_such_column\n");
    let out = build(
        dir.path(),
        &["--fail-fast", "--threads", "1", "-s", "bad", "good+"],
    );
    assert_eq!(out.status.code(), Some(1));
    let results = run_results(dir.path());
    let statuses: Vec<String> = ["model.fs.bad", "model.fs.good", "model.fs.good_child"]
        .iter()
        .map(|id| status_of(&results, id))
        .collect();
    assert!(statuses.contains(&"error".to_string()), "{statuses:?}");
    assert!(
        statuses.contains(&"skipped".to_string()),
        "--fail-fast skips what had not run: {statuses:?}"
    );
}

#[test]
fn kill_9_mid_build_leaves_every_table_readable() {
    let dir = project(&[
        ("lake_project.yml", "name: k\nvars:\n  n: 1000\n"),
        (
            "models/small.sql",
            "{{ config(materialized='table') }}\nselect 1 as id\n",
        ),
        (
            "models/big.sql",
            "{{ config(materialized='table') }}\nselect value as id, value * 2 as twice, cast(value as varchar) as label from range(0, {{ var('n') }})\n",
        ),
    ]);
    let root = dir.path().join(".lake");
    assert!(build(dir.path(), &[]).status.success());
    assert_eq!(scalar(&root, "select count(*) from big"), "1000");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(["build", "--vars", "{n: 200000000}", "-s", "big"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the big write is under way, then kill without warning.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(Ok(line)) = lines.next() {
        if line.contains("START table model curated.big") || Instant::now() > deadline {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !finished_early,
        "the build should still have been writing when killed"
    );
    // The previous version is what readers see; nothing partial.
    assert_eq!(scalar(&root, "select count(*) from big"), "1000");
    assert_eq!(scalar(&root, "select count(*) from small"), "1");
    // And the lake keeps working.
    let out = build(dir.path(), &["--vars", "{n: 5000}"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(scalar(&root, "select count(*) from big"), "5000");
}

#[test]
fn concurrent_builds_do_not_corrupt_tables() {
    let dir = example_project();
    let root = dir.path().join(".lake");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_lake"))
            .args(["build", "--threads", "2"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        if !out.status.success() {
            // A loser may fail a node, but only with a clear conflict.
            let text = stdout(out);
            for line in text.lines().filter(|l| l.contains(" ERROR ")) {
                let detail = format!("{line}{}", text.split(line).nth(1).unwrap_or(""));
                assert!(
                    detail.contains("conflict") || detail.contains("another"),
                    "an error that is not a commit conflict: {line}\n{text}"
                );
            }
        }
    }
    // Every table reads, with the rows a single build writes.
    let out = build(dir.path(), &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(scalar(&root, "select count(*) from raw.customers"), "20");
    assert_eq!(
        scalar(&root, "select count(*) from curated.customer_summary"),
        "20"
    );
    assert_eq!(scalar(&root, "select count(*) from raw.orders"), "60");
}

#[test]
fn the_example_project_builds() {
    let dir = example_project();
    let root = dir.path().join(".lake");
    let out = build(dir.path(), &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Finished 39 nodes and 2 online tables"),
        "{}",
        stdout(&out)
    );
    // 60 orders, one of them with no amount, dropped in staging.
    assert_eq!(scalar(&root, "select count(*) from stg_orders"), "59");
    assert_eq!(
        scalar(&root, "select sum(orders) from customer_summary"),
        "59"
    );
    assert_eq!(
        scalar(
            &root,
            "select cast(round(sum(revenue), 2) as varchar) from customer_summary"
        ),
        scalar(
            &root,
            "select cast(round(sum(amount_cents) / 100.0, 2) as varchar) from raw.orders where amount_cents > 0"
        )
    );
    assert_eq!(scalar(&root, "select count(*) from raw.web_events"), "120");
    assert_eq!(
        scalar(&root, "select sum(events) from customer_activity_daily"),
        "120"
    );
    // Seeds get types: ids are integers, times are timestamps.
    let types = query(
        &root,
        "select column_name, data_type from information_schema.columns where table_schema = 'raw' and table_name = 'orders' order by ordinal_position",
    );
    assert_eq!(types[0], ["order_id", "Int64"]);
    assert!(types[2][1].starts_with("Timestamp"), "{types:?}");
    // column_types is honoured.
    let sat = query(
        &root,
        "select data_type from information_schema.columns where table_schema = 'raw' and table_name = 'support_tickets' and column_name = 'satisfaction'",
    );
    assert_eq!(sat, [["Int32"]]);
    // A second build merges the newest day again and changes nothing else.
    let out = build(dir.path(), &[]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("OK merged into curated.customer_activity_daily"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        scalar(&root, "select sum(events) from customer_activity_daily"),
        "120"
    );
}

#[test]
fn dbt_classic_example_builds_to_known_rows() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &repo_root().join("crates/compiler/tests/fixtures/jaffle_shop"),
        dir.path(),
    );
    let root = dir.path().join(".lake");
    let out = build(dir.path(), &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("20 pass"),
        "all 20 tests pass: {}",
        stdout(&out)
    );
    assert_eq!(
        query(
            &root,
            "select customer_id, number_of_orders, cast(customer_lifetime_value as bigint), cast(first_order as varchar) from customers order by customer_id"
        ),
        [
            ["1", "2", "37", "2018-01-01"],
            ["2", "1", "17", "2018-01-05"],
            ["3", "2", "26", "2018-01-02"],
            ["4", "1", "1", "2018-01-04"],
            ["5", "1", "39", "2018-01-09"],
        ]
    );
    assert_eq!(
        query(
            &root,
            "select order_id, cast(amount as bigint), cast(gift_card_amount as bigint) from orders where order_id in (4, 7) order by order_id"
        ),
        [["4", "27", "2"], ["7", "39", "23"]]
    );
    let results = run_results(dir.path());
    assert_eq!(results["results"].as_array().unwrap().len(), 3 + 5 + 20);
}

#[test]
fn a_missing_lake_root_scheme_is_a_clear_error() {
    let dir = materializations_project();
    let out = build(dir.path(), &["--lake-root", "ftp://somewhere/lake"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported scheme 'ftp://'"),
        "{}",
        stderr(&out)
    );
    assert!(try_query(&dir.path().join(".lake"), "select 1").is_ok());
}

#[test]
fn seed_run_and_test_as_separate_steps_with_a_json_log() {
    let dir = example_project();
    let out = lake(dir.path(), &["seed", "--log-format", "json"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "node_finished")
        .collect();
    assert_eq!(finished.len(), 5, "five seeds");
    assert!(finished.iter().all(|e| e["result"]["status"] == "success"));
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    let out = lake(dir.path(), &["run"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Finished 10 nodes and 2 online tables"),
        "{}",
        stdout(&out)
    );
    let out = lake(dir.path(), &["test"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Finished 24 nodes") && stdout(&out).contains("24 pass"),
        "{}",
        stdout(&out)
    );
    // A test that fails makes `lake test` exit 1 with the count.
    std::fs::write(
        dir.path().join("data-tests/always_fails.sql"),
        "select * from {{ ref('stg_orders') }} where order_id < 4\n",
    )
    .unwrap();
    let out = lake(dir.path(), &["test", "-s", "always_fails"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL 3 test always_fails"),
        "{}",
        stdout(&out)
    );
}
