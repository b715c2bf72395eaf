//! Ingestion: the files that land under an external source's location
//! (csv, newline-delimited json, parquet; local or object storage) loaded
//! into the source's Delta table in `raw`, each file exactly once.
//!
//! - Which files are in: every row carries the file it came from
//!   ([`SOURCE_FILE_COLUMN`], the path under the location) and the run's
//!   ingestion time (the source's `loaded_at_field`, or
//!   [`INGESTED_AT_COLUMN`]). The rows of a file and its name land in the
//!   same Delta commit, so the table itself says which files are in, and a
//!   run killed half way leaves each file either fully in or not at all:
//!   the next run loads what is missing.
//! - Each commit also records a Delta `txn` action (app id [`APP_ID`]):
//!   two ingestions of the same table racing make one of the commits fail
//!   instead of loading a file twice.
//! - Files go in path order. Each is read through first (a bad row is
//!   found with its line before anything is written), then up to
//!   [`BATCH_FILES`] files with the same columns make one commit. New
//!   columns are added (NULL in older rows) by the next commit; a column
//!   whose values no longer fit the table's type fails the file with its
//!   name and the column, and the files before it are committed.
//! - A file lake cannot read fails the run naming the file (and line), or,
//!   with `on_error: quarantine`, is moved under `<location>/_quarantine/`
//!   and reported while the other files are ingested. Names starting with
//!   `_` or `.` (markers such as `_SUCCESS`, the quarantine) and empty
//!   files are not ingested.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan, LogicalPlanBuilder, cast, ident, lit};
use datafusion::prelude::{
    CsvReadOptions, DataFrame, Expr, JsonReadOptions, ParquetReadOptions, SessionConfig,
    SessionContext,
};
use futures::{StreamExt, TryStreamExt};
use lake_compiler::{ExternalFiles, FileFormat, OnError, SourceDefinition};
use lake_storage::{
    SchemaChange, TableVersion, TableWrite, WriteMode, app_transaction_version, quote_ident,
    stored_type,
};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use serde_json::json;
use url::Url;

use crate::error::{EngineError, Result};
use crate::materialize::split_relation;
use crate::session::LakeSession;

/// The column that names the file a row came from (its path under the
/// source's location).
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// The ingestion time column when the source has no `loaded_at_field`.
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";
/// The Delta `txn` app id of ingestion commits.
pub const APP_ID: &str = "lake.ingest";
/// Where `on_error: quarantine` moves unreadable files, under the location.
pub const QUARANTINE_DIR: &str = "_quarantine";

/// Files named one by one on the console (run_results has them all).
const SHOWN_FILES: usize = 5;

/// A commit takes at most this many files, or rows: a run killed half way
/// loses at most one batch of work, and small files do not each cost a
/// commit.
const BATCH_FILES: usize = 100;
const BATCH_ROWS: u64 = 10_000_000;

/// Rows read to infer the column types of a csv or json file.
const INFER_ROWS: usize = 100_000;

/// A file loaded by this run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestedFile {
    /// The path under the location (what [`SOURCE_FILE_COLUMN`] holds).
    pub path: String,
    pub rows: u64,
    /// The Delta version of the commit that loaded it.
    pub version: u64,
}

/// A file moved aside by `on_error: quarantine`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantinedFile {
    pub path: String,
    /// Where it is now.
    pub moved_to: String,
    pub error: String,
}

/// The file that stopped the run, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileFailure {
    pub path: String,
    pub error: String,
}

/// What one ingestion of one source did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestOutcome {
    /// `raw.landing__events`.
    pub table: String,
    /// The location, resolved (`file:///.../landing/events/`).
    pub location: String,
    pub files: Vec<IngestedFile>,
    pub quarantined: Vec<QuarantinedFile>,
    /// Files found that an earlier run loaded.
    pub already_ingested: usize,
    /// Files without rows (a header only).
    pub empty: Vec<String>,
    /// Set when a file stopped the run (`on_error: fail`) or the store
    /// failed; the files before it are in `files`.
    pub failed: Option<FileFailure>,
}

impl IngestOutcome {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// One line for the console: "ingested 2 files (40 rows) into raw.x".
    pub fn summary(&self) -> String {
        let mut text = format!(
            "ingested {} into {}",
            count(self.files.len(), self.rows()),
            self.table
        );
        // The files themselves, while the list stays readable.
        if (1..=SHOWN_FILES).contains(&self.files.len()) {
            let files: Vec<String> = self
                .files
                .iter()
                .map(|f| format!("{} ({})", f.path, f.rows))
                .collect();
            text.push_str(&format!(": {}", files.join(", ")));
        }
        if self.already_ingested > 0 {
            text.push_str(&format!(", {} already in", self.already_ingested));
        }
        if !self.quarantined.is_empty() {
            let names: Vec<&str> = self.quarantined.iter().map(|q| q.path.as_str()).collect();
            text.push_str(&format!(
                "; quarantined {}: {}",
                self.quarantined.len(),
                names.join(", ")
            ));
        }
        if let Some(failed) = &self.failed {
            text = format!("{}: {}\n  ({text})", failed.path, failed.error);
        }
        text
    }
}

/// "1 file (2 rows)".
fn count(files: usize, rows: u64) -> String {
    format!(
        "{files} file{} ({rows} row{})",
        if files == 1 { "" } else { "s" },
        if rows == 1 { "" } else { "s" }
    )
}

/// Loads the new files of one external source. Builder style: `with_*`
/// setters, `.await` runs it.
pub struct Ingest<'a> {
    session: &'a LakeSession,
    source: &'a SourceDefinition,
    spec: &'a ExternalFiles,
    project_dir: &'a Path,
    run_id: Option<String>,
}

impl<'a> Ingest<'a> {
    /// Fails when the source has no `external.location`.
    pub fn new(
        session: &'a LakeSession,
        source: &'a SourceDefinition,
        project_dir: &'a Path,
    ) -> Result<Ingest<'a>> {
        let spec = source.ingest.as_ref().ok_or_else(|| EngineError::Config {
            file: source.original_file_path.clone(),
            message: format!(
                "source {}.{} has no external location to ingest",
                source.source_name, source.name
            ),
        })?;
        Ok(Ingest {
            session,
            source,
            spec,
            project_dir,
            run_id: None,
        })
    }

    /// Recorded in each commit as `lake.run_id`.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    fn ingested_at_column(&self) -> &str {
        self.source
            .loaded_at_field
            .as_deref()
            .unwrap_or(INGESTED_AT_COLUMN)
    }

    fn config_error(&self, message: String) -> EngineError {
        EngineError::Config {
            file: self.source.original_file_path.clone(),
            message: format!(
                "source {}.{}: {message}",
                self.source.source_name, self.source.name
            ),
        }
    }

    /// Runs the ingestion. `Err` only when nothing could start (the
    /// location or the table cannot be read); a file that fails is
    /// reported in [`IngestOutcome::failed`] with the files before it.
    pub async fn run(self) -> Result<IngestOutcome> {
        let (zone, name) = split_relation(&self.source.relation_name);
        let landing = Landing::open(&self.spec.location, self.project_dir, self.session)
            .map_err(|e| self.config_error(e))?;
        let outcome = IngestOutcome {
            table: format!("{zone}.{name}"),
            location: landing.url.to_string(),
            ..Default::default()
        };
        let files = landing
            .list()
            .await
            .map_err(|e| self.config_error(format!("cannot list {}: {e}", landing.url)))?;
        let table = self.session.root().load_table(zone, name).await?;
        // The files in and the txn version from one snapshot: a commit
        // after it makes the first write conflict instead of loading a file
        // twice.
        let mut state = RunState {
            zone,
            name,
            txn_version: 0,
            table_schema: None,
            batch: Batch::default(),
            outcome,
        };
        let mut done = BTreeSet::new();
        if let Some(table) = &table {
            let schema = self.schema_of(table, zone, name)?;
            done = self.ingested_files(table, &schema, zone, name).await?;
            state.txn_version = app_transaction_version(table, APP_ID).await?.unwrap_or(0);
            state.table_schema = Some(schema);
        }
        let ingested_at = chrono::Utc::now();
        for file in files {
            if done.contains(&file.path) {
                state.outcome.already_ingested += 1;
                continue;
            }
            let mut prepared = self
                .prepare(&landing, &file, state.table_schema.as_ref(), ingested_at)
                .await;
            // A file whose columns differ from the batch's (a new column, a
            // type read differently before the table existed) starts the
            // next commit, read again against the table as it then is.
            if let Ok(Some(ready)) = &prepared
                && !state.batch.accepts(ready)
            {
                if !self.flush(&mut state).await {
                    return Ok(state.outcome);
                }
                prepared = self
                    .prepare(&landing, &file, state.table_schema.as_ref(), ingested_at)
                    .await;
            }
            let error = match prepared {
                Ok(Some(ready)) => {
                    state.batch.push(file.path.clone(), ready);
                    if state.batch.is_full() && !self.flush(&mut state).await {
                        return Ok(state.outcome);
                    }
                    continue;
                }
                // Nothing of it would be in the table: it is looked at
                // again next time, without a commit.
                Ok(None) => {
                    state.outcome.empty.push(file.path.clone());
                    continue;
                }
                Err(Problem::File(error)) if self.spec.on_error == OnError::Quarantine => {
                    match landing.quarantine(&file).await {
                        Ok(moved_to) => {
                            state.outcome.quarantined.push(QuarantinedFile {
                                path: file.path.clone(),
                                moved_to,
                                error,
                            });
                            continue;
                        }
                        Err(e) => format!("{error}\n  and it could not be quarantined: {e}"),
                    }
                }
                Err(Problem::File(error) | Problem::Store(error)) => error,
            };
            // The files before it stay ingested.
            self.flush(&mut state).await;
            state.outcome.failed.get_or_insert(FileFailure {
                path: file.path.clone(),
                error,
            });
            return Ok(state.outcome);
        }
        self.flush(&mut state).await;
        Ok(state.outcome)
    }

    /// Commits the batch's files, if any, in one Delta commit (creating
    /// the table first if needed) and records them in the outcome. `false`
    /// when the commit failed, which is then the outcome's `failed`.
    async fn flush(&self, state: &mut RunState<'_>) -> bool {
        if state.batch.files.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut state.batch);
        let first = batch.files[0].0.clone();
        let count = batch.files.len();
        let failure = |error: String| FileFailure {
            path: first.clone(),
            error: if count > 1 {
                format!("{error}\n  (committing {count} files from {first} on; none of them is in)")
            } else {
                error
            },
        };
        match self.commit(batch, state).await {
            Ok(()) => true,
            Err(error) => {
                state.outcome.failed = Some(failure(error));
                false
            }
        }
    }

    /// [`flush`](Self::flush)'s commit; the table's schema after it goes
    /// into `state`.
    async fn commit(&self, batch: Batch, state: &mut RunState<'_>) -> Result<(), String> {
        let (zone, name) = (state.zone, state.name);
        let root = self.session.root().clone();
        let mut plans = batch.plans.into_iter();
        let first = plans.next().ok_or("nothing to commit")?;
        let plan = plans
            .try_fold(LogicalPlanBuilder::from(first), |b, p| b.union(p))
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| e.to_string())?;
        if state.table_schema.is_none() {
            // Create the table empty first: deltalake does not check the
            // txn of a racing creator of version 0, but it does for every
            // commit on an existing table. Every column nullable: a later
            // file may lack a column the first one declared required.
            let nullable: Vec<Field> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            let empty = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(
                    DFSchema::try_from(Schema::new(nullable)).map_err(|e| e.to_string())?,
                ),
            });
            // No retry: a creator that lost version 0 would otherwise
            // commit its metadata again on top of the winner's table.
            let created = TableWrite::new(root.clone(), zone, name, empty, self.session.state())
                .with_mode(WriteMode::Append)
                .with_schema_change(SchemaChange::AddColumns)
                .with_metadata("lake.node", json!(self.source.unique_id))
                .with_max_retries(0)
                .await;
            if let Err(e) = created
                && !root.has_table(zone, name).await.unwrap_or(false)
            {
                return Err(e.to_string());
            }
        }
        let paths: Vec<&str> = batch.files.iter().map(|(path, _)| path.as_str()).collect();
        let mut write = TableWrite::new(root.clone(), zone, name, plan, self.session.state())
            .with_mode(WriteMode::Append)
            .with_schema_change(SchemaChange::AddColumns)
            .with_metadata("lake.node", json!(self.source.unique_id))
            .with_metadata("lake.ingest.files", json!(paths))
            .with_app_transaction(APP_ID, state.txn_version + 1);
        if let Some(id) = &self.run_id {
            write = write.with_metadata("lake.run_id", json!(id));
        }
        let committed = write.await.map_err(|e| e.to_string())?;
        state.txn_version += 1;
        self.session.catalog().note_written(zone, name);
        state
            .outcome
            .files
            .extend(batch.files.into_iter().map(|(path, rows)| IngestedFile {
                path,
                rows,
                version: committed.version,
            }));
        // The schema as Delta stores it (new columns merged, types as
        // stored) for the next files' casts.
        let table = root
            .load_table(zone, name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{zone}.{name} is gone after its commit"))?;
        state.table_schema = Some(
            self.schema_of(&table, zone, name)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }

    /// The schema of a loaded table.
    fn schema_of(&self, table: &deltalake::DeltaTable, zone: &str, name: &str) -> Result<Schema> {
        let label = format!("{zone}.{name}");
        let schema = table
            .snapshot()
            .map_err(|e| lake_storage::StorageError::delta(&label, e))?
            .snapshot()
            .arrow_schema();
        Ok(schema.as_ref().clone())
    }

    /// The files earlier runs loaded: the distinct values of the source
    /// file column at the table's loaded version.
    async fn ingested_files(
        &self,
        table: &deltalake::DeltaTable,
        schema: &Schema,
        zone: &str,
        name: &str,
    ) -> Result<BTreeSet<String>> {
        let version = table.version().unwrap_or(0);
        if schema.field_with_name(SOURCE_FILE_COLUMN).is_err() {
            return Err(self.config_error(format!(
                "{zone}.{name} exists but has no {SOURCE_FILE_COLUMN} column, so lake did not ingest it\n  hint: give the source another identifier, or drop the table"
            )));
        }
        let sql = format!(
            "select distinct {} from {}.{}",
            quote_ident(SOURCE_FILE_COLUMN),
            quote_ident(zone),
            quote_ident(&TableVersion::Version(version).pinned_name(name))
        );
        let context = format!("{zone}.{name}: reading the ingested file names");
        let batches = self
            .session
            .context()
            .sql(&sql)
            .await
            .map_err(|e| EngineError::datafusion(&context, e))?
            .collect()
            .await
            .map_err(|e| EngineError::datafusion(&context, e))?;
        let mut names = BTreeSet::new();
        for batch in batches {
            let column = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)
                .map_err(|e| EngineError::datafusion(&context, e.into()))?;
            let strings = column
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .expect("cast to Utf8");
            names.extend(strings.iter().flatten().map(str::to_string));
        }
        Ok(names)
    }

    /// Reads one file through to the end (so a bad row is found now, with
    /// its line, not half way through a commit), then plans it with lake's
    /// columns. `None` for a file without rows.
    async fn prepare(
        &self,
        landing: &Landing,
        file: &LandingFile,
        table_schema: Option<&Schema>,
        ingested_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Ready>, Problem> {
        let url = landing.file_url(file).map_err(Problem::Store)?;
        let reader = FileReader {
            spec: self.spec,
            url,
            store: landing.store.clone(),
            schema: std::sync::OnceLock::new(),
        };
        let rows = reader.check(table_schema).await?;
        if rows == 0 {
            return Ok(None);
        }
        let df = match reader.read(self.session.context(), table_schema).await {
            Ok(df) => df,
            Err(e) => return Err(reader.problem(e).await),
        };
        let plan = self
            .with_lake_columns(df, table_schema, &file.path, ingested_at)
            .map_err(Problem::File)?;
        Ok(Some(Ready { plan, rows }))
    }

    /// The file's columns cast to the table's types, the table's columns
    /// the file lacks as NULLs, then the source file and ingestion time.
    fn with_lake_columns(
        &self,
        df: DataFrame,
        table_schema: Option<&Schema>,
        path: &str,
        ingested_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<LogicalPlan, String> {
        let ingested_at_column = self.ingested_at_column();
        let file_fields: Vec<Field> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for reserved in [SOURCE_FILE_COLUMN, ingested_at_column] {
            if file_fields.iter().any(|f| f.name() == reserved) {
                return Err(format!(
                    "the file has a column '{reserved}', which lake fills in (the {})\n  hint: rename the column in the file{}",
                    if reserved == SOURCE_FILE_COLUMN {
                        "file each row came from"
                    } else {
                        "ingestion time"
                    },
                    if reserved == SOURCE_FILE_COLUMN {
                        String::new()
                    } else {
                        ", or set the source's loaded_at_field to another name".into()
                    }
                ));
            }
        }
        let mut exprs: Vec<Expr> = Vec::new();
        for field in &file_fields {
            let target = table_schema
                .and_then(|s| s.field_with_name(field.name()).ok())
                .map(|t| t.data_type().clone());
            let column = ident(field.name());
            exprs.push(match target {
                Some(t) if &t != field.data_type() => {
                    check_widening(field.name(), field.data_type(), &t)?;
                    cast(column, t).alias(field.name())
                }
                None if field.data_type() == &DataType::Null => {
                    cast(column, DataType::Utf8).alias(field.name())
                }
                _ => column,
            });
        }
        if let Some(schema) = table_schema {
            for field in schema.fields() {
                let lake_column =
                    field.name() == SOURCE_FILE_COLUMN || field.name() == ingested_at_column;
                if !lake_column && !file_fields.iter().any(|f| f.name() == field.name()) {
                    exprs.push(
                        cast(lit(ScalarValue::Null), field.data_type().clone()).alias(field.name()),
                    );
                }
            }
        }
        exprs.push(lit(path.to_string()).alias(SOURCE_FILE_COLUMN));
        exprs.push(
            lit(ScalarValue::TimestampMicrosecond(
                Some(ingested_at.timestamp_micros()),
                Some("UTC".into()),
            ))
            .alias(ingested_at_column),
        );
        df.select(exprs)
            .map(DataFrame::into_unoptimized_plan)
            .map_err(|e| e.to_string())
    }
}

impl<'a> std::future::IntoFuture for Ingest<'a> {
    type Output = Result<IngestOutcome>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// One run of one source between its commits.
struct RunState<'r> {
    zone: &'r str,
    name: &'r str,
    /// The last `txn` version recorded by ingestion in the table.
    txn_version: i64,
    /// The table's schema; `None` until the table exists.
    table_schema: Option<Schema>,
    batch: Batch,
    outcome: IngestOutcome,
}

/// A file read through, planned with lake's columns.
struct Ready {
    plan: LogicalPlan,
    rows: u64,
}

/// Files waiting for one commit: all with the same columns, in order.
#[derive(Default)]
struct Batch {
    /// Path and rows of each file.
    files: Vec<(String, u64)>,
    plans: Vec<LogicalPlan>,
    rows: u64,
    /// Names and types of the batch's columns.
    columns: Option<Vec<(String, DataType)>>,
}

impl Batch {
    fn columns_of(ready: &Ready) -> Vec<(String, DataType)> {
        ready
            .plan
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    /// Whether `ready` can go into the same commit (a union by position).
    fn accepts(&self, ready: &Ready) -> bool {
        self.columns
            .as_ref()
            .is_none_or(|columns| *columns == Self::columns_of(ready))
    }

    fn push(&mut self, path: String, ready: Ready) {
        if self.columns.is_none() {
            self.columns = Some(Self::columns_of(&ready));
        }
        self.rows += ready.rows;
        self.files.push((path, ready.rows));
        self.plans.push(ready.plan);
    }

    /// Commit now: many small files make one commit, a big batch does not
    /// wait for more.
    fn is_full(&self) -> bool {
        self.files.len() >= BATCH_FILES || self.rows >= BATCH_ROWS
    }
}

/// Why a file did not load.
#[derive(Debug)]
enum Problem {
    /// The file cannot be read as its format says, or its columns do not
    /// fit the table: quarantine applies.
    File(String),
    /// The store or the commit failed: the file may be fine.
    Store(String),
}

/// Whether values of type `file` may go into a column of type `table`
/// without loss: the same type as Delta stores it, NULLs, or a wider
/// number.
fn check_widening(column: &str, file: &DataType, table: &DataType) -> Result<(), String> {
    use DataType::*;
    let file_stored = stored_type(file);
    let ok = &file_stored == table
        || matches!(file, Null)
        || matches!(
            (&file_stored, table),
            (Int8, Int16 | Int32 | Int64)
                | (Int16, Int32 | Int64)
                | (Int32, Int64)
                | (Int8 | Int16 | Int32, Float64)
                | (Float32, Float64)
                | (Utf8View | LargeUtf8, Utf8)
                | (Timestamp(_, _), Timestamp(TimeUnit::Microsecond, _))
        );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column '{column}' has type {file} in this file, but the table stores {table}\n  hint: an incompatible type change; fix the file, or rebuild the table from all files (drop it and ingest again) if the type really changed"
        ))
    }
}

/// A file under the location.
#[derive(Debug, Clone)]
struct LandingFile {
    location: StorePath,
    /// The path under the location, `/`-separated.
    path: String,
}

/// Where an external source's files land.
struct Landing {
    /// Ends with `/`.
    url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
}

impl Landing {
    fn open(location: &str, project_dir: &Path, session: &LakeSession) -> Result<Landing, String> {
        let url = if location.contains("://") {
            Url::parse(location).map_err(|e| format!("invalid location '{location}': {e}"))?
        } else {
            let path = Path::new(location);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                project_dir.join(path)
            };
            if !path.is_dir() {
                return Err(format!(
                    "the landing folder {} does not exist\n  hint: create it, or fix external.location (relative paths are read from the project folder)",
                    path.display()
                ));
            }
            let path = path
                .canonicalize()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Url::from_directory_path(&path)
                .map_err(|_| format!("{} is not an absolute path", path.display()))?
        };
        let mut url = url;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let store = session
            .root()
            .store_for_location(&url)
            .map_err(|e| e.to_string())?;
        // The session reads the files by URL.
        register_store(session.context(), &url, &store);
        let prefix = StorePath::from_url_path(url.path()).map_err(|e| e.to_string())?;
        Ok(Landing { url, store, prefix })
    }

    /// The files to consider, in path order: no hidden or `_` names, no
    /// empty files.
    async fn list(&self) -> object_store::Result<Vec<LandingFile>> {
        let mut files: Vec<LandingFile> = self
            .store
            .list(Some(&self.prefix))
            .try_filter_map(|meta| {
                let relative: Option<Vec<String>> = meta
                    .location
                    .prefix_match(&self.prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect());
                let file = relative.and_then(|parts| {
                    let hidden = parts
                        .iter()
                        .any(|p| p.starts_with('_') || p.starts_with('.'));
                    (!hidden && !parts.is_empty() && meta.size > 0).then(|| LandingFile {
                        location: meta.location.clone(),
                        path: parts.join("/"),
                    })
                });
                futures::future::ready(Ok(file))
            })
            .try_collect()
            .await?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn file_url(&self, file: &LandingFile) -> Result<Url, String> {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|_| format!("{} cannot hold file paths", self.url))?
            .pop_if_empty()
            .extend(file.path.split('/'));
        Ok(url)
    }

    /// Moves `file` to `<location>/_quarantine/<path>`; returns where.
    /// An earlier quarantined file of the same path is kept: the new one
    /// gets the time as a suffix.
    async fn quarantine(&self, file: &LandingFile) -> object_store::Result<String> {
        let target = |suffix: &str| {
            let relative = format!("{QUARANTINE_DIR}/{}{suffix}", file.path);
            let full = format!("{}/{relative}", self.prefix.as_ref().trim_end_matches('/'));
            StorePath::parse(full.trim_start_matches('/')).map(|p| (p, relative))
        };
        // S3 has no copy-if-not-exists: look first. (Two runs quarantining
        // the same path in the same instant could still overwrite.)
        let (mut to, mut relative) = target("").map_err(object_store::Error::from)?;
        match self.store.head(&to).await {
            Ok(_) => {
                let suffix = format!(".{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
                (to, relative) = target(&suffix).map_err(object_store::Error::from)?;
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.store.rename(&file.location, &to).await?;
        Ok(relative)
    }
}

/// Lets `ctx` read `url`'s scheme and bucket through `store` (DataFusion
/// knows the local file system already).
fn register_store(ctx: &SessionContext, url: &Url, store: &Arc<dyn ObjectStore>) {
    if url.scheme() == "file" {
        return;
    }
    if let Ok(base) = Url::parse(&format!("{}://{}", url.scheme(), url.authority())) {
        ctx.register_object_store(&base, store.clone());
    }
}

/// Reads one landing file with DataFusion.
struct FileReader<'a> {
    spec: &'a ExternalFiles,
    url: Url,
    /// The landing store (the file's scheme and bucket).
    store: Arc<dyn ObjectStore>,
    /// The columns a csv or json file is read with: settled (inferred) by
    /// the first read, so the next ones do not infer again; for errors too.
    schema: std::sync::OnceLock<Schema>,
}

impl FileReader<'_> {
    fn compression(&self) -> FileCompressionType {
        let given = self.spec.option_str("compression").unwrap_or("auto");
        let name = if given == "auto" {
            let path = self.url.path();
            match path.rsplit_once('.').map(|(_, ext)| ext) {
                Some("gz") => "gzip",
                Some("bz2") => "bzip2",
                Some("xz") => "xz",
                Some("zst") => "zstd",
                _ => "none",
            }
        } else {
            given
        };
        match name {
            "gzip" => FileCompressionType::GZIP,
            "bzip2" => FileCompressionType::BZIP2,
            "xz" => FileCompressionType::XZ,
            "zstd" => FileCompressionType::ZSTD,
            _ => FileCompressionType::UNCOMPRESSED,
        }
    }

    fn byte_option(&self, key: &str) -> Option<u8> {
        self.spec.option_str(key).and_then(|s| match s {
            "\\t" => Some(b'\t'),
            s => s.as_bytes().first().copied(),
        })
    }

    fn csv_options<'s>(&self, schema: Option<&'s Schema>) -> CsvReadOptions<'s> {
        let header = self
            .spec
            .options
            .get("header")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let mut options = CsvReadOptions::new()
            .has_header(header)
            .delimiter(self.byte_option("delimiter").unwrap_or(b','))
            .file_extension("")
            .file_compression_type(self.compression())
            .schema_infer_max_records(INFER_ROWS)
            // Quoted values may hold line breaks; this also keeps a big
            // file from being split at byte offsets that cut through one.
            .newlines_in_values(true);
        if let Some(q) = self.byte_option("quote") {
            options = options.quote(q);
        }
        if let Some(e) = self.byte_option("escape") {
            options = options.escape(e);
        }
        options.schema = schema;
        options
    }

    /// Without a schema, types inferred over the whole file: a key
    /// anywhere is a column.
    fn json_options<'s>(&self, schema: Option<&'s Schema>) -> JsonReadOptions<'s> {
        let mut options = JsonReadOptions::default()
            .file_extension("")
            .file_compression_type(self.compression())
            .schema_infer_max_records(usize::MAX);
        options.schema = schema;
        options
    }

    /// The file as a DataFrame (with the columns an earlier read of this
    /// reader settled). csv is parsed with the table's types for
    /// the columns it has (a value that does not fit is an error naming
    /// the line and column) and inferred types for new ones; json and
    /// parquet carry their own types, checked against the table later.
    async fn read(
        &self,
        ctx: &SessionContext,
        table_schema: Option<&Schema>,
    ) -> datafusion::error::Result<DataFrame> {
        let url = self.url.as_str();
        match self.spec.format {
            FileFormat::Parquet => {
                ctx.read_parquet(url, ParquetReadOptions::default().file_extension(""))
                    .await
            }
            FileFormat::Csv => {
                let schema = match self.schema.get() {
                    Some(schema) => schema.clone(),
                    None => {
                        let inferred = ctx.read_csv(url, self.csv_options(None)).await?;
                        with_table_types(inferred.schema().as_arrow(), table_schema)
                    }
                };
                let _ = self.schema.set(schema.clone());
                ctx.read_csv(url, self.csv_options(Some(&schema))).await
            }
            // JSON values carry their types: read them as they are (a key
            // anywhere in the file is a column), and let the widening
            // check decide against the table, as for Parquet; forcing the
            // table's types would truncate 4.5 into an integer column.
            FileFormat::Json => {
                let schema = match self.schema.get() {
                    Some(schema) => schema.clone(),
                    None => {
                        let inferred = ctx.read_json(url, self.json_options(None)).await?;
                        inferred.schema().as_arrow().clone()
                    }
                };
                let _ = self.schema.set(schema.clone());
                ctx.read_json(url, self.json_options(Some(&schema))).await
            }
        }
    }

    /// Reads the whole file in a session of its own (one partition, so
    /// that line numbers count from the file's start) and counts its rows:
    /// `Err` with the file's problem if it cannot be read.
    async fn check(&self, table_schema: Option<&Schema>) -> Result<u64, Problem> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_repartition_file_scans(false);
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_config(config)
                .with_default_features()
                .build(),
        );
        register_store(&ctx, &self.url, &self.store);
        let read = async {
            let df = self.read(&ctx, table_schema).await?;
            let mut stream = df.execute_stream().await?;
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows() as u64;
            }
            Ok::<u64, DataFusionError>(rows)
        };
        match read.await {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.problem(e).await),
        }
    }

    /// Whose fault an error of reading this file is: the store's, or the
    /// file's (explained).
    async fn problem(&self, e: DataFusionError) -> Problem {
        if from_the_store(&e) {
            return Problem::Store(e.to_string());
        }
        Problem::File(self.explain_checked(&e).await)
    }

    /// The error of reading this file, without DataFusion's wrapping; a
    /// csv value that does not parse names its line in the file and its
    /// column.
    fn explain(&self, e: &DataFusionError, schema: Option<&Schema>) -> String {
        let text = e.find_root().to_string();
        let text = text
            .strip_prefix("Arrow error: ")
            .or_else(|| text.strip_prefix("External error: "))
            .unwrap_or(&text)
            .to_string();
        if let Some(explained) = csv_parse_error(&text, schema) {
            return explained;
        }
        format!("cannot read it as {}: {text}", self.spec.format.as_str())
    }

    /// [`explain`](Self::explain), and for json the first line that is
    /// not a JSON object (arrow's json errors carry no line).
    async fn explain_checked(&self, e: &DataFusionError) -> String {
        let explained = self.explain(e, self.schema.get());
        if self.spec.format != FileFormat::Json
            || self.compression() != FileCompressionType::UNCOMPRESSED
        {
            return explained;
        }
        let store = &self.store;
        let Ok(path) = StorePath::from_url_path(self.url.path()) else {
            return explained;
        };
        let Ok(bytes) = async { store.get(&path).await?.bytes().await }.await else {
            return explained;
        };
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => return format!("line {}: not a JSON object ({explained})", i + 1),
                Err(err) => return format!("line {}: invalid JSON: {err}", i + 1),
            }
        }
        explained
    }
}

/// Whether the object store failed somewhere under `e` (a Parquet reader
/// wraps the store's errors in its own): a timeout is not the file's fault.
fn from_the_store(e: &DataFusionError) -> bool {
    if matches!(e, DataFusionError::ObjectStore(_)) {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error.is::<object_store::Error>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// arrow-csv's "Error while parsing value 'x' as type 'Int64' for column 2
/// at line 1" (line counted from 0 at the header) as "line 2, column
/// 'amount': ...".
fn csv_parse_error(text: &str, schema: Option<&Schema>) -> Option<String> {
    let rest = text.split("Error while parsing value ").nth(1)?;
    let (value, rest) = rest.split_once(" as type ")?;
    let (data_type, rest) = rest.split_once(" for column ")?;
    let (column, rest) = rest.split_once(" at line ")?;
    let line: usize = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let column: usize = column.trim().parse().ok()?;
    let name = schema
        .and_then(|s| s.fields().get(column))
        .map_or_else(|| format!("#{}", column + 1), |f| format!("'{}'", f.name()));
    Some(format!(
        "line {}, column {name}: the value {value} is not a {}, the column's type",
        line + 1,
        data_type.trim_matches('\''),
    ))
}

/// `inferred` with the table's type for each column the table has (a
/// column inferred as all-NULL becomes text when new).
fn with_table_types(inferred: &Schema, table: Option<&Schema>) -> Schema {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let data_type = match table.and_then(|t| t.field_with_name(f.name()).ok()) {
                Some(t) => t.data_type().clone(),
                None if f.data_type() == &DataType::Null => DataType::Utf8,
                None => f.data_type().clone(),
            };
            Field::new(f.name(), data_type, true)
        })
        .collect();
    Schema::new(fields)
}

/// The JSON kept in run_results.json's `adapter_response.ingest`.
pub fn outcome_json(outcome: &IngestOutcome) -> serde_json::Value {
    serde_json::to_value(outcome).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_keeps_values_and_refuses_the_rest() {
        assert!(check_widening("a", &DataType::Int32, &DataType::Int64).is_ok());
        assert!(check_widening("a", &DataType::Float32, &DataType::Float64).is_ok());
        assert!(check_widening("a", &DataType::Null, &DataType::Int64).is_ok());
        assert!(check_widening("a", &DataType::Utf8View, &DataType::Utf8).is_ok());
        let e = check_widening("amount", &DataType::Utf8, &DataType::Int64).unwrap_err();
        assert!(
            e.contains("column 'amount'") && e.contains("Utf8") && e.contains("Int64"),
            "{e}"
        );
        assert!(check_widening("a", &DataType::Float64, &DataType::Int64).is_err());
    }

    #[test]
    fn table_types_win_for_known_columns() {
        let inferred = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("note", DataType::Null, true),
            Field::new("new", DataType::Float64, true),
        ]);
        let table = Schema::new(vec![
            Field::new("id", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
        ]);
        let merged = with_table_types(&inferred, Some(&table));
        let types: Vec<&DataType> = merged.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [&DataType::Float64, &DataType::Utf8, &DataType::Float64]
        );
    }

    #[test]
    fn csv_parse_errors_name_the_line_and_column() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Int64, true),
        ]);
        let text = "Parser error: Error while parsing value 'forty' as type 'Int64' for column 1 at line 1. Row data: '[4,forty]'";
        assert_eq!(
            csv_parse_error(text, Some(&schema)).unwrap(),
            "line 2, column 'amount': the value 'forty' is not a Int64, the column's type"
        );
        assert!(csv_parse_error(text, None).unwrap().contains("column #2"));
        assert_eq!(csv_parse_error("incorrect number of fields", None), None);
    }

    #[test]
    fn summary_names_counts_and_failures() {
        let mut outcome = IngestOutcome {
            table: "raw.landing__events".into(),
            files: vec![IngestedFile {
                path: "a.csv".into(),
                rows: 2,
                version: 0,
            }],
            already_ingested: 3,
            ..Default::default()
        };
        assert_eq!(
            outcome.summary(),
            "ingested 1 file (2 rows) into raw.landing__events: a.csv (2), 3 already in"
        );
        outcome.failed = Some(FileFailure {
            path: "b.csv".into(),
            error: "line 3: bad".into(),
        });
        assert!(outcome.summary().starts_with("b.csv: line 3: bad\n"));
    }
}
