//! Authentication on every RPC: a `FlightService` in front of the Flight SQL
//! service that
//!
//! - answers the Handshake: Basic credentials (the `authorization` header,
//!   as arrow-flight's and ADBC's clients send them, or a `BasicAuth`
//!   message in the first request) are checked and answered with a bearer
//!   token, both in the `authorization` response header (`Bearer <token>`)
//!   and in the response payload; a bearer or API token is accepted as is;
//! - checks `authorization: Bearer <token>` on every other call, and hands
//!   the [`Principal`] to the command through the request's extensions;
//! - opens the request's log line.
//!
//! Every failure is UNAUTHENTICATED with one message, echoing nothing.
//! Without an authenticator every call is the local admin.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, BasicAuth, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, SchemaResult, Ticket,
};
use futures::Stream;
use lake_auth::{Authenticator, Credentials, Principal, parse_authorization};
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use crate::commands::LakeCommand;
use crate::error::ServeError;
use crate::log::{RequestLog, RequestLogSink};
use crate::service::{LakeFlightSql, principal};
use crate::stream::logged;

/// How long a handshake without an `authorization` header may take to send
/// its credentials message.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The longest password a handshake may carry (argon2 would hash any).
const MAX_PASSWORD_BYTES: usize = 1024;

/// The service tonic serves: authentication, then the Flight SQL service.
pub(crate) struct AuthGate {
    inner: LakeFlightSql,
    authenticator: Option<Arc<Authenticator>>,
    log: RequestLogSink,
    /// Password checks at once: each takes argon2's memory (19 MiB) and tens
    /// of milliseconds of a core, so a flood of handshakes must queue rather
    /// than exhaust the server.
    password_checks: Arc<tokio::sync::Semaphore>,
}

fn denied() -> Status {
    Status::from(ServeError::Unauthenticated)
}

impl AuthGate {
    pub fn new(
        inner: LakeFlightSql,
        authenticator: Option<Arc<Authenticator>>,
        log: RequestLogSink,
    ) -> AuthGate {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        AuthGate {
            inner,
            authenticator,
            log,
            password_checks: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Who is calling: the bearer token's principal, or the local admin
    /// when there is no authenticator.
    fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(Principal::local_admin());
        };
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(denied)?;
        match parse_authorization(header).map_err(|_| denied())? {
            Credentials::Bearer(token) => authenticator.check_bearer(&token).map_err(|_| denied()),
            // Passwords only at the handshake: they are slow to check.
            Credentials::Basic { .. } => Err(denied()),
        }
    }

    /// Authenticates a call and opens its log; the principal and the log
    /// travel to the command in the request's extensions.
    fn admit<T>(&self, request: &mut Request<T>, rpc: &'static str) -> Result<RequestLog, Status> {
        let log = RequestLog::start(&self.log, rpc);
        let principal = match self.principal(request.metadata()) {
            Ok(principal) => principal,
            Err(status) => {
                log.finish::<()>(&Err(status.clone()));
                return Err(status);
            }
        };
        log.set_principal(&principal.name);
        request.extensions_mut().insert(principal);
        request.extensions_mut().insert(log.clone());
        Ok(log)
    }

    /// Checks handshake credentials; returns the principal and its token.
    async fn handshake_credentials(
        &self,
        authenticator: &Arc<Authenticator>,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<(Principal, String), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().map(str::to_string).map_err(|_| denied()))
            .transpose()?;
        let credentials = match header {
            Some(header) => parse_authorization(&header).map_err(|_| denied())?,
            None => {
                // Older clients send a BasicAuth message instead of a header.
                let mut requests = request.into_inner();
                let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, requests.message())
                    .await
                    .map_err(|_| denied())?
                    .map_err(|_| denied())?;
                let basic = first
                    .and_then(|r| BasicAuth::decode(r.payload).ok())
                    .filter(|b| !b.username.is_empty())
                    .ok_or_else(denied)?;
                Credentials::Basic {
                    user: basic.username,
                    password: basic.password,
                }
            }
        };
        match credentials {
            Credentials::Basic { user, password } => {
                if password.len() > MAX_PASSWORD_BYTES {
                    return Err(denied());
                }
                let _permit = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    self.password_checks.clone().acquire_owned(),
                )
                .await
                .map_err(|_| Status::unavailable("too many logins at once; try again"))?
                .map_err(|_| denied())?;
                // argon2 takes tens of milliseconds: keep it off the async workers.
                let checker = authenticator.clone();
                let principal = tokio::task::spawn_blocking(move || {
                    checker.authenticate_basic(&user, &password)
                })
                .await
                .map_err(|_| denied())?
                .map_err(|_| denied())?;
                let token = authenticator.issue_bearer(&principal);
                Ok((principal, token))
            }
            Credentials::Bearer(token) => {
                let principal = authenticator.check_bearer(&token).map_err(|_| denied())?;
                Ok((principal, token))
            }
        }
    }
}

#[tonic::async_trait]
impl FlightService for AuthGate {
    type HandshakeStream = BoxedStream<HandshakeResponse>;
    type ListFlightsStream = <LakeFlightSql as FlightService>::ListFlightsStream;
    type DoGetStream = <LakeFlightSql as FlightService>::DoGetStream;
    type DoPutStream = <LakeFlightSql as FlightService>::DoPutStream;
    type DoActionStream = <LakeFlightSql as FlightService>::DoActionStream;
    type ListActionsStream = <LakeFlightSql as FlightService>::ListActionsStream;
    type DoExchangeStream = <LakeFlightSql as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let log = RequestLog::start(&self.log, "Handshake");
        let result = match &self.authenticator {
            None => Ok((Principal::local_admin(), String::new())),
            Some(authenticator) => self.handshake_credentials(authenticator, request).await,
        };
        let (principal, token) = match result {
            Ok(ok) => ok,
            Err(status) => {
                log.finish::<()>(&Err(status.clone()));
                return Err(status);
            }
        };
        log.set_principal(&principal.name);
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<Self::HandshakeStream> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if !token.is_empty() {
            let header = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("the issued token is not a valid header"))?;
            response.metadata_mut().insert("authorization", header);
        }
        let result = Ok(response);
        log.finish(&result);
        result
    }

    async fn list_flights(
        &self,
        mut request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let log = self.admit(&mut request, "ListFlights")?;
        let result = self.inner.list_flights(request).await;
        log.finish(&result);
        result
    }

    async fn get_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let log = self.admit(&mut request, "GetFlightInfo")?;
        let result = match LakeCommand::parse(&request.get_ref().cmd) {
            Some(command) => {
                log.set_command(command.as_ref().map_or("lake command", |c| c.name()));
                match (command, principal(&request)) {
                    (Ok(command), Ok(principal)) => self
                        .inner
                        .lake_flight_info(&principal, command, request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(Status::from),
                    (Err(e), _) => Err(Status::from(e)),
                    (_, Err(status)) => Err(status),
                }
            }
            None => self.inner.get_flight_info(request).await,
        };
        log.finish(&result);
        result
    }

    async fn poll_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let log = self.admit(&mut request, "PollFlightInfo")?;
        let result = self.inner.poll_flight_info(request).await;
        log.finish(&result);
        result
    }

    async fn get_schema(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let log = self.admit(&mut request, "GetSchema")?;
        let result = self.inner.get_schema(request).await;
        log.finish(&result);
        result
    }

    async fn do_get(
        &self,
        mut request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let log = self.admit(&mut request, "DoGet")?;
        let principal = principal(&request)?;
        let lake = self
            .inner
            .lake_do_get(&principal, &request.get_ref().ticket, Some(log.clone()))
            .await;
        let result = match lake {
            Some(stream) => stream.map(Response::new).map_err(Status::from),
            None => self.inner.do_get(request).await,
        };
        match result {
            // The line is written when the stream ends or is dropped.
            Ok(response) => Ok(response.map(|stream| logged(stream, log))),
            Err(status) => {
                log.finish::<()>(&Err(status.clone()));
                Err(status)
            }
        }
    }

    async fn do_put(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let log = self.admit(&mut request, "DoPut")?;
        let result = self.inner.do_put(request).await;
        log.finish(&result);
        result
    }

    async fn do_exchange(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let log = self.admit(&mut request, "DoExchange")?;
        let principal = principal(&request)?;
        match self
            .inner
            .lake_do_exchange(&principal, request.into_inner(), Some(log.clone()))
            .await
        {
            // The line is written when the stream ends or is dropped.
            Ok(stream) => Ok(Response::new(logged(stream, log))),
            Err(e) => {
                let status = Status::from(e);
                log.finish::<()>(&Err(status.clone()));
                Err(status)
            }
        }
    }

    async fn do_action(
        &self,
        mut request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let log = self.admit(&mut request, "DoAction")?;
        let result = self.inner.do_action(request).await;
        log.finish(&result);
        result
    }

    async fn list_actions(
        &self,
        mut request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let log = self.admit(&mut request, "ListActions")?;
        let result = self.inner.list_actions(request).await;
        log.finish(&result);
        result
    }
}
