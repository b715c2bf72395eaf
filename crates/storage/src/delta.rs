//! Writes to Delta tables, each exactly one commit: overwrite, append,
//! replace-where (delete+insert, insert_overwrite) and merge. Builders in
//! the delta-rs style: `with_*` setters, `.await` runs them and returns
//! what was committed.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::Column;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::prelude::{DataFrame, Expr};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use serde_json::Value as Json;

use crate::error::{Result, StorageError};
use crate::root::LakeRoot;

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The table version the commit created.
    pub version: u64,
    /// Rows written by the commit (for a merge: inserted + updated).
    pub rows_written: Option<u64>,
    pub rows_updated: Option<u64>,
    pub rows_deleted: Option<u64>,
}

/// How a write treats the rows already in the table.
#[derive(Debug, Clone)]
pub enum WriteMode {
    /// Replace all rows (and the schema).
    Overwrite,
    /// Add rows.
    Append,
    /// Replace the rows matching the predicate; every new row must match it.
    ReplaceWhere(Expr),
}

/// How a write treats a change of columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaChange {
    /// The new rows must have the table's schema.
    Keep,
    /// New columns are added (NULL in older rows).
    AddColumns,
    /// The table takes the new rows' schema (overwrite only).
    Replace,
}

fn commit_properties(metadata: &[(String, Json)]) -> CommitProperties {
    CommitProperties::default().with_metadata(metadata.iter().cloned())
}

/// The version an application last recorded in `table` with
/// [`TableWrite::with_app_transaction`] (Delta's `txn` action), if any.
pub async fn app_transaction_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let label = table.table_url().to_string();
    let state = table
        .snapshot()
        .map_err(|e| StorageError::delta(&label, e))?;
    state
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| StorageError::delta(&label, e))
}

/// The type Delta Lake stores for `data_type`, when it differs: Delta has
/// microsecond timestamps only, no unsigned integers, no null type, no
/// dictionary encoding or large variants, while DataFusion's SQL produces
/// all of these.
fn delta_type(data_type: &DataType) -> Option<DataType> {
    Some(match data_type {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::LargeUtf8 => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Null => DataType::Utf8,
        DataType::Dictionary(_, value) => {
            delta_type(value).unwrap_or_else(|| value.as_ref().clone())
        }
        _ => return None,
    })
}

/// The type Delta Lake stores for `data_type`.
pub fn stored_type(data_type: &DataType) -> DataType {
    delta_type(data_type).unwrap_or_else(|| data_type.clone())
}

/// `plan` with a projection that casts columns to types Delta stores; the
/// plan itself when none needs it.
pub fn delta_compatible(plan: LogicalPlan) -> Result<LogicalPlan> {
    let needs_cast = plan
        .schema()
        .fields()
        .iter()
        .any(|f| delta_type(f.data_type()).is_some());
    if !needs_cast {
        return Ok(plan);
    }
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match delta_type(field.data_type()) {
                Some(target) => cast(column, target).alias(field.name()),
                None => column,
            }
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// Rows added by the table's latest commit, from its operation metrics.
async fn latest_commit_rows(table: &DeltaTable) -> Option<u64> {
    let mut history = table.history(Some(1));
    let info = history.next().await?.ok()?;
    let metrics = info.info.get("operationMetrics")?;
    metrics
        .get("num_added_rows")
        .or_else(|| metrics.get("numOutputRows"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}

/// Writes a DataFusion plan's rows to `zone.name`, streaming them: the
/// rows are never collected in memory.
#[derive(Debug)]
pub struct TableWrite {
    root: Arc<LakeRoot>,
    zone: String,
    name: String,
    plan: LogicalPlan,
    session: Arc<SessionState>,
    mode: WriteMode,
    schema_change: SchemaChange,
    partition_by: Vec<String>,
    metadata: Vec<(String, Json)>,
    app_transaction: Option<(String, i64)>,
    max_retries: Option<usize>,
}

impl TableWrite {
    /// `session` must carry deltalake's planner (see `lake-engine`'s
    /// session).
    pub fn new(
        root: Arc<LakeRoot>,
        zone: &str,
        name: &str,
        plan: LogicalPlan,
        session: Arc<SessionState>,
    ) -> TableWrite {
        TableWrite {
            root,
            zone: zone.to_string(),
            name: name.to_string(),
            plan,
            session,
            mode: WriteMode::Overwrite,
            schema_change: SchemaChange::Replace,
            partition_by: Vec::new(),
            metadata: Vec::new(),
            app_transaction: None,
            max_retries: None,
        }
    }

    /// How often deltalake retries the commit after another writer's
    /// (0: never; the write then fails if the table moved meanwhile).
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.max_retries = Some(retries);
        self
    }

    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn with_schema_change(mut self, change: SchemaChange) -> Self {
        self.schema_change = change;
        self
    }

    /// Delta partition columns (used when the write creates or replaces the
    /// table).
    pub fn with_partition_by(mut self, columns: Vec<String>) -> Self {
        self.partition_by = columns;
        self
    }

    /// Recorded in the commit (for example `lake.model`, `lake.run_id`).
    pub fn with_metadata(mut self, key: &str, value: Json) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Records `(app_id, version)` as a Delta `txn` action in the same
    /// commit as the rows, so that a writer can tell what it already wrote
    /// (see [`app_transaction_version`]). The write fails with a conflict
    /// unless the table's recorded version for `app_id` is `version - 1`
    /// (none counts as 0) when it starts and no other commit with that app
    /// id lands before it: two writers never both write on the same
    /// knowledge.
    pub fn with_app_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.app_transaction = Some((app_id.into(), version));
        self
    }

    async fn run(self) -> Result<CommitOutcome> {
        let label = format!("{}.{}", self.zone, self.name);
        let table = self.root.table_for_write(&self.zone, &self.name).await?;
        let session: Arc<dyn Session> = self.session.clone();
        let plan = delta_compatible(self.plan)?;
        let mut properties = commit_properties(&self.metadata);
        if let Some((app_id, version)) = self.app_transaction {
            // Optimistic: the write goes on only from the version before
            // it; a commit with the same app id between this snapshot and
            // ours makes deltalake's conflict check fail the commit.
            let recorded = match table.version() {
                Some(_) => app_transaction_version(&table, &app_id).await?,
                None => None,
            };
            if recorded.unwrap_or(0) != version - 1 {
                return Err(StorageError::Conflict {
                    table: label,
                    message: format!(
                        "another writer recorded {app_id} version {} (this one expected {}); run again",
                        recorded.unwrap_or(0),
                        version - 1
                    ),
                });
            }
            properties = properties.with_application_transaction(Transaction::new(app_id, version));
        }
        if let Some(retries) = self.max_retries {
            properties = properties.with_max_retries(retries);
        }
        let mut write = table
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(plan)
            .with_session_state(session)
            .with_commit_properties(properties);
        if !self.partition_by.is_empty() {
            write = write.with_partition_columns(self.partition_by.clone());
        }
        write = match self.mode {
            WriteMode::Overwrite => write.with_save_mode(SaveMode::Overwrite),
            WriteMode::Append => write.with_save_mode(SaveMode::Append),
            WriteMode::ReplaceWhere(predicate) => write
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(predicate),
        };
        write = match self.schema_change {
            SchemaChange::Keep => write,
            SchemaChange::AddColumns => write.with_schema_mode(SchemaMode::Merge),
            SchemaChange::Replace => write.with_schema_mode(SchemaMode::Overwrite),
        };
        let table = write.await.map_err(|e| StorageError::delta(&label, e))?;
        Ok(CommitOutcome {
            version: table.version().unwrap_or_default(),
            rows_written: latest_commit_rows(&table).await,
            rows_updated: None,
            rows_deleted: None,
        })
    }
}

impl IntoFuture for TableWrite {
    type Output = Result<CommitOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Merges rows into `zone.name` on key columns: matching rows are updated,
/// the others inserted, in one commit.
#[derive(Debug)]
pub struct TableMerge {
    root: Arc<LakeRoot>,
    zone: String,
    name: String,
    source: DataFrame,
    keys: Vec<String>,
    session: Arc<SessionState>,
    add_columns: bool,
    update_condition: Option<String>,
    metadata: Vec<(String, Json)>,
}

/// `"name"`, quoted for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl TableMerge {
    pub fn new(
        root: Arc<LakeRoot>,
        zone: &str,
        name: &str,
        source: DataFrame,
        keys: Vec<String>,
        session: Arc<SessionState>,
    ) -> TableMerge {
        TableMerge {
            root,
            zone: zone.to_string(),
            name: name.to_string(),
            source,
            keys,
            session,
            add_columns: false,
            update_condition: None,
            metadata: Vec::new(),
        }
    }

    /// Updates a matched row only where this SQL condition holds (over
    /// `source.` and `target.` columns); other matches are left as they are.
    pub fn with_update_condition(mut self, condition: impl Into<String>) -> Self {
        self.update_condition = Some(condition.into());
        self
    }

    /// Adds the source's new columns to the table.
    pub fn with_add_columns(mut self, yes: bool) -> Self {
        self.add_columns = yes;
        self
    }

    pub fn with_metadata(mut self, key: &str, value: Json) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    async fn run(self) -> Result<CommitOutcome> {
        let label = format!("{}.{}", self.zone, self.name);
        let table = self.root.table_for_write(&self.zone, &self.name).await?;
        let columns: Vec<String> = self
            .source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let predicate = self
            .keys
            .iter()
            .map(|k| format!("target.{q} = source.{q}", q = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let session: Arc<dyn Session> = self.session.clone();
        let update_columns = columns.clone();
        let update_condition = self.update_condition.clone();
        let (table, metrics) = table
            .merge(self.source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(session)
            .with_merge_schema(self.add_columns)
            .with_commit_properties(commit_properties(&self.metadata))
            .when_matched_update(|mut update| {
                if let Some(condition) = update_condition {
                    update = update.predicate(condition);
                }
                for c in &update_columns {
                    update = update.update(quote_ident(c), format!("source.{}", quote_ident(c)));
                }
                update
            })
            .and_then(|m| {
                m.when_not_matched_insert(|mut insert| {
                    for c in &columns {
                        insert = insert.set(quote_ident(c), format!("source.{}", quote_ident(c)));
                    }
                    insert
                })
            })
            .map_err(|e| StorageError::delta(&label, e))?
            .await
            .map_err(|e| StorageError::delta(&label, e))?;
        Ok(CommitOutcome {
            version: table.version().unwrap_or_default(),
            rows_written: Some(
                (metrics.num_target_rows_inserted + metrics.num_target_rows_updated) as u64,
            ),
            rows_updated: Some(metrics.num_target_rows_updated as u64),
            rows_deleted: Some(metrics.num_target_rows_deleted as u64),
        })
    }
}

impl IntoFuture for TableMerge {
    type Output = Result<CommitOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Deletes the rows of `zone.name` that match a SQL predicate (all rows
/// without one), in one commit.
pub struct TableDelete {
    root: Arc<LakeRoot>,
    zone: String,
    name: String,
    predicate: Option<String>,
    session: Arc<SessionState>,
    metadata: Vec<(String, Json)>,
}

impl TableDelete {
    pub fn new(root: Arc<LakeRoot>, zone: &str, name: &str, session: Arc<SessionState>) -> Self {
        TableDelete {
            root,
            zone: zone.to_string(),
            name: name.to_string(),
            predicate: None,
            session,
            metadata: Vec::new(),
        }
    }

    /// A SQL condition over the table's columns.
    pub fn with_predicate(mut self, predicate: impl Into<String>) -> Self {
        self.predicate = Some(predicate.into());
        self
    }

    pub fn with_metadata(mut self, key: &str, value: Json) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    async fn run(self) -> Result<CommitOutcome> {
        let label = format!("{}.{}", self.zone, self.name);
        let table = existing_table(&self.root, &self.zone, &self.name).await?;
        let session: Arc<dyn Session> = self.session.clone();
        let mut delete = table
            .delete()
            .with_session_state(session)
            .with_commit_properties(commit_properties(&self.metadata));
        if let Some(p) = self.predicate {
            delete = delete.with_predicate(p);
        }
        let (table, metrics) = delete.await.map_err(|e| StorageError::delta(&label, e))?;
        Ok(CommitOutcome {
            version: table.version().unwrap_or_default(),
            rows_written: None,
            rows_updated: None,
            rows_deleted: metrics.num_deleted_rows.map(|n| n as u64),
        })
    }
}

impl IntoFuture for TableDelete {
    type Output = Result<CommitOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The current version of a table that must exist.
async fn existing_table(root: &LakeRoot, zone: &str, name: &str) -> Result<DeltaTable> {
    root.load_table(zone, name)
        .await?
        .ok_or_else(|| StorageError::NoTable {
            table: format!("{zone}.{name}"),
            hint: String::new(),
        })
}

/// Sets columns to SQL expressions in the rows of `zone.name` that match a
/// predicate (all rows without one), in one commit.
pub struct TableUpdate {
    root: Arc<LakeRoot>,
    zone: String,
    name: String,
    predicate: Option<String>,
    assignments: Vec<(String, String)>,
    session: Arc<SessionState>,
    metadata: Vec<(String, Json)>,
}

impl TableUpdate {
    pub fn new(root: Arc<LakeRoot>, zone: &str, name: &str, session: Arc<SessionState>) -> Self {
        TableUpdate {
            root,
            zone: zone.to_string(),
            name: name.to_string(),
            predicate: None,
            assignments: Vec::new(),
            session,
            metadata: Vec::new(),
        }
    }

    /// A SQL condition over the table's columns.
    pub fn with_predicate(mut self, predicate: impl Into<String>) -> Self {
        self.predicate = Some(predicate.into());
        self
    }

    /// `column = expression`, the expression in SQL over the old row.
    pub fn with_assignment(mut self, column: impl Into<String>, expr: impl Into<String>) -> Self {
        self.assignments.push((column.into(), expr.into()));
        self
    }

    pub fn with_metadata(mut self, key: &str, value: Json) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    async fn run(self) -> Result<CommitOutcome> {
        let label = format!("{}.{}", self.zone, self.name);
        let table = existing_table(&self.root, &self.zone, &self.name).await?;
        let session: Arc<dyn Session> = self.session.clone();
        let mut update = table
            .update()
            .with_session_state(session)
            .with_commit_properties(commit_properties(&self.metadata));
        for (column, expr) in self.assignments {
            update = update.with_update(column, expr);
        }
        if let Some(p) = self.predicate {
            update = update.with_predicate(p);
        }
        let (table, metrics) = update.await.map_err(|e| StorageError::delta(&label, e))?;
        Ok(CommitOutcome {
            version: table.version().unwrap_or_default(),
            rows_written: None,
            rows_updated: Some(metrics.num_updated_rows as u64),
            rows_deleted: None,
        })
    }
}

impl IntoFuture for TableUpdate {
    type Output = Result<CommitOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
