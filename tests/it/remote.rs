//! `lake sql --connect`: the REPL through a `lake serve` process, with and
//! without an auth file.

use std::path::Path;
use std::process::{Command, Output};

use super::serve::{Credential, Served, built_example, hash_password, write_auth_file};
use super::{stderr, stdout};

/// `lake sql --connect URI ARGS` in `dir`, with `env` set.
fn remote_sql(dir: &Path, uri: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake"));
    command
        .current_dir(dir)
        .args(["sql", "--connect", uri])
        .args(args)
        .env_remove("LAKE_PASSWORD")
        .env_remove("LAKE_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run lake sql")
}

#[test]
fn remote_repl_runs_statements_and_backslash_commands_through_the_server() {
    let dir = built_example();
    let server = Served::start(dir.path(), &[]);
    let uri = server.uri();

    let out = remote_sql(
        dir.path(),
        &uri,
        &[
            "--format",
            "csv",
            "-c",
            "select count(*) as n from curated.customer_summary where orders >= 0",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("n"), "{text}");
    let count: usize = lines.next().unwrap().parse().unwrap();
    assert_eq!(count, super::serve::seed_customers(), "{text}");

    // \d lists every zone (no auth: admin); \d name the columns the server
    // reports; a statement error keeps the session and exits 1 at the end.
    let script = "\\d\n\\d curated.customer_summary\nselect nope from curated.customer_summary;\nselect 41 + 1 as answer;\n";
    let file = dir.path().join("remote.sql");
    std::fs::write(&file, script).unwrap();
    let out = remote_sql(dir.path(), &uri, &["-f", file.to_str().unwrap()], &[]);
    let (text, errors) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{errors}");
    assert!(
        text.contains("raw") && text.contains("customer_summary"),
        "{text}"
    );
    assert!(text.contains("| view") || text.contains("view"), "{text}");
    assert!(
        text.contains("column_name") && text.contains("email"),
        "{text}"
    );
    assert!(
        text.contains("relation: curated.customer_summary"),
        "{text}"
    );
    assert!(
        errors.contains("INVALID_ARGUMENT") && errors.contains("nope"),
        "{errors}"
    );
    assert!(
        text.contains("42"),
        "the statement after the error ran: {text}"
    );

    // Writes are refused by the server, not run.
    let out = remote_sql(
        dir.path(),
        &uri,
        &["-c", "create table curated.x as select 1 as a"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PERMISSION_DENIED"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join(".lake/curated/x").exists());

    // A URL that is not a server's, and a server that is not there.
    let out = remote_sql(dir.path(), "http//nowhere", &["-c", "select 1"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("grpc://host:port"),
        "{}",
        stderr(&out)
    );
    let (status, _) = server.stop();
    assert!(status.success());
    let out = remote_sql(dir.path(), &uri, &["-c", "select 1"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot connect") && stderr(&out).contains("lake serve"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn remote_repl_logs_in_and_sees_what_the_role_allows() {
    let dir = built_example();
    let hash = hash_password(dir.path(), "s3cret pass");
    let auth = write_auth_file(
        dir.path(),
        &[("alice", "reader", Credential::PasswordHash(&hash))],
    );
    let server = Served::start(dir.path(), &["--auth", auth.to_str().unwrap()]);
    let uri = server.uri();
    let alice = [("LAKE_PASSWORD", "s3cret pass")];

    // A reader: curated with PII masked, raw refused and not listed.
    let out = remote_sql(
        dir.path(),
        &uri,
        &[
            "--user",
            "alice",
            "--format",
            "csv",
            "-c",
            "select distinct email from curated.customer_summary",
        ],
        &alice,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "email\n***\n");
    let out = remote_sql(
        dir.path(),
        &uri,
        &[
            "--user",
            "alice",
            "-c",
            "select * from raw.customers",
            "-c",
            "\\d",
        ],
        &alice,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PERMISSION_DENIED"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("curated"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("raw "), "{}", stdout(&out));

    // A wrong password, and no credentials at all.
    let out = remote_sql(
        dir.path(),
        &uri,
        &["--user", "alice", "-c", "select 1"],
        &[("LAKE_PASSWORD", "guess")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("UNAUTHENTICATED: authentication failed"),
        "{}",
        stderr(&out)
    );
    let out = remote_sql(dir.path(), &uri, &["-c", "select 1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("UNAUTHENTICATED"), "{}", stderr(&out));
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("principal=alice"), "{log}");
}
