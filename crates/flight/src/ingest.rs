//! Bulk ingest (`CommandStatementIngest` via DoPut): the client's batches
//! stream into one Delta commit that creates, appends to or replaces a
//! table in the `raw` zone. Only roles that may ingest get here; the rows
//! are never collected (they flow from the gRPC stream through a one-shot
//! DataFusion partition into deltalake's writer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, TryStreamExt};
use lake_auth::Principal;
use lake_engine::LakeSession;
use lake_storage::{SchemaChange, TableWrite, WriteMode, check_name, stored_type};
use serde_json::json;

use crate::error::ServeError;
use crate::log::RequestLog;

/// The zone bulk ingest writes to.
pub const INGEST_ZONE: &str = "raw";

/// How the command treats an existing or missing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Create,
    Append,
    Replace,
}

/// Runs one bulk ingest; returns the number of rows written.
pub(crate) async fn ingest(
    session: &LakeSession,
    principal: &Principal,
    command: CommandStatementIngest,
    upload: PeekableFlightDataStream,
    log: Option<&RequestLog>,
) -> Result<i64, ServeError> {
    if !principal.role.can_ingest() {
        return Err(ServeError::ActionDenied {
            principal: principal.name.clone(),
            role: principal.role.to_string(),
            action: "bulk-ingest (only writers and admins may)".into(),
        });
    }
    if command.temporary {
        return Err(ServeError::Unsupported("temporary tables".into()));
    }
    if command.transaction_id.is_some() {
        return Err(ServeError::Unsupported("transactions".into()));
    }
    if let Some(catalog) = command.catalog.as_deref().filter(|c| !c.is_empty())
        && catalog != lake_storage::CATALOG
    {
        return Err(ServeError::BadRequest(format!(
            "unknown catalog '{catalog}'; the lake's catalog is '{}'",
            lake_storage::CATALOG
        )));
    }
    if let Some(zone) = command.schema.as_deref().filter(|z| !z.is_empty())
        && zone != INGEST_ZONE
    {
        return Err(ServeError::Refused {
            statement: format!("bulk ingest into {zone}.{}", command.table),
            reason: format!(
                "bulk ingest writes to the {INGEST_ZONE} zone only; the other zones are built \
                 from it by `lake build`"
            ),
        });
    }
    let name = command.table.as_str();
    check_name(name).map_err(|e| ServeError::BadRequest(e.to_string()))?;
    let label = format!("{INGEST_ZONE}.{name}");
    let root = session.root();
    if root.views().get(INGEST_ZONE, name).await?.is_some() {
        return Err(ServeError::AlreadyExists(format!(
            "{label} is a view; bulk ingest writes Delta tables"
        )));
    }
    let existing = root.load_table(INGEST_ZONE, name).await?;
    let options = command.table_definition_options.unwrap_or_default();
    let if_missing = TableNotExistOption::try_from(options.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified);
    let plan = match (&existing, if_exists, if_missing) {
        (Some(_), TableExistsOption::Append, _) => Plan::Append,
        (Some(_), TableExistsOption::Replace, _) => Plan::Replace,
        (Some(_), TableExistsOption::Fail | TableExistsOption::Unspecified, _) => {
            return Err(ServeError::AlreadyExists(format!(
                "{label} exists; ingest with if_exists = append or replace"
            )));
        }
        (None, _, TableNotExistOption::Fail) => {
            return Err(ServeError::TableNotFound {
                table: label,
                hint: "ingest with if_not_exist = create to create it".into(),
            });
        }
        (None, _, TableNotExistOption::Create | TableNotExistOption::Unspecified) => Plan::Create,
    };

    let rows = Arc::new(AtomicU64::new(0));
    let (schema, batches) = open_upload(upload, rows.clone()).await?;
    let provider = StreamingTable::try_new(
        schema.clone(),
        vec![Arc::new(Upload {
            schema: schema.clone(),
            stream: Mutex::new(Some(batches)),
        })],
    )?;
    let mut input =
        LogicalPlanBuilder::scan("upload", provider_as_source(Arc::new(provider)), None)?;
    if plan == Plan::Append
        && let Some(table) = &existing
    {
        // Rows go in by column name, cast to the table's types.
        let table_schema = table.table_provider().await?.schema();
        input = input.project(matching_columns(&label, &schema, &table_schema)?)?;
    }
    let (mode, change) = match plan {
        Plan::Append => (WriteMode::Append, SchemaChange::Keep),
        Plan::Create | Plan::Replace => (WriteMode::Overwrite, SchemaChange::Replace),
    };
    TableWrite::new(
        root.clone(),
        INGEST_ZONE,
        name,
        input.build()?,
        session.state(),
    )
    .with_mode(mode)
    .with_schema_change(change)
    .with_metadata(
        "lake.statement",
        json!(format!("bulk ingest by {}", principal.name)),
    )
    .await?;
    session.catalog().note_written(INGEST_ZONE, name);
    let rows = rows.load(Ordering::SeqCst);
    if let Some(log) = log {
        log.add_rows(rows);
    }
    Ok(i64::try_from(rows).unwrap_or(i64::MAX))
}

/// The upload's schema, and its batches as a DataFusion stream (counting
/// rows as they pass).
async fn open_upload(
    upload: PeekableFlightDataStream,
    rows: Arc<AtomicU64>,
) -> Result<(SchemaRef, SendableRecordBatchStream), ServeError> {
    let mut decoded =
        FlightRecordBatchStream::new_from_flight_data(upload.map_err(FlightError::from));
    // The schema arrives in the first message; reading the first batch
    // makes sure it has been seen (an upload of no rows has only a schema).
    let first = decoded
        .try_next()
        .await
        .map_err(|e| ServeError::BadRequest(format!("cannot read the uploaded data: {e}")))?;
    let schema = decoded
        .schema()
        .cloned()
        .ok_or_else(|| ServeError::BadRequest("the upload has no schema".into()))?;
    let batches = futures::stream::iter(first.map(Ok))
        .chain(decoded)
        .map(move |batch| {
            let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)))?;
            rows.fetch_add(batch.num_rows() as u64, Ordering::SeqCst);
            Ok(batch)
        });
    let stream: SendableRecordBatchStream =
        Box::pin(RecordBatchStreamAdapter::new(schema.clone(), batches));
    Ok((schema, stream))
}

/// The upload's columns in the table's order and types; the names must be
/// the table's (in any order and case).
fn matching_columns(
    label: &str,
    upload: &SchemaRef,
    table: &SchemaRef,
) -> Result<Vec<Expr>, ServeError> {
    let describe = |schema: &SchemaRef| {
        schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mismatch = || {
        ServeError::BadRequest(format!(
            "the uploaded columns ({}) do not match the columns of {label} ({})",
            describe(upload),
            describe(table)
        ))
    };
    if upload.fields().len() != table.fields().len() {
        return Err(mismatch());
    }
    table
        .fields()
        .iter()
        .map(|field| {
            let source = upload
                .fields()
                .iter()
                .find(|u| u.name().eq_ignore_ascii_case(field.name()))
                .ok_or_else(mismatch)?;
            let column = Expr::Column(Column::new_unqualified(source.name()));
            Ok(if stored_type(source.data_type()) == *field.data_type() {
                column.alias(field.name())
            } else {
                cast(column, field.data_type().clone()).alias(field.name())
            })
        })
        .collect()
}

/// The upload as a partition DataFusion can read once.
struct Upload {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PartitionStream for Upload {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            Some(stream) => stream,
            // The upload is a stream: it can be read once.
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Execution(
                        "the uploaded rows were already read".into(),
                    ))
                }),
            )),
        }
    }
}
