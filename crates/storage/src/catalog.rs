//! The DataFusion catalog `lake` over a lake root: one schema per zone,
//! whose tables are the Delta tables and views found on storage. Tables are
//! opened at query time, so a fresh process sees everything the last build
//! wrote.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionContext};

/// What a query may be: no DDL, no DML, no SET or other statements. Views,
/// `lake show` and the server plan with these.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}
use parking_lot::RwLock;

use crate::error::{Result, StorageError};
use crate::root::{LakeRoot, TableVersion, ZONES, check_name};
use crate::scan_stats::DeltaProvider;

/// The catalog's name in SQL.
pub const CATALOG: &str = "lake";

/// Views are planned with the session that queries them; the catalog only
/// holds a weak handle so it does not keep the session alive.
type SessionHandle = Arc<OnceLock<Weak<RwLock<SessionState>>>>;

/// `(zone, name)`.
type TableKey = (String, String);

/// A provider, with the tables its plan reads (empty for a Delta table).
type Loaded = (Arc<dyn TableProvider>, Vec<TableKey>);

/// What [`ZoneSchema::load`] opened.
struct Opened {
    provider: Arc<dyn TableProvider>,
    /// The tables a view's plan reads (none for a Delta table).
    reads: Vec<TableKey>,
    /// The Delta version (none for a view).
    version: Option<u64>,
}

/// Providers kept for the length of a build: Delta snapshots and planned
/// views, each with the `zone.name`s its plan reads.
#[derive(Debug, Default)]
struct ProviderCache {
    enabled: bool,
    entries: HashMap<TableKey, Loaded>,
    /// When the build cache is off (a REPL, a server: other processes
    /// write): Delta providers by version, reused while the log has no
    /// newer commit, which one listing of the log tells.
    checked: HashMap<TableKey, (u64, Arc<dyn TableProvider>)>,
}

impl ProviderCache {
    /// Drops `zone.name` and every cached view that reads it, directly or
    /// through other cached views.
    fn invalidate(&mut self, zone: &str, name: &str) {
        let mut gone: Vec<(String, String)> = vec![(zone.to_string(), name.to_string())];
        let mut i = 0;
        while i < gone.len() {
            let key = gone[i].clone();
            self.entries.remove(&key);
            let readers: Vec<(String, String)> = self
                .entries
                .iter()
                .filter(|(_, (_, deps))| {
                    deps.iter()
                        .any(|d| d.0 == key.0 && d.1.eq_ignore_ascii_case(&key.1))
                })
                .map(|(k, _)| k.clone())
                .collect();
            gone.extend(readers);
            i += 1;
        }
    }
}

/// The `lake` catalog.
#[derive(Debug)]
pub struct LakeCatalog {
    root: Arc<LakeRoot>,
    schemas: Vec<Arc<ZoneSchema>>,
    cache: Arc<RwLock<ProviderCache>>,
}

impl LakeCatalog {
    pub fn new(root: Arc<LakeRoot>) -> Arc<LakeCatalog> {
        let session: SessionHandle = Arc::new(OnceLock::new());
        let cache: Arc<RwLock<ProviderCache>> = Arc::default();
        let schemas = ZONES
            .iter()
            .map(|zone| {
                Arc::new(ZoneSchema {
                    root: root.clone(),
                    zone: zone.to_string(),
                    names: RwLock::new(BTreeSet::new()),
                    external: RwLock::new(HashMap::new()),
                    session: session.clone(),
                    cache: cache.clone(),
                })
            })
            .collect();
        Arc::new(LakeCatalog {
            root,
            schemas,
            cache,
        })
    }

    /// Registers the catalog with `ctx` (as `lake`) and lets its views be
    /// planned with `ctx`'s session.
    pub fn register(self: &Arc<Self>, ctx: &SessionContext) {
        if let Some(schema) = self.schemas.first() {
            let _ = schema.session.set(ctx.state_weak_ref());
        }
        ctx.register_catalog(CATALOG, self.clone());
    }

    pub fn root(&self) -> &Arc<LakeRoot> {
        &self.root
    }

    /// Lists tables and views of every zone again (for `SHOW TABLES`,
    /// `information_schema` and completion; lookups by name always go to
    /// storage).
    pub async fn refresh(&self) -> Result<()> {
        let views = self.root.views();
        for schema in &self.schemas {
            let mut names: BTreeSet<String> = self
                .root
                .list_tables(&schema.zone)
                .await?
                .into_iter()
                .collect();
            names.extend(views.list(&schema.zone).await?);
            *schema.names.write() = names;
        }
        Ok(())
    }

    /// Keeps table providers (Delta snapshots, planned views) between
    /// queries until [`note_written`](Self::note_written) says their data
    /// changed. For a build, where this process is the writer; a REPL or a
    /// server must see other processes' writes and leaves it off.
    pub fn cache_providers(&self, enabled: bool) {
        let mut cache = self.cache.write();
        cache.enabled = enabled;
        cache.entries.clear();
        cache.checked.clear();
    }

    /// Records that `zone.name` was written: it exists now, and cached
    /// providers that read it are dropped.
    pub fn note_written(&self, zone: &str, name: &str) {
        if let Some(schema) = self.schemas.iter().find(|s| s.zone == zone) {
            schema.names.write().insert(name.to_string());
        }
        self.cache.write().invalidate(zone, name);
    }

    /// Every known `zone.name`.
    pub fn names(&self) -> Vec<(String, String)> {
        self.schemas
            .iter()
            .flat_map(|s| {
                s.names
                    .read()
                    .iter()
                    .map(|n| (s.zone.clone(), n.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        ZONES.iter().map(|z| z.to_string()).collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas
            .iter()
            .find(|s| s.zone == name)
            .map(|s| s.clone() as Arc<dyn SchemaProvider>)
    }
}

/// One zone.
#[derive(Debug)]
pub struct ZoneSchema {
    root: Arc<LakeRoot>,
    zone: String,
    names: RwLock<BTreeSet<String>>,
    /// Tables registered by the session (`CREATE EXTERNAL TABLE`): files
    /// read in place, not Delta tables, gone when the session ends.
    external: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    session: SessionHandle,
    cache: Arc<RwLock<ProviderCache>>,
}

/// The `zone.name`s a plan scans (views included, not looked through).
fn scanned_tables(plan: &LogicalPlan) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let zone = scan.table_name.schema().unwrap_or("curated").to_string();
            tables.push((zone, scan.table_name.table().to_string()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables
}

/// `zone.name` at a version or a point in time, for a query that travels
/// there: a version that is not there is the query's mistake (a plan error
/// naming the table), not a storage failure.
pub async fn load_travelled(
    root: &LakeRoot,
    zone: &str,
    name: &str,
    at: TableVersion,
) -> DfResult<Option<deltalake::DeltaTable>> {
    root.load_table_at(zone, name, at)
        .await
        .map_err(|e| match at {
            TableVersion::Version(v) => {
                DataFusionError::Plan(format!("{zone}.{name} has no version {v}: {e}"))
            }
            TableVersion::AsOf(t) => {
                DataFusionError::Plan(format!("{zone}.{name} has no version as of {t}: {e}"))
            }
            TableVersion::Latest => external(e),
        })
}

fn external(e: StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ZoneSchema {
    /// deltalake's provider for a loaded table, with the session's Parquet
    /// scan settings (filter pushdown, view types): without a session it
    /// would push every filter into the Parquet decoder, which is slower
    /// than filtering decoded batches for most queries (TPC-H: +60%).
    async fn delta_provider(
        &self,
        table: &deltalake::DeltaTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let builder = table.table_provider();
        let provider = match self.session.get().and_then(Weak::upgrade) {
            Some(state) => {
                let state = state.read().clone();
                builder.with_session(Arc::new(state)).await?
            }
            None => builder.await?,
        };
        Ok(DeltaProvider::for_table(table, provider))
    }

    /// Whether a Delta table opened at `version` is still what `name`
    /// means: a pinned version always is; the latest one while no view took
    /// the name and the log has no newer commit.
    async fn unchanged_since(&self, name: &str, at: TableVersion, version: u64) -> DfResult<bool> {
        if at != TableVersion::Latest {
            return Ok(true);
        }
        if self
            .root
            .views()
            .get(&self.zone, name)
            .await
            .map_err(external)?
            .is_some()
        {
            return Ok(false);
        }
        self.root
            .is_latest_version(&self.zone, name, version)
            .await
            .map_err(external)
    }

    async fn opened_delta(&self, table: &deltalake::DeltaTable) -> DfResult<Opened> {
        Ok(Opened {
            provider: self.delta_provider(table).await?,
            reads: Vec::new(),
            version: table.version(),
        })
    }

    /// Opens `name` from storage: a view (planned now, with what it reads)
    /// or a Delta table.
    async fn load(&self, name: &str) -> DfResult<Option<Opened>> {
        let (name, at) = TableVersion::split_pinned(name);
        if check_name(name).is_err() {
            // Not a lake name (a file path, say): another resolver's turn.
            return Ok(None);
        }
        if at != TableVersion::Latest {
            return self.load_pinned(name, at).await;
        }
        if let Some(view) = self
            .root
            .views()
            .get(&self.zone, name)
            .await
            .map_err(external)?
        {
            let state = self.session.get().and_then(Weak::upgrade).ok_or_else(|| {
                DataFusionError::Internal(
                    "the lake catalog has no session to plan views with".into(),
                )
            })?;
            // Clone the state: the lock must not be held across planning,
            // which may come back here for the view's own inputs.
            let state = state.read().clone();
            let plan = state.create_logical_plan(&view.sql).await.map_err(|e| {
                DataFusionError::Plan(format!("view {}.{name} no longer plans: {e}", self.zone))
            })?;
            // A view is a query, whatever its stored definition says.
            read_only().verify_plan(&plan)?;
            let reads = scanned_tables(&plan);
            return Ok(Some(Opened {
                provider: Arc::new(ViewTable::new(plan, Some(view.sql))),
                reads,
                version: None,
            }));
        }
        let Some(table) = self
            .root
            .load_table(&self.zone, name)
            .await
            .map_err(external)?
        else {
            return Ok(None);
        };
        self.names.write().insert(name.to_string());
        Ok(Some(self.opened_delta(&table).await?))
    }

    /// A Delta table at a version or a point in time.
    async fn load_pinned(&self, name: &str, at: TableVersion) -> DfResult<Option<Opened>> {
        let zone = &self.zone;
        if self
            .root
            .views()
            .get(zone, name)
            .await
            .map_err(external)?
            .is_some()
        {
            return Err(DataFusionError::Plan(format!(
                "{zone}.{name} is a view; only Delta tables have versions to travel to"
            )));
        }
        let table = load_travelled(&self.root, zone, name, at).await?;
        match table {
            Some(table) => Ok(Some(self.opened_delta(&table).await?)),
            None => Ok(None),
        }
    }

    /// The stored name for `name`: SQL folds unquoted names to lower case,
    /// files may not be.
    fn stored_name(&self, name: &str) -> String {
        let names = self.names.read();
        if names.contains(name) {
            return name.to_string();
        }
        names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

#[async_trait]
impl SchemaProvider for ZoneSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.names.read().iter().cloned().collect();
        names.extend(self.external.read().keys().cloned());
        names.into_iter().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(provider) = self.external.read().get(name) {
            return Ok(Some(provider.clone()));
        }
        let (base, at) = TableVersion::split_pinned(name);
        let name = match at {
            TableVersion::Latest => self.stored_name(name),
            _ => at.pinned_name(&self.stored_name(base)),
        };
        let key = (self.zone.clone(), name.clone());
        let checked = {
            let cache = self.cache.read();
            if cache.enabled
                && let Some((provider, _)) = cache.entries.get(&key)
            {
                return Ok(Some(provider.clone()));
            }
            cache.checked.get(&key).cloned()
        };
        if let Some((version, provider)) = checked
            && self.unchanged_since(&name, at, version).await?
        {
            return Ok(Some(provider));
        }
        let Some(opened) = self.load(&name).await? else {
            self.cache.write().checked.remove(&key);
            return Ok(None);
        };
        let mut cache = self.cache.write();
        if cache.enabled {
            cache
                .entries
                .insert(key, (opened.provider.clone(), opened.reads));
        } else if let Some(version) = opened.version {
            cache
                .checked
                .insert(key, (version, opened.provider.clone()));
        }
        Ok(Some(opened.provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        if self.external.read().contains_key(name) {
            return true;
        }
        let names = self.names.read();
        names.contains(name) || names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// `CREATE EXTERNAL TABLE`: kept for this session only; lake's own
    /// tables are Delta tables written by builds and `CREATE TABLE ... AS`.
    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if self.table_exist(&name) && !self.external.read().contains_key(&name) {
            return Err(DataFusionError::Plan(format!(
                "{}.{name} is a lake table or view; pick another name for the external table",
                self.zone
            )));
        }
        Ok(self.external.write().insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.external.write().remove(name) {
            Some(t) => Ok(Some(t)),
            None if self.table_exist(name) => Err(DataFusionError::Plan(format!(
                "{}.{name} is a lake table or view; lake sql does not drop those",
                self.zone
            ))),
            None => Ok(None),
        }
    }
}
