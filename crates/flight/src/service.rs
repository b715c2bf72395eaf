//! The Flight SQL service: statement queries (GetFlightInfo then DoGet
//! with a stateless ticket), prepared statements (create, bind by DoPut,
//! execute, close; the handle itself carries the SQL and the bound values),
//! the metadata commands, and bulk ingest. The caller is already
//! authenticated ([`crate::auth`]): its [`Principal`] and its log travel in
//! the request's extensions.

use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::prelude::DataFrame;
use futures::TryStreamExt;
use lake_auth::Principal;
use lake_engine::LakeSession;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::ServeError;
use crate::ingest::ingest;
use crate::log::RequestLog;
use crate::metadata;
use crate::pinned::{PiiColumns, Pins};
use crate::query::{Params, parameter_schema, plan};
use crate::stream::{FlightStream, QueryLimit, batch_stream, flight_stream};
use crate::ticket::{BoundParams, PreparedHandle, QueryTicket};

/// What every request shares.
pub(crate) struct ServerState {
    pub session: LakeSession,
    pub pii: Arc<PiiColumns>,
    pub limit: QueryLimit,
    /// SqlInfo for principals that may ingest, and for those that may not
    /// (FlightSqlServerReadOnly differs).
    pub sql_info_writable: SqlInfoData,
    pub sql_info_read_only: SqlInfoData,
    pub xdbc: XdbcTypeInfoData,
    /// The project's feature views, when the server has a project.
    pub features: Option<Arc<crate::features::Features>>,
}

/// The Flight SQL service of a lake.
#[derive(Clone)]
pub(crate) struct LakeFlightSql {
    pub(crate) state: Arc<ServerState>,
}

type DoGetResponse = Result<Response<<LakeFlightSql as FlightService>::DoGetStream>, Status>;

/// The caller, put there by the auth gate.
pub(crate) fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::from(ServeError::Unauthenticated))
}

/// The request's log, put there by the auth gate, named after the command.
fn log_of<T>(request: &Request<T>, command: &str) -> Option<RequestLog> {
    let log = request.extensions().get::<RequestLog>().cloned();
    if let Some(log) = &log {
        log.set_command(command);
    }
    log
}

fn internal(what: &str) -> impl Fn(datafusion::arrow::error::ArrowError) -> Status + '_ {
    move |e| Status::from(ServeError::Internal(format!("{what}: {e}")))
}

/// A FlightInfo with one endpoint whose ticket is `ticket`.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal("encoding the result schema"))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor)
        .with_ordered(true);
    Ok(Response::new(info))
}

/// A FlightInfo for a metadata command: the ticket is the command itself.
fn metadata_info<M: ProstMessageExt>(
    command: &M,
    schema: &Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    flight_info(
        schema,
        command.as_any().encode_to_vec(),
        request.into_inner(),
    )
}

fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(internal("encoding a schema"))?;
    Ok(bytes)
}

impl LakeFlightSql {
    pub fn new(state: ServerState) -> LakeFlightSql {
        LakeFlightSql {
            state: Arc::new(state),
        }
    }

    /// Plans `sql` for `principal` and returns its result schema and the
    /// ticket that pins what it reads.
    async fn ticket_for(
        &self,
        principal: &Principal,
        sql: &str,
        params: &BoundParams,
    ) -> Result<(Schema, QueryTicket), ServeError> {
        let planned = plan(
            &self.state.session,
            principal,
            &self.state.pii,
            sql,
            Pins::default(),
            Params::Bind(params),
        )
        .await?;
        let read = planned.catalog.read_set();
        let ticket = QueryTicket {
            sql: planned.sql,
            versions: read.versions,
            views: read.views,
            params: params.to_ipc()?,
        };
        Ok((planned.plan.schema().as_arrow().clone(), ticket))
    }

    /// Runs a query and streams its result; the query holds one of the
    /// server's query slots until its stream ends or is dropped.
    async fn run(
        &self,
        principal: &Principal,
        sql: &str,
        pins: Pins,
        params: &BoundParams,
        log: Option<RequestLog>,
    ) -> Result<FlightStream, ServeError> {
        let slot = self.state.limit.admit()?;
        let planned = plan(
            &self.state.session,
            principal,
            &self.state.pii,
            sql,
            pins,
            Params::Bind(params),
        )
        .await?;
        let frame = DataFrame::new(planned.ctx.state(), planned.plan);
        let batches = frame.execute_stream().await?;
        Ok(flight_stream(batches, Some(slot), log))
    }

    fn sql_info_for(&self, principal: &Principal) -> &SqlInfoData {
        if principal.role.can_ingest() {
            &self.state.sql_info_writable
        } else {
            &self.state.sql_info_read_only
        }
    }

    fn metadata_answer(
        &self,
        batch: Result<RecordBatch, ServeError>,
        log: Option<RequestLog>,
    ) -> DoGetResponse {
        Ok(Response::new(batch_stream(batch?, log)))
    }
}

#[tonic::async_trait]
impl FlightSqlService for LakeFlightSql {
    type FlightService = LakeFlightSql;

    // -- statements ---------------------------------------------------------

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        log_of(&request, "statement");
        if query.transaction_id.is_some() {
            return Err(ServeError::Unsupported("transactions".into()).into());
        }
        let (schema, ticket) = self
            .ticket_for(&principal, &query.query, &BoundParams::default())
            .await?;
        let handle = TicketStatementQuery {
            statement_handle: ticket.encode().into(),
        };
        flight_info(
            &schema,
            handle.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "statement");
        let ticket = QueryTicket::decode(&ticket.statement_handle)?;
        let params = BoundParams::from_ipc(&ticket.params)?;
        let pins = Pins {
            versions: ticket.versions,
            views: ticket.views,
        };
        let stream = self
            .run(&principal, &ticket.sql, pins, &params, log)
            .await?;
        Ok(Response::new(stream))
    }

    // -- prepared statements ------------------------------------------------

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let principal = principal(&request)?;
        log_of(&request, "CreatePreparedStatement");
        if query.transaction_id.is_some() {
            return Err(ServeError::Unsupported("transactions".into()).into());
        }
        let planned = plan(
            &self.state.session,
            &principal,
            &self.state.pii,
            &query.query,
            Pins::default(),
            Params::Unbound,
        )
        .await?;
        let parameters = parameter_schema(&planned.plan)?;
        let handle = PreparedHandle {
            sql: query.query,
            params: Vec::new(),
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().into(),
            dataset_schema: schema_bytes(planned.plan.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    /// Binds parameters: the answer is a new handle carrying them (the
    /// Flight SQL way for stateless servers).
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        principal(&request)?;
        log_of(&request, "bind");
        let handle = PreparedHandle::decode(&query.prepared_statement_handle)?;
        let mut batches = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let mut rows = Vec::new();
        let mut count = 0;
        while let Some(batch) = batches.try_next().await.map_err(|e| {
            Status::from(ServeError::BadRequest(format!(
                "cannot read the parameters: {e}"
            )))
        })? {
            count += batch.num_rows();
            if count > 1 {
                // Stop reading: one row is all a query binds.
                break;
            }
            rows.push(batch);
        }
        if count > 1 {
            return Err(ServeError::BadRequest(
                "bind exactly one row of parameters to a query; run it once per row instead".into(),
            )
            .into());
        }
        let params = BoundParams::from_batches(&rows)?;
        let bound = PreparedHandle {
            sql: handle.sql,
            params: params.to_ipc()?,
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(bound.encode().into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        log_of(&request, "prepared statement");
        let handle = PreparedHandle::decode(&query.prepared_statement_handle)?;
        let params = BoundParams::from_ipc(&handle.params)?;
        let (schema, ticket) = self.ticket_for(&principal, &handle.sql, &params).await?;
        let handle = TicketStatementQuery {
            statement_handle: ticket.encode().into(),
        };
        flight_info(
            &schema,
            handle.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    /// A client may also DoGet the prepared statement itself: it runs at
    /// the tables' latest versions.
    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "prepared statement");
        let handle = PreparedHandle::decode(&query.prepared_statement_handle)?;
        let params = BoundParams::from_ipc(&handle.params)?;
        let stream = self
            .run(&principal, &handle.sql, Pins::default(), &params, log)
            .await?;
        Ok(Response::new(stream))
    }

    /// Handles hold no server state, so there is nothing to free; the
    /// handle is still checked to be one of ours.
    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        principal(&request)?;
        log_of(&request, "ClosePreparedStatement");
        PreparedHandle::decode(&query.prepared_statement_handle)?;
        Ok(())
    }

    /// Flight's session actions: ADBC sends `CloseSession` when a
    /// connection closes. The server keeps no sessions, so it is closed.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        principal(&request)?;
        let action = request.get_ref().r#type.clone();
        log_of(&request, &action);
        match action.as_str() {
            "CloseSession" => {
                // CloseSessionResult { status: CLOSED } (field 1, varint 1).
                let closed = arrow_flight::Result {
                    body: vec![0x08, 0x01].into(),
                };
                Ok(Response::new(Box::pin(futures::stream::iter([Ok(closed)]))))
            }
            other => Err(ServeError::Unsupported(format!("the action {other:?}")).into()),
        }
    }

    // -- writes -------------------------------------------------------------

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = principal(&request)?;
        let log = log_of(&request, "ingest");
        let rows = ingest(
            &self.state.session,
            &principal,
            command,
            request.into_inner(),
            log.as_ref(),
        )
        .await?;
        Ok(rows)
    }

    /// A DoPut whose first message names no command.
    async fn do_put_error_callback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        Err(ServeError::BadRequest(format!(
            "DoPut: {error} The first message must carry a flight descriptor with a Flight SQL \
             command (bulk ingest, or a prepared statement to bind)."
        ))
        .into())
    }

    /// Statements that change data are refused: writers use bulk ingest.
    async fn do_put_statement_update(
        &self,
        _command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        principal(&request)?;
        log_of(&request, "update");
        Err(read_only_update().into())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        principal(&request)?;
        log_of(&request, "prepared update");
        Err(read_only_update().into())
    }

    // -- metadata -----------------------------------------------------------

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "catalogs");
        let schema = query.into_builder().schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        principal(&request)?;
        let log = log_of(&request, "catalogs");
        self.metadata_answer(metadata::catalogs(query), log)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "db schemas");
        let schema = query.clone().into_builder().schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "db schemas");
        self.metadata_answer(metadata::db_schemas(query, &principal), log)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "tables");
        let schema = query.clone().into_builder().schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "tables");
        let batch = metadata::tables(&self.state.session, &principal, &self.state.pii, query).await;
        self.metadata_answer(batch, log)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "table types");
        let schema = query.into_builder().schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        principal(&request)?;
        let log = log_of(&request, "table types");
        self.metadata_answer(metadata::table_types(query), log)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        log_of(&request, "sql info");
        let schema = query
            .clone()
            .into_builder(self.sql_info_for(&principal))
            .schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "sql info");
        let batch = query
            .into_builder(self.sql_info_for(&principal))
            .build()
            .map_err(|e| ServeError::Internal(format!("building SqlInfo: {e}")));
        self.metadata_answer(batch, log)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "xdbc type info");
        let schema = query.into_builder(&self.state.xdbc).schema();
        metadata_info(&query, &schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        principal(&request)?;
        let log = log_of(&request, "xdbc type info");
        let batch = query
            .into_builder(&self.state.xdbc)
            .build()
            .map_err(|e| ServeError::Internal(format!("building XDBC type info: {e}")));
        self.metadata_answer(batch, log)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        principal(&request)?;
        log_of(&request, "primary keys");
        metadata_info(&query, &metadata::primary_keys_schema(), request)
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> DoGetResponse {
        let principal = principal(&request)?;
        let log = log_of(&request, "primary keys");
        self.metadata_answer(metadata::primary_keys(&query, &principal), log)
    }

    /// SqlInfo is fixed when the server is built (see `metadata::sql_info`);
    /// arrow-flight never calls this.
    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn read_only_update() -> ServeError {
    ServeError::Refused {
        statement: "an update statement".into(),
        reason: "the server is read-only; writers upload rows with bulk ingest \
                 (CommandStatementIngest)"
            .into(),
    }
}
