//! `lake sql` and `lake show` end to end: scripted sessions on stdin, -c
//! and -f, each backslash command, time travel, DESCRIBE HISTORY, writes,
//! files, errors with suggestions, and Ctrl-C cancelling a statement.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{lake, project, stderr, stdout};

/// A project with one seed, seeded.
fn seeded() -> tempfile::TempDir {
    let dir = project(&[
        ("lake_project.yml", "name: s\n"),
        (
            "seeds/people.csv",
            "id,name,age\n1,ann,31\n2,bob,\n3,cy,45\n",
        ),
        (
            "models/adults.sql",
            "select id, name from {{ ref('people') }} where age >= 18",
        ),
    ]);
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}", stdout(&out));
    dir
}

/// `lake sql` with `input` on stdin.
fn sql_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lake"))
        .arg("sql")
        .args(args)
        .current_dir(dir)
        .env_remove("LAKE_PROJECT_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_scripted_session_on_stdin_with_backslash_commands() {
    let dir = seeded();
    let script = "\\d\n\\dt\n\\d raw.people\nselect name,\n  age\nfrom raw.people\norder by id;\n\\format csv\nselect id from curated.adults order by id; \\timing off\n\\format ndjson\nselect id, name from raw.people where id = 1;\n\\format json\nselect id from raw.people where id < 3 order by id;\n\\q\nselect 'not reached';\n";
    let out = sql_stdin(dir.path(), &[], script);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // \d lists tables and views; \dt only tables.
    assert!(text.contains(" curated | adults | view"), "{text}");
    assert!(text.contains(" raw     | people | table"), "{text}");
    assert_eq!(text.matches("| adults |").count(), 1, "{text}");
    // \d name: columns, then Delta facts.
    for needle in [
        " age    | Int64",
        "kind: Delta table",
        "version: 0",
        "rows: 3",
        "files: 1",
        "partitioned by: (none)",
        "last commit: 20",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    // A statement over several lines, NULL shown as NULL.
    assert!(text.contains(" bob  | NULL"), "{text}");
    assert!(text.contains("(3 rows)"), "{text}");
    // csv, ndjson, json.
    assert!(text.contains("id\n1\n3\n"), "{text}");
    assert!(text.contains("{\"id\":1,\"name\":\"ann\"}\n"), "{text}");
    assert!(text.contains("[\n{\"id\":1},\n{\"id\":2}\n]\n"), "{text}");
    assert!(!text.contains("not reached"), "{text}");
    // Timing goes to stderr, one line per statement while on.
    assert!(stderr(&out).contains("time: "), "{}", stderr(&out));
}

#[test]
fn time_travel_history_and_writes_are_delta_commits() {
    let dir = seeded();
    let run = |sql: &str| {
        let out = lake(dir.path(), &["sql", "--format", "csv", "-c", sql]);
        assert!(
            out.status.success(),
            "{sql}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    assert!(
        run("create table curated.t as select id, name from raw.people")
            .contains("created curated.t: 3 rows (version 0)")
    );
    assert!(
        run("insert into curated.t values (4, 'dee'), (5, 'eve')")
            .contains("inserted 2 rows into curated.t (version 1)")
    );
    assert!(
        run("delete from curated.t where id <= 2")
            .contains("deleted 2 rows from curated.t (version 2)")
    );
    assert_eq!(run("select count(*) as n from curated.t"), "n\n3\n");
    assert_eq!(
        run("select count(*) as n from curated.t version as of 0"),
        "n\n3\n"
    );
    assert_eq!(
        run("select count(*) as n from curated.t VERSION AS OF 1"),
        "n\n5\n"
    );
    assert_eq!(
        run(
            "select a.id from curated.t version as of 1 a left join curated.t b on a.id = b.id where b.id is null order by 1"
        ),
        "id\n1\n2\n"
    );
    let history = run("describe history curated.t");
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[0],
        "version,timestamp,operation,parameters,rows_written,written_by"
    );
    assert_eq!(lines.len(), 4, "{history}");
    assert!(
        lines[1].starts_with("2,") && lines[1].contains("DELETE"),
        "{history}"
    );
    assert!(
        lines[3].starts_with("0,") && lines[3].contains("WRITE"),
        "{history}"
    );
    // Each commit records the statement that made it.
    assert!(
        lines[2].contains("insert into curated.t values (4, 'dee'), (5, 'eve')"),
        "{history}"
    );
    assert!(
        lines[1].contains("delete from curated.t where id <= 2"),
        "{history}"
    );
    // The timestamp of version 1 travels to version 1.
    let v1_time = lines[2].split(',').nth(1).unwrap();
    assert_eq!(
        run(&format!(
            "select count(*) as n from curated.t timestamp as of '{v1_time}'"
        )),
        "n\n5\n"
    );
    // Before the first commit there is nothing.
    let out = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            "select * from curated.t timestamp as of '2000-01-01'",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("curated.t has no version as of 2000-01-01"),
        "{}",
        stderr(&out)
    );
    let out = lake(
        dir.path(),
        &["sql", "-c", "select * from curated.t version as of 9"],
    );
    assert!(
        stderr(&out).contains("curated.t has no version 9"),
        "{}",
        stderr(&out)
    );
    let out = lake(
        dir.path(),
        &["sql", "-c", "select * from curated.adults version as of 0"],
    );
    assert!(stderr(&out).contains("is a view"), "{}", stderr(&out));
    // CREATE over an existing table needs OR REPLACE; an empty table with
    // columns; writes are seen by another process (the build's reader).
    let out = lake(
        dir.path(),
        &["sql", "-c", "create table curated.t as select 1 as x"],
    );
    assert!(
        stderr(&out).contains("use CREATE OR REPLACE TABLE"),
        "{}",
        stderr(&out)
    );
    run("create or replace table curated.t as select 1 as x");
    run("create table raw.empty (id bigint, label varchar)");
    assert_eq!(run("select count(*) as n from raw.empty"), "n\n0\n");
    assert_eq!(
        super::lakeread::query(&dir.path().join(".lake"), "select x from curated.t"),
        [["1"]]
    );
}

#[test]
fn files_external_tables_and_copy() {
    let dir = seeded();
    let file = dir.path().join("out.parquet");
    let sql = format!(
        "copy (select id, name from raw.people order by id) to '{f}';
         select count(*) as n from '{f}';
         create external table ext stored as parquet location '{f}';
         select name from ext where id = 3;",
        f = file.display()
    );
    let out = lake(dir.path(), &["sql", "--format", "csv", "-c", &sql]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(file.is_file());
    assert!(
        stdout(&out).contains("n\n3\n") && stdout(&out).contains("name\ncy\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn errors_suggest_names_and_set_the_exit_code() {
    let dir = seeded();
    let out = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            "select * from curated.people",
            "-c",
            "select nme from raw.people",
            "-c",
            "select 7 as still_runs",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("table curated.people not found; did you mean raw.people?"),
        "{err}"
    );
    assert!(err.contains("Did you mean 'raw.people.name'?"), "{err}");
    // The session goes on after an error.
    assert!(stdout(&out).contains("still_runs"), "{}", stdout(&out));
    let out = lake(dir.path(), &["sql", "-c", "selec 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error: "), "{}", stderr(&out));
    // -f with a missing file.
    let out = lake(dir.path(), &["sql", "-f", "nope.sql"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read nope.sql"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_the_session_goes_on() {
    let dir = seeded();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(["sql", "--format", "csv"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"\\echo started\nselect count(*) from generate_series(1, 100000000000000);\nselect 42 as answer;\n")
        .unwrap();
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The long statement starts right after the echo.
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(rest, ["answer", "42"], "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert_eq!(
        status.code(),
        Some(1),
        "a cancelled statement counts as failed: {err}"
    );
}

#[test]
fn show_previews_a_model_or_an_inline_query() {
    let dir = seeded();
    let out = lake(
        dir.path(),
        &["show", "--select", "adults", "--format", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().next(), Some("id,name"));
    let out = lake(
        dir.path(),
        &[
            "show",
            "--inline",
            "select name from {{ ref('people') }} order by id",
            "--limit",
            "2",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "name\nann\nbob\n");
    let out = lake(
        dir.path(),
        &["show", "--inline", "select * from {{ ref('peple') }}"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did you mean"), "{}", stderr(&out));
    let out = lake(dir.path(), &["show", "--select", "adult"]);
    assert!(
        stderr(&out).contains("did you mean adults?"),
        "{}",
        stderr(&out)
    );
}

/// The `EXPLAIN ANALYZE` metric `name` of the scan that reads `columns`,
/// as printed.
fn scan_metric(explain: &str, columns: &str, name: &str) -> String {
    let line = explain
        .lines()
        .find(|l| l.contains("DataSourceExec") && l.contains(&format!("projection=[{columns}]")))
        .unwrap_or_else(|| panic!("no scan of {columns}:\n{explain}"));
    line.split(&format!(" {name}="))
        .nth(1)
        .and_then(|rest| rest.split([',', ']']).next())
        .unwrap_or_else(|| panic!("no {name}:\n{line}"))
        .to_string()
}

/// The answer of `query` in the lake of `dir` (checked against `answer`,
/// as csv) and its `EXPLAIN ANALYZE`.
fn answer_and_explain(dir: &tempfile::TempDir, query: &str, answer: &str) -> String {
    let out = sql_stdin(dir.path(), &["--format", "csv"], &format!("{query};\n"));
    assert_eq!(stdout(&out).trim(), answer, "{}", stderr(&out));
    let analyze = format!("EXPLAIN ANALYZE {query};\n");
    stdout(&sql_stdin(dir.path(), &["--format", "csv"], &analyze))
}

/// A count as `EXPLAIN ANALYZE` prints it ("123", "12.34 K", "1.20 M").
fn count_metric(value: &str) -> f64 {
    let (number, scale) = match value.split_once(' ') {
        Some((number, "K")) => (number, 1e3),
        Some((number, "M")) => (number, 1e6),
        _ => (value, 1.0),
    };
    number
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("not a count: {value}"))
        * scale
}

#[test]
fn a_joins_dynamic_filter_is_applied_while_decoding_the_probe_side() {
    let dir = seeded();
    let setup = "CREATE TABLE raw.big AS SELECT value AS k, value * 2 AS v FROM generate_series(0, 9999);\n\
                 CREATE TABLE raw.few AS SELECT * FROM (VALUES (1), (5000), (9999)) AS t(k);\n";
    let out = sql_stdin(dir.path(), &["--format", "csv"], setup);
    assert!(out.status.success(), "{}", stderr(&out));

    // The build side's three keys become a filter on `big`'s scan, which
    // decodes `v` only for the rows that pass.
    let join = "SELECT sum(v) FROM raw.few JOIN raw.big ON few.k = big.k";
    let explain = answer_and_explain(&dir, join, "sum(raw.big.v)\n30000");
    let matched = scan_metric(&explain, "k, v", "pushdown_rows_matched");
    assert_eq!(matched, "3", "{explain}");

    // A scan with a static filter keeps it in the FilterExec above it, and
    // decodes every row.
    let filtered = format!("{join} WHERE big.v > 2");
    let explain = answer_and_explain(&dir, &filtered, "sum(raw.big.v)\n29998");
    let matched = scan_metric(&explain, "k, v", "pushdown_rows_matched");
    assert_eq!(matched, "0", "{explain}");
    assert_eq!(
        scan_metric(&explain, "k, v", "pushdown_rows_pruned"),
        "0",
        "{explain}"
    );
}

#[test]
fn a_dynamic_filter_that_keeps_most_rows_stops_being_applied_while_decoding() {
    let dir = seeded();
    // `most` holds 3 of every 4 keys of `big`: as a filter on `big`'s scan
    // it would drop 50,000 of its 200,000 rows.
    let setup = "CREATE TABLE raw.big AS SELECT value AS k, value * 2 AS v FROM generate_series(0, 199999);\n\
                 CREATE TABLE raw.most AS SELECT value AS k FROM generate_series(0, 199999) WHERE value % 4 <> 0;\n";
    let out = sql_stdin(dir.path(), &["--format", "csv"], setup);
    assert!(out.status.success(), "{}", stderr(&out));

    let join = "SELECT count(*), sum(v) FROM raw.most JOIN raw.big ON most.k = big.k";
    let explain = answer_and_explain(&dir, join, "count(*),sum(raw.big.v)\n150000,30000000000");
    assert!(
        explain.contains("SelectivityGate(DynamicFilter"),
        "{explain}"
    );
    // The gate judged the filter on its first 64 Ki rows (and the batches
    // already in flight), then let every row through unevaluated.
    let pruned = count_metric(&scan_metric(&explain, "k, v", "pushdown_rows_pruned"));
    assert!(
        pruned > 0.0 && pruned < 40_000.0,
        "pruned {pruned} rows:\n{explain}"
    );

    // A TopK's filter tightens as it runs; each new bound is judged afresh
    // and the answer is right.
    let top = "SELECT k FROM raw.big ORDER BY v DESC LIMIT 3";
    let out = sql_stdin(dir.path(), &["--format", "csv"], &format!("{top};\n"));
    assert_eq!(
        stdout(&out).trim(),
        "k\n199999\n199998\n199997",
        "{}",
        stderr(&out)
    );
}
