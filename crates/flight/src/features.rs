//! lake's own commands ([`crate::commands`]) over Flight: training sets
//! (GetFlightInfo then DoGet, or DoExchange with an uploaded spine),
//! online features and the list of feature services. Training sets run in
//! the caller's request catalog, so zones, PII masking and pinned Delta
//! versions apply to them as to any query; a ticket records the version of
//! every table it read, so it returns the same rows later.

use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use lake_auth::Principal;
use lake_compiler::{FeatureRef, Manifest};
use lake_features::{FeatureError, FeatureSelection, OnlineStore, Spine, TrainingSet};
use tonic::Streaming;

use crate::commands::{
    LakeCommand, OnlineFeaturesRequest, TrainingSetRequest, TrainingSetTicket, spine_source,
};
use crate::error::ServeError;
use crate::log::RequestLog;
use crate::pinned::{Pins, request_context};
use crate::query::served_schema;
use crate::service::LakeFlightSql;
use crate::stream::{FlightStream, batch_stream, flight_stream};

/// Spine rows per endpoint of a training set, by default.
pub const DEFAULT_SPINE_ROWS_PER_ENDPOINT: usize = 1 << 20;

/// The project's feature views and services, and their online tables.
pub(crate) struct Features {
    pub manifest: Arc<Manifest>,
    pub online: OnlineStore,
    pub spine_rows_per_endpoint: usize,
}

impl From<FeatureError> for ServeError {
    fn from(e: FeatureError) -> Self {
        match e {
            FeatureError::DataFusion(e) => ServeError::from(e),
            FeatureError::Storage(e) => ServeError::from(e),
            user => ServeError::BadRequest(user.to_string()),
        }
    }
}

fn selection(
    feature_service: &Option<String>,
    features: &[String],
) -> Result<FeatureSelection, ServeError> {
    match (feature_service, features.is_empty()) {
        (Some(service), true) => Ok(FeatureSelection::Service(service.clone())),
        (None, false) => Ok(FeatureSelection::Features(features.to_vec())),
        (Some(_), false) => Err(ServeError::BadRequest(
            "give either feature_service or features, not both".into(),
        )),
        (None, true) => Err(ServeError::BadRequest(
            "the request names no feature\n  hint: set feature_service, or features as [\"view:feature\", ...]"
                .into(),
        )),
    }
}

/// `batch` with its columns cast to `served` (the same columns, view types
/// replaced as `served_type` says).
fn served_batch(batch: RecordBatch, served: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(served.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(served), columns)?)
}

/// A stream whose string and binary view columns are cast to what the
/// server serves.
fn served(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let from = stream.schema();
    let to: SchemaRef = Arc::new(served_schema(&from));
    if from == to {
        return stream;
    }
    Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&to),
        stream.map(move |b| b.and_then(|b| served_batch(b, &to))),
    ))
}

impl LakeFlightSql {
    fn features(&self) -> Result<&Features, ServeError> {
        self.state.features.as_deref().ok_or_else(|| {
            ServeError::Unsupported(
                "feature commands: this server was started without a project".into(),
            )
        })
    }

    fn may_fetch_features(principal: &Principal, action: &str) -> Result<(), ServeError> {
        if principal.role.can_fetch_training_sets() {
            Ok(())
        } else {
            Err(ServeError::ActionDenied {
                principal: principal.name.clone(),
                role: principal.role.to_string(),
                action: action.to_string(),
            })
        }
    }

    fn training_set(
        &self,
        request: &TrainingSetRequest,
        spine: Spine,
    ) -> Result<TrainingSet, ServeError> {
        let features = self.features()?;
        let selection = selection(&request.feature_service, &request.features)?;
        let mut set = TrainingSet::new(
            &features.manifest,
            &selection,
            spine,
            request.full_feature_names.unwrap_or(true),
        )?;
        if let Some(column) = &request.event_timestamp_column {
            set = set.with_event_timestamp(column.clone());
        }
        Ok(set)
    }

    fn spine_of(request: &TrainingSetRequest) -> Result<Spine, ServeError> {
        match request.spine.as_ref().and_then(|s| s.kind.as_ref()) {
            Some(spine_source::Kind::Table(t)) => Ok(Spine::Table(t.clone())),
            Some(spine_source::Kind::Sql(s)) => Ok(Spine::Sql(s.clone())),
            None => Err(ServeError::BadRequest(
                "the training set has no spine\n  hint: set spine to {\"table\": \"zone.name\"} or {\"sql\": \"select ...\"}, or upload it with DoExchange"
                    .into(),
            )),
        }
    }

    /// GetFlightInfo of a lake command.
    pub(crate) async fn lake_flight_info(
        &self,
        principal: &Principal,
        command: LakeCommand,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, ServeError> {
        let request = match command {
            LakeCommand::TrainingSet(request) => request,
            other => {
                // One-shot answers: the ticket is the command itself.
                let ticket = descriptor.cmd.to_vec();
                let batch = self.answer(principal, other).await?;
                return info(&batch.schema(), vec![ticket], batch.num_rows(), descriptor);
            }
        };
        Self::may_fetch_features(principal, "fetch training sets")?;
        let set = self.training_set(&request, Self::spine_of(&request)?)?;
        let (ctx, catalog) = request_context(
            &self.state.session,
            principal,
            &self.state.pii,
            Pins::default(),
        );
        let schema = set.schema(&ctx).await?;
        let per = self.features()?.spine_rows_per_endpoint.max(1);
        let rows = set.spine_rows(&ctx).await?;
        let read = catalog.read_set();
        let mut tickets = Vec::new();
        let mut offset = 0;
        loop {
            let ticket = TrainingSetTicket {
                request: Some(request.clone()),
                versions: read.versions.clone(),
                views: read.views.clone(),
                spine_offset: offset as u64,
                spine_rows: if rows > per { per as u64 } else { 0 },
            };
            tickets.push(ticket.encode());
            offset += per;
            if offset >= rows {
                break;
            }
        }
        info(&served_schema(&schema), tickets, rows, descriptor)
    }

    /// The answer of a one-shot command (online features, the list of
    /// feature services).
    async fn answer(
        &self,
        principal: &Principal,
        command: LakeCommand,
    ) -> Result<RecordBatch, ServeError> {
        match command {
            LakeCommand::OnlineFeatures { request, entities } => {
                Self::may_fetch_features(principal, "fetch online features")?;
                self.online(principal, &request, &entities).await
            }
            LakeCommand::FeatureServices => self.feature_services(),
            LakeCommand::TrainingSet(_) => Err(ServeError::BadRequest(
                "a training set is fetched with GetFlightInfo then DoGet on its tickets".into(),
            )),
        }
    }

    async fn online(
        &self,
        principal: &Principal,
        request: &OnlineFeaturesRequest,
        entities: &RecordBatch,
    ) -> Result<RecordBatch, ServeError> {
        let features = self.features()?;
        let full = request.full_feature_names.unwrap_or(true);
        let views = selection(&request.feature_service, &request.features)?
            .by_view(&features.manifest, full)?;
        if let Some(v) = views.iter().find(|v| !v.view.online) {
            return Err(ServeError::BadRequest(format!(
                "feature view '{}' keeps no online table (online: false)",
                v.view.name
            )));
        }
        // The online tables are read through the caller's catalog (zone
        // checks, PII masking).
        let (ctx, _) = request_context(
            &self.state.session,
            principal,
            &self.state.pii,
            Pins::default(),
        );
        let batch = features.online.lookup(&ctx, &views, entities).await?;
        let schema = Arc::new(served_schema(&batch.schema()));
        served_batch(batch, &schema).map_err(|e| ServeError::Internal(e.to_string()))
    }

    fn feature_services(&self) -> Result<RecordBatch, ServeError> {
        let manifest = &self.features()?.manifest;
        let services: Vec<_> = manifest.feature_services.values().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("features", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]));
        let features = services.iter().map(|s| {
            s.features
                .iter()
                .map(FeatureRef::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        });
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    services.iter().map(|s| &s.name),
                )),
                Arc::new(StringArray::from_iter_values(features)),
                Arc::new(StringArray::from_iter_values(
                    services.iter().map(|s| &s.description),
                )),
            ],
        )
        .map_err(|e| ServeError::Internal(e.to_string()))
    }

    /// DoGet of a lake ticket or command; `None` when the bytes are
    /// neither (a Flight SQL ticket).
    pub(crate) async fn lake_do_get(
        &self,
        principal: &Principal,
        ticket: &[u8],
        log: Option<RequestLog>,
    ) -> Option<Result<FlightStream, ServeError>> {
        if let Some(ticket) = TrainingSetTicket::decode(ticket) {
            if let Some(log) = &log {
                log.set_command("TrainingSet");
            }
            return Some(match ticket {
                Ok(ticket) => self.run_training_set(principal, ticket, log).await,
                Err(e) => Err(e),
            });
        }
        let command = LakeCommand::parse(ticket)?;
        if let Some(log) = &log {
            log.set_command(command.as_ref().map_or("lake command", |c| c.name()));
        }
        Some(match command {
            Ok(LakeCommand::TrainingSet(request)) => {
                // A training set asked for directly: the latest versions.
                let ticket = TrainingSetTicket {
                    request: Some(request),
                    ..Default::default()
                };
                self.run_training_set(principal, ticket, log).await
            }
            Ok(other) => match self.answer(principal, other).await {
                Ok(batch) => Ok(batch_stream(batch, log)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn run_training_set(
        &self,
        principal: &Principal,
        ticket: TrainingSetTicket,
        log: Option<RequestLog>,
    ) -> Result<FlightStream, ServeError> {
        Self::may_fetch_features(principal, "fetch training sets")?;
        let request = ticket.request.unwrap_or_default();
        let slot = self.state.limit.admit()?;
        let rows = (ticket.spine_rows > 0).then_some(ticket.spine_rows as usize);
        let set = self
            .training_set(&request, Self::spine_of(&request)?)?
            .with_spine_rows(ticket.spine_offset as usize, rows);
        let pins = Pins {
            versions: ticket.versions,
            views: ticket.views,
        };
        let (ctx, _) = request_context(&self.state.session, principal, &self.state.pii, pins);
        let stream = set.execute(&ctx).await?;
        Ok(flight_stream(served(stream), Some(slot), log))
    }

    /// DoExchange: the client sends a descriptor whose command is a
    /// training set without a spine, then the spine's rows; the server
    /// answers with the training set.
    pub(crate) async fn lake_do_exchange(
        &self,
        principal: &Principal,
        input: Streaming<FlightData>,
        log: Option<RequestLog>,
    ) -> Result<FlightStream, ServeError> {
        Self::may_fetch_features(principal, "fetch training sets")?;
        let mut input = input.map_err(FlightError::from).peekable();
        let cmd = match std::pin::Pin::new(&mut input).peek().await {
            None => return Err(ServeError::BadRequest("DoExchange: no message".into())),
            Some(Err(e)) => return Err(ServeError::BadRequest(format!("DoExchange: {e}"))),
            Some(Ok(first)) => first
                .flight_descriptor
                .as_ref()
                .map(|d| d.cmd.to_vec())
                .unwrap_or_default(),
        };
        let request = match LakeCommand::parse(&cmd) {
            Some(Ok(LakeCommand::TrainingSet(request))) => request,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(ServeError::BadRequest(
                    "DoExchange takes a training set: the first message's descriptor must carry {\"training_set\": {...}} without a spine, followed by the spine's rows"
                        .into(),
                ));
            }
        };
        if request.spine.is_some() {
            return Err(ServeError::BadRequest(
                "DoExchange uploads the spine: leave `spine` out of the request (or use GetFlightInfo for a spine table or query)"
                    .into(),
            ));
        }
        if let Some(log) = &log {
            log.set_command("TrainingSet(upload)");
        }
        let slot = self.state.limit.admit()?;
        // pyarrow sends the descriptor alone first (no IPC header): skip it.
        let messages = input.try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
        let mut decoder = FlightRecordBatchStream::new_from_flight_data(messages);
        let mut batches = Vec::new();
        while let Some(batch) = decoder.next().await {
            batches.push(
                batch.map_err(|e| ServeError::BadRequest(format!("the uploaded spine: {e}")))?,
            );
        }
        let schema = match (batches.first(), decoder.schema()) {
            (Some(b), _) => b.schema(),
            (None, Some(s)) => Arc::clone(s),
            (None, None) => {
                return Err(ServeError::BadRequest(
                    "DoExchange: the spine's schema never came".into(),
                ));
            }
        };
        let set = self.training_set(&request, Spine::Batches { schema, batches })?;
        let (ctx, _) = request_context(
            &self.state.session,
            principal,
            &self.state.pii,
            Pins::default(),
        );
        let stream = set.execute(&ctx).await?;
        Ok(flight_stream(served(stream), Some(slot), log))
    }
}

/// A FlightInfo with one endpoint per ticket, in order.
fn info(
    schema: &Schema,
    tickets: Vec<Vec<u8>>,
    rows: usize,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, ServeError> {
    let mut info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| ServeError::Internal(format!("encoding the result schema: {e}")))?
        .with_descriptor(descriptor)
        .with_total_records(rows as i64)
        .with_ordered(true);
    for ticket in tickets {
        info = info.with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)));
    }
    Ok(info)
}
