//! `lake ingest` (and `lake build`) loading external sources' landing
//! files into raw Delta tables: new files only over several runs, each
//! file exactly once after a kill, schema evolution, malformed files
//! failing or quarantined, csv / json / parquet.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::lakeread::{query, scalar};
use super::{lake, project, stderr, stdout};

const SOURCES: &str = r#"
version: 2
sources:
  - name: landing
    tables:
      - name: events
        loaded_at_field: ingested_at
        external:
          location: landing/events/
          format: csv
"#;

const MODEL: &str = "select kind, count(*) as n, sum(amount) as amount from {{ source('landing', 'events') }} group by kind\n";

fn events_project() -> tempfile::TempDir {
    project(&[
        ("lake_project.yml", "name: ingest\n"),
        ("models/sources.yml", SOURCES),
        ("models/by_kind.sql", MODEL),
        (
            "landing/events/2026-11-01.csv",
            "id,kind,amount\n1,click,10\n2,view,20\n",
        ),
    ])
}

fn write(dir: &Path, path: &str, text: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

fn root(dir: &Path) -> std::path::PathBuf {
    dir.join(".lake")
}

fn run_results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap()).unwrap()
}

/// The result of the source's ingestion in the last run.
fn ingest_result(dir: &Path) -> serde_json::Value {
    run_results(dir)["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unique_id"] == "source.ingest.landing.events")
        .cloned()
        .expect("the source's result")
}

fn files_of(result: &serde_json::Value, key: &str) -> Vec<String> {
    result["adapter_response"]["ingest"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ingest_loads_new_files_only_over_several_runs() {
    let dir = events_project();
    let p = dir.path();
    // Markers and hidden files are not data.
    write(p, "landing/events/_SUCCESS", "done");
    write(p, "landing/events/.part.csv.tmp", "id,kind,amount\n9,x,9\n");
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out)
            .contains("ingested 1 file (2 rows) into raw.landing__events: 2026-11-01.csv (2)"),
        "{}",
        stdout(&out)
    );
    let result = ingest_result(p);
    assert_eq!(result["status"], "success");
    assert_eq!(files_of(&result, "files"), ["2026-11-01.csv"]);
    assert_eq!(result["adapter_response"]["rows_affected"], 2);
    // `lake ingest` runs no model.
    assert!(
        !root(p).join("curated/by_kind").exists(),
        "ingest must not build models"
    );

    // A new file; `lake build` ingests it before the model that reads it.
    write(
        p,
        "landing/events/2026-11-02.csv",
        "id,kind,amount\n3,click,30\n4,click,40\n5,view,50\n",
    );
    let out = lake(p, &["build"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let result = ingest_result(p);
    assert_eq!(files_of(&result, "files"), ["2026-11-02.csv"]);
    assert_eq!(result["adapter_response"]["ingest"]["already_ingested"], 1);
    assert_eq!(
        query(
            &root(p),
            "select kind, n, amount from curated.by_kind order by kind"
        ),
        [["click", "3", "80"], ["view", "2", "70"]]
    );
    // Every row knows its file and when it was loaded; the first file's
    // rows were loaded in an earlier run.
    assert_eq!(
        query(
            &root(p),
            "select _source_file, count(*), count(distinct ingested_at) from raw.landing__events group by _source_file order by 1"
        ),
        [["2026-11-01.csv", "2", "1"], ["2026-11-02.csv", "3", "1"]]
    );
    assert_eq!(
        scalar(
            &root(p),
            "select count(distinct ingested_at) from raw.landing__events"
        ),
        "2"
    );

    // Nothing new: nothing added, no commit.
    let commits = || {
        std::fs::read_dir(root(p).join("raw/landing__events/_delta_log"))
            .unwrap()
            .count()
    };
    let before = commits();
    let out = lake(p, &["ingest", "--select", "source:landing.events"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("ingested 0 files (0 rows) into raw.landing__events, 2 already in"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        scalar(&root(p), "select count(*) from raw.landing__events"),
        "5"
    );
    assert_eq!(commits(), before, "no commit without new files");
}

#[test]
fn ingest_adds_new_columns_and_refuses_an_incompatible_type_change() {
    let dir = events_project();
    let p = dir.path();
    write(
        p,
        "landing/events/2026-11-02.csv",
        "id,kind,amount,country\n3,click,30,FR\n",
    );
    // A text amount: the files before it stay ingested, the ones after
    // wait.
    write(
        p,
        "landing/events/2026-11-03.csv",
        "id,kind,amount\n4,view,forty\n",
    );
    write(
        p,
        "landing/events/2026-11-04.csv",
        "id,kind,amount\n5,view,50\n",
    );
    let out = lake(p, &["ingest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2026-11-03.csv") && text.contains("amount") && text.contains("Int64"),
        "the error names the file, the column and the type: {text}"
    );
    let result = ingest_result(p);
    assert_eq!(result["status"], "error");
    assert_eq!(
        files_of(&result, "files"),
        ["2026-11-01.csv", "2026-11-02.csv"]
    );
    assert_eq!(
        query(
            &root(p),
            "select id, country from raw.landing__events order by id"
        ),
        [["1", "NULL"], ["2", "NULL"], ["3", "FR"]]
    );

    // Fixed file: the run picks up where it stopped.
    write(
        p,
        "landing/events/2026-11-03.csv",
        "id,kind,amount\n4,view,40\n",
    );
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        files_of(&ingest_result(p), "files"),
        ["2026-11-03.csv", "2026-11-04.csv"]
    );
    assert_eq!(
        scalar(
            &root(p),
            "select string_agg(cast(id as varchar), ',' order by id) from raw.landing__events"
        ),
        "1,2,3,4,5"
    );
}

/// A project whose three sources (csv, json, parquet) each hold one good
/// file and one malformed file.
fn malformed_project(on_error: &str) -> tempfile::TempDir {
    let sources = format!(
        r#"
version: 2
sources:
  - name: landing
    tables:
      - name: events
        external: {{location: landing/events/, format: csv, on_error: {on_error}}}
      - name: clicks
        external: {{location: landing/clicks/, format: json, on_error: {on_error}}}
      - name: orders
        external: {{location: landing/orders/, format: parquet, on_error: {on_error}}}
"#
    );
    let dir = project(&[
        ("lake_project.yml", "name: ingest\n"),
        ("models/sources.yml", &sources),
        ("landing/events/a.csv", "id,kind\n1,click\n2,view\n"),
        (
            "landing/events/b.csv",
            "id,kind\n3,click\n4,view,extra\n5,view\n",
        ),
        (
            "landing/clicks/a.json",
            "{\"id\": 1, \"page\": \"/\"}\n{\"id\": 2, \"page\": \"/cart\"}\n",
        ),
        (
            "landing/clicks/b.json",
            "{\"id\": 3, \"page\": \"/\"}\n{\"id\": 4, \"page\": \n",
        ),
        ("landing/orders/b.parquet", "PAR1 this is not parquet"),
    ]);
    // A real Parquet file, written by lake itself.
    let a = dir.path().join("landing/orders/a.parquet");
    let out = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            &format!(
                "copy (select 1 as id, 9.5 as total union all select 2, 3.25) to '{}' stored as parquet",
                a.display()
            ),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    dir
}

#[test]
fn ingest_malformed_files_fail_naming_the_file_and_line() {
    let dir = malformed_project("fail");
    let p = dir.path();
    let out = lake(p, &["ingest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("b.csv") && text.contains("line 3"),
        "the csv error names the file and line: {text}"
    );
    assert!(
        text.contains("b.json") && text.contains("line 2"),
        "the json error names the file and line: {text}"
    );
    assert!(
        text.contains("b.parquet") && text.contains("parquet"),
        "the parquet error names the file: {text}"
    );
    // The good files before each bad one are in.
    for (table, rows) in [("events", "2"), ("clicks", "2"), ("orders", "2")] {
        assert_eq!(
            scalar(
                &root(p),
                &format!("select count(*) from raw.landing__{table}")
            ),
            rows,
            "{table}"
        );
    }
    // Nothing was moved.
    assert!(p.join("landing/events/b.csv").exists());
}

#[test]
fn ingest_quarantines_malformed_files_and_loads_the_rest() {
    let dir = malformed_project("quarantine");
    let p = dir.path();
    write(p, "landing/events/c.csv", "id,kind\n6,click\n");
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("WARN") && text.contains("quarantined 1: b.csv"),
        "{text}"
    );
    for (table, bad) in [
        ("events", "b.csv"),
        ("clicks", "b.json"),
        ("orders", "b.parquet"),
    ] {
        let folder = p.join("landing").join(table);
        assert!(!folder.join(bad).exists(), "{bad} moved away");
        assert!(
            folder.join("_quarantine").join(bad).exists(),
            "{bad} quarantined"
        );
    }
    let results = run_results(p);
    let events = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unique_id"] == "source.ingest.landing.events")
        .unwrap();
    assert_eq!(events["status"], "warn");
    let quarantined = &events["adapter_response"]["ingest"]["quarantined"][0];
    assert_eq!(quarantined["moved_to"], "_quarantine/b.csv");
    assert!(
        quarantined["error"].as_str().unwrap().contains("line 3"),
        "{quarantined}"
    );
    assert_eq!(
        query(
            &root(p),
            "select id, _source_file from raw.landing__events order by id"
        ),
        [["1", "a.csv"], ["2", "a.csv"], ["6", "c.csv"]]
    );
    assert_eq!(
        query(
            &root(p),
            "select id, total from raw.landing__orders order by id"
        ),
        [["1", "9.5"], ["2", "3.25"]]
    );
    // The quarantine is not read again.
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("quarantined"), "{}", stdout(&out));
}

#[test]
fn ingest_killed_half_way_then_run_again_loads_each_row_once() {
    let dir = events_project();
    let p = dir.path();
    // More files than one commit takes (100), so the kill lands between
    // commits.
    let files = 250;
    for i in 0..files {
        let rows: String = (0..20)
            .map(|r| format!("{},click,{r}\n", 100_000 + i * 1000 + r))
            .collect();
        write(
            p,
            &format!("landing/events/part-{i:03}.csv"),
            &format!("id,kind,amount\n{rows}"),
        );
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(["ingest"])
        .current_dir(p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill without warning once the table and its first batch are in.
    let log = root(p).join("raw/landing__events/_delta_log");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let commits = std::fs::read_dir(&log)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
                })
                .count()
            })
            .unwrap_or(0);
        if commits >= 2 || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished_early,
        "the ingestion should still have been running when killed"
    );
    let loaded: u64 = scalar(
        &root(p),
        "select count(distinct _source_file) from raw.landing__events",
    )
    .parse()
    .unwrap();
    assert!(
        (100..=files).contains(&loaded),
        "killed half way, after whole batches of 100: {loaded} files in"
    );

    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let total = files as usize * 20 + 2;
    assert_eq!(
        scalar(&root(p), "select count(*) from raw.landing__events"),
        total.to_string()
    );
    assert_eq!(
        scalar(
            &root(p),
            "select count(distinct id) from raw.landing__events"
        ),
        total.to_string(),
        "no row twice"
    );
}

#[test]
fn ingest_errors_name_the_yaml_and_the_folder() {
    let dir = project(&[
        ("lake_project.yml", "name: ingest\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: landing\n    tables:\n      - name: events\n        external: {location: landing/events/, format: cvs}\n",
        ),
    ]);
    let out = lake(dir.path(), &["ingest"]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("models/sources.yml:5") && text.contains("did you mean 'csv'"),
        "{text}"
    );

    let dir = project(&[
        ("lake_project.yml", "name: ingest\n"),
        ("models/sources.yml", SOURCES),
    ]);
    let out = lake(dir.path(), &["ingest"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("landing/events") && text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn two_ingestions_at_once_load_each_file_once() {
    let dir = events_project();
    let p = dir.path();
    for i in 0..20 {
        write(
            p,
            &format!("landing/events/part-{i:03}.csv"),
            &format!("id,kind,amount\n{},view,{i}\n", 100 + i),
        );
    }
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_lake"))
            .args(["ingest"])
            .current_dir(p)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        if !out.status.success() {
            // The loser stops at a clear conflict.
            assert!(stdout(&out).contains("conflict"), "{}", stdout(&out));
        }
    }
    // Whatever the loser left is loaded by the next run, once.
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        query(
            &root(p),
            "select count(*), count(distinct id), count(distinct _source_file) from raw.landing__events"
        ),
        [["22", "22", "21"]]
    );
}

#[test]
fn ingest_keeps_quoted_newlines_odd_names_and_skips_files_without_rows() {
    let dir = events_project();
    let p = dir.path();
    // A header only: no commit, and the table is not made from it.
    std::fs::remove_file(p.join("landing/events/2026-11-01.csv")).unwrap();
    write(p, "landing/events/0-empty.csv", "id,kind,amount\n");
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        !root(p).join("raw/landing__events").exists(),
        "no table from no rows"
    );
    assert_eq!(
        ingest_result(p)["adapter_response"]["ingest"]["empty"][0],
        "0-empty.csv"
    );
    // A value with a line break, and a name with a space and a percent sign.
    write(
        p,
        "landing/events/100% done, day 1.csv",
        "id,kind,amount\n1,\"click\nthen view\",10\n2,view,20\n",
    );
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        query(
            &root(p),
            "select id, length(kind), _source_file from raw.landing__events order by id"
        ),
        [
            ["1", "15", "100% done, day 1.csv"],
            ["2", "4", "100% done, day 1.csv"]
        ]
    );
    // Known by that name: not loaded again.
    let out = lake(p, &["ingest"]);
    assert!(
        stdout(&out).contains("ingested 0 files (0 rows) into raw.landing__events, 1 already in"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn ingest_json_refuses_a_narrowing_type_change_and_quarantines_twice_without_overwriting() {
    let dir = project(&[
        ("lake_project.yml", "name: ingest\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: landing\n    tables:\n      - name: reviews\n        external: {location: landing/reviews/, format: json, on_error: quarantine}\n",
        ),
        // A key seen only on a late line is still a column.
        (
            "landing/reviews/a.json",
            "{\"id\": 1, \"rating\": 4}\n{\"id\": 2, \"rating\": 5}\n{\"id\": 3, \"rating\": 3, \"lang\": \"fr\"}\n",
        ),
        // 4.5 does not fit the integer column: not truncated to 4.
        ("landing/reviews/b.json", "{\"id\": 4, \"rating\": 4.5}\n"),
    ]);
    let p = dir.path();
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let result = run_results(p)["results"][0].clone();
    let error = result["adapter_response"]["ingest"]["quarantined"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("column 'rating'") && error.contains("Float64") && error.contains("Int64"),
        "{error}"
    );
    assert_eq!(
        query(
            &root(p),
            "select id, rating, lang from raw.landing__reviews order by id"
        ),
        [["1", "4", "NULL"], ["2", "5", "NULL"], ["3", "3", "fr"]]
    );
    // The same bad name again: both copies are kept in the quarantine.
    write(
        p,
        "landing/reviews/b.json",
        "{\"id\": 5, \"rating\": 2.5}\n",
    );
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let kept = std::fs::read_dir(p.join("landing/reviews/_quarantine"))
        .unwrap()
        .count();
    assert_eq!(kept, 2, "the first quarantined b.json is not overwritten");
}

#[test]
fn ingest_a_later_parquet_file_may_lack_a_column_the_first_one_required() {
    let dir = project(&[
        ("lake_project.yml", "name: ingest\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: landing\n    tables:\n      - name: orders\n        external: {location: landing/orders/, format: parquet}\n",
        ),
    ]);
    let p = dir.path();
    std::fs::create_dir_all(p.join("landing/orders")).unwrap();
    // Literals make non-nullable (required) Parquet columns.
    for (file, sql) in [
        ("a.parquet", "select 1 as id, 9.5 as total"),
        ("b.parquet", "select 2 as id"),
    ] {
        let path = p.join("landing/orders").join(file);
        let copy = format!("copy ({sql}) to '{}' stored as parquet", path.display());
        let out = lake(p, &["sql", "-c", &copy]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    let out = lake(p, &["ingest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        query(
            &root(p),
            "select id, total from raw.landing__orders order by id"
        ),
        [["1", "9.5"], ["2", "NULL"]]
    );
}
