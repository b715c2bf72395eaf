//! `lake serve` and `lake auth` end to end: the real binary on a free port
//! (`--addr 127.0.0.1:0`, the port read from its listening line), Flight
//! SQL clients, SIGINT.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::{example_project, lake, repo_root, stderr, stdout};

pub type Client = FlightSqlServiceClient<Channel>;

/// How long the server may take to compile the project, open the lake and
/// print its listening line (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long it may take to stop after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The example project, built (`lake build`) into its `.lake`.
pub fn built_example() -> tempfile::TempDir {
    let dir = example_project();
    let out = lake(dir.path(), &["build"]);
    assert!(
        out.status.success(),
        "lake build failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    dir
}

/// The customers of the example project's seed (one row each in
/// `curated.customer_summary`).
pub fn seed_customers() -> usize {
    let text = std::fs::read_to_string(repo_root().join("seeds/customers.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// `lake` with `args` in `dir`, `input` on its stdin.
pub fn lake_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = lake_command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lake");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn lake_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake"));
    command
        .current_dir(dir)
        .env_remove("LAKE_PROJECT_DIR")
        .env_remove("LAKE_TARGET")
        .env_remove("LAKE_ROOT")
        .env_remove("LAKE_AUTH_FILE");
    command
}

/// The argon2 hash `lake auth hash-password` prints for `password`.
pub fn hash_password(dir: &Path, password: &str) -> String {
    let out = lake_with_stdin(dir, &["auth", "hash-password"], &format!("{password}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line, the hash: {text:?}");
    assert!(lines[0].starts_with("$argon2id$"), "{text}");
    lines[0].to_string()
}

/// A token from `lake auth new-token`: `(token, token_sha256)`.
pub fn new_token(dir: &Path) -> (String, String) {
    let out = lake(dir, &["auth", "new-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` line in {text:?}"))
            .to_string()
    };
    (field("token: "), field("token_sha256: "))
}

/// One principal of an auth file.
pub enum Credential<'a> {
    PasswordHash(&'a str),
    TokenSha256(&'a str),
}

/// Writes an auth file of `(name, role, credential)` into `dir`.
pub fn write_auth_file(dir: &Path, principals: &[(&str, &str, Credential<'_>)]) -> PathBuf {
    let mut yaml = String::from("principals:\n");
    for (name, role, credential) in principals {
        let (field, value) = match credential {
            Credential::PasswordHash(hash) => ("password_hash", hash),
            Credential::TokenSha256(sha) => ("token_sha256", sha),
        };
        yaml.push_str(&format!(
            "  - name: {name}\n    role: {role}\n    {field}: \"{value}\"\n"
        ));
    }
    let path = dir.join("auth.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A `lake serve` process.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    /// The line it printed when listening.
    pub listening: String,
    stderr: Option<JoinHandle<String>>,
    /// Its stderr, line by line, as it comes.
    stderr_lines: mpsc::Receiver<String>,
}

impl Served {
    /// `lake serve --addr 127.0.0.1:0 ARGS` in `dir`; returns once it
    /// listens (read from its stdout), panicking with its stderr if it
    /// exits first.
    pub fn start(dir: &Path, args: &[&str]) -> Served {
        let mut child = lake_command(dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lake serve");
        // Drain both pipes so a chatty server never blocks on them.
        let err_pipe = child.stderr.take().unwrap();
        let (line_tx, stderr_lines) = mpsc::channel::<String>();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                let _ = line_tx.send(line);
            }
            text
        });
        let out_pipe = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out_pipe).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let first = rx.recv_timeout(START_TIMEOUT);
        let mut served = Served {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            listening: String::new(),
            stderr: Some(stderr),
            stderr_lines,
        };
        let line = match first {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = served.child.wait().unwrap();
                panic!(
                    "lake serve exited ({status}) without listening:\n{}",
                    served.take_stderr()
                );
            }
            Err(_) => {
                let _ = served.child.kill();
                let _ = served.child.wait();
                panic!(
                    "lake serve printed no listening line within {START_TIMEOUT:?}:\n{}",
                    served.take_stderr()
                );
            }
        };
        let addr = line
            .strip_prefix("lake serve: listening on grpc://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        served.addr = addr;
        served.listening = line;
        served
    }

    /// The Flight SQL URI of the server.
    pub fn uri(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    pub async fn client(&self) -> Client {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.addr));
        FlightSqlServiceClient::new(channel)
    }

    /// Sends SIGINT.
    pub fn interrupt(&self) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
    }

    /// Waits (bounded) for a line on stderr containing `needle`.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} on the server's stderr"),
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGINT, then waits (bounded) for the exit; returns the exit status
    /// and everything the server wrote on stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.interrupt();
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "lake serve did not stop within {STOP_TIMEOUT:?} of SIGINT:\n{}",
                    self.take_stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.take_stderr())
    }

    /// Everything on stderr (after the process has exited).
    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A runtime for the Flight clients of one test; its worker keeps their
/// connections alive (answering the server's pings) outside `block_on`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `sql` through GetFlightInfo, then DoGet of every endpoint.
pub async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket in every endpoint");
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

/// The status inside a client error.
pub fn status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(status) => *status,
        FlightError::Arrow(datafusion::arrow::error::ArrowError::ExternalError(inner)) => {
            match inner.downcast::<FlightError>() {
                Ok(flight) => status(*flight),
                Err(other) => panic!("not a gRPC status: {other}"),
            }
        }
        other => panic!("not a gRPC status: {other:?}"),
    }
}

/// The values of column `index`, as text (`NULL` for nulls), in row order.
pub fn column(batches: &[RecordBatch], index: usize) -> Vec<String> {
    let mut values = Vec::new();
    for batch in batches {
        let array = batch.column(index);
        for row in 0..batch.num_rows() {
            values.push(if array.is_null(row) {
                "NULL".to_string()
            } else {
                array_value_to_string(array, row).unwrap()
            });
        }
    }
    values
}

#[test]
fn serve_without_auth_answers_flight_sql_and_stops_on_sigint() {
    let dir = built_example();
    let server = Served::start(dir.path(), &[]);
    assert!(
        server
            .listening
            .ends_with("(auth: none, loopback only), tls: off"),
        "{}",
        server.listening
    );
    assert_ne!(server.addr.port(), 0, "the bound port, not 0");
    let customers = seed_customers();
    let runtime = runtime();
    let idle_client = runtime.block_on(async {
        let mut client = server.client().await;
        let batches = query(
            &mut client,
            "select count(*) as n from curated.customer_summary",
        )
        .await
        .unwrap();
        assert_eq!(column(&batches, 0), [customers.to_string()]);
        // Without auth every call is the local admin: raw is readable and
        // PII is not masked.
        let batches = query(
            &mut client,
            "select email from curated.customer_summary order by customer_id limit 1",
        )
        .await
        .unwrap();
        assert_eq!(column(&batches, 0), ["ada.lovelace@example.com"]);
        let batches = query(&mut client, "select count(*) from raw.customers")
            .await
            .unwrap();
        assert_eq!(column(&batches, 0), [customers.to_string()]);
        // A user mistake is a clear status, and the server goes on.
        let missing = status(
            query(&mut client, "select * from curated.no_such_table")
                .await
                .unwrap_err(),
        );
        assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
        assert!(missing.message().contains("no_such_table"), "{missing:?}");
        assert!(
            query(&mut client, "select 1 as one").await.is_ok(),
            "still serving after an error"
        );
        client
    });
    // A client that stays connected (idle) does not keep the server from
    // stopping. (One that stops answering, for instance a suspended
    // process, does: the first SIGINT waits for it.)
    let (status, err) = server.stop();
    drop(idle_client);
    assert!(status.success(), "exit status {status}:\n{err}");
    assert!(err.contains("lake serve: stopped"), "{err}");
    // One log line per request, the local admin's.
    assert!(
        err.contains("command=DoGet(statement)") && err.contains("status=ok"),
        "{err}"
    );
    assert!(err.contains("status=NotFound"), "{err}");
}

#[test]
fn serve_stops_on_a_sigint_sent_as_soon_as_it_listens() {
    // The signal handlers are in place before the listening line: a SIGINT
    // right after it is a clean stop, not death by the signal's default
    // action (nor a signal lost).
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let server = Served::start(dir.path(), &["--lake-root", "lake"]);
        let (status, err) = server.stop();
        assert!(status.success(), "exit status {status}:\n{err}");
        assert!(err.contains("lake serve: stopped"), "{err}");
    }
}

#[test]
fn serve_stops_after_the_calls_in_flight_or_at_once_on_a_second_sigint() {
    // No project: a lake root alone, and a query that needs no table.
    let dir = tempfile::tempdir().unwrap();
    let mut server = Served::start(dir.path(), &["--lake-root", "lake"]);
    let runtime = runtime();
    // A long result the client stops reading after its first batch: the
    // call stays in flight.
    let in_flight = runtime.block_on(async {
        let mut client = server.client().await;
        let info = client
            .execute(
                "select * from generate_series(1, 1000000000) as t(n)".into(),
                None,
            )
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut stream = client.do_get(ticket).await.unwrap();
        let first = stream.next().await.expect("a first batch").unwrap();
        assert!(first.num_rows() > 0);
        (client, stream)
    });
    server.interrupt();
    server.wait_for_stderr("lake serve: stopping after the calls in flight");
    assert!(
        server.is_running(),
        "the first SIGINT waits for the query in flight"
    );
    // The second one stops at once.
    let (status, err) = server.stop();
    assert!(status.success(), "exit status {status}:\n{err}");
    assert!(
        err.contains("lake serve: stopped without waiting for the calls in flight"),
        "{err}"
    );
    drop(in_flight);
}

#[test]
fn serve_with_an_auth_file_checks_passwords_tokens_roles_and_masks_pii() {
    let dir = built_example();
    let hash = hash_password(dir.path(), "correct horse battery");
    let (token, token_sha256) = new_token(dir.path());
    let auth = write_auth_file(
        dir.path(),
        &[
            ("alice", "reader", Credential::PasswordHash(&hash)),
            ("bot", "admin", Credential::TokenSha256(&token_sha256)),
        ],
    );
    let server = Served::start(dir.path(), &["--auth", auth.to_str().unwrap()]);
    assert!(
        server
            .listening
            .ends_with(&format!("(auth: {}), tls: off", auth.display())),
        "{}",
        server.listening
    );
    let customers = seed_customers();
    runtime().block_on(async {
        // No credentials, or a token nobody issued: UNAUTHENTICATED.
        let mut anonymous = server.client().await;
        let err = status(query(&mut anonymous, "select 1 as one").await.unwrap_err());
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        let mut forged = server.client().await;
        forged.set_token(format!("{token}x"));
        let err = status(query(&mut forged, "select 1 as one").await.unwrap_err());
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

        // The handshake: a wrong password, an unknown user, the right one.
        let mut alice = server.client().await;
        for (user, password) in [
            ("alice", "wrong horse"),
            ("mallory", "correct horse battery"),
        ] {
            // (arrow-flight's client turns handshake failures into text.)
            let err = alice
                .handshake(user, password)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("authentication failed")
                    && err.contains("valid authentication credentials"),
                "{user}: UNAUTHENTICATED expected: {err}"
            );
            assert!(alice.token().is_none(), "no token after a failure");
        }
        alice
            .handshake("alice", "correct horse battery")
            .await
            .unwrap();
        assert!(
            alice.token().is_some(),
            "a bearer token after the handshake"
        );
        let batches = query(
            &mut alice,
            "select count(*) as n from curated.customer_summary",
        )
        .await
        .unwrap();
        assert_eq!(column(&batches, 0), [customers.to_string()]);

        // A reader reads curated, not raw.
        let denied = status(
            query(&mut alice, "select * from raw.customers")
                .await
                .unwrap_err(),
        );
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        assert!(
            denied.message().contains("alice") && denied.message().contains("raw"),
            "{denied:?}"
        );

        // PII (`meta: {pii: true}` in models/schema.yml) is masked for the
        // reader, shown to the admin.
        let sql =
            "select customer_id, email, country from curated.customer_summary order by customer_id";
        let masked = query(&mut alice, sql).await.unwrap();
        let emails = column(&masked, 1);
        assert_eq!(emails.len(), customers);
        assert!(emails.iter().all(|e| e == "***"), "{emails:?}");
        assert_eq!(column(&masked, 2)[0], "FR", "other columns are not masked");

        // The API token is a bearer token as is, no handshake.
        let mut bot = server.client().await;
        bot.set_token(token.clone());
        let shown = query(&mut bot, sql).await.unwrap();
        let emails = column(&shown, 1);
        assert_eq!(emails.len(), customers);
        assert_eq!(emails[0], "ada.lovelace@example.com");
        assert!(
            emails.iter().all(|e| e.contains('@') && e != "***"),
            "{emails:?}"
        );
        let batches = query(&mut bot, "select count(*) from raw.customers")
            .await
            .unwrap();
        assert_eq!(column(&batches, 0), [customers.to_string()]);
    });
    let (status, err) = server.stop();
    assert!(status.success(), "exit status {status}:\n{err}");
    assert!(err.contains("lake serve: stopped"), "{err}");
    assert!(
        err.contains("lake serve: PII columns, masked for every role but admin:")
            && err.contains("curated.customer_summary.email"),
        "{err}"
    );
    // The log names who did what, and never a secret.
    assert!(
        err.contains("principal=alice") && err.contains("status=PermissionDenied"),
        "{err}"
    );
    assert!(err.contains("principal=bot"), "{err}");
    assert!(
        err.contains("principal=- command=Handshake") && err.contains("status=Unauthenticated"),
        "{err}"
    );
    for secret in ["correct horse battery", "wrong horse", token.as_str()] {
        assert!(!err.contains(secret), "{secret} in the log:\n{err}");
    }
}

#[test]
fn serve_refuses_a_non_loopback_address_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = lake_command(dir.path())
            .args(["serve", "--addr", addr])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{addr}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{addr}: never listened");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "refusing to serve on {addr} without authentication"
            )),
            "{err}"
        );
        assert!(err.contains("loopback"), "why: {err}");
        assert!(err.contains("hint: lake serve --auth"), "a hint: {err}");
    }
    // An auth file that is not there is named in the error.
    let out = lake_command(dir.path())
        .args(["serve", "--addr", "0.0.0.0:0", "--auth", "missing.yml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("missing.yml") && err.contains("cannot read the auth file"),
        "{err}"
    );
}

#[test]
fn serve_auth_hash_password_and_new_token() {
    let dir = tempfile::tempdir().unwrap();
    // Empty stdin, and an empty line: clear errors, no hash.
    let out = lake_with_stdin(dir.path(), &["auth", "hash-password"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("no password on stdin"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let out = lake_with_stdin(dir.path(), &["auth", "hash-password"], "\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("the password is empty"),
        "{}",
        stderr(&out)
    );
    // One line in, its hash out; the same password hashes differently (a
    // salt), and the newline is not part of the password.
    let first = hash_password(dir.path(), "s3cret");
    let second = hash_password(dir.path(), "s3cret");
    assert_ne!(first, second, "salted");
    let crlf = lake_with_stdin(dir.path(), &["auth", "hash-password"], "s3cret\r\n");
    assert!(crlf.status.success(), "{}", stderr(&crlf));
    // Both check against the password through an auth file.
    let auth = write_auth_file(
        dir.path(),
        &[
            ("lf", "reader", Credential::PasswordHash(&first)),
            (
                "crlf",
                "reader",
                Credential::PasswordHash(stdout(&crlf).trim()),
            ),
        ],
    );
    let authenticator = lake_auth::Authenticator::load(&auth).unwrap();
    for user in ["lf", "crlf"] {
        assert!(
            authenticator.authenticate_basic(user, "s3cret").is_ok(),
            "{user}"
        );
        assert!(
            authenticator.authenticate_basic(user, "s3cret\n").is_err(),
            "{user}"
        );
    }
    // new-token: a token and its SHA-256, different every time.
    let (token, sha) = new_token(dir.path());
    assert_eq!(lake_auth::token_sha256(&token), sha);
    assert_eq!(sha.len(), 64, "{sha}");
    let (other, _) = new_token(dir.path());
    assert_ne!(token, other);
}
