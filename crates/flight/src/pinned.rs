//! The catalog one request sees: the lake's `lake` catalog as the
//! principal may see it, at the versions the request's ticket pins.
//!
//! Every request plans in its own `SessionContext` (a clone of the serving
//! session's state, so the memory pool and settings are shared) whose only
//! catalog is a [`RequestCatalog`]:
//!
//! - a zone the principal's role may not read answers every lookup with
//!   PERMISSION_DENIED, and is left out of listings; views are planned here
//!   too, so a view in `curated` that reads `raw` is refused for a reader;
//! - PII columns come back masked (strings as `***`, other types as NULL of
//!   the same type) for roles that do not see PII;
//! - `zone.table` opens at the Delta version the ticket recorded, and a view
//!   is planned from the definition the ticket recorded;
//! - every table version and view definition read is recorded, so the plan
//!   of a GetFlightInfo can be turned into a ticket that pins them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProviderList, SchemaProvider, TableProvider,
};
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableType, cast, lit};
use datafusion::prelude::SessionContext;
use lake_auth::Principal;
use lake_engine::LakeSession;
use lake_storage::{CATALOG, LakeCatalog, LakeRoot, TableVersion, ZONES, check_name};

use crate::error::ServeError;

/// PII columns by `zone.table` (keys and columns compared without case).
#[derive(Debug, Clone, Default)]
pub struct PiiColumns {
    by_table: HashMap<String, Vec<String>>,
}

impl PiiColumns {
    /// `zone.table` → column names.
    pub fn new<T, C>(tables: impl IntoIterator<Item = (T, C)>) -> PiiColumns
    where
        T: Into<String>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        let mut by_table: HashMap<String, Vec<String>> = HashMap::new();
        for (table, columns) in tables {
            by_table
                .entry(table.into().to_ascii_lowercase())
                .or_default()
                .extend(columns.into_iter().map(Into::into));
        }
        PiiColumns { by_table }
    }

    fn columns(&self, zone: &str, table: &str) -> Option<&[String]> {
        self.by_table
            .get(&format!("{zone}.{table}").to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.by_table.is_empty()
    }
}

/// What a ticket pins: table versions and view definitions by `zone.name`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pins {
    pub versions: BTreeMap<String, u64>,
    pub views: BTreeMap<String, String>,
}

/// What a request read: the same shape as [`Pins`], to put in a ticket.
pub(crate) type ReadSet = Pins;

/// Views nested deeper than this are refused (a view that reads itself
/// would otherwise plan forever).
const MAX_VIEW_DEPTH: usize = 16;

/// Plans a view with the request's own session (so its tables go through
/// this catalog too).
type SessionGetter = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

struct RequestState {
    root: Arc<LakeRoot>,
    /// The serving session's catalog, for its list of names (case folding,
    /// `SHOW TABLES`).
    known: Arc<LakeCatalog>,
    principal: Principal,
    pii: Arc<PiiColumns>,
    pins: Pins,
    read: Mutex<ReadSet>,
    /// Providers opened by this request, so two references to a table in
    /// one query read the same snapshot.
    opened: Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>,
    session: OnceLock<SessionGetter>,
    /// The serving session's state, for deltalake's scan settings (Parquet
    /// pushdown, view types). Deliberately not the request's own state:
    /// providers are kept in `opened`, and one that held the request's
    /// state would keep the request alive (state -> catalog -> provider).
    scan_state: Arc<SessionState>,
    view_depth: AtomicUsize,
}

impl std::fmt::Debug for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestState")
            .field("principal", &self.principal.name)
            .field("pins", &self.pins)
            .finish()
    }
}

/// The `lake` catalog of one request.
#[derive(Debug, Clone)]
pub(crate) struct RequestCatalog {
    state: Arc<RequestState>,
}

/// A session for one request over `session`'s lake, as `principal` may
/// see it, pinned to `pins`.
pub(crate) fn request_context(
    session: &LakeSession,
    principal: &Principal,
    pii: &Arc<PiiColumns>,
    pins: Pins,
) -> (SessionContext, RequestCatalog) {
    let ctx = SessionContext::new_with_state(session.context().state());
    // A fresh list: the request must not see (or change) the serving
    // session's catalogs, nor files by URL.
    ctx.register_catalog_list(Arc::new(MemoryCatalogProviderList::new()));
    let catalog = RequestCatalog {
        state: Arc::new(RequestState {
            root: session.root().clone(),
            known: session.catalog().clone(),
            principal: principal.clone(),
            pii: pii.clone(),
            pins,
            read: Mutex::new(ReadSet::default()),
            opened: Mutex::new(HashMap::new()),
            session: OnceLock::new(),
            scan_state: Arc::new(session.context().state()),
            view_depth: AtomicUsize::new(0),
        }),
    };
    let weak = ctx.state_weak_ref();
    let getter: SessionGetter = Box::new(move || weak.upgrade().map(|s| s.read().clone()));
    let _ = catalog.state.session.set(getter);
    ctx.register_catalog(CATALOG, Arc::new(catalog.clone()));
    (ctx, catalog)
}

impl RequestCatalog {
    /// The table versions and view definitions read so far.
    pub fn read_set(&self) -> ReadSet {
        self.state
            .read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The provider of `zone.name` as this request sees it (masked, pinned),
    /// or `None` when there is no such table or view.
    pub async fn table(
        &self,
        zone: &str,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, ServeError> {
        self.state.table(zone, name).await.map_err(ServeError::from)
    }

    /// Whether the principal may read `zone`.
    pub fn may_read(&self, zone: &str) -> bool {
        self.state.principal.role.can_read_zone(zone)
    }

    /// The error for a zone the principal may not read.
    pub fn zone_denied(&self, zone: &str) -> ServeError {
        self.state.zone_denied(zone)
    }
}

impl CatalogProvider for RequestCatalog {
    fn schema_names(&self) -> Vec<String> {
        ZONES
            .iter()
            .filter(|z| self.may_read(z))
            .map(|z| z.to_string())
            .collect()
    }

    /// Every zone answers, readable or not, so that a query naming a zone
    /// it may not read is told so rather than "not found".
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        ZONES.contains(&name).then(|| {
            Arc::new(ZoneView {
                zone: name.to_string(),
                state: self.state.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One zone of a [`RequestCatalog`].
#[derive(Debug)]
struct ZoneView {
    zone: String,
    state: Arc<RequestState>,
}

#[async_trait]
impl SchemaProvider for ZoneView {
    fn table_names(&self) -> Vec<String> {
        if !self.state.principal.role.can_read_zone(&self.zone) {
            return Vec::new();
        }
        self.state.known_names(&self.zone)
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.state.table(&self.zone, name).await
    }

    /// Answered from storage without opening the table (information_schema
    /// asks this of every table).
    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        if !self.state.principal.role.can_read_zone(&self.zone) || check_name(name).is_err() {
            return Ok(None);
        }
        let name = self.state.stored_name(&self.zone, name);
        let root = &self.state.root;
        if root
            .views()
            .get(&self.zone, &name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .is_some()
        {
            return Ok(Some(TableType::View));
        }
        let exists = root
            .has_table(&self.zone, &name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(exists.then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.state.principal.role.can_read_zone(&self.zone)
            && self
                .state
                .known_names(&self.zone)
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn storage_error(e: lake_storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl RequestState {
    fn zone_denied(&self, zone: &str) -> ServeError {
        ServeError::ZoneDenied {
            principal: self.principal.name.clone(),
            role: self.principal.role.to_string(),
            zone: zone.to_string(),
        }
    }

    fn known_names(&self, zone: &str) -> Vec<String> {
        self.known
            .names()
            .into_iter()
            .filter(|(z, _)| z == zone)
            .map(|(_, n)| n)
            .collect()
    }

    /// The stored spelling of `name`: SQL folds unquoted names to lower
    /// case, table folders may not be.
    fn stored_name(&self, zone: &str, name: &str) -> String {
        let names = self.known_names(zone);
        if names.iter().any(|n| n == name) {
            return name.to_string();
        }
        names
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| name.to_string())
    }

    async fn table(&self, zone: &str, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !self.principal.role.can_read_zone(zone) {
            return Err(DataFusionError::External(Box::new(self.zone_denied(zone))));
        }
        let (base, at) = TableVersion::split_pinned(name);
        if check_name(base).is_err() {
            // Not a lake name: nothing here by that name.
            return Ok(None);
        }
        let base = self.stored_name(zone, base);
        let asked = (zone.to_string(), at.pinned_name(&base));
        if let Some(provider) = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&asked)
        {
            return Ok(Some(provider.clone()));
        }
        let Some(provider) = self.open(zone, &base, at).await? else {
            return Ok(None);
        };
        let provider = self.masked(zone, &base, provider)?;
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(asked, provider.clone());
        Ok(Some(provider))
    }

    /// A view (planned here) or a Delta table at the pinned version.
    async fn open(
        &self,
        zone: &str,
        name: &str,
        at: TableVersion,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let key = format!("{zone}.{name}");
        if at != TableVersion::Latest {
            if self.view_sql(zone, name, &key).await?.is_some() {
                return Err(DataFusionError::Plan(format!(
                    "{key} is a view; only Delta tables have versions to travel to"
                )));
            }
            let table = lake_storage::load_travelled(&self.root, zone, name, at).await?;
            return match table {
                Some(table) => Ok(Some(self.delta_provider(&table).await?)),
                None => Ok(None),
            };
        }
        if let Some(sql) = self.view_sql(zone, name, &key).await? {
            return self.plan_view(&key, sql).await.map(Some);
        }
        let version = match self.pins.versions.get(&key) {
            Some(v) => TableVersion::Version(*v),
            None => TableVersion::Latest,
        };
        let table =
            self.root
                .load_table_at(zone, name, version)
                .await
                .map_err(|e| match version {
                    TableVersion::Version(v) => DataFusionError::Plan(format!(
                        "the ticket reads {key} at version {v}, which is gone: {e}"
                    )),
                    _ => storage_error(e),
                })?;
        let Some(table) = table else {
            return Ok(None);
        };
        if let Some(loaded) = table.version() {
            self.read
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .versions
                .entry(key)
                .or_insert(loaded);
        }
        Ok(Some(self.delta_provider(&table).await?))
    }

    /// deltalake's provider for a loaded table, with the serving session's
    /// Parquet scan settings (as the serving session's own catalog does).
    async fn delta_provider(
        &self,
        table: &lake_storage::deltalake::DeltaTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        table
            .table_provider()
            .with_session(self.scan_state.clone())
            .await
    }

    /// The view definition of `zone.name`: the ticket's if it pinned one,
    /// none if it pinned a table of that name, else the stored one.
    async fn view_sql(&self, zone: &str, name: &str, key: &str) -> DfResult<Option<String>> {
        if let Some(sql) = self.pins.views.get(key) {
            return Ok(Some(sql.clone()));
        }
        if self.pins.versions.contains_key(key) {
            return Ok(None);
        }
        let view = self
            .root
            .views()
            .get(zone, name)
            .await
            .map_err(storage_error)?;
        Ok(view.map(|v| v.sql))
    }

    /// Plans a view's SQL with this request's session: its tables go
    /// through this catalog, with the same role checks, masks and pins.
    async fn plan_view(&self, key: &str, sql: String) -> DfResult<Arc<dyn TableProvider>> {
        let depth = self.view_depth.fetch_add(1, Ordering::SeqCst);
        let result = async {
            if depth >= MAX_VIEW_DEPTH {
                return Err(DataFusionError::Plan(format!(
                    "view {key} nests more than {MAX_VIEW_DEPTH} views deep (does it read itself?)"
                )));
            }
            let state =
                self.session.get().and_then(|get| get()).ok_or_else(|| {
                    DataFusionError::Internal("the request's session is gone".into())
                })?;
            let plan =
                state
                    .create_logical_plan(&sql)
                    .await
                    .map_err(|e| match ServeError::from(e) {
                        // Keep permission errors as they are: they name the zone.
                        denied @ ServeError::ZoneDenied { .. } => {
                            DataFusionError::External(Box::new(denied))
                        }
                        other => {
                            DataFusionError::Plan(format!("view {key} no longer plans: {other}"))
                        }
                    })?;
            // A view is a query, whatever its stored definition says.
            lake_storage::read_only().verify_plan(&plan)?;
            Ok(plan)
        }
        .await;
        self.view_depth.fetch_sub(1, Ordering::SeqCst);
        let plan = result?;
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .views
            .entry(key.to_string())
            .or_insert_with(|| sql.clone());
        Ok(Arc::new(ViewTable::new(plan, Some(sql))))
    }

    /// `provider` with its PII columns masked, when the principal's role
    /// does not see PII.
    fn masked(
        &self,
        zone: &str,
        name: &str,
        provider: Arc<dyn TableProvider>,
    ) -> DfResult<Arc<dyn TableProvider>> {
        if self.principal.role.sees_pii() {
            return Ok(provider);
        }
        let Some(columns) = self.pii.columns(zone, name) else {
            return Ok(provider);
        };
        let is_pii = |field: &Field| columns.iter().any(|c| c.eq_ignore_ascii_case(field.name()));
        if !provider.schema().fields().iter().any(|f| is_pii(f)) {
            return Ok(provider);
        }
        let scan = LogicalPlanBuilder::scan(
            TableReference::partial(zone, name),
            provider_as_source(provider),
            None,
        )?
        .build()?;
        let columns: Vec<Expr> = scan
            .schema()
            .iter()
            .map(|(qualifier, field)| {
                if is_pii(field) {
                    masked_value(field.data_type()).alias(field.name())
                } else {
                    Expr::Column(Column::new(qualifier.cloned(), field.name()))
                }
            })
            .collect();
        let plan = LogicalPlanBuilder::from(scan).project(columns)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// What a masked column holds: `***` for strings, NULL otherwise (of the
/// column's type, so the schema stays).
fn masked_value(data_type: &DataType) -> Expr {
    let is_string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match data_type {
        t if is_string(t) => cast(lit("***"), t.clone()),
        DataType::Dictionary(_, value) if is_string(value) => cast(lit("***"), data_type.clone()),
        t => match ScalarValue::try_from(t) {
            Ok(null) => lit(null),
            Err(_) => cast(lit(ScalarValue::Null), t.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_engine::SessionOptions;
    use lake_storage::ViewDefinition;

    /// Nothing a request opens may keep the request alive (a provider
    /// holding the request's session would: session -> catalog ->
    /// provider -> session).
    #[tokio::test]
    async fn a_request_frees_its_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let root =
            LakeRoot::open(dir.path().to_str().unwrap(), dir.path(), HashMap::new()).unwrap();
        let session = LakeSession::open(Arc::new(root), &SessionOptions::default())
            .await
            .unwrap();
        session
            .execute_sql("create table curated.t as select 1 as a, 'x' as secret")
            .await
            .unwrap();
        session
            .root()
            .views()
            .put(&ViewDefinition {
                zone: "curated".into(),
                name: "v".into(),
                sql: "select * from curated.t".into(),
                written_by: None,
                written_at: "2026-01-01T00:00:00Z".into(),
            })
            .await
            .unwrap();
        session.catalog().refresh().await.unwrap();
        let pii = Arc::new(PiiColumns::new([("curated.t", ["secret"])]));
        let reader = Principal {
            name: "r".into(),
            role: lake_auth::Role::Reader,
        };
        let (ctx, catalog) = request_context(&session, &reader, &pii, Pins::default());
        let state = Arc::downgrade(&catalog.state);
        let rows = ctx
            .sql("select t.a, v.secret from curated.t join curated.v on t.a = v.a")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows[0].num_rows(), 1);
        let read = catalog.read_set();
        assert_eq!(read.versions.get("curated.t"), Some(&0));
        assert!(read.views.contains_key("curated.v"));
        drop((ctx, catalog, rows));
        assert!(
            state.upgrade().is_none(),
            "the request's catalog outlived it"
        );
    }
}
