//! The client side of `lake serve`, for the remote REPL (`lake sql
//! --connect grpc://host:port`): connect (plain or TLS), log in through the
//! Flight SQL handshake (user and password) or with an API token, run a
//! statement and stream its rows from every endpoint, and list tables with
//! their schemas for `\d` and tab completion.
//!
//! Built on the generated `FlightServiceClient` rather than arrow-flight's
//! `FlightSqlServiceClient`, so that a failure keeps the server's gRPC code
//! and message (the latter folds them into one debug string) and a stream
//! can own its own handle on the channel.

use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandGetTables, CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, FlightInfo, HandshakeRequest, IpcMessage};
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

/// Why a remote call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "'{url}' is not a lake server URL\n  hint: grpc://host:port, or grpc+tls://host:port for TLS"
    )]
    BadUrl { url: String },
    #[error("cannot connect to {url}: {cause}\n  hint: is `lake serve` running there?")]
    Connect { url: String, cause: String },
    /// The server's answer: its gRPC code and message.
    #[error("{}: {message}", code_name(*.code))]
    Status { code: Code, message: String },
    /// The server's rows could not be decoded.
    #[error("{0}")]
    Decode(String),
}

impl ClientError {
    /// The gRPC code of a server answer.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        ClientError::Status {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<FlightError> for ClientError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Tonic(status) => (*status).into(),
            other => ClientError::Decode(other.to_string()),
        }
    }
}

/// The upper-case gRPC name, as servers and grpcurl print it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// How to log in.
#[derive(Debug, Clone, Default)]
pub enum Login {
    /// A server without `--auth`.
    #[default]
    Anonymous,
    /// The Flight SQL handshake with Basic credentials.
    Password { user: String, password: String },
    /// An API token from `lake auth new-token`, sent as the bearer token.
    Token(String),
}

/// Rows as they arrive: the schema first (known even when no row comes),
/// then the batches of every endpoint in order.
pub struct RemoteRows {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, ClientError>>,
}

impl std::fmt::Debug for RemoteRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRows")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A table or view the server lists.
#[derive(Debug, Clone)]
pub struct RemoteTable {
    pub zone: String,
    pub name: String,
    /// `TABLE` or `VIEW`.
    pub kind: String,
    /// With [`Connection::tables`]'s `include_schema`.
    pub schema: Option<Schema>,
}

/// A logged-in connection to a lake server.
#[derive(Debug, Clone)]
pub struct Connection {
    client: FlightServiceClient<Channel>,
    bearer: Option<MetadataValue<tonic::metadata::Ascii>>,
    url: String,
}

impl Connection {
    /// Connects to `grpc://host:port` (or `grpc+tls://`; `tls_ca` is a PEM
    /// certificate to trust besides the system's roots) and logs in.
    pub async fn connect(
        url: &str,
        login: Login,
        tls_ca: Option<&[u8]>,
    ) -> Result<Connection, ClientError> {
        let bad_url = || ClientError::BadUrl {
            url: url.to_owned(),
        };
        let (scheme, address) = url.split_once("://").ok_or_else(bad_url)?;
        let tls = match scheme {
            "grpc" | "grpc+tcp" | "http" => false,
            "grpc+tls" | "https" => true,
            _ => return Err(bad_url()),
        };
        let address = address.trim_end_matches('/');
        if address.is_empty() || address.contains('/') {
            return Err(bad_url());
        }
        let http_url = format!("{}://{address}", if tls { "https" } else { "http" });
        let connect_error = |cause: String| ClientError::Connect {
            url: url.to_owned(),
            cause,
        };
        // hyper's default 64 KiB flow-control window stalls a large result
        // every few messages; grow it with the measured bandwidth-delay
        // product, as gRPC's C++ client (pyarrow, ADBC) does.
        let mut endpoint = Endpoint::from_shared(http_url)
            .map_err(|_| bad_url())?
            .http2_adaptive_window(true);
        if tls {
            let mut config = ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = tls_ca {
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| connect_error(e.to_string()))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        let client = FlightServiceClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let mut connection = Connection {
            client,
            bearer: None,
            url: url.to_owned(),
        };
        match login {
            Login::Anonymous => {}
            Login::Token(token) => connection.bearer = Some(bearer(&token)?),
            Login::Password { user, password } => connection.handshake(&user, &password).await?,
        }
        Ok(connection)
    }

    /// The URL this connection was made to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Basic credentials in, a bearer token out (in the `authorization`
    /// header of the answer, or as its payload).
    async fn handshake(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut request = Request::new(stream::iter([HandshakeRequest::default()]));
        request.metadata_mut().insert(
            "authorization",
            format!("Basic {basic}").parse().map_err(|_| {
                ClientError::Decode("the user name cannot be sent in a header".into())
            })?,
        );
        let response = self.client.handshake(request).await?;
        let header = response
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let answers: Vec<_> = response.into_inner().try_collect().await?;
        let payload = answers
            .into_iter()
            .next()
            .and_then(|a| String::from_utf8(a.payload.to_vec()).ok())
            .filter(|p| !p.is_empty());
        let token = header.or(payload).ok_or_else(|| {
            ClientError::Decode("the server's handshake answered no bearer token".into())
        })?;
        self.bearer = Some(bearer(&token)?);
        Ok(())
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        request
    }

    async fn flight_info(&mut self, command: impl ProstMessageExt) -> Result<FlightInfo, Status> {
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let request = self.request(descriptor);
        Ok(self.client.get_flight_info(request).await?.into_inner())
    }

    /// Runs `sql` and streams its rows. Dropping the stream cancels the
    /// call, and the server stops the query.
    pub async fn query(&mut self, sql: &str) -> Result<RemoteRows, ClientError> {
        let info = self
            .flight_info(CommandStatementQuery {
                query: sql.to_owned(),
                transaction_id: None,
            })
            .await?;
        self.fetch(info)
    }

    /// The rows of every endpoint of `info`, one endpoint after the other.
    fn fetch(&self, info: FlightInfo) -> Result<RemoteRows, ClientError> {
        let schema: SchemaRef = Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| ClientError::Decode(format!("the result's schema: {e}")))?,
        );
        let this = self.clone();
        let tickets: Vec<_> = info
            .endpoint
            .into_iter()
            .filter_map(|endpoint| endpoint.ticket)
            .collect();
        let batches = stream::iter(tickets)
            .then(move |ticket| {
                let mut this = this.clone();
                async move {
                    let request = this.request(ticket);
                    let data = this.client.do_get(request).await?.into_inner();
                    let batches = FlightRecordBatchStream::new_from_flight_data(
                        data.map_err(FlightError::from),
                    )
                    .map_err(ClientError::from);
                    Ok::<_, ClientError>(batches)
                }
            })
            .try_flatten()
            .boxed();
        Ok(RemoteRows { schema, batches })
    }

    /// Tables and views the caller may read, optionally of one zone and
    /// one name, with their schemas when `include_schema`.
    pub async fn tables(
        &mut self,
        zone: Option<&str>,
        name: Option<&str>,
        include_schema: bool,
    ) -> Result<Vec<RemoteTable>, ClientError> {
        let info = self
            .flight_info(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: zone.map(like_exactly),
                table_name_filter_pattern: name.map(like_exactly),
                table_types: Vec::new(),
                include_schema,
            })
            .await?;
        let batches: Vec<RecordBatch> = self.fetch(info)?.batches.try_collect().await?;
        let mut tables = Vec::new();
        for batch in &batches {
            let text = |column: &str| {
                batch
                    .column_by_name(column)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| ClientError::Decode(format!("GetTables answered no {column}")))
            };
            let (zones, names, kinds) = (
                text("db_schema_name")?,
                text("table_name")?,
                text("table_type")?,
            );
            let schemas = batch
                .column_by_name("table_schema")
                .and_then(|c| c.as_any().downcast_ref::<BinaryArray>());
            for row in 0..batch.num_rows() {
                let schema = match schemas {
                    Some(s) if !s.is_null(row) => Some(
                        Schema::try_from(IpcMessage(s.value(row).to_vec().into()))
                            .map_err(|e| ClientError::Decode(format!("a table's schema: {e}")))?,
                    ),
                    _ => None,
                };
                tables.push(RemoteTable {
                    zone: zones.value(row).to_owned(),
                    name: names.value(row).to_owned(),
                    kind: kinds.value(row).to_owned(),
                    schema,
                });
            }
        }
        Ok(tables)
    }
}

/// A SQL LIKE pattern matching exactly `text`.
fn like_exactly(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn bearer(token: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, ClientError> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| ClientError::Decode("the token cannot be sent in a header".into()))
}

/// `e` and its sources: tonic's transport errors say little at the top.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
