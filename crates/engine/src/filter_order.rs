//! Cheap filter conjuncts first.
//!
//! A `FilterExec` evaluates `a AND b AND c` left to right, and once the
//! conjuncts so far keep at most a fifth of a batch, evaluates the rest only
//! on the rows they keep (DataFusion's pre-selection). So the order a query
//! happens to be written in decides how many rows its costly tests see:
//! TPC-H Q12 compares `l_shipmode` strings on all 6 M rows of `lineitem`
//! before its date range keeps 15% of them. [`OrderFilterConjuncts`] puts
//! the conjuncts in order of their estimated cost per row (primitive
//! comparisons, then string tests, then patterns), keeping the written order
//! among equals.
//!
//! It only reorders filters whose every conjunct is made of comparisons,
//! boolean logic, `IN` lists, `LIKE` and null tests over columns and
//! literals: tests that cannot fail, so no order can raise an error the
//! written one would not (a guard like `x <> 0 AND 10 / x > 1` keeps its
//! place).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::Result as DfResult;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal, NotExpr,
};
use datafusion::physical_expr::{PhysicalExpr, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

#[derive(Debug, Default)]
pub(crate) struct OrderFilterConjuncts;

impl PhysicalOptimizerRule for OrderFilterConjuncts {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(ordered) = cheapest_first(filter.predicate(), &filter.input().schema()) else {
                return Ok(Transformed::no(node));
            };
            let rewritten = FilterExecBuilder::from(filter)
                .with_predicate(ordered)
                .build()?;
            Ok(Transformed::yes(Arc::new(rewritten) as _))
        })
        .data()
    }

    fn name(&self) -> &str {
        "order_filter_conjuncts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `predicate` with its conjuncts cheapest first; `None` when that is the
/// order they are in, or when one of them is not safe to move.
fn cheapest_first(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Option<Arc<dyn PhysicalExpr>> {
    let conjuncts = split_conjunction(predicate);
    if conjuncts.len() < 2 {
        return None;
    }
    let costs = conjuncts
        .iter()
        .map(|c| cost_per_row(c, schema))
        .collect::<Option<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..conjuncts.len()).collect();
    order.sort_by_key(|&i| costs[i]);
    if order.iter().enumerate().all(|(position, &i)| position == i) {
        return None;
    }
    Some(conjunction(
        order.into_iter().map(|i| Arc::clone(conjuncts[i])),
    ))
}

/// A rough cost per row, in units of one primitive comparison; `None` for
/// an expression that could fail or whose cost is unknown.
fn cost_per_row(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<u32> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        let data_type = schema.fields().get(column.index())?.data_type();
        return Some(read_cost(data_type));
    }
    if expr.downcast_ref::<Literal>().is_some() {
        return Some(0);
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let cannot_fail = matches!(
            binary.op(),
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
                | Operator::And
                | Operator::Or
        );
        if !cannot_fail {
            return None;
        }
        return Some(
            1 + cost_per_row(binary.left(), schema)? + cost_per_row(binary.right(), schema)?,
        );
    }
    if let Some(like) = expr.downcast_ref::<LikeExpr>() {
        return Some(
            20 + cost_per_row(like.expr(), schema)? + cost_per_row(like.pattern(), schema)?,
        );
    }
    if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
        let mut cost = 2 + 2 * cost_per_row(in_list.expr(), schema)?;
        for item in in_list.list() {
            cost += cost_per_row(item, schema)?;
        }
        return Some(cost);
    }
    if expr.downcast_ref::<IsNullExpr>().is_some() || expr.downcast_ref::<IsNotNullExpr>().is_some()
    {
        // Reads only the null buffer.
        return Some(1);
    }
    if let Some(not) = expr.downcast_ref::<NotExpr>() {
        return Some(1 + cost_per_row(not.arg(), schema)?);
    }
    None
}

/// What reading a value of `data_type` into a comparison costs: strings and
/// bytes are compared byte by byte.
fn read_cost(data_type: &DataType) -> u32 {
    match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => 5,
        DataType::Dictionary(_, values) => read_cost(values),
        data_type if data_type.is_primitive() || *data_type == DataType::Boolean => 1,
        _ => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{col, lit};
    use datafusion::physical_plan::empty::EmptyExec;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("mode", DataType::Utf8View, false),
            Field::new("shipped", DataType::Date32, false),
            Field::new("received", DataType::Date32, false),
            Field::new("quantity", DataType::Int64, false),
        ])
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn optimized(predicate: Arc<dyn PhysicalExpr>) -> String {
        let input = Arc::new(EmptyExec::new(Arc::new(schema())));
        let filter = Arc::new(FilterExec::try_new(predicate, input).unwrap());
        let plan = OrderFilterConjuncts
            .optimize(filter, &ConfigOptions::default())
            .unwrap();
        plan.downcast_ref::<FilterExec>()
            .unwrap()
            .predicate()
            .to_string()
    }

    /// Q12's shape: the string test moves behind the date comparisons, and
    /// the date comparisons keep their written order among themselves.
    #[test]
    fn string_tests_go_after_primitive_comparisons() {
        let s = schema();
        let mode = |m: &str| binary(col("mode", &s).unwrap(), Operator::Eq, lit(m));
        let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
        let predicate = conjunction([
            binary(mode("MAIL"), Operator::Or, mode("SHIP")),
            binary(
                col("received", &s).unwrap(),
                Operator::Gt,
                col("shipped", &s).unwrap(),
            ),
            binary(col("received", &s).unwrap(), Operator::GtEq, day(8766)),
            binary(col("received", &s).unwrap(), Operator::Lt, day(9131)),
        ]);
        assert_eq!(
            optimized(predicate),
            "received@2 >= 1994-01-01 AND received@2 < 1995-01-01 AND received@2 > shipped@1 \
             AND (mode@0 = MAIL OR mode@0 = SHIP)"
        );
    }

    /// A conjunct that could fail (here a division) pins the written order.
    #[test]
    fn a_conjunct_that_could_fail_keeps_the_order() {
        let s = schema();
        let quantity = || col("quantity", &s).unwrap();
        let predicate = conjunction([
            binary(col("mode", &s).unwrap(), Operator::Eq, lit("MAIL")),
            binary(quantity(), Operator::NotEq, lit(0_i64)),
            binary(
                binary(lit(10_i64), Operator::Divide, quantity()),
                Operator::Gt,
                lit(1_i64),
            ),
        ]);
        let written = predicate.to_string();
        assert_eq!(optimized(predicate), written);
    }
}
