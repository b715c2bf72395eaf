//! Online tables: for each feature view, a Delta table in the `features`
//! zone with the latest feature values per entity key, so lookups never
//! scan history. `lake build` keeps them up to date incrementally: the
//! source rows at or after the table's newest timestamp are reduced to the
//! latest per key and merged in, in one commit. [`OnlineStore`] keeps them
//! in memory for lookups, reloading a table when a new Delta version
//! appears.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::{concat_batches, interleave};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use lake_compiler::FeatureView;
use lake_engine::LakeSession;
use lake_storage::{LakeRoot, SchemaChange, TableMerge, TableVersion, TableWrite, quote_ident};
use serde_json::json;
use tokio::sync::Mutex;

use crate::error::{FeatureError, Result};
use crate::keys::{KeyInterner, NO_GROUP};
use crate::selection::ViewFeatures;

/// The zone online tables live in.
pub const ONLINE_ZONE: &str = "features";

/// The online table of a view: `features.<view>`.
pub fn online_table_name(view: &FeatureView) -> String {
    view.name.clone()
}

/// What a refresh committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineOutcome {
    /// `features.<view>`.
    pub table: String,
    pub version: u64,
    /// Keys inserted or updated.
    pub rows: u64,
    /// Whether the table was (re)built from the whole source.
    pub full: bool,
}

/// Brings a view's online table up to date; `.await` runs it.
pub struct OnlineRefresh<'a> {
    session: &'a LakeSession,
    view: &'a FeatureView,
    full_refresh: bool,
    run_id: Option<String>,
}

impl std::fmt::Debug for OnlineRefresh<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineRefresh")
            .field("view", &self.view.name)
            .field("full_refresh", &self.full_refresh)
            .finish()
    }
}

impl<'a> OnlineRefresh<'a> {
    pub fn new(session: &'a LakeSession, view: &'a FeatureView) -> Self {
        OnlineRefresh {
            session,
            view,
            full_refresh: false,
            run_id: None,
        }
    }

    /// Rebuild from the whole source instead of merging the newer rows.
    pub fn with_full_refresh(mut self, yes: bool) -> Self {
        self.full_refresh = yes;
        self
    }

    /// Recorded in the commit as `lake.run_id`.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// The latest row per key of the source rows `filter` keeps.
    fn latest_per_key_sql(&self, filter: &str) -> String {
        let view = self.view;
        let mut columns: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
        columns.push(&view.timestamp_field);
        if let Some(c) = &view.created_timestamp_field {
            columns.push(c);
        }
        for f in &view.features {
            if !columns.contains(&f.name.as_str()) {
                columns.push(&f.name);
            }
        }
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let keys = view
            .join_keys
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>();
        let ts = quote_ident(&view.timestamp_field);
        let mut order = format!("{ts} DESC");
        if let Some(c) = &view.created_timestamp_field {
            order.push_str(&format!(", {} DESC NULLS LAST", quote_ident(c)));
        }
        let not_null = keys
            .iter()
            .chain(std::iter::once(&ts))
            .map(|c| format!("{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "SELECT {list} FROM (SELECT {list}, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {order}) AS __lake_rank \
             FROM {} WHERE {not_null}{filter}) WHERE __lake_rank = 1",
            keys.join(", "),
            view.source_relation,
        )
    }

    /// A merged row replaces the stored one only when it is later by
    /// (timestamp, created timestamp): re-merging the rows at the watermark
    /// changes nothing.
    fn newer_condition(&self) -> String {
        let ts = quote_ident(&self.view.timestamp_field);
        let mut condition = format!("source.{ts} > target.{ts}");
        if let Some(c) = &self.view.created_timestamp_field {
            let c = quote_ident(c);
            condition = format!(
                "{condition} OR (source.{ts} = target.{ts} AND source.{c} IS NOT NULL \
                 AND (target.{c} IS NULL OR source.{c} > target.{c}))"
            );
        }
        condition
    }

    async fn run(self) -> Result<OnlineOutcome> {
        let name = online_table_name(self.view);
        let root = self.session.root().clone();
        let exists = root.has_table(ONLINE_ZONE, &name).await?;
        let full = self.full_refresh || !exists;
        let ctx = self.session.context();
        let ts = quote_ident(&self.view.timestamp_field);
        let filter = if full {
            String::new()
        } else {
            // Rows older than the newest one already merged cannot win.
            format!(
                " AND {ts} >= (SELECT max({ts}) FROM {ONLINE_ZONE}.{})",
                quote_ident(&name)
            )
        };
        let sql = self.latest_per_key_sql(&filter);
        let frame = ctx
            .sql_with_options(&sql, lake_storage::read_only())
            .await?;
        let node = json!(self.view.unique_id);
        let run_id = json!(self.run_id.clone().unwrap_or_default());
        let outcome = if full {
            TableWrite::new(
                root,
                ONLINE_ZONE,
                &name,
                frame.into_unoptimized_plan(),
                self.session.state(),
            )
            .with_schema_change(SchemaChange::Replace)
            .with_metadata("lake.node", node)
            .with_metadata("lake.run_id", run_id)
            .await?
        } else {
            TableMerge::new(
                root,
                ONLINE_ZONE,
                &name,
                frame,
                self.view.join_keys.clone(),
                self.session.state(),
            )
            .with_add_columns(true)
            .with_update_condition(self.newer_condition())
            .with_metadata("lake.node", node)
            .with_metadata("lake.run_id", run_id)
            .await?
        };
        self.session.catalog().note_written(ONLINE_ZONE, &name);
        Ok(OnlineOutcome {
            table: format!("{ONLINE_ZONE}.{name}"),
            version: outcome.version,
            rows: outcome.rows_written.unwrap_or(0),
            full,
        })
    }
}

impl<'a> IntoFuture for OnlineRefresh<'a> {
    type Output = Result<OnlineOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// An online table in memory: its rows, and the row of every key.
struct Loaded {
    version: u64,
    /// When the Delta log was last looked at for a newer version.
    checked: std::sync::Mutex<Instant>,
    rows: RecordBatch,
    keys: KeyInterner,
    /// The row of every key's group id.
    row_of_group: Vec<u32>,
}

/// Online tables kept in memory for lookups; a table is reloaded when a
/// newer Delta version of it is found (looked for at most once per
/// `recheck` interval, one second by default).
pub struct OnlineStore {
    root: Arc<LakeRoot>,
    recheck: Duration,
    tables: Mutex<HashMap<String, Arc<Loaded>>>,
}

impl std::fmt::Debug for OnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineStore")
            .field("recheck", &self.recheck)
            .finish()
    }
}

impl OnlineStore {
    pub fn new(root: Arc<LakeRoot>) -> OnlineStore {
        OnlineStore {
            root,
            recheck: Duration::from_secs(1),
            tables: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_recheck_interval(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// The table of `view`, loaded or reloaded as needed.
    async fn table(&self, ctx: &SessionContext, view: &FeatureView) -> Result<Arc<Loaded>> {
        let name = online_table_name(view);
        let mut tables = self.tables.lock().await;
        if let Some(loaded) = tables.get(&name) {
            let checked = *loaded.checked.lock().expect("not poisoned");
            if checked.elapsed() < self.recheck {
                return Ok(Arc::clone(loaded));
            }
            if self
                .root
                .is_latest_version(ONLINE_ZONE, &name, loaded.version)
                .await?
            {
                *loaded.checked.lock().expect("not poisoned") = Instant::now();
                return Ok(Arc::clone(loaded));
            }
        }
        let loaded = Arc::new(self.load(ctx, view, &name).await?);
        tables.insert(name, Arc::clone(&loaded));
        Ok(loaded)
    }

    async fn load(&self, ctx: &SessionContext, view: &FeatureView, name: &str) -> Result<Loaded> {
        let Some(table) = self.root.load_table(ONLINE_ZONE, name).await? else {
            return Err(FeatureError::BadRequest(format!(
                "feature view '{}' has no online table yet ({ONLINE_ZONE}.{name})\n  hint: run `lake build` to materialize it",
                view.name
            )));
        };
        let version = table.version().unwrap_or_default();
        let pinned = TableVersion::Version(version).pinned_name(name);
        let frame = ctx
            .sql_with_options(
                &format!("SELECT * FROM {ONLINE_ZONE}.{}", quote_ident(&pinned)),
                lake_storage::read_only(),
            )
            .await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        let rows = concat_batches(&schema, &batches)?;
        let key_columns = view
            .join_keys
            .iter()
            .map(|k| Ok(rows.column(rows.schema().index_of(k)?).clone()))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let types = key_columns.iter().map(|c| c.data_type().clone()).collect();
        let mut keys = KeyInterner::new(view.join_keys.clone(), types)?;
        let groups = keys.intern(&key_columns)?;
        let mut row_of_group = vec![u32::MAX; keys.len()];
        for (row, g) in groups.iter().enumerate() {
            if *g != NO_GROUP {
                row_of_group[*g as usize] = row as u32;
            }
        }
        Ok(Loaded {
            version,
            checked: std::sync::Mutex::new(Instant::now()),
            rows,
            keys,
            row_of_group,
        })
    }

    /// The latest features of every entity in `entities` (a batch of the
    /// views' join key columns), one output row per entity in order: the
    /// entity columns, then the features; NULLs for unknown entities.
    pub async fn lookup(
        &self,
        ctx: &SessionContext,
        views: &[ViewFeatures<'_>],
        entities: &RecordBatch,
    ) -> Result<RecordBatch> {
        let mut fields: Vec<Field> = entities
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
        let mut lookups = Vec::new();
        for request in views {
            let view = request.view;
            let table = self.table(ctx, view).await?;
            let keys = view
                .join_keys
                .iter()
                .map(|k| {
                    entities
                        .schema()
                        .index_of(k)
                        .map(|i| entities.column(i).clone())
                        .map_err(|_| {
                            FeatureError::BadRequest(format!(
                                "the entities have no column '{k}' (a join key of feature view '{}')",
                                view.name
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let keys = table.keys.align(&view.name, keys)?;
            table.keys.lookup(&keys, &mut lookups)?;
            // (0, row) of the table, or (1, 0): the NULL row.
            let indices: Vec<(usize, usize)> = lookups
                .iter()
                .map(|g| match *g {
                    NO_GROUP => (1, 0),
                    g => (0, table.row_of_group[g as usize] as usize),
                })
                .collect();
            for (feature, output) in &request.features {
                let i = table.rows.schema().index_of(feature).map_err(|_| {
                    FeatureError::BadRequest(format!(
                        "the online table of '{}' has no column '{feature}'\n  hint: run `lake build` to bring it up to date",
                        view.name
                    ))
                })?;
                let field = table.rows.schema().field(i).clone();
                let column = table.rows.column(i);
                let null = new_null_array(column.data_type(), 1);
                columns.push(interleave(&[column.as_ref(), null.as_ref()], &indices)?);
                fields.push(Field::new(output, field.data_type().clone(), true));
            }
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(entities.num_rows())),
        )?)
    }
}
