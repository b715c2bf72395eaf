//! `lake serve` DoGet throughput: a large table (TPC-H `lineitem`, 6M rows
//! at SF1) served by an in-process `lake_flight::FlightServer` on loopback
//! (no auth, no TLS, the session options of `lake serve`) to
//!
//! - a Rust client (arrow-flight's Flight SQL client on a runtime of its
//!   own: GetFlightInfo, then DoGet of every endpoint, every batch decoded
//!   and kept, as a client collecting a result does);
//! - pyarrow.flight (`benches/flight_pyarrow.py`: `do_get(ticket).read_all()`
//!   with a ticket from the Rust side's GetFlightInfo; tickets are
//!   stateless, so one serves every run);
//!
//! next to pyarrow reading the very Parquet files behind the Delta table
//! (`pyarrow.parquet.read_table`, all cores; once as the files' stored
//! schema says, strings as string_view, once with strings as Utf8 like the
//! server sends them), and, to tell where the server's time goes, the
//! served query run in-process without gRPC: the scan alone, with the casts
//! the server adds (Utf8View to Utf8), and with Flight's IPC encoding.
//! Rounds interleave the measurements, after one warm-up round; CPU time
//! and page faults are counted for this process (the server, the Rust
//! client) and the Python one.
//!
//! Bytes: the table's size as Arrow IPC, as lake serves it (strings as
//! Utf8, uncompressed): the Flight messages' bytes (data header + body) the
//! Rust client receives. Every measurement's GB/s (10^9 bytes) divides that
//! same number by its time, so GB/s compare like rows/s; each reader's own
//! count is printed next to it.
//!
//! `cargo bench --bench flight`; knobs: `LAKE_TPCH_SF` (1), `LAKE_TPCH_DIR`,
//! `LAKE_FLIGHT_RUNS` (5), `LAKE_FLIGHT_TABLE` (lineitem), `LAKE_BENCH_VENV`
//! (the Python with pyarrow; see `common::peer_venv`). For experiments:
//! `LAKE_FLIGHT_SET="key=value;..."` (session settings of the server, e.g.
//! `datafusion.execution.batch_size=65536`),
//! `LAKE_FLIGHT_CLIENT_FRAME_SIZE` and `LAKE_FLIGHT_CLIENT_WINDOW` (the Rust
//! client's HTTP/2 max frame size and windows, bytes),
//! `LAKE_FLIGHT_PYARROW_GRPC="name=int;..."` (pyarrow's gRPC client
//! options, e.g. `grpc.http2.max_frame_size=16777215`).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use common::tpch_data;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::cast;
use datafusion::prelude::{Expr, col};
use futures::{StreamExt as _, TryStreamExt as _};
use lake_engine::{Executed, LakeSession, SessionOptions};
use lake_flight::{FlightServer, MAX_FLIGHT_MESSAGE_BYTES};
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One timed read of the whole table.
#[derive(Debug, Clone, Copy, Default)]
struct Read {
    rows: u64,
    seconds: f64,
    /// The reader's own byte count (see [`Measure::bytes_note`]).
    bytes: u64,
    /// CPU time of this process (the server, the Rust client, the
    /// in-process queries) during the read.
    cpu: f64,
    /// CPU time of the Python process during the read.
    peer_cpu: f64,
    /// Page faults of this process during the read.
    faults: u64,
}

/// One row of the result table.
struct Measure {
    name: &'static str,
    bytes_note: &'static str,
    reads: Vec<Read>,
}

impl Measure {
    fn new(name: &'static str, bytes_note: &'static str) -> Measure {
        Measure {
            name,
            bytes_note,
            reads: Vec::new(),
        }
    }

    fn median(&self) -> Read {
        let mut reads = self.reads.clone();
        reads.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        reads[reads.len() / 2]
    }
}

/// The Rust client's DoGet of everything `sql` answers.
async fn rust_fetch(
    sql_client: &mut FlightSqlServiceClient<Channel>,
    flight: &mut FlightServiceClient<Channel>,
    sql: &str,
) -> (Read, f64) {
    let started = Instant::now();
    let info = sql_client.execute(sql.to_string(), None).await.unwrap();
    let info_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let before = usage();
    let wire = Arc::new(AtomicU64::new(0));
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let messages = flight.do_get(ticket).await.unwrap().into_inner();
        let counter = wire.clone();
        let counted = messages
            .map_ok(move |data| {
                counter.fetch_add(
                    (data.data_header.len() + data.data_body.len()) as u64,
                    Ordering::Relaxed,
                );
                data
            })
            .map_err(FlightError::from);
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(counted);
        while let Some(batch) = decoded.try_next().await.unwrap() {
            batches.push(batch);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    drop(batches);
    let read = Read {
        rows,
        seconds,
        bytes: wire.load(Ordering::Relaxed),
        cpu: usage().cpu - before.cpu,
        faults: usage().faults - before.faults,
        peer_cpu: 0.0,
    };
    (read, info_seconds)
}

/// The query run in-process through the lake session, batches drained as
/// they come (the server's ceiling); `served_types` adds the casts the
/// server makes (Utf8View and BinaryView to Utf8 and Binary), `encode` the
/// server's Flight encoding (arrow-flight's encoder, messages of at most
/// [`MAX_FLIGHT_MESSAGE_BYTES`]), without gRPC.
async fn in_process(session: &LakeSession, sql: &str, served_types: bool, encode: bool) -> Read {
    let started = Instant::now();
    let before = usage();
    let Executed::Rows(mut frame) = session.execute_sql(sql).await.unwrap() else {
        panic!("{sql} answers rows");
    };
    if served_types {
        let columns: Vec<Expr> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let column = col(format!("\"{}\"", f.name()));
                match f.data_type() {
                    DataType::Utf8View => cast(column, DataType::Utf8).alias(f.name()),
                    DataType::BinaryView => cast(column, DataType::Binary).alias(f.name()),
                    _ => column,
                }
            })
            .collect();
        frame = frame.select(columns).unwrap();
    }
    let mut stream = frame.execute_stream().await.unwrap();
    let (mut rows, mut bytes) = (0u64, 0u64);
    if encode {
        let schema = stream.schema();
        let counter = Arc::new(AtomicU64::new(0));
        let counting = counter.clone();
        let batches = stream.map(move |batch| {
            let batch = batch.map_err(|e| FlightError::ExternalError(Box::new(e)))?;
            counting.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(batch)
        });
        let mut messages = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_FLIGHT_MESSAGE_BYTES)
            .build(batches);
        while let Some(data) = messages.next().await {
            let data = data.unwrap();
            bytes += (data.data_header.len() + data.data_body.len()) as u64;
        }
        rows = counter.load(Ordering::Relaxed);
    } else {
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            rows += batch.num_rows() as u64;
            bytes += batch.get_array_memory_size() as u64;
        }
    }
    Read {
        rows,
        seconds: started.elapsed().as_secs_f64(),
        bytes,
        cpu: usage().cpu - before.cpu,
        faults: usage().faults - before.faults,
        peer_cpu: 0.0,
    }
}

/// The pyarrow side: one process, one measurement per request line.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Peer {
    fn start(venv: &Path, uri: &str, ticket: &[u8], files: &[String]) -> Peer {
        let mut child = common::spawn_peer_script(venv, "flight_pyarrow.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut peer = Peer {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        let setup = serde_json::json!({
            "uri": uri,
            "ticket": ticket.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "files": files,
            "grpc_options": grpc_options(),
        });
        let hello = peer.send(&setup.to_string());
        peer.version = hello["pyarrow"].as_str().unwrap_or("?").to_string();
        peer
    }

    fn send(&mut self, line: &str) -> Json {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("benches/flight_pyarrow.py answered {answer:?}: {e}"))
    }

    /// One measurement; `bytes` is the table's size as an IPC stream.
    fn read(&mut self, what: &str) -> (Read, u64) {
        let before = usage();
        let json = self.send(what);
        let read = Read {
            rows: json["rows"].as_u64().unwrap(),
            seconds: json["seconds"].as_f64().unwrap(),
            bytes: json["ipc_bytes"].as_u64().unwrap(),
            cpu: usage().cpu - before.cpu,
            faults: usage().faults - before.faults,
            peer_cpu: json["cpu"].as_f64().unwrap(),
        };
        (read, json["nbytes"].as_u64().unwrap())
    }

    fn stop(mut self) {
        writeln!(self.stdin).unwrap();
        drop(self.stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

/// Experiments: options of pyarrow's gRPC client,
/// `LAKE_FLIGHT_PYARROW_GRPC=name=int;name=int`
/// (e.g. `grpc.http2.max_frame_size=16777215`).
fn grpc_options() -> Json {
    let options = std::env::var("LAKE_FLIGHT_PYARROW_GRPC").unwrap_or_default();
    options
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|option| {
            let (name, value) = option.split_once('=').expect("name=int");
            serde_json::json!([
                name.trim(),
                value.trim().parse::<i64>().expect("an integer")
            ])
        })
        .collect()
}

/// What this process has used so far, all threads.
struct Usage {
    /// CPU seconds, user + system.
    cpu: f64,
    /// Page faults (minor + major).
    faults: u64,
}

#[allow(unsafe_code)] // getrusage: this process's own CPU time
fn usage() -> Usage {
    // SAFETY: plain FFI call with a valid out-pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        faults: (usage.ru_minflt + usage.ru_majflt) as u64,
    }
}

/// This process's resident set and its peak since the last reset (Linux).
fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak resident set to the current one (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

fn main() {
    let sf = tpch_data::scale_factor();
    let dir = tpch_data::data_dir(sf);
    let runs = common::env_usize("LAKE_FLIGHT_RUNS", 5).max(1);
    let table = std::env::var("LAKE_FLIGHT_TABLE").unwrap_or_else(|_| "lineitem".into());
    let sql = format!("select * from raw.{table}");
    let Some(venv) = common::peer_venv() else {
        eprintln!("no Python with pyarrow: set LAKE_BENCH_VENV (or run benches/setup-peers.sh)");
        std::process::exit(1);
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // As `lake serve`: a worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let root = tpch_data::open_root(&dir);
    let files = rt.block_on(async {
        tpch_data::load(&root, &dir, sf, &[table.as_str()]).await;
        tpch_data::data_files(&root, &[table.as_str()]).await
    });
    let files = files[&table].clone();

    // The server's session as `lake serve` opens it.
    let options = SessionOptions {
        url_tables: false,
        ..SessionOptions::default()
    };
    let (server_session, local_session) = rt.block_on(async {
        (
            LakeSession::open(root.clone(), &options).await.unwrap(),
            LakeSession::open(root.clone(), &options).await.unwrap(),
        )
    });
    // Experiments: settings of the serving (and in-process) session,
    // `key=value;key=value` (e.g. `datafusion.execution.batch_size=65536`).
    let settings = std::env::var("LAKE_FLIGHT_SET").unwrap_or_default();
    for setting in settings.split(';').filter(|s| !s.trim().is_empty()) {
        let (key, value) = setting.split_once('=').expect("LAKE_FLIGHT_SET: key=value");
        let set = format!("SET {} = {}", key.trim(), value.trim());
        eprintln!("{set}");
        rt.block_on(async {
            server_session.execute_sql(&set).await.unwrap();
            local_session.execute_sql(&set).await.unwrap();
        });
    }
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(
        FlightServer::new(server_session)
            .with_request_log(|_| {})
            .serve_with_listener(listener, async {
                let _ = stop_rx.await;
            }),
    );
    let uri = format!("http://{addr}");
    // The Rust client has a runtime of its own, as in a process of its own.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut sql_client, mut flight) = client_rt.block_on(async {
        let mut endpoint = Endpoint::from_shared(uri.clone()).unwrap();
        // Experiments: the Rust client's HTTP/2 settings (the frames the
        // server sends are at most the client's max frame size; hyper's
        // defaults are 16 KiB frames and a 2 MiB stream window).
        if let Ok(size) = std::env::var("LAKE_FLIGHT_CLIENT_FRAME_SIZE") {
            endpoint = endpoint.max_frame_size(size.parse::<u32>().unwrap());
        }
        if let Ok(size) = std::env::var("LAKE_FLIGHT_CLIENT_WINDOW") {
            let size = size.parse::<u32>().unwrap();
            endpoint = endpoint
                .initial_stream_window_size(size)
                .initial_connection_window_size(size);
        }
        let channel = endpoint.connect().await.unwrap();
        (
            FlightSqlServiceClient::new(channel.clone()),
            FlightServiceClient::new(channel),
        )
    });
    // The ticket pyarrow fetches (tickets are stateless: any number of DoGets).
    let info = client_rt
        .block_on(sql_client.execute(sql.clone(), None))
        .unwrap();
    assert_eq!(info.endpoint.len(), 1, "one endpoint");
    let ticket = info.endpoint[0].ticket.clone().unwrap().ticket;
    let mut peer = Peer::start(&venv, &format!("grpc://{addr}"), &ticket, &files);

    // The rows of the table, in the order they are printed.
    let mut measures = [
        Measure::new(
            "Flight DoGet → Rust client (arrow-flight)",
            "Flight message bytes received (data header + body)",
        ),
        Measure::new(
            "Flight DoGet → pyarrow.flight `read_all()`",
            "IPC stream size of the table received",
        ),
        Measure::new(
            "direct: pyarrow `read_table` of the Parquet files",
            "IPC stream size of the table read, strings as string_view",
        ),
        Measure::new(
            "direct: pyarrow `read_table`, strings read as Utf8",
            "IPC stream size of the table read",
        ),
        Measure::new(
            "lake in-process, no Flight: the scan (Utf8View)",
            "sum of get_array_memory_size()",
        ),
        Measure::new(
            "lake in-process, no Flight: + casts to Utf8 (the served query)",
            "sum of get_array_memory_size()",
        ),
        Measure::new(
            "lake in-process: + Flight IPC encoding, no gRPC",
            "Flight message bytes encoded",
        ),
        Measure::new(
            "lake in-process: Flight IPC encoding without the casts (Utf8View)",
            "Flight message bytes encoded",
        ),
    ];
    const RUST: usize = 0;
    const PYARROW: usize = 1;
    const DIRECT: usize = 2;
    const DIRECT_UTF8: usize = 3;
    let mut info_seconds = Vec::new();
    let mut nbytes = [0u64; 3];
    let mut server_peak_growth = 0u64;

    eprintln!(
        "{table} at SF{sf}: {} Parquet files; one warm-up round, then {runs}",
        files.len()
    );
    for round in 0..=runs {
        let (rust, info_s) = client_rt.block_on(rust_fetch(&mut sql_client, &mut flight, &sql));
        // The bytes pyarrow.flight pulls through the server, which holds no
        // result: the peak growth of this process is the server's.
        let baseline = rss();
        reset_peak_rss();
        let (pyarrow, pyarrow_nbytes) = peer.read("flight");
        if let (Some((before, _)), Some((_, peak))) = (baseline, rss()) {
            server_peak_growth = server_peak_growth.max(peak.saturating_sub(before));
        }
        let (direct, direct_nbytes) = peer.read("parquet");
        let (direct_utf8, direct_utf8_nbytes) = peer.read("parquet-utf8");
        nbytes = [pyarrow_nbytes, direct_nbytes, direct_utf8_nbytes];
        let reads = [
            rust,
            pyarrow,
            direct,
            direct_utf8,
            rt.block_on(in_process(&local_session, &sql, false, false)),
            rt.block_on(in_process(&local_session, &sql, true, false)),
            rt.block_on(in_process(&local_session, &sql, true, true)),
            rt.block_on(in_process(&local_session, &sql, false, true)),
        ];
        let times: Vec<String> = reads.iter().map(|r| format!("{:.2}", r.seconds)).collect();
        eprintln!(
            "round {round}{}: {} s",
            if round == 0 { " (warm-up)" } else { "" },
            times.join(" / ")
        );
        if round == 0 {
            continue;
        }
        info_seconds.push(info_s);
        for (m, read) in measures.iter_mut().zip(reads) {
            m.reads.push(read);
        }
    }
    let pyarrow_version = peer.version.clone();
    peer.stop();
    let _ = stop_tx.send(());
    rt.block_on(server).unwrap().unwrap();

    // Every row's GB/s: the served table's IPC bytes over its time.
    let bytes = measures[RUST].median().bytes;
    let rows = measures[RUST].median().rows;
    for m in &measures {
        assert_eq!(m.median().rows, rows, "{}: the whole table", m.name);
    }
    let direct = measures[DIRECT]
        .median()
        .seconds
        .min(measures[DIRECT_UTF8].median().seconds);

    println!(
        "`select * from raw.{table}` at TPC-H SF{sf}: {rows} rows, {bytes} bytes ({:.2} GB) \
         as Arrow IPC; median of {runs} runs after a warm-up; {cores} cores; pyarrow \
         {pyarrow_version}\n",
        gb(bytes),
    );
    println!(
        "| measurement | rows | bytes | median time | rows/s | GB/s | time / direct read | \
         CPU s: lake process / Python | lake process page faults |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &measures {
        let median = m.median();
        let t = median.seconds;
        println!(
            "| {} | {} | {:.2} GB | {:.2} s | {:.2} M | {:.2} | {:.2}x | {:.2} / {:.2} | {}k |",
            m.name,
            rows,
            gb(bytes),
            t,
            rows as f64 / t / 1e6,
            gb(bytes) / t,
            t / direct,
            median.cpu,
            median.peer_cpu,
            median.faults / 1000,
        );
    }
    println!("\nEach reader's own byte count (median run):\n");
    for m in &measures {
        println!(
            "- {}: {:.3} GB ({})",
            m.name,
            gb(m.median().bytes),
            m.bytes_note
        );
    }
    println!(
        "- in memory (Table.nbytes): pyarrow.flight {:.3} GB, read_table {:.3} GB, \
         read_table as Utf8 {:.3} GB",
        gb(nbytes[0]),
        gb(nbytes[1]),
        gb(nbytes[2]),
    );
    info_seconds.sort_by(f64::total_cmp);
    println!(
        "\nGetFlightInfo (planning; not in the DoGet times): median {:.1} ms",
        info_seconds[info_seconds.len() / 2] * 1e3
    );
    if server_peak_growth > 0 {
        println!(
            "Peak RSS growth of the server's process during a pyarrow DoGet: {:.0} MiB",
            common::mib(server_peak_growth)
        );
    }

    let gbs = |i: usize| gb(bytes) / measures[i].median().seconds;
    let share = |i: usize| direct / measures[i].median().seconds;
    let verdict = |ok: bool| if ok { "meets" } else { "misses" };
    println!("\nTargets (issue 6):\n");
    println!(
        "- at least 1 GB/s on loopback: Rust client {:.2} GB/s ({}), pyarrow {:.2} GB/s ({})",
        gbs(RUST),
        verdict(gbs(RUST) >= 1.0),
        gbs(PYARROW),
        verdict(gbs(PYARROW) >= 1.0),
    );
    println!(
        "- at least half the direct-read speed (the faster pyarrow read, {direct:.2} s): \
         Rust client {:.2}x ({}), pyarrow {:.2}x ({})",
        share(RUST),
        verdict(share(RUST) >= 0.5),
        share(PYARROW),
        verdict(share(PYARROW) >= 0.5),
    );
}
