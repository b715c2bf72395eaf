//! Lake's physical optimizer rules, run after DataFusion's own.

use std::sync::Arc;

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
/// are.
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
    let source = source.clone().with_pushdown_filters(true);
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}
