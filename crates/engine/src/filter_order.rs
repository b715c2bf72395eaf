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
//! The leading cheap conjuncts (primitive comparisons) then become one
//! [`AllOf`], evaluated on every row: pre-selection filters the whole batch
//! and scatters the answers back row by row, which costs more than the
//! comparison it saves.
//!
//! It only reorders filters whose every conjunct is made of comparisons,
//! boolean logic, `IN` lists, `LIKE` and null tests over columns and
//! literals: tests that cannot fail, so no order can raise an error the
//! written one would not (a guard like `x <> 0 AND 10 / x > 1` keeps its
//! place).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::compute::and_kleene;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
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

/// The most a conjunct may cost per row to be evaluated on every row rather
/// than on the rows the conjuncts before it keep: a primitive comparison of
/// a column with a literal or another column.
const CHEAP: u32 = 3;

/// `predicate` with its conjuncts cheapest first and the leading cheap ones
/// in one [`AllOf`]; `None` when that is the predicate as it is, or when
/// one of them is not safe to move.
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
    let cheap = order.iter().take_while(|&&i| costs[i] <= CHEAP).count();
    // Equalities stay plain conjuncts, first: the filter's equivalence
    // properties (constant columns) are read from them.
    let (equalities, comparisons): (Vec<usize>, Vec<usize>) = order[..cheap]
        .iter()
        .partition(|&&i| is_equality(conjuncts[i]));
    let conjunct = |i: &usize| Arc::clone(conjuncts[*i]);
    if comparisons.len() < 2 {
        if order.iter().enumerate().all(|(position, &i)| position == i) {
            return None;
        }
        return Some(conjunction(order.iter().map(conjunct)));
    }
    let all_of: Arc<dyn PhysicalExpr> = Arc::new(AllOf {
        tests: comparisons.iter().map(conjunct).collect(),
    });
    Some(conjunction(
        equalities
            .iter()
            .map(conjunct)
            .chain([all_of])
            .chain(order[cheap..].iter().map(conjunct)),
    ))
}

fn is_equality(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<BinaryExpr>()
        .is_some_and(|b| matches!(b.op(), Operator::Eq | Operator::IsNotDistinctFrom))
}

/// Cheap tests that cannot fail, each evaluated on the whole batch and
/// combined with SQL's `AND` (Kleene logic, as `BinaryExpr` does).
///
/// A chain of `AND`s evaluates its right side only on the rows its left
/// side keeps once those are at most a fifth of the batch, which filters
/// every column of the batch and scatters the answers back row by row.
/// For a primitive comparison that costs several times the comparison
/// itself: on TPC-H Q6 (five comparisons) it was 17% of the query's CPU.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct AllOf {
    tests: Vec<Arc<dyn PhysicalExpr>>,
}

impl AllOf {
    /// The tests joined by `AND`, each written by `write`; an `AND` or `OR`
    /// test in parentheses, so it reads as meant.
    fn write_tests(
        &self,
        f: &mut fmt::Formatter<'_>,
        write: impl Fn(&Arc<dyn PhysicalExpr>, &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        for (i, test) in self.tests.iter().enumerate() {
            if i > 0 {
                write!(f, " AND ")?;
            }
            let logic = test
                .downcast_ref::<BinaryExpr>()
                .is_some_and(|b| matches!(b.op(), Operator::And | Operator::Or));
            if logic {
                write!(f, "(")?;
            }
            write(test, f)?;
            if logic {
                write!(f, ")")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_tests(f, |test, f| write!(f, "{test}"))
    }
}

impl PhysicalExpr for AllOf {
    fn data_type(&self, _input_schema: &Schema) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> DfResult<bool> {
        for test in &self.tests {
            if test.nullable(input_schema)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let mut all: Option<BooleanArray> = None;
        for test in &self.tests {
            let answer = match test.evaluate(batch)? {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => continue,
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))) => {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))));
                }
                answer => answer.into_array(batch.num_rows())?,
            };
            let answer = answer.as_boolean_opt().cloned().ok_or_else(|| {
                DataFusionError::Internal(format!("{test} is not a boolean test"))
            })?;
            let combined = match all {
                Some(all) => and_kleene(&all, &answer)?,
                None => answer,
            };
            // Every row false: the rest cannot change that.
            if combined.null_count() == 0 && !combined.has_true() {
                return Ok(ColumnarValue::Array(Arc::new(combined)));
            }
            all = Some(combined);
        }
        Ok(match all {
            Some(all) => ColumnarValue::Array(Arc::new(all)),
            None => ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))),
        })
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.tests.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self { tests: children }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_tests(f, |test, f| test.fmt_sql(f))
    }
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

    /// The filter of `predicate` after the rule.
    fn optimized_predicate(predicate: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        let input = Arc::new(EmptyExec::new(Arc::new(schema())));
        let filter = Arc::new(FilterExec::try_new(predicate, input).unwrap());
        let plan = OrderFilterConjuncts
            .optimize(filter, &ConfigOptions::default())
            .unwrap();
        Arc::clone(plan.downcast_ref::<FilterExec>().unwrap().predicate())
    }

    /// Q6's shape: five primitive comparisons become one `AllOf`, which
    /// displays as the conjunction it replaces; Q12's string test stays
    /// outside the `AllOf` of its date comparisons.
    #[test]
    fn leading_cheap_comparisons_are_evaluated_together() {
        let s = schema();
        let quantity = || col("quantity", &s).unwrap();
        let comparisons = conjunction([
            binary(quantity(), Operator::GtEq, lit(1_i64)),
            binary(quantity(), Operator::Lt, lit(24_i64)),
            binary(
                col("received", &s).unwrap(),
                Operator::Gt,
                col("shipped", &s).unwrap(),
            ),
        ]);
        let written = comparisons.to_string();
        let rewritten = optimized_predicate(Arc::clone(&comparisons));
        let all = rewritten.downcast_ref::<AllOf>().unwrap();
        assert_eq!(all.tests.len(), 3);
        assert_eq!(rewritten.to_string(), written);

        // An equality stays a plain conjunct, before the `AllOf`.
        let with_equality = conjunction([
            Arc::clone(&comparisons),
            binary(quantity(), Operator::Eq, lit(7_i64)),
        ]);
        let rewritten = optimized_predicate(with_equality);
        let parts = split_conjunction(&rewritten);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].to_string(), "quantity@3 = 7");
        assert_eq!(parts[1].downcast_ref::<AllOf>().unwrap().tests.len(), 3);

        let with_string = conjunction([
            comparisons,
            binary(col("mode", &s).unwrap(), Operator::Eq, lit("MAIL")),
        ]);
        let rewritten = optimized_predicate(with_string);
        let parts = split_conjunction(&rewritten);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].downcast_ref::<AllOf>().unwrap().tests.len(), 3);
        assert!(parts[1].downcast_ref::<BinaryExpr>().is_some());
    }

    /// `AllOf` answers like the chain of `AND`s it replaces, nulls included,
    /// whether the chain evaluates its later tests on every row or (when
    /// the first keeps at most a fifth) only on the rows it keeps.
    #[test]
    fn all_of_answers_like_the_and_chain() {
        use datafusion::arrow::array::Int64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let a = (0..200_i64).map(|i| (i % 7 != 3).then_some(i % 50));
        let b = (0..200_i64).map(|i| (i % 11 != 5).then_some(i % 13));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(a.collect::<Int64Array>()),
                Arc::new(b.collect::<Int64Array>()),
            ],
        )
        .unwrap();
        let a = || col("a", &schema).unwrap();
        let b = || col("b", &schema).unwrap();
        for first in [
            binary(a(), Operator::Lt, lit(5_i64)),
            binary(a(), Operator::GtEq, lit(0_i64)),
            binary(a(), Operator::Lt, lit(0_i64)),
            binary(a(), Operator::IsNotDistinctFrom, lit(3_i64)),
        ] {
            let tests = vec![
                first,
                binary(b(), Operator::Gt, lit(2_i64)),
                binary(a(), Operator::NotEq, b()),
            ];
            let chain = conjunction(tests.iter().cloned());
            let all: Arc<dyn PhysicalExpr> = Arc::new(AllOf { tests });
            let expected = chain.evaluate(&batch).unwrap().into_array(200).unwrap();
            let actual = all.evaluate(&batch).unwrap().into_array(200).unwrap();
            assert_eq!(&actual, &expected, "{chain}");
        }
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
