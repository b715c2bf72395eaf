//! Identical aggregations in one plan computed once.
//!
//! DataFusion inlines every reference to a common table expression, so a
//! CTE read twice is planned, scanned and aggregated twice: TPC-H Q15 reads
//! `lineitem` once for its `revenue` rows and once more for their maximum.
//! [`ShareRepeatedSubplans`] finds aggregations whose whole subplans are
//! identical (same operators, expressions, types, files and byte ranges)
//! and puts each behind a [`SharedSubplanExec`]: the first to execute runs
//! the subplan once, and every reader replays its buffered output (an
//! aggregation's output, so usually small; the buffer is accounted in the
//! session's memory pool).
//!
//! Only subplans made of scans of files, filters, projections,
//! repartitions and aggregations (not TopK ones), over expressions of kinds
//! whose `Debug` says all that decides their answer (no volatile function
//! like `random()`, no scalar subquery, no dynamic filter), are compared:
//! those are fully described by what is compared, and two of them give the
//! same rows.
//! The rule runs before DataFusion pushes dynamic filters down, so a
//! join's filter does not tell the two copies apart; it is not pushed
//! into a shared subplan.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::common::{DataFusionError, Result as DfResult, internal_err};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr,
    Literal, NegativeExpr, NotExpr, TryCastExpr,
};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion_common_runtime::SpawnedTask;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};

/// Puts aggregations that occur more than once, with identical subplans,
/// behind one [`SharedSubplanExec`] each.
#[derive(Debug, Default)]
pub(crate) struct ShareRepeatedSubplans;

impl PhysicalOptimizerRule for ShareRepeatedSubplans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut shapes = Shapes::default();
        shapes.identify(&plan)?;
        // The aggregations to share and their readers: the outermost
        // repeated ones, counted where they are read (not inside another
        // shared one, which reads them once). Dropping a shape read only
        // once exposes what is inside it, so count until nothing changes.
        let mut readers: Option<HashMap<usize, usize>> = None;
        loop {
            let mut counted: HashMap<usize, usize> = HashMap::new();
            plan.apply(|node| match shapes.repeated_aggregation(node) {
                Some(shape) if readers.as_ref().is_none_or(|r| r.contains_key(&shape)) => {
                    *counted.entry(shape).or_default() += 1;
                    Ok(TreeNodeRecursion::Jump)
                }
                _ => Ok(TreeNodeRecursion::Continue),
            })?;
            counted.retain(|_, count| *count > 1);
            if readers.as_ref() == Some(&counted) {
                break;
            }
            readers = Some(counted);
        }
        let readers = readers.unwrap_or_default();
        if readers.is_empty() {
            return Ok(plan);
        }
        let mut states: HashMap<usize, Arc<SharedState>> = HashMap::new();
        plan.transform_down(|node| {
            let Some(shape) = shapes.repeated_aggregation(&node) else {
                return Ok(Transformed::no(node));
            };
            let Some(&count) = readers.get(&shape) else {
                return Ok(Transformed::no(node));
            };
            let state = states
                .entry(shape)
                .or_insert_with(|| Arc::new(SharedState::new(count)));
            let shared = SharedSubplanExec::new(node, Arc::clone(state));
            Ok(Transformed::new(
                Arc::new(shared) as _,
                true,
                TreeNodeRecursion::Jump,
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        "share_repeated_subplans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Identifies subplans by shape: two nodes get the same shape number when
/// their subplans are identical. Only comparable subplans get one.
#[derive(Default)]
struct Shapes {
    /// A shape: a node's own description and its children's shapes.
    numbers: HashMap<(String, Vec<usize>), usize>,
    /// Each node of the plan (by address) and its shape, if comparable.
    of_node: HashMap<usize, Option<usize>>,
    /// How many nodes of the plan have each shape.
    counts: HashMap<usize, usize>,
}

impl Shapes {
    /// Numbers `plan` and every node below it; returns the plan's shape.
    fn identify(&mut self, plan: &Arc<dyn ExecutionPlan>) -> DfResult<Option<usize>> {
        let mut children = Vec::new();
        let mut comparable = true;
        for child in plan.children() {
            match self.identify(child)? {
                Some(shape) => children.push(shape),
                None => comparable = false,
            }
        }
        let shape = match (comparable, describe(plan)?) {
            (true, Some(description)) => {
                let next = self.numbers.len();
                let shape = *self.numbers.entry((description, children)).or_insert(next);
                *self.counts.entry(shape).or_default() += 1;
                Some(shape)
            }
            _ => None,
        };
        self.of_node.insert(address(plan), shape);
        Ok(shape)
    }

    /// The shape of `node` if it is an aggregation whose identical subplan
    /// occurs more than once in the plan.
    fn repeated_aggregation(&self, node: &Arc<dyn ExecutionPlan>) -> Option<usize> {
        node.downcast_ref::<AggregateExec>()?;
        let shape = (*self.of_node.get(&address(node))?)?;
        (self.counts.get(&shape).copied().unwrap_or(0) > 1).then_some(shape)
    }
}

fn address(plan: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(plan).cast::<()>() as usize
}

/// Everything that decides the rows `node` produces from its children's,
/// or `None` when `node` is not an operator this rule compares.
fn describe(node: &Arc<dyn ExecutionPlan>) -> DfResult<Option<String>> {
    let mut description = String::new();
    if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
        let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(None);
        };
        // The display abbreviates long file lists: name every file.
        write!(description, "{}", files.object_store_url).map_err(fmt_error)?;
        for (i, group) in files.file_groups.iter().enumerate() {
            for file in group.iter() {
                if !file.extensions.is_empty() {
                    return Ok(None);
                }
                write!(
                    description,
                    "|{i}:{}:{:?}:{:?}",
                    file.object_meta.location, file.range, file.partition_values
                )
                .map_err(fmt_error)?;
            }
        }
    } else if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        // A TopK aggregation's direction is in no display: not compared.
        if aggregate.limit_options().is_some() {
            return Ok(None);
        }
        write!(
            description,
            "{:?}|{:?}|{:?}|{:?}",
            aggregate.mode(),
            aggregate.group_expr(),
            aggregate.input_order_mode(),
            aggregate.aggr_expr()
        )
        .map_err(fmt_error)?;
    } else if node.downcast_ref::<FilterExec>().is_none()
        && node.downcast_ref::<ProjectionExec>().is_none()
        && node.downcast_ref::<RepartitionExec>().is_none()
        && node.downcast_ref::<CoalescePartitionsExec>().is_none()
    {
        return Ok(None);
    }
    let mut stable = true;
    node.apply_expressions(&mut |expr| {
        if is_volatile(expr) || !fully_described(expr) {
            stable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        write!(description, "|{expr:?}").map_err(fmt_error)?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !stable {
        return Ok(None);
    }
    let line = DisplayableExecutionPlan::new(node.as_ref()).one_line();
    write!(description, "|{line}|{:?}", node.schema()).map_err(fmt_error)?;
    Ok(Some(description))
}

/// Whether `expr` is made only of expressions whose `Debug` says all that
/// decides their answer. Not, for example, a scalar subquery's (its
/// results slot is not in it) or a dynamic filter (it changes as the
/// query runs).
fn fully_described(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut known = true;
    let _ = expr.apply(|e| {
        known = e.downcast_ref::<Column>().is_some()
            || e.downcast_ref::<Literal>().is_some()
            || e.downcast_ref::<BinaryExpr>().is_some()
            || e.downcast_ref::<CastExpr>().is_some()
            || e.downcast_ref::<TryCastExpr>().is_some()
            || e.downcast_ref::<NotExpr>().is_some()
            || e.downcast_ref::<NegativeExpr>().is_some()
            || e.downcast_ref::<IsNullExpr>().is_some()
            || e.downcast_ref::<IsNotNullExpr>().is_some()
            || e.downcast_ref::<InListExpr>().is_some()
            || e.downcast_ref::<LikeExpr>().is_some()
            || e.downcast_ref::<CaseExpr>().is_some()
            || e.downcast_ref::<ScalarFunctionExpr>().is_some();
        Ok(if known {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    known
}

fn fmt_error(e: fmt::Error) -> DataFusionError {
    DataFusionError::Internal(format!("describing a plan: {e}"))
}

/// One partition's output, buffered; the reservation accounts for it.
struct Buffered {
    batches: Vec<RecordBatch>,
    _reservation: MemoryReservation,
}

type SharedOutput = Shared<BoxFuture<'static, Result<Arc<Buffered>, Arc<DataFusionError>>>>;

/// What the readers of one shared subplan share: its partitions' outputs,
/// computed once by tasks that the first `execute` starts.
#[derive(Debug)]
struct SharedState {
    readers: usize,
    outputs: Mutex<Option<Vec<SharedOutput>>>,
}

impl SharedState {
    fn new(readers: usize) -> Self {
        Self {
            readers,
            outputs: Mutex::new(None),
        }
    }

    /// The output of `partition` of `input`; the first call starts them all.
    /// Each partition runs in its own task rather than in whichever reader
    /// polls first, so no reader waits on one that is not being polled
    /// (a join reads its build side to the end before its probe side).
    fn output(
        &self,
        partition: usize,
        input: &Arc<dyn ExecutionPlan>,
        context: &Arc<TaskContext>,
    ) -> DfResult<SharedOutput> {
        let mut outputs = self
            .outputs
            .lock()
            .map_err(|_| DataFusionError::Internal("a shared subplan's lock".into()))?;
        if outputs.is_none() {
            let partitions = input.output_partitioning().partition_count();
            let started = (0..partitions)
                .map(|partition| {
                    let stream = input.execute(partition, Arc::clone(context))?;
                    let reservation = MemoryConsumer::new(format!("SharedSubplan[{partition}]"))
                        .register(context.memory_pool());
                    let task = SpawnedTask::spawn(buffer(stream, reservation));
                    let output = async move {
                        match task.join().await {
                            Ok(result) => result.map(Arc::new).map_err(Arc::new),
                            Err(e) => Err(Arc::new(DataFusionError::ExecutionJoin(Box::new(e)))),
                        }
                    };
                    Ok(output.boxed().shared())
                })
                .collect::<DfResult<Vec<_>>>()?;
            *outputs = Some(started);
        }
        match outputs.as_ref().and_then(|outputs| outputs.get(partition)) {
            Some(output) => Ok(output.clone()),
            None => internal_err!("SharedSubplanExec has no partition {partition}"),
        }
    }
}

async fn buffer(
    mut stream: SendableRecordBatchStream,
    reservation: MemoryReservation,
) -> DfResult<Buffered> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        // A batch sliced from a larger one is counted by its own slice.
        reservation.try_grow(get_record_batch_memory_size(&batch))?;
        batches.push(batch);
    }
    Ok(Buffered {
        batches,
        _reservation: reservation,
    })
}

/// One reader of a subplan that occurs more than once in a plan: all its
/// readers share one execution of the subplan and replay its output.
#[derive(Debug)]
pub(crate) struct SharedSubplanExec {
    input: Arc<dyn ExecutionPlan>,
    state: Arc<SharedState>,
    properties: Arc<PlanProperties>,
}

impl SharedSubplanExec {
    fn new(input: Arc<dyn ExecutionPlan>, state: Arc<SharedState>) -> Self {
        let properties = Arc::clone(input.properties());
        Self {
            input,
            state,
            properties,
        }
    }
}

impl DisplayAs for SharedSubplanExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match format {
            DisplayFormatType::TreeRender => write!(f, "readers={}", self.state.readers),
            _ => write!(f, "SharedSubplanExec: readers={}", self.state.readers),
        }
    }
}

impl ExecutionPlan for SharedSubplanExec {
    fn name(&self) -> &str {
        "SharedSubplanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return internal_err!("SharedSubplanExec has one child");
        };
        // The new child is the same subplan rewritten (the readers' copies
        // stay equivalent), so the readers still share one execution.
        Ok(Arc::new(Self::new(input, Arc::clone(&self.state))))
    }

    fn reset_state(self: Arc<Self>) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Re-executed (a recursive query's term): this reader computes on
        // its own, as the other readers may not be reset with it.
        Ok(Arc::new(Self::new(
            Arc::clone(&self.input),
            Arc::new(SharedState::new(1)),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let output = self.state.output(partition, &self.input, &context)?;
        let batches = futures::stream::once(async move {
            let buffered = output.await.map_err(DataFusionError::Shared)?;
            let batches = buffered.batches.clone();
            Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
        })
        .try_flatten();
        // Replaying a buffer never waits: yield to the runtime like a scan.
        let replay: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(self.schema(), batches));
        Ok(make_cooperative(replay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A session with lake's optimizer rules over `t(k, v)`, a Parquet file
    /// of 1,000 rows.
    async fn session(dir: &tempfile::TempDir) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_physical_optimizer_rules(crate::session::physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let path = dir.path().join("t.parquet");
        let copy = format!(
            "COPY (SELECT value % 10 AS k, value AS v FROM generate_series(1, 1000)) TO '{}'",
            path.display()
        );
        ctx.sql(&copy).await.unwrap().collect().await.unwrap();
        let table = format!(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
            path.display()
        );
        ctx.sql(&table).await.unwrap().collect().await.unwrap();
        ctx
    }

    /// The plan of `query`, its answer, and the rows its scans produced.
    async fn run(ctx: &SessionContext, query: &str) -> DfResult<(String, String, usize)> {
        let plan = ctx.sql(query).await?.create_physical_plan().await?;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        let answer = pretty_format_batches(&batches)?.to_string();
        let mut scanned = 0;
        let mut seen = std::collections::HashSet::new();
        plan.apply(|node| {
            if node.downcast_ref::<DataSourceExec>().is_some() && seen.insert(address(node)) {
                scanned += node
                    .metrics()
                    .and_then(|m| m.output_rows())
                    .unwrap_or_default();
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        Ok((shown, answer, scanned))
    }

    const REVENUE: &str = "WITH r AS (SELECT k, sum(v) AS s FROM t GROUP BY k)";

    /// TPC-H Q15's shape: the CTE is read by the query and by its scalar
    /// subquery, and `t` is scanned once.
    #[tokio::test]
    async fn a_repeated_aggregation_is_computed_once() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(&dir).await;
        let query = format!("{REVENUE} SELECT k, s FROM r WHERE s = (SELECT max(s) FROM r)");
        let (plan, answer, scanned) = run(&ctx, &query).await.unwrap();
        assert_eq!(
            plan.matches("SharedSubplanExec: readers=2").count(),
            2,
            "{plan}"
        );
        assert!(answer.contains("| 0 | 50500 |"), "{answer}");
        assert_eq!(scanned, 1000, "{plan}");

        // Both sides of a join read it (the build side to its end before
        // the probe side), and a union reads it twice at once.
        let join =
            format!("{REVENUE} SELECT count(*), sum(a.s - b.s) FROM r a JOIN r b ON a.k = b.k + 1");
        let (plan, answer, scanned) = run(&ctx, &join).await.unwrap();
        assert!(plan.contains("SharedSubplanExec"), "{plan}");
        assert!(answer.contains("| 9        | -100 "), "{answer}");
        assert_eq!(scanned, 1000, "{plan}");
        let union =
            format!("{REVENUE} SELECT sum(s) FROM (SELECT s FROM r UNION ALL SELECT s FROM r)");
        let (_, answer, scanned) = run(&ctx, &union).await.unwrap();
        assert!(answer.contains("| 1001000 "), "{answer}");
        assert_eq!(scanned, 1000);
    }

    /// Aggregations over different filters, or with a volatile function,
    /// are computed by each reader.
    #[tokio::test]
    async fn different_or_volatile_aggregations_are_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(&dir).await;
        let different =
            "SELECT sum(v) FROM t WHERE k = 1 UNION ALL SELECT sum(v) FROM t WHERE k = 2";
        let (plan, _, scanned) = run(&ctx, different).await.unwrap();
        assert!(!plan.contains("SharedSubplanExec"), "{plan}");
        assert_eq!(scanned, 2000);
        // Two subqueries whose filters read different scalar subqueries
        // (which print alike before they run).
        let nested = "SELECT (SELECT sum(v) FROM t WHERE v > (SELECT max(v) - 100 FROM t)) AS a, \
                      (SELECT sum(v) FROM t WHERE v > (SELECT min(v) + 100 FROM t)) AS b";
        let (_, answer, _) = run(&ctx, nested).await.unwrap();
        assert!(answer.contains("| 95050 | 495349 |"), "{answer}");
        // TopK aggregations that differ only in their direction.
        let top = "SELECT sum(k) FROM ((SELECT k FROM t GROUP BY k ORDER BY k DESC LIMIT 3) \
                   UNION ALL (SELECT k FROM t GROUP BY k ORDER BY k LIMIT 3))";
        let (_, answer, _) = run(&ctx, top).await.unwrap();
        assert!(answer.contains("| 27 "), "{answer}");
        let volatile = "SELECT sum(v * random()) FROM t UNION ALL SELECT sum(v * random()) FROM t";
        let (plan, _, _) = run(&ctx, volatile).await.unwrap();
        assert!(!plan.contains("SharedSubplanExec"), "{plan}");
    }

    /// An error in the shared aggregation reaches the query.
    #[tokio::test]
    async fn an_error_in_a_shared_aggregation_fails_the_query() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(&dir).await;
        let query = "WITH r AS (SELECT k, sum(v / (k - k)) AS s FROM t GROUP BY k) \
                     SELECT * FROM r WHERE s = (SELECT max(s) FROM r)";
        let error = run(&ctx, query).await.unwrap_err().to_string();
        assert!(error.contains("Divide by zero"), "{error}");
    }
}
