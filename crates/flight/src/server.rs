//! [`FlightServer`]: a builder in the delta-rs style for serving a lake
//! over Arrow Flight SQL, and [`shutdown_signal`] for stopping it on
//! SIGINT or SIGTERM.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use lake_auth::Authenticator;
use lake_engine::LakeSession;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::auth::AuthGate;
use crate::error::ServeError;
use crate::log::{RequestLogSink, RequestRecord, stderr_sink};
use crate::metadata;
use crate::pinned::PiiColumns;
use crate::service::{LakeFlightSql, ServerState};
use crate::stream::{QueryLimit, ServerMetrics};

/// Queries run at once unless [`FlightServer::with_max_concurrent_queries`]
/// says otherwise.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 16;

/// The largest message a client may send (bulk ingest batches, bound
/// parameters). Answers stay under 4 MiB per message whatever this is.
pub const MAX_UPLOAD_MESSAGE_BYTES: usize = 64 << 20;

/// A Flight SQL server over one lake session.
///
/// ```no_run
/// # async fn run(session: lake_engine::LakeSession) -> Result<(), lake_flight::ServeError> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// lake_flight::FlightServer::new(session)
///     .with_max_concurrent_queries(8)
///     .serve_with_listener(listener, lake_flight::shutdown_signal())
///     .await
/// # }
/// ```
pub struct FlightServer {
    session: LakeSession,
    authenticator: Option<Arc<Authenticator>>,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    max_concurrent_queries: usize,
    pii: PiiColumns,
    log: RequestLogSink,
    metrics: ServerMetrics,
    manifest: Option<Arc<lake_compiler::Manifest>>,
    spine_rows_per_endpoint: usize,
}

impl std::fmt::Debug for FlightServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightServer")
            .field("session", &self.session)
            .field("auth", &self.authenticator.is_some())
            .field("tls", &self.tls.is_some())
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .finish()
    }
}

impl FlightServer {
    /// A server over `session`'s lake: no auth (so loopback only), no TLS,
    /// [`DEFAULT_MAX_CONCURRENT_QUERIES`], no PII columns, request lines
    /// on stderr.
    pub fn new(session: LakeSession) -> FlightServer {
        FlightServer {
            session,
            authenticator: None,
            tls: None,
            max_concurrent_queries: DEFAULT_MAX_CONCURRENT_QUERIES,
            pii: PiiColumns::default(),
            log: stderr_sink(),
            metrics: ServerMetrics::default(),
            manifest: None,
            spine_rows_per_endpoint: crate::features::DEFAULT_SPINE_ROWS_PER_ENDPOINT,
        }
    }

    /// Checks credentials on every call. `None` serves everyone as the
    /// local admin, and only on a loopback address.
    pub fn with_auth(mut self, authenticator: Option<Arc<Authenticator>>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// Serves TLS with this certificate chain and private key (PEM).
    pub fn with_tls(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.tls = Some((cert_pem, key_pem));
        self
    }

    /// Queries that may run at once; more are answered RESOURCE_EXHAUSTED.
    pub fn with_max_concurrent_queries(mut self, limit: usize) -> Self {
        self.max_concurrent_queries = limit.max(1);
        self
    }

    /// Columns masked for roles that do not see PII: `zone.table` → column
    /// names (for example from the `pii` tags of the properties YAML).
    pub fn with_pii_columns<T, C>(mut self, tables: impl IntoIterator<Item = (T, C)>) -> Self
    where
        T: Into<String>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        self.pii = PiiColumns::new(tables);
        self
    }

    /// The project whose feature views and services the server answers
    /// training-set and online-feature commands for.
    pub fn with_project(mut self, manifest: Arc<lake_compiler::Manifest>) -> Self {
        self.manifest = Some(manifest);
        self
    }

    /// A training set whose spine has more rows than this is served in
    /// several endpoints (tickets), so a client can fetch them in parallel.
    pub fn with_spine_rows_per_endpoint(mut self, rows: usize) -> Self {
        self.spine_rows_per_endpoint = rows.max(1);
        self
    }

    /// Where the one line per request goes (default: stderr).
    pub fn with_request_log(
        mut self,
        sink: impl Fn(&RequestRecord) + Send + Sync + 'static,
    ) -> Self {
        self.log = Arc::new(sink);
        self
    }

    /// Counters of this server (running queries), to watch while it serves.
    pub fn metrics(&self) -> ServerMetrics {
        self.metrics.clone()
    }

    /// Binds `addr` and serves until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.check_bind(addr)?;
        let listener = TcpListener::bind(addr).await?;
        self.serve_with_listener(listener, shutdown).await
    }

    /// Serves on `listener` until `shutdown` completes; calls in flight are
    /// allowed to finish.
    pub async fn serve_with_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.check_bind(listener.local_addr()?)?;
        // Pings find clients that went away without closing (a dead peer,
        // a suspended process): their calls end, their queries stop, and a
        // graceful stop does not wait for them for ever.
        let mut builder = Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            // Uploads (bulk ingest) with a window that grows with the
            // bandwidth-delay product instead of hyper's fixed 64 KiB.
            .http2_adaptive_window(Some(true));
        if let Some((cert, key)) = &self.tls {
            // tonic's server TLS uses rustls's process-wide crypto provider;
            // with both ring and aws-lc-rs compiled in (other crates enable
            // the latter), none is chosen by default. Pick ring unless the
            // process already picked one.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let identity = Identity::from_pem(cert, key);
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .map_err(|e| ServeError::Tls(e.to_string()))?;
        }
        let service = FlightServiceServer::new(self.into_gate()?)
            .max_decoding_message_size(MAX_UPLOAD_MESSAGE_BYTES);
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        builder
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }

    /// Without auth, only addresses of this machine.
    fn check_bind(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if self.authenticator.is_none() && !is_loopback(addr.ip()) {
            return Err(ServeError::InsecureBind { addr });
        }
        Ok(())
    }

    fn into_gate(self) -> Result<AuthGate, ServeError> {
        let state = self.session.context().state();
        let service = LakeFlightSql::new(ServerState {
            sql_info_writable: metadata::sql_info(false, &state)?,
            sql_info_read_only: metadata::sql_info(true, &state)?,
            xdbc: metadata::xdbc_type_info()?,
            limit: QueryLimit::new(self.max_concurrent_queries, self.metrics.clone()),
            pii: Arc::new(self.pii),
            features: self.manifest.map(|manifest| {
                Arc::new(crate::features::Features {
                    manifest,
                    online: lake_features::OnlineStore::new(self.session.root().clone()),
                    spine_rows_per_endpoint: self.spine_rows_per_endpoint,
                })
            }),
            session: self.session,
        });
        Ok(AuthGate::new(service, self.authenticator, self.log))
    }
}

/// An address of this machine only: where a server without auth may
/// listen.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: the `shutdown` future for
/// `lake serve`.
pub async fn shutdown_signal() {
    // A signal that cannot be watched never fires (rather than stopping the
    // server at once).
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
        assert!(!is_loopback("192.168.1.2".parse().unwrap()));
    }
}
