//! One log line per request: who (principal), what (RPC and Flight SQL
//! command), how much (rows, bytes), how long, and how it ended.
//!
//! The auth gate opens a [`RequestLog`] for every call and hands a clone to
//! the command through the request's extensions; the command adds what it
//! knows (its name, rows). The line is written when the last clone is
//! dropped: at the end of a unary call, or when a DoGet stream ends or is
//! dropped by a client that went away ("cancelled").

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::Code;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(Code),
    /// The client went away (or the call was dropped) before the end.
    Cancelled,
}

/// What is logged about one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The principal's name (`-` when authentication failed).
    pub principal: String,
    /// The RPC and, when known, the Flight SQL command: `DoGet(statement)`.
    pub command: String,
    /// Rows sent (DoGet) or received (bulk ingest).
    pub rows: u64,
    /// Bytes of Arrow data sent (DoGet).
    pub bytes: u64,
    pub duration: Duration,
    pub outcome: Outcome,
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Failed(code) => format!("{code:?}"),
            Outcome::Cancelled => "cancelled".to_string(),
        };
        write!(
            f,
            "principal={} command={} rows={} bytes={} duration_ms={} status={}",
            self.principal,
            self.command,
            self.rows,
            self.bytes,
            self.duration.as_millis(),
            status
        )
    }
}

/// Where request records go.
pub type RequestLogSink = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// The default sink: one line on stderr.
pub fn stderr_sink() -> RequestLogSink {
    Arc::new(|record: &RequestRecord| eprintln!("lake serve: {record}"))
}

struct Entry {
    principal: String,
    rpc: &'static str,
    command: Option<String>,
    outcome: Outcome,
}

struct LogState {
    sink: RequestLogSink,
    started: Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    entry: Mutex<Entry>,
}

impl Drop for LogState {
    fn drop(&mut self) {
        let entry = self.entry.get_mut().unwrap_or_else(PoisonError::into_inner);
        let command = match &entry.command {
            Some(command) => format!("{}({command})", entry.rpc),
            None => entry.rpc.to_string(),
        };
        let record = RequestRecord {
            principal: std::mem::take(&mut entry.principal),
            command,
            rows: *self.rows.get_mut(),
            bytes: *self.bytes.get_mut(),
            duration: self.started.elapsed(),
            outcome: entry.outcome,
        };
        (self.sink)(&record);
    }
}

/// The log of one request; clones share it, the line is written when the
/// last one goes.
#[derive(Clone)]
pub(crate) struct RequestLog(Arc<LogState>);

impl RequestLog {
    /// A request to `rpc` that has not finished (yet).
    pub fn start(sink: &RequestLogSink, rpc: &'static str) -> RequestLog {
        RequestLog(Arc::new(LogState {
            sink: sink.clone(),
            started: Instant::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            entry: Mutex::new(Entry {
                principal: "-".to_string(),
                rpc,
                command: None,
                outcome: Outcome::Cancelled,
            }),
        }))
    }

    fn entry(&self) -> std::sync::MutexGuard<'_, Entry> {
        self.0.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_principal(&self, name: &str) {
        self.entry().principal = name.to_string();
    }

    /// The Flight SQL command within the RPC (`statement`, `tables`, ...).
    pub fn set_command(&self, command: impl Into<String>) {
        self.entry().command = Some(command.into());
    }

    pub fn add_rows(&self, rows: u64) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_outcome(&self, outcome: Outcome) {
        self.entry().outcome = outcome;
    }

    /// Records how a unary call ended.
    pub fn finish<T>(&self, result: &Result<T, tonic::Status>) {
        self.set_outcome(match result {
            Ok(_) => Outcome::Ok,
            Err(status) => Outcome::Failed(status.code()),
        });
    }
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = self.entry();
        f.debug_struct("RequestLog")
            .field("principal", &entry.principal)
            .field("rpc", &entry.rpc)
            .finish()
    }
}
