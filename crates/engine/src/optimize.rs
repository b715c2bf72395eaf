//! Lake's physical optimizer rules, run after DataFusion's own.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue, internal_err};
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{PhysicalExpr, conjunction, split_conjunction};
use datafusion::physical_expr_common::physical_expr::{
    snapshot_generation, snapshot_physical_expr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashExpr;

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
    let parts = split_conjunction(&predicate);
    let all_dynamic = parts
        .iter()
        .all(|part| part.downcast_ref::<DynamicFilterPhysicalExpr>().is_some());
    if !all_dynamic {
        return None;
    }
    // Each dynamic filter gets its own gate: the filters of one scan come
    // from different joins, and only some of them pay. What a filter costs
    // grows with the columns decoded through its row selection: the scan's
    // other columns and the other filters' columns.
    let names = |expr: &Arc<dyn PhysicalExpr>| -> HashSet<String> {
        collect_columns(expr)
            .into_iter()
            .map(|c| c.name().to_string())
            .collect()
    };
    let mut decoded = names(&predicate);
    decoded.extend(node.schema().fields().iter().map(|f| f.name().clone()));
    let gated = conjunction(parts.into_iter().map(|part| {
        let own = names(part);
        let others = decoded.iter().filter(|c| !own.contains(*c)).count();
        let max_kept = GATE_MAX_KEPT / others.max(1) as f64;
        Arc::new(SelectivityGate::new(Arc::clone(part), max_kept)) as _
    }));
    let source = source.with_predicate(gated).with_pushdown_filters(true);
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// How many rows a dynamic filter sees before its gate judges it.
const GATE_WARMUP_ROWS: u64 = 64 * 1024;

/// The share of rows a dynamic filter may keep and still be applied in the
/// decoder, when one other column is decoded through its selection; with n
/// columns, a share n times smaller. Measured on TPC-H SF1: the filters that
/// pay keep 6-8% with one other column (Q7's orders, Q21's lineitem) and
/// 0.004-0.2% with more (Q8, Q17, Q18); those that lose keep 5% with five
/// (Q9's lineitem), 15% (Q5) and up to 100% (most filters of partitioned
/// joins).
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
/// [`GATE_WARMUP_ROWS`] keeping more than its share of them (from
/// [`GATE_MAX_KEPT`]), answers `true` without evaluating it. The join still
/// applies its filter, so the answer never changes. A new version of the
/// filter (a TopK's tightened bound) starts a new judgement.
///
/// While closed, the gate evaluates each version of the filter in its
/// [`cheapest_form`]. Statistics pruning looks through the gate: its
/// snapshot is the filter's.
#[derive(Debug)]
pub(crate) struct SelectivityGate {
    filter: Arc<dyn PhysicalExpr>,
    /// The share of rows above which the gate opens.
    max_kept: f64,
    state: Arc<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The filter's generation the counts are for.
    generation: AtomicU64,
    seen: AtomicU64,
    kept: AtomicU64,
    open: AtomicBool,
    /// The filter's current version in its cheapest form, and the version.
    cheapest: Mutex<Option<(u64, Arc<dyn PhysicalExpr>)>>,
}

impl SelectivityGate {
    pub(crate) fn new(filter: Arc<dyn PhysicalExpr>, max_kept: f64) -> Self {
        Self {
            filter,
            max_kept,
            state: Arc::default(),
        }
    }

    /// Whether the gate lets every row through, after starting over if the
    /// filter changed since it was judged.
    fn is_open(&self, generation: u64) -> bool {
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
        if seen >= GATE_WARMUP_ROWS && kept as f64 > seen as f64 * self.max_kept {
            self.state.open.store(true, Ordering::Relaxed);
        }
    }
}

/// `filter` (a snapshot of a join's dynamic filter) with its set-membership
/// tests made as cheap as they can be: a partitioned join's `CASE
/// hash(key) % n WHEN i THEN key IN (set i) ... END` becomes one `key IN
/// (every set)`, which needs no hash and no per-partition split of the
/// batch, and the bounds next to a set (`key >= min AND key <= max AND key
/// IN (set)`) go, as the set implies them. Keys of one partition never hash
/// to another, so the answer is the same; filters with hash-table lookups
/// (large build sides) stay as they are.
fn cheapest_form(
    filter: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> DfResult<Arc<dyn PhysicalExpr>> {
    filter
        .transform_up(|node| {
            if let Some(set) = set_without_bounds(&node) {
                return Ok(Transformed::yes(set));
            }
            let Some(case) = node.downcast_ref::<CaseExpr>() else {
                return Ok(Transformed::no(node));
            };
            let routed_by_hash = case
                .expr()
                .and_then(|e| e.downcast_ref::<BinaryExpr>())
                .is_some_and(|m| {
                    *m.op() == Operator::Modulo && m.left().downcast_ref::<HashExpr>().is_some()
                });
            if !routed_by_hash || case.else_expr().is_some_and(|e| !is_false(e)) {
                return Ok(Transformed::no(node));
            }
            let mut key: Option<Arc<dyn PhysicalExpr>> = None;
            let mut values = Vec::new();
            for (_, then) in case.when_then_expr() {
                if is_false(then) {
                    continue;
                }
                let Some(set) = then.downcast_ref::<InListExpr>() else {
                    return Ok(Transformed::no(node));
                };
                if set.negated() || key.as_ref().is_some_and(|k| !k.eq(set.expr())) {
                    return Ok(Transformed::no(node));
                }
                key = Some(Arc::clone(set.expr()));
                values.extend(set.list().iter().cloned());
            }
            let Some(key) = key else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(
                Arc::new(InListExpr::try_new(key, values, false, schema)?) as _,
            ))
        })
        .data()
}

/// For `key >= min AND key <= max AND key IN (set)`, the `IN` alone;
/// `None` for anything else.
fn set_without_bounds(expr: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    let parts = split_conjunction(expr);
    let (last, bounds) = parts.split_last()?;
    let set = last.downcast_ref::<InListExpr>()?;
    let only_bounds = bounds.iter().all(|part| {
        part.downcast_ref::<BinaryExpr>().is_some_and(|b| {
            matches!(b.op(), Operator::GtEq | Operator::LtEq)
                && b.left().eq(set.expr())
                && b.right().downcast_ref::<Literal>().is_some()
        })
    });
    (!set.negated() && !bounds.is_empty() && only_bounds).then(|| Arc::clone(*last))
}

fn is_false(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|l| *l.value() == ScalarValue::Boolean(Some(false)))
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
        let generation = snapshot_generation(&self.filter);
        if self.is_open(generation) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))));
        }
        let filter = {
            let mut cheapest = self
                .state
                .cheapest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match &*cheapest {
                Some((judged, filter)) if *judged == generation => Arc::clone(filter),
                _ => {
                    let snapshot = snapshot_physical_expr(Arc::clone(&self.filter))?;
                    // The rewrite is only an optimization: if it cannot be
                    // made, the filter as it is still answers.
                    let filter =
                        cheapest_form(Arc::clone(&snapshot), &batch.schema()).unwrap_or(snapshot);
                    *cheapest = Some((generation, Arc::clone(&filter)));
                    filter
                }
            }
        };
        let result = filter.evaluate(batch)?;
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
            max_kept: self.max_kept,
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, lit};
    use datafusion::physical_plan::joins::SeededRandomState;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("k", DataType::Int64, false)])
    }

    /// `k >= min AND k <= max AND k IN (values)`, as a join builds it.
    fn bounded_set(values: &[i64]) -> Arc<dyn PhysicalExpr> {
        let k = col("k", &schema()).unwrap();
        let set = InListExpr::try_new(
            Arc::clone(&k),
            values.iter().map(|v| lit(*v)).collect(),
            false,
            &schema(),
        )
        .unwrap();
        let min = BinaryExpr::new(
            Arc::clone(&k),
            Operator::GtEq,
            lit(*values.iter().min().unwrap()),
        );
        let max = BinaryExpr::new(k, Operator::LtEq, lit(*values.iter().max().unwrap()));
        conjunction([Arc::new(min) as _, Arc::new(max) as _, Arc::new(set) as _])
    }

    /// `CASE hash(k) % 3 WHEN 0 THEN .. WHEN 1 THEN .. WHEN 2 THEN false ELSE false END`.
    fn partitioned(branches: Vec<Arc<dyn PhysicalExpr>>) -> Arc<dyn PhysicalExpr> {
        let hash = HashExpr::new(
            vec![col("k", &schema()).unwrap()],
            SeededRandomState::with_seed(0),
            "hash_repartition".to_string(),
        );
        let n = lit(ScalarValue::UInt64(Some(branches.len() as u64)));
        let route = BinaryExpr::new(Arc::new(hash), Operator::Modulo, n);
        let when_then = branches
            .into_iter()
            .enumerate()
            .map(|(i, then)| (lit(ScalarValue::UInt64(Some(i as u64))), then))
            .collect();
        Arc::new(CaseExpr::try_new(Some(Arc::new(route)), when_then, Some(lit(false))).unwrap())
    }

    fn answers(filter: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Vec<bool> {
        let result = filter
            .evaluate(batch)
            .unwrap()
            .into_array(batch.num_rows())
            .unwrap();
        result
            .as_boolean()
            .iter()
            .map(|v| v == Some(true))
            .collect()
    }

    #[test]
    fn a_partitioned_joins_sets_become_one_set_with_the_same_answers() {
        let keys: Vec<i64> = (0..200).collect();
        let batch = RecordBatch::try_new(
            Arc::new(schema()),
            vec![Arc::new(Int64Array::from(keys.clone()))],
        )
        .unwrap();
        // Route the build side's keys the way the filter routes probe rows.
        let build = [3i64, 17, 42, 99, 150, 151, 199];
        let hash = HashExpr::new(
            vec![col("k", &schema()).unwrap()],
            SeededRandomState::with_seed(0),
            String::new(),
        );
        let build_batch = RecordBatch::try_new(
            Arc::new(schema()),
            vec![Arc::new(Int64Array::from(build.to_vec()))],
        )
        .unwrap();
        let hashes = hash
            .evaluate(&build_batch)
            .unwrap()
            .into_array(build.len())
            .unwrap();
        let hashes = hashes.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        let mut sets = vec![Vec::new(); 3];
        for (key, hash) in build.iter().zip(hashes.values()) {
            sets[(*hash % 3) as usize].push(*key);
        }
        assert!(
            sets.iter().filter(|s| !s.is_empty()).count() >= 2,
            "{sets:?}"
        );
        let branches = sets
            .iter()
            .map(|set| {
                if set.is_empty() {
                    lit(false)
                } else {
                    bounded_set(set)
                }
            })
            .collect();
        let filter = partitioned(branches);

        let cheapest = cheapest_form(Arc::clone(&filter), &schema()).unwrap();
        let set = cheapest.downcast_ref::<InListExpr>().expect("one IN");
        assert_eq!(set.len(), build.len(), "{cheapest}");
        assert_eq!(answers(&cheapest, &batch), answers(&filter, &batch));
        let kept: Vec<i64> = keys
            .iter()
            .zip(answers(&cheapest, &batch))
            .filter_map(|(k, keep)| keep.then_some(*k))
            .collect();
        assert_eq!(kept, build);
    }

    #[test]
    fn a_collect_left_joins_set_loses_its_bounds_and_other_filters_stay() {
        let set = bounded_set(&[5, 9]);
        let cheapest = cheapest_form(Arc::clone(&set), &schema()).unwrap();
        assert!(
            cheapest.downcast_ref::<InListExpr>().is_some(),
            "{cheapest}"
        );

        // Bounds of another column, or a range without a set, stay.
        let k = col("k", &schema()).unwrap();
        let range: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(k, Operator::GtEq, lit(3i64)));
        let unchanged = cheapest_form(Arc::clone(&range), &schema()).unwrap();
        assert_eq!(unchanged.to_string(), range.to_string());

        // A branch that is not a set (a hash-table lookup, here any other
        // test) keeps the CASE.
        let filter = partitioned(vec![bounded_set(&[1]), Arc::clone(&range)]);
        let kept = cheapest_form(Arc::clone(&filter), &schema()).unwrap();
        assert!(kept.downcast_ref::<CaseExpr>().is_some(), "{kept}");
    }
}
