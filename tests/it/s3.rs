//! lake on S3: each test starts a local S3 server (moto's, through
//! `tests/interop/moto_server.py`, on 127.0.0.1 and a free port), uses it
//! as `s3://lake-test/...`, and stops it when it ends. They need a Python
//! with `moto[server]` (and `deltalake` for reading back): `.ci/run` makes
//! one and runs these with `--ignored interop`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lake_engine::{LakeSession, SessionOptions};
use lake_storage::deltalake::logstore::object_store::path::Path as StorePath;
use lake_storage::deltalake::logstore::object_store::{
    self, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use lake_storage::{LakeRoot, SchemaChange, TableWrite, WriteMode};

use super::interop::{python, run_python};
use super::{example_project, repo_root, stderr, stdout};

const BUCKET: &str = "lake-test";
const ACCESS_KEY: &str = "testing-key-id";
/// Never to be seen in any output, error or artifact.
const SECRET: &str = "s3cr3t-Do-Not-Print-7f3a";

/// A moto S3 server with the bucket `lake-test`, killed on drop.
struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    log: tempfile::NamedTempFile,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/interop/moto_server.py"))
            .arg(BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Every request is logged: to a file, so the pipe never fills.
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("start moto_server.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        // The script prints its endpoint once it answers and the bucket
        // exists (it polls the server); wait for that line.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let endpoint = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["endpoint"].as_str().map(str::to_string));
        let mut moto = Moto {
            child,
            stdin,
            log,
            endpoint: String::new(),
        };
        match endpoint {
            Some(endpoint) => moto.endpoint = endpoint,
            None => panic!(
                "moto did not start (needs `pip install 'moto[server]'` in LAKE_TEST_PYTHON):\n{}",
                moto.log()
            ),
        }
        moto
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The environment a lake process gets to reach this server.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The same as storage options.
    fn options(&self) -> HashMap<String, String> {
        self.env()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lake` in `dir` with `env`, and no AWS settings of the machine's.
fn lake_with(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("LAKE_PROJECT_DIR")
        .env_remove("LAKE_TARGET")
        .env_remove("LAKE_ROOT");
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().expect("run lake")
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the secret key is in {what}:\n{text}"
    );
}

/// The one value `sql` answers, through `lake sql --format csv` in `dir`
/// with `env` (and `--lake-root root`, if given).
fn sql_value(dir: &Path, env: &[(&str, String)], root: Option<&str>, sql: &str) -> String {
    let mut args = vec!["sql"];
    if let Some(root) = root {
        args.extend(["--lake-root", root]);
    }
    args.extend(["--format", "csv", "-c", sql]);
    let out = lake_with(dir, env, &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs moto; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_moto_honours_conditional_writes() {
    let moto = Moto::start();
    let root = LakeRoot::open(
        &format!("s3://{BUCKET}/conditional"),
        Path::new("/"),
        moto.options(),
    )
    .unwrap();
    let store = root.object_store();
    let key = StorePath::from("conditional/_delta_log/00000000000000000000.json");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    runtime().block_on(async {
        store
            .put_opts(&key, PutPayload::from_static(b"first"), create())
            .await
            .expect("the first put-if-absent writes");
        let second = store
            .put_opts(&key, PutPayload::from_static(b"second"), create())
            .await;
        assert!(
            matches!(second, Err(object_store::Error::AlreadyExists { .. })),
            "a second put-if-absent of the same key must fail: {second:?}"
        );
        let kept = store.get_opts(&key, Default::default()).await.unwrap();
        assert_eq!(kept.bytes().await.unwrap().as_ref(), b"first");
    });
    // Nothing secret in how the root shows itself.
    assert_no_secret("the root's Debug", &format!("{root:?}"));
    assert!(format!("{root:?}").contains("s3://lake-test/conditional/"));
}

/// A TCP proxy to `target` (host:port) that answers its first `failures`
/// connections with `503 Service Unavailable`, as an overloaded store
/// does; the endpoint and how many connections it took.
fn flaky_proxy(target: &str, failures: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    let target = target.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { break };
            if counter.fetch_add(1, Ordering::SeqCst) < failures {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (Ok(mut to_server), Ok(mut from_client)) = (server.try_clone(), client.try_clone())
            else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(Shutdown::Write);
            });
        }
    });
    (endpoint, taken)
}

#[test]
#[ignore = "needs moto; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_transient_errors_are_retried_and_permanent_ones_fail_with_the_url() {
    let moto = Moto::start();
    let target = moto.endpoint.trim_start_matches("http://").to_string();
    let open = |options: HashMap<String, String>| {
        LakeRoot::open(&format!("s3://{BUCKET}/retry"), Path::new("/"), options).unwrap()
    };
    let key = StorePath::from("retry/_lake/x.json");
    runtime().block_on(async {
        open(moto.options())
            .object_store()
            .put_opts(
                &key,
                PutPayload::from_static(b"kept"),
                PutOptions::default(),
            )
            .await
            .unwrap();

        // Three 503s, then the store answers: the read succeeds.
        let (endpoint, taken) = flaky_proxy(&target, 3);
        let mut options = moto.options();
        options.insert("endpoint".into(), endpoint);
        let read = open(options)
            .object_store()
            .get_opts(&key, Default::default())
            .await
            .expect("retried past the 503s");
        assert_eq!(read.bytes().await.unwrap().as_ref(), b"kept");
        assert_eq!(taken.load(Ordering::SeqCst), 4);

        // Always 503: it gives up after max_retries, naming the URL.
        let (endpoint, taken) = flaky_proxy(&target, usize::MAX);
        let mut options = moto.options();
        options.insert("endpoint".into(), endpoint.clone());
        options.insert("max_retries".into(), "2".into());
        let root = Arc::new(open(options));
        let err = root.load_table("raw", "t").await.unwrap_err().to_string();
        assert_eq!(taken.load(Ordering::SeqCst), 3, "{err}");
        assert!(
            err.contains("s3://lake-test/retry/raw/t/_delta_log"),
            "{err}"
        );
        assert!(
            err.contains("503") && err.contains("after 2 retries"),
            "{err}"
        );
        assert_no_secret("the error", &err);

        // A permanent error is not retried: a missing object at once.
        let missing = open(moto.options())
            .object_store()
            .get_opts(&StorePath::from("retry/missing"), Default::default())
            .await;
        assert!(
            matches!(missing, Err(object_store::Error::NotFound { .. })),
            "{missing:?}"
        );
    });
}

#[test]
#[ignore = "needs moto and Python deltalake; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_example_project_builds_on_s3_and_python_deltalake_reads_it() {
    let moto = Moto::start();
    let env = moto.env();
    let dir = example_project();
    let root = format!("s3://{BUCKET}/lake");
    let out = lake_with(dir.path(), &env, &["build", "--lake-root", &root]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("against {root}/")));
    // Again: the incremental model merges, a second version.
    let out = lake_with(dir.path(), &env, &["build", "--lake-root", &root]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_no_secret(
        "lake build's output",
        &format!("{}{}", stdout(&out), stderr(&out)),
    );
    // Nothing on the local disk: the lake is on S3.
    assert!(!dir.path().join(".lake").exists());

    let tables = [
        "raw.customers",
        "raw.orders",
        "raw.web_events",
        "curated.customer_summary",
        "curated.daily_revenue",
        "curated.customer_activity_daily",
        "features.customer_activity",
    ];
    let mut ours = serde_json::Map::new();
    for table in tables {
        let rows = sql_value(
            dir.path(),
            &env,
            Some(&root),
            &format!("select count(*) as n from {table}"),
        );
        let rows: u64 = rows.parse().unwrap_or_else(|_| panic!("{table}: {rows}"));
        assert!(rows > 0, "{table} is empty");
        ours.insert(table.to_string(), rows.into());
    }
    // Time travel reads the first version on S3 too.
    let first = sql_value(
        dir.path(),
        &env,
        Some(&root),
        "select count(*) from curated.customer_activity_daily version as of 0",
    );
    assert!(first.parse::<u64>().is_ok(), "{first}");

    let read = r#"
import json, os, sys
from deltalake import DeltaTable
root, options, tables = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {}
for table in tables:
    zone, name = table.split(".")
    dt = DeltaTable(f"{root}/{zone}/{name}", storage_options=options)
    out[table] = {"rows": dt.to_pyarrow_table().num_rows, "version": dt.version()}
print(json.dumps(out), flush=True)
# Skip the interpreter's teardown: deltalake's S3 client threads can abort
# it ("terminate called without an active exception") after the answer.
os._exit(0)
"#;
    let options: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().into()))
        .collect();
    let printed = run_python([
        "-c",
        read,
        &root,
        &serde_json::Value::Object(options).to_string(),
        &serde_json::json!(tables).to_string(),
    ]);
    let theirs: serde_json::Value = serde_json::from_str(&printed).unwrap();
    for table in tables {
        assert_eq!(
            theirs[table]["rows"], ours[table],
            "{table}: Python deltalake read {} rows, lake {}",
            theirs[table]["rows"], ours[table]
        );
    }
    assert_eq!(theirs["curated.customer_activity_daily"]["version"], 1);
    assert_eq!(theirs["curated.customer_summary"]["version"], 1);
}

#[test]
#[ignore = "needs moto; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_two_concurrent_writers_lose_no_commit() {
    const MIN_ROUNDS: usize = 10;
    const MAX_ROUNDS: usize = 60;
    let moto = Moto::start();
    let url = format!("s3://{BUCKET}/concurrent");
    let open =
        || Arc::new(LakeRoot::open(&url, Path::new("/"), moto.options()).expect("open the root"));
    runtime().block_on(async {
        let session = LakeSession::open(open(), &SessionOptions::default())
            .await
            .unwrap();
        let empty = session
            .context()
            .sql("select cast(0 as int) as writer, cast(0 as int) as n where false")
            .await
            .unwrap()
            .into_unoptimized_plan();
        let created = TableWrite::new(
            session.root().clone(),
            "raw",
            "appends",
            empty,
            session.state(),
        )
        .await
        .unwrap();
        assert_eq!(created.version, 0);

        // Both writers start each commit together, so they race for the
        // same version. Whether one loses depends on timing, so rounds go
        // on until a race was lost (at least MIN_ROUNDS, at most
        // MAX_ROUNDS).
        let writers = [open(), open()];
        let mut sessions = Vec::new();
        for root in writers {
            // Each writer its own root and session, as two processes.
            sessions.push(
                LakeSession::open(root, &SessionOptions::default())
                    .await
                    .unwrap(),
            );
        }
        let commit = |writer: usize, n: usize| {
            let session = &sessions[writer - 1];
            async move {
                let row = session
                    .context()
                    .sql(&format!(
                        "select cast({writer} as int) as writer, cast({n} as int) as n"
                    ))
                    .await
                    .unwrap()
                    .into_unoptimized_plan();
                TableWrite::new(
                    session.root().clone(),
                    "raw",
                    "appends",
                    row,
                    session.state(),
                )
                .with_mode(WriteMode::Append)
                .with_schema_change(SchemaChange::Keep)
                .await
                .unwrap_or_else(|e| panic!("writer {writer}, commit {n}: {e}"))
                .version
            }
        };
        let mut versions = Vec::new();
        let mut rounds = 0;
        while rounds < MIN_ROUNDS || (lost_races(&moto) == 0 && rounds < MAX_ROUNDS) {
            rounds += 1;
            let (first, second) = tokio::join!(commit(1, rounds), commit(2, rounds));
            versions.extend([first, second]);
        }
        let commits = 2 * rounds as u64;
        versions.sort();
        // Each commit got its own version: none was overwritten.
        assert_eq!(versions, (1..=commits).collect::<Vec<_>>());

        let reader = LakeSession::open(open(), &SessionOptions::default())
            .await
            .unwrap();
        let table = reader
            .root()
            .load_table("raw", "appends")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(table.version(), Some(commits));
        let batches = reader
            .context()
            .sql(
                "select count(*) as n, count(distinct writer * 100 + n) as distinct_rows \
                 from raw.appends",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains(&format!("| {commits} | {commits} ")),
            "{text}"
        );
        // And the log holds versions 0..=20, each once.
        let store = reader.root().object_store();
        let log = StorePath::from("concurrent/raw/appends/_delta_log");
        let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&log)))
            .await
            .unwrap();
        let mut logged: Vec<u64> = listed
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        logged.sort();
        assert_eq!(logged, (0..=commits).collect::<Vec<_>>());
    });
    let lost = lost_races(&moto);
    eprintln!("{lost} commits lost the race for their version and were retried");
    assert!(lost > 0, "the writers never raced: the test proved nothing");
}

/// How often a writer of `raw.appends` lost the race for a version (412)
/// and retried.
fn lost_races(moto: &Moto) -> usize {
    moto.log()
        .lines()
        .filter(|l| {
            l.contains("PUT /lake-test/concurrent/raw/appends/_delta_log/") && l.contains("\" 412 ")
        })
        .count()
}

#[test]
#[ignore = "needs moto; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_storage_options_from_the_project_file_and_errors_without_secrets() {
    let moto = Moto::start();
    let dir = example_project();
    let project = dir.path().join("lake_project.yml");
    let text = std::fs::read_to_string(&project).unwrap();
    let text = text.replace(
        "lake:\n  root: .lake",
        &format!(
            "lake:\n  root: s3://{BUCKET}/from-project\n  storage_options:\n    \
             AWS_ENDPOINT_URL: {}\n    allow_http: \"true\"\n    aws_access_key_id: {ACCESS_KEY}\n    \
             aws_secret_access_key: {SECRET}\n    region: us-east-1\n",
            moto.endpoint
        ),
    );
    assert!(text.contains("from-project"), "{text}");
    std::fs::write(&project, text).unwrap();

    // The environment points elsewhere: the project file's options win.
    let elsewhere = vec![
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_string()),
        ("AWS_ACCESS_KEY_ID", "wrong".into()),
        ("AWS_SECRET_ACCESS_KEY", "wrong".into()),
    ];
    let out = lake_with(dir.path(), &elsewhere, &["build"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_no_secret(
        "lake build's output",
        &format!("{}{}", stdout(&out), stderr(&out)),
    );
    let rows = sql_value(
        dir.path(),
        &[],
        None,
        "select count(*) from curated.customer_summary",
    );
    assert_eq!(rows, "20");
    // No artifact holds the secret.
    for entry in walk(&dir.path().join("target")) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert_no_secret(&entry.display().to_string(), &text);
    }

    // A bucket that does not exist: the URL and the cause, not the secret.
    let out = lake_with(
        dir.path(),
        &[],
        &["build", "--lake-root", "s3://no-such-bucket/lake"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("s3://no-such-bucket/lake"), "{err}");
    assert!(err.contains("the bucket does not exist"), "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    assert_no_secret("the error", &format!("{}{err}", stdout(&out)));

    // An option that is not one: named, its value not shown.
    let text = std::fs::read_to_string(&project)
        .unwrap()
        .replace("aws_secret_access_key:", "aws_secret_acess_key:");
    std::fs::write(&project, text).unwrap();
    let out = lake_with(dir.path(), &[], &["build"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown storage option 'aws_secret_acess_key'"),
        "{err}"
    );
    assert_no_secret("the error", &format!("{}{err}", stdout(&out)));
    drop(moto);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
#[ignore = "needs moto; .ci/run runs it with LAKE_TEST_PYTHON set"]
fn interop_s3_ingests_landing_files_from_s3_into_a_lake_on_s3() {
    let moto = Moto::start();
    let dir = super::project(&[
        ("lake_project.yml", "name: ingest\n"),
        (
            "models/sources.yml",
            &format!(
                "version: 2\nsources:\n  - name: landing\n    tables:\n      - name: events\n        external: {{location: 's3://{BUCKET}/landing/events/', format: csv, on_error: quarantine}}\n"
            ),
        ),
    ]);
    let landing = LakeRoot::open(
        &format!("s3://{BUCKET}/landing/"),
        Path::new("/"),
        moto.options(),
    )
    .unwrap();
    let store = landing.object_store();
    let put = |key: &str, text: &'static str| {
        runtime().block_on(async {
            store
                .put(
                    &StorePath::from(format!("landing/events/{key}")),
                    PutPayload::from_static(text.as_bytes()),
                )
                .await
                .unwrap();
        });
    };
    put("2026/11/01.csv", "id,kind\n1,click\n2,view\n");
    put("2026/11/02.csv", "id,kind\n3,click\n4,view,extra\n");
    put("_SUCCESS", "");
    let root = format!("s3://{BUCKET}/lake");
    let ingest = || lake_with(dir.path(), &moto.env(), &["ingest", "--lake-root", &root]);
    let out = ingest();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ingested 1 file (2 rows)") && text.contains("quarantined 1: 2026/11/02.csv"),
        "{text}"
    );
    // The bad file moved under the location's _quarantine/ on S3.
    runtime().block_on(async {
        let moved = StorePath::from("landing/events/_quarantine/2026/11/02.csv");
        store.head(&moved).await.expect("quarantined on S3");
        let gone = StorePath::from("landing/events/2026/11/02.csv");
        assert!(store.head(&gone).await.is_err(), "moved, not copied");
    });

    // A new file: only it is loaded; then nothing.
    put("2026/11/03.csv", "id,kind\n5,click\n");
    let out = ingest();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(
            "ingested 1 file (1 row) into raw.landing__events: 2026/11/03.csv (1), 1 already in"
        ),
        "{}",
        stdout(&out)
    );
    let out = ingest();
    assert!(
        stdout(&out).contains("ingested 0 files (0 rows)"),
        "{}",
        stdout(&out)
    );
    let count = sql_value(
        dir.path(),
        &moto.env(),
        Some(&root),
        "select string_agg(_source_file || ':' || cast(id as varchar), ' ' order by id) from raw.landing__events",
    );
    assert_eq!(count, "2026/11/01.csv:1 2026/11/01.csv:2 2026/11/03.csv:5");
}
