//! The DataFusion session over a lake: the `lake` catalog (one schema per
//! zone, default `curated`), deltalake's planner (writes and deletes need
//! it), a spilling memory pool with a limit, and a spill directory.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use lake_storage::{CATALOG, LakeCatalog, LakeRoot};

use crate::decimal_arith::BoundDecimalArithmetic;
use crate::error::{EngineError, Result};
use crate::filter_order::OrderFilterConjuncts;
use crate::optimize::DecodeDynamicFilters;
use crate::shared_subplan::ShareRepeatedSubplans;

/// How much memory and where to spill.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Bytes the queries of this session may hold in memory before spilling
    /// (and failing if they cannot). Default: 3/4 of the machine's memory.
    pub memory_limit: Option<usize>,
    /// Where spill files go. Default: the system's temporary directory.
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of one query. Default: the number of cores.
    pub target_partitions: Option<usize>,
    /// Lets queries read files by path (`SELECT * FROM 'data/x.parquet'`),
    /// for people at a prompt; builds and servers leave it off.
    pub url_tables: bool,
}

/// A session over one lake root.
#[derive(Clone)]
pub struct LakeSession {
    ctx: SessionContext,
    catalog: Arc<LakeCatalog>,
}

impl std::fmt::Debug for LakeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSession")
            .field("root", &self.catalog.root().url().as_str())
            .finish()
    }
}

/// The machine's memory, from /proc/meminfo (None elsewhere).
fn total_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl LakeSession {
    /// Opens a session; lists the lake's tables so `SHOW TABLES` knows them.
    pub async fn open(root: Arc<LakeRoot>, options: &SessionOptions) -> Result<LakeSession> {
        let limit = options
            .memory_limit
            .or_else(|| total_memory().map(|m| m / 4 * 3))
            .unwrap_or(4 << 30);
        let mut runtime =
            RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        if let Some(dir) = &options.spill_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                EngineError::Session(format!("spill directory {}: {e}", dir.display()))
            })?;
            runtime = runtime.with_temp_file_path(dir);
        }
        let runtime = runtime
            .build_arc()
            .map_err(|e| EngineError::Session(e.to_string()))?;
        runtime.register_object_store(&url_of("memory://"), lake_storage::stores::MEMORY.clone());
        // A remote root's store (on S3, its bucket's, with the root's
        // storage options) for whatever reads it by URL: DataFusion knows
        // no s3:// store of its own.
        let root_url = root.url();
        if !matches!(root_url.scheme(), "file" | "memory")
            && let Some(host) = root_url.host_str()
            && let Ok(base) = url::Url::parse(&format!("{}://{host}", root_url.scheme()))
        {
            runtime.register_object_store(&base, root.object_store());
        }
        let config = query_config(options.target_partitions)
            .with_default_catalog_and_schema(CATALOG, "curated")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_query_planner(DeltaPlanner::new())
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        if options.url_tables {
            ctx = ctx.enable_url_table();
        }
        let catalog = LakeCatalog::new(root);
        catalog.register(&ctx);
        catalog.refresh().await?;
        Ok(LakeSession { ctx, catalog })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn catalog(&self) -> &Arc<LakeCatalog> {
        &self.catalog
    }

    pub fn root(&self) -> &Arc<LakeRoot> {
        self.catalog.root()
    }

    /// The session state, for writes.
    pub fn state(&self) -> Arc<SessionState> {
        Arc::new(self.ctx.state())
    }

    /// Plans a model's query: a `SELECT` (or `WITH ... SELECT`), never DDL
    /// or DML, whatever its SQL says.
    pub async fn plan_query(&self, sql: &str) -> datafusion::error::Result<DataFrame> {
        self.ctx
            .sql_with_options(sql, lake_storage::read_only())
            .await
    }
}

/// The query settings of every lake session (the TPC-H benchmark gives
/// plain DataFusion the same ones, to measure what Delta adds).
pub fn query_config(target_partitions: Option<usize>) -> SessionConfig {
    let mut config = SessionConfig::new();
    if let Some(n) = target_partitions {
        config = config.with_target_partitions(n.max(1));
    }
    config
}

/// DataFusion's physical optimizer rules with lake's: repeated
/// aggregations are shared before dynamic filters are pushed down (which
/// would tell the copies apart), the others run last.
pub(crate) fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let dynamic_filters = rules
        .iter()
        .position(|rule| rule.name() == "FilterPushdown(Post)")
        .unwrap_or(rules.len());
    rules.insert(dynamic_filters, Arc::new(ShareRepeatedSubplans));
    rules.push(Arc::new(DecodeDynamicFilters));
    rules.push(Arc::new(BoundDecimalArithmetic));
    rules.push(Arc::new(OrderFilterConjuncts));
    rules
}

fn url_of(s: &str) -> url::Url {
    url::Url::parse(s).expect("a valid static URL")
}
