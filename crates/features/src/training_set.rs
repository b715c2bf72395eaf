//! Training sets from the project's feature views: which features (a
//! feature service or a list of `view:feature`), which spine (a table, a
//! query, or batches a client uploaded), and the point-in-time join over
//! them, planned and run in a session the caller gives (the lake's own, or
//! a server's per-request one that pins Delta versions and checks zones).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::{ExecutionPlan, execute_stream_partitioned};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::TryStreamExt;
use lake_compiler::{FeatureView, Manifest};
use lake_storage::quote_ident;

use crate::error::{FeatureError, Result};
use crate::pit::{PointInTimeJoin, ViewJoin, ViewJoinSpec, output_schema};
use crate::selection::FeatureSelection;

/// The spine's event time column when the request names none (Feast's).
pub const DEFAULT_EVENT_TIMESTAMP: &str = "event_timestamp";

/// Where the spine's rows come from.
#[derive(Debug, Clone)]
pub enum Spine {
    /// `zone.name` of a table or view of the lake.
    Table(String),
    /// A read-only query.
    Sql(String),
    /// Rows a client sent.
    Batches {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

/// One view of the training set, with the features taken from it.
#[derive(Debug, Clone)]
struct ViewPart {
    view: FeatureView,
    /// (source column, output column).
    features: Vec<(String, String)>,
}

/// A training set: planned with [`schema`](Self::schema), run with
/// [`execute`](Self::execute), in any session over the lake.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    parts: Vec<ViewPart>,
    spine: Spine,
    event_timestamp: String,
    /// Only these spine rows (offset, count; `None`: to the end).
    spine_range: (usize, Option<usize>),
}

impl TrainingSet {
    /// The training set of `selection` over `spine`, with output columns
    /// named `<view>__<feature>` when `full_feature_names`.
    pub fn new(
        manifest: &Manifest,
        selection: &FeatureSelection,
        spine: Spine,
        full_feature_names: bool,
    ) -> Result<TrainingSet> {
        let parts = selection
            .by_view(manifest, full_feature_names)?
            .into_iter()
            .map(|v| ViewPart {
                view: v.view.clone(),
                features: v.features,
            })
            .collect();
        Ok(TrainingSet {
            parts,
            spine,
            event_timestamp: DEFAULT_EVENT_TIMESTAMP.to_string(),
            spine_range: (0, None),
        })
    }

    /// The spine's event time column (`event_timestamp` by default).
    pub fn with_event_timestamp(mut self, column: impl Into<String>) -> Self {
        self.event_timestamp = column.into();
        self
    }

    /// Only the spine rows from `offset` on, `rows` of them (`None`: to the
    /// end), in spine order: one part of a training set served in several
    /// endpoints.
    pub fn with_spine_rows(mut self, offset: usize, rows: Option<usize>) -> Self {
        self.spine_range = (offset, rows);
        self
    }

    /// How many rows the spine has (a table's from its Delta log, without
    /// reading it).
    pub async fn spine_rows(&self, ctx: &SessionContext) -> Result<usize> {
        Ok(match (&self.spine, self.spine_frame(ctx).await?) {
            (Spine::Batches { batches, .. }, _) => batches.iter().map(RecordBatch::num_rows).sum(),
            (_, Some(frame)) => frame.count().await?,
            (_, None) => unreachable!("only uploaded spines have no plan"),
        })
    }

    /// The relations the training set reads (`zone.name`): the spine table
    /// and every view's source.
    pub fn relations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Spine::Table(t) = &self.spine {
            out.push(t.clone());
        }
        for part in &self.parts {
            if !out.contains(&part.view.source_relation) {
                out.push(part.view.source_relation.clone());
            }
        }
        out
    }

    /// The feature views it reads, by name.
    pub fn views(&self) -> Vec<&str> {
        self.parts.iter().map(|p| p.view.name.as_str()).collect()
    }

    async fn spine_frame(&self, ctx: &SessionContext) -> Result<Option<DataFrame>> {
        Ok(match &self.spine {
            Spine::Table(table) => Some(ctx.table(table.as_str()).await?),
            Spine::Sql(sql) => Some(ctx.sql_with_options(sql, lake_storage::read_only()).await?),
            Spine::Batches { .. } => None,
        })
    }

    /// The columns a view's join reads from its source, in one query.
    async fn source_frame(ctx: &SessionContext, part: &ViewPart) -> Result<DataFrame> {
        let view = &part.view;
        let mut columns: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
        columns.push(&view.timestamp_field);
        if let Some(c) = &view.created_timestamp_field {
            columns.push(c);
        }
        for (feature, _) in &part.features {
            if !columns.contains(&feature.as_str()) {
                columns.push(feature);
            }
        }
        let source = ctx.table(view.source_relation.as_str()).await?;
        let have: Vec<&str> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if let Some(missing) = columns.iter().find(|c| !have.contains(c)) {
            return Err(FeatureError::UnknownColumn {
                what: format!(
                    "feature view '{}' ({}:{})",
                    view.name, view.original_file_path, view.line
                ),
                column: missing.to_string(),
                table: view.source_relation.clone(),
                suggestions: lake_compiler::suggest(missing, have.iter().copied()),
                hint: "\n  hint: the view's columns must be columns of its source".into(),
            });
        }
        let select = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {select} FROM {}", view.source_relation);
        Ok(ctx
            .sql_with_options(&sql, lake_storage::read_only())
            .await?)
    }

    fn specs(&self) -> Vec<ViewJoinSpec<'_>> {
        self.parts
            .iter()
            .map(|p| ViewJoinSpec {
                name: &p.view.name,
                join_keys: &p.view.join_keys,
                timestamp_field: &p.view.timestamp_field,
                created_timestamp_field: p.view.created_timestamp_field.as_deref(),
                ttl: p.view.ttl_seconds.map(Duration::from_secs),
                features: &p.features,
            })
            .collect()
    }

    /// The output schema, from the plans alone (nothing is read).
    pub async fn schema(&self, ctx: &SessionContext) -> Result<SchemaRef> {
        let spine_schema: Schema = match (&self.spine, self.spine_frame(ctx).await?) {
            (Spine::Batches { schema, .. }, _) => schema.as_ref().clone(),
            (_, Some(frame)) => frame.schema().as_arrow().clone(),
            (_, None) => unreachable!("only uploaded spines have no plan"),
        };
        let mut sources = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            sources.push(
                Self::source_frame(ctx, part)
                    .await?
                    .schema()
                    .as_arrow()
                    .clone(),
            );
        }
        let specs = self.specs();
        let pairs: Vec<(&ViewJoinSpec<'_>, &Schema)> = specs.iter().zip(&sources).collect();
        output_schema(&spine_schema, &self.event_timestamp, &pairs)
    }

    /// Reads the spine (its partitions one after the other, so its order
    /// is the query's, or the table's file order), then runs the join.
    pub async fn execute(&self, ctx: &SessionContext) -> Result<SendableRecordBatchStream> {
        let (spine_schema, spine) = match (&self.spine, self.spine_frame(ctx).await?) {
            (Spine::Batches { schema, batches }, _) => (schema.clone(), batches.clone()),
            (_, Some(frame)) => {
                let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                let plan = frame.create_physical_plan().await?;
                let mut batches = Vec::new();
                for stream in execute_stream_partitioned(plan, ctx.task_ctx())? {
                    batches.extend(stream.try_collect::<Vec<_>>().await?);
                }
                (schema, batches)
            }
            (_, None) => unreachable!("only uploaded spines have no plan"),
        };
        let spine = slice_rows(spine, self.spine_range.0, self.spine_range.1);
        let mut join = PointInTimeJoin::new(spine_schema, spine, self.event_timestamp.clone())
            .with_memory_pool(Arc::clone(&ctx.runtime_env().memory_pool));
        for part in &self.parts {
            let plan: Arc<dyn ExecutionPlan> = Self::source_frame(ctx, part)
                .await?
                .create_physical_plan()
                .await?;
            let partitions = execute_stream_partitioned(plan.clone(), ctx.task_ctx())?;
            let view = &part.view;
            join = join.with_view(ViewJoin {
                name: view.name.clone(),
                join_keys: view.join_keys.clone(),
                timestamp_field: view.timestamp_field.clone(),
                created_timestamp_field: view.created_timestamp_field.clone(),
                ttl: view.ttl_seconds.map(Duration::from_secs),
                features: part.features.clone(),
                source_schema: plan.schema(),
                partitions,
            });
        }
        join.execute().await
    }
}

/// Rows `offset..offset + rows` of `batches`, as batches.
fn slice_rows(batches: Vec<RecordBatch>, offset: usize, rows: Option<usize>) -> Vec<RecordBatch> {
    if offset == 0 && rows.is_none() {
        return batches;
    }
    let mut skip = offset;
    let mut left = rows.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let n = batch.num_rows();
        if skip >= n {
            skip -= n;
            continue;
        }
        let take = (n - skip).min(left);
        out.push(batch.slice(skip, take));
        left -= take;
        skip = 0;
    }
    out
}
