//! `lake serve`: an Arrow Flight SQL server over the lake of a project.
//!
//! Standard Flight SQL clients (the ADBC and JDBC drivers, pyarrow.flight)
//! work unchanged:
//!
//! - statement queries (GetFlightInfo, then DoGet) and prepared statements
//!   with `$1`-style parameters bound through DoPut;
//! - the metadata commands (catalogs, db schemas, tables with their
//!   schemas, table types, primary keys, SqlInfo, XDBC type info);
//! - bulk ingest (`CommandStatementIngest`) into the `raw` zone, one Delta
//!   commit per upload, for roles that may write.
//!
//! Tickets and prepared-statement handles are stateless: a ticket carries
//! the query, the Delta version of every table it reads and the view
//! definitions it expanded, so any server over the same lake answers it
//! with the same rows later. Each request plans in its own
//! catalog view of the lake: zones the principal's role may
//! not read are refused (through views too), PII columns are masked, and
//! the ticket's versions are opened. Results stream batch by batch through
//! arrow-flight's encoder, in messages under 4 MiB; a client that goes away
//! cancels its query; a limit on concurrent queries answers
//! RESOURCE_EXHAUSTED. DDL, DML, COPY and SET are refused whatever the role.
//!
//! The client side, [`Connection`], is what `lake sql --connect` runs its
//! REPL through.
//!
//! Authentication (the `lake-auth` crate): the handshake takes Basic
//! credentials and answers with a bearer token, which every other call must
//! carry. Without an authenticator every call is the local admin and the
//! server binds loopback addresses only.
//!
//! ```no_run
//! # async fn run(session: lake_engine::LakeSession,
//! #              auth: std::sync::Arc<lake_auth::Authenticator>) -> Result<(), lake_flight::ServeError> {
//! use lake_flight::{FlightServer, shutdown_signal};
//!
//! FlightServer::new(session)
//!     .with_auth(Some(auth))
//!     .with_pii_columns([("curated.customers", ["email", "phone"])])
//!     .serve("0.0.0.0:50051".parse().unwrap(), shutdown_signal())
//!     .await
//! # }
//! ```

mod auth;
mod client;
mod commands;
mod error;
mod features;
mod ingest;
mod log;
mod metadata;
mod pinned;
mod query;
mod server;
mod service;
mod stream;
mod ticket;

pub use client::{ClientError, Connection, Login, RemoteRows, RemoteTable};
pub use commands::{
    COMMAND_TYPE_URL, Command, ListFeatureServices, OnlineFeaturesRequest, SpineSource,
    TrainingSetRequest, TrainingSetTicket, command, command_as_any, spine_source,
};
pub use error::ServeError;
pub use features::DEFAULT_SPINE_ROWS_PER_ENDPOINT;
pub use ingest::INGEST_ZONE;
pub use log::{Outcome, RequestLogSink, RequestRecord};
pub use pinned::PiiColumns;
pub use server::{
    DEFAULT_MAX_CONCURRENT_QUERIES, FlightServer, MAX_UPLOAD_MESSAGE_BYTES, is_loopback,
    shutdown_signal,
};
pub use stream::{MAX_FLIGHT_MESSAGE_BYTES, ServerMetrics};
pub use ticket::{PreparedHandle, QueryTicket};
