//! Lake's physical optimizer rules, run after DataFusion's own.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::{PhysicalExpr, conjunction};
use datafusion::physical_expr_common::physical_expr::snapshot_generation;

use datafusion::common::Result as DfResult;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::split_conjunction;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Applies dynamic filters while decoding Parquet, on scans whose only
/// predicate is dynamic filters.
///
/// A hash join's build side, once built, becomes a filter on the probe
/// side's scan (its keys' bounds and set). Without `pushdown_filters` the
/// scan only prunes row groups with it and decodes every row of the rest,
/// which the join then drops: on TPC-H Q18 the 6 M rows of `lineitem` for
/// 57 orders. Decoding the filter's columns first and the others only for
/// the rows that pass is what `pushdown_filters` does, but turned on for
/// every scan it also moves static filters into the decoder, which costs
/// more than it saves on most queries (TPC-H: Q6 2x slower). So this rule
/// turns it on only where the filters are all dynamic, and leaves scans with
/// static predicates (which stay in the `FilterExec` above the scan) as they
/// are. Each dynamic filter goes in behind a [`SelectivityGate`], which
/// stops applying it once it shows it keeps too many rows to pay.
#[derive(Debug, Default)]
pub(crate) struct DecodeDynamicFilters;

impl PhysicalOptimizerRule for DecodeDynamicFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if config.execution.parquet.pushdown_filters
            || !config.optimizer.enable_dynamic_filter_pushdown
        {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(scan) = with_dynamic_filters_decoded(&node) else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(scan))
        })
        .data()
    }

    fn name(&self) -> &str {
        "decode_dynamic_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node`, a Parquet scan whose predicate is only dynamic filters, with
/// `pushdown_filters` on; `None` for anything else.
fn with_dynamic_filters_decoded(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let config = node
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let source = config.file_source().downcast_ref::<ParquetSource>()?;
    let predicate = source.filter()?;
    let all_dynamic = split_conjunction(&predicate)
        .iter()
        .all(|part| part.downcast_ref::<DynamicFilterPhysicalExpr>().is_some());
    if !all_dynamic {
        return None;
    }
    // Each dynamic filter gets its own gate: the filters of one scan come
    // from different joins, and only some of them pay.
    let gated = conjunction(
        split_conjunction(&predicate)
            .into_iter()
            .map(|part| Arc::new(SelectivityGate::new(Arc::clone(part))) as _),
    );
    let source = source.with_predicate(gated).with_pushdown_filters(true);
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// How many rows a dynamic filter sees before its gate judges it.
const GATE_WARMUP_ROWS: u64 = 64 * 1024;

/// The share of rows a dynamic filter may keep and still be applied in the
/// decoder. Measured on TPC-H SF1: the filters that pay keep at most 8%
/// (Q7's orders, Q21's lineitem) down to 0.004% (Q18); those that lose keep
/// 15% (Q5) to 100% (most filters of partitioned joins); Q9's 5% is about
/// even.
const GATE_MAX_KEPT: f64 = 0.1;

/// A dynamic filter that stops filtering once it has shown it keeps most
/// rows.
///
/// In the decoder a filter costs its own evaluation (for a partitioned
/// join's filter, a hash of the keys for every row) and makes every other
/// column decode through a row selection. That pays when the filter drops
/// nearly everything (TPC-H Q18: 57 of 1.5 M orders) and loses when it keeps
/// much (the partitioned filters of Q5 and Q9 keep 15-100%), and only the
/// data tells which. So the gate counts the rows the filter sees and keeps,
/// shared by every partition and file of the scan, and once it has seen
/// [`GATE_WARMUP_ROWS`] keeping more than [`GATE_MAX_KEPT`] of them, answers `true`
/// without evaluating it. The join still applies its filter, so the answer
/// never changes. A new version of the filter (a TopK's tightened bound)
/// starts a new judgement.
///
/// Statistics pruning looks through the gate: its snapshot is the filter's.
#[derive(Debug)]
pub(crate) struct SelectivityGate {
    filter: Arc<dyn PhysicalExpr>,
    state: Arc<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The filter's generation the counts are for.
    generation: AtomicU64,
    seen: AtomicU64,
    kept: AtomicU64,
    open: AtomicBool,
}

impl SelectivityGate {
    pub(crate) fn new(filter: Arc<dyn PhysicalExpr>) -> Self {
        Self {
            filter,
            state: Arc::default(),
        }
    }

    /// Whether the gate lets every row through, after starting over if the
    /// filter changed since it was judged.
    fn is_open(&self) -> bool {
        let generation = snapshot_generation(&self.filter);
        let judged = self.state.generation.load(Ordering::Relaxed);
        if generation != judged
            && self
                .state
                .generation
                .compare_exchange(judged, generation, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.state.seen.store(0, Ordering::Relaxed);
            self.state.kept.store(0, Ordering::Relaxed);
            self.state.open.store(false, Ordering::Relaxed);
        }
        self.state.open.load(Ordering::Relaxed)
    }

    fn record(&self, rows: usize, kept: usize) {
        let seen = self.state.seen.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        let kept = self.state.kept.fetch_add(kept as u64, Ordering::Relaxed) + kept as u64;
        if seen >= GATE_WARMUP_ROWS && kept as f64 > seen as f64 * GATE_MAX_KEPT {
            self.state.open.store(true, Ordering::Relaxed);
        }
    }
}

impl PartialEq for SelectivityGate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state) && self.filter.eq(&other.filter)
    }
}

impl Eq for SelectivityGate {}

impl Hash for SelectivityGate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.filter.hash(state);
    }
}

impl fmt::Display for SelectivityGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SelectivityGate({})", self.filter)
    }
}

impl PhysicalExpr for SelectivityGate {
    fn data_type(&self, input_schema: &Schema) -> DfResult<DataType> {
        self.filter.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> DfResult<bool> {
        self.filter.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        if self.is_open() {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))));
        }
        let result = self.filter.evaluate(batch)?;
        let kept = match &result {
            ColumnarValue::Array(array) => array.as_boolean_opt().map_or(0, |a| a.true_count()),
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => batch.num_rows(),
            ColumnarValue::Scalar(_) => 0,
        };
        self.record(batch.num_rows(), kept);
        Ok(result)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.filter]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let (Some(filter), true) = (children.pop(), children.is_empty()) else {
            return internal_err!("SelectivityGate takes exactly one child");
        };
        Ok(Arc::new(Self {
            filter,
            state: Arc::clone(&self.state),
        }))
    }

    fn snapshot(&self) -> DfResult<Option<Arc<dyn PhysicalExpr>>> {
        // By the time this runs, the filter below is already a snapshot.
        Ok(Some(Arc::clone(&self.filter)))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.filter.fmt_sql(f)
    }
}
