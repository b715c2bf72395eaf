//! A small lake in a temporary directory, servers on 127.0.0.1:0 stopped
//! through a channel, and Flight SQL clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use lake_engine::{Executed, LakeSession, SessionOptions};
use lake_flight::{FlightServer, RequestRecord, ServeError, ServerMetrics};
use lake_storage::{LakeRoot, ViewDefinition};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub type Client = FlightSqlServiceClient<Channel>;

/// A lake with tables in raw, curated and features, and two views.
pub struct Lake {
    pub dir: tempfile::TempDir,
    pub session: LakeSession,
}

pub async fn open_session(dir: &std::path::Path) -> LakeSession {
    let root = LakeRoot::open(dir.to_str().unwrap(), dir, HashMap::new()).unwrap();
    let options = SessionOptions {
        memory_limit: Some(512 << 20),
        target_partitions: Some(2),
        ..Default::default()
    };
    LakeSession::open(Arc::new(root), &options).await.unwrap()
}

pub async fn sql(session: &LakeSession, statement: &str) {
    match session.execute_sql(statement).await.unwrap() {
        Executed::Done(_) => {}
        Executed::Rows(df) => {
            df.collect().await.unwrap();
        }
    }
}

impl Lake {
    pub async fn new() -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let session = open_session(dir.path()).await;
        for statement in [
            "create table curated.orders as select * from (values \
             (1, 'alice', 10.5), (2, 'bob', 20.0), (3, 'carol', 7.25)) as t(id, customer, amount)",
            "create table curated.customers as select * from (values \
             ('alice', 'alice@example.com', 30), ('bob', 'bob@example.com', 40)) as t(name, email, age)",
            "create table raw.events as select * from (values (1, 'click'), (2, 'view')) as t(id, kind)",
            "create table features.customer_stats as select * from (values ('alice', 2)) as t(name, orders_30d)",
        ] {
            sql(&session, statement).await;
        }
        for (name, query) in [
            (
                "big_orders",
                "select * from curated.orders where amount > 8",
            ),
            // A view in a readable zone over an unreadable one.
            ("raw_events", "select * from raw.events"),
            // A view over PII columns.
            (
                "customer_emails",
                "select name, email from curated.customers",
            ),
        ] {
            session
                .root()
                .views()
                .put(&ViewDefinition {
                    zone: "curated".into(),
                    name: name.into(),
                    sql: query.into(),
                    written_by: None,
                    written_at: "2026-01-01T00:00:00Z".into(),
                })
                .await
                .unwrap();
        }
        session.catalog().refresh().await.unwrap();
        Lake { dir, session }
    }
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: ServerMetrics,
    pub records: Arc<Mutex<Vec<RequestRecord>>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Serves `server` on 127.0.0.1 (a free port), recording log lines.
    pub async fn start(server: FlightServer) -> TestServer {
        let records: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
        let sink = records.clone();
        let server = server.with_request_log(move |r: &RequestRecord| {
            sink.lock().unwrap().push(r.clone());
        });
        let metrics = server.metrics();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve_with_listener(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            metrics,
            records,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> Client {
        let channel = Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The status inside a client error.
pub fn status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(status) => *status,
        FlightError::Arrow(datafusion::arrow::error::ArrowError::ExternalError(inner)) => {
            match inner.downcast::<FlightError>() {
                Ok(flight) => status(*flight),
                Err(other) => panic!("not a status: {other}"),
            }
        }
        other => panic!("not a status: {other:?}"),
    }
}

pub fn code(e: FlightError) -> Code {
    status(e).code()
}

/// The first ticket of `info`.
pub fn ticket(info: &FlightInfo) -> Ticket {
    info.endpoint[0].ticket.clone().expect("a ticket")
}

/// DoGet of every endpoint of `info`.
pub async fn fetch(client: &mut Client, info: FlightInfo) -> Result<Vec<RecordBatch>, FlightError> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

/// Runs `sql` through GetFlightInfo and DoGet.
pub async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    fetch(client, info).await
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// The batches as a table, for assertions.
pub fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Waits (bounded) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
