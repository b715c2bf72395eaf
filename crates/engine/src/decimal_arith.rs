//! Decimal `+`, `-` and `*` without a per-value overflow check where a
//! batch's values cannot overflow.
//!
//! Arrow computes every `Decimal128` sum, difference and product with
//! checked 128-bit arithmetic, one overflow test per value; on TPC-H Q1
//! (`l_extendedprice * (1 - l_discount) * (1 + l_tax)` over 6 M rows) those
//! tests are about a quarter of the query's CPU. The largest magnitude in a
//! batch bounds every result, so one pass finding it tells whether any
//! value can overflow: when none can, plain wrapping arithmetic gives the
//! exact same values, and when one can, arrow's checked kernel runs as
//! before and raises the same error.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Datum, Decimal128Array};
use datafusion::arrow::compute::kernels::numeric::{add_wrapping, mul_wrapping, sub_wrapping};
use datafusion::arrow::compute::{binary, unary};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue, internal_err};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr_common::datum::apply;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// Puts every decimal `+`, `-` and `*` that a projection or an aggregate's
/// arguments compute behind a [`DecimalArithmetic`].
#[derive(Debug, Default)]
pub(crate) struct BoundDecimalArithmetic;

impl PhysicalOptimizerRule for BoundDecimalArithmetic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                let schema = projection.input().schema();
                let mut changed = false;
                let exprs = projection
                    .expr()
                    .iter()
                    .map(|p| {
                        let expr = bounded(Arc::clone(&p.expr), &schema)?;
                        changed |= expr.transformed;
                        Ok(ProjectionExpr::new(expr.data, p.alias.clone()))
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                if changed {
                    let input = Arc::clone(projection.input());
                    let rewritten =
                        ProjectionExec::try_new_with_schema_metadata(exprs, input, &node.schema())?;
                    return Ok(Transformed::yes(Arc::new(rewritten) as _));
                }
            } else if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
                // Only these modes evaluate the arguments; the final
                // stages merge states.
                let evaluates_arguments = matches!(
                    aggregate.mode(),
                    AggregateMode::Partial
                        | AggregateMode::Single
                        | AggregateMode::SinglePartitioned
                );
                if !evaluates_arguments {
                    return Ok(Transformed::no(node));
                }
                let schema = aggregate.input_schema();
                let mut changed = false;
                let functions = aggregate
                    .aggr_expr()
                    .iter()
                    .map(|function| {
                        let all = function.all_expressions();
                        let mut args_changed = false;
                        let args = all
                            .args
                            .into_iter()
                            .map(|arg| {
                                let arg = bounded(arg, &schema)?;
                                args_changed |= arg.transformed;
                                Ok(arg.data)
                            })
                            .collect::<DfResult<Vec<_>>>()?;
                        if !args_changed {
                            return Ok(Arc::clone(function));
                        }
                        Ok(
                            match function.with_new_expressions(args, all.order_by_exprs) {
                                Some(rewritten) => {
                                    changed = true;
                                    Arc::new(rewritten)
                                }
                                None => Arc::clone(function),
                            },
                        )
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                if changed {
                    return Ok(Transformed::yes(
                        Arc::new(aggregate.with_new_aggr_exprs(functions)) as _,
                    ));
                }
            }
            Ok(Transformed::no(node))
        })
        .data()
    }

    fn name(&self) -> &str {
        "bound_decimal_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `expr` with each decimal `+`, `-` and `*` in it bounded.
fn bounded(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> DfResult<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|node| {
        let Some(binary) = node.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(node));
        };
        let arithmetic = matches!(
            binary.op(),
            Operator::Plus | Operator::Minus | Operator::Multiply
        );
        if !arithmetic {
            return Ok(Transformed::no(node));
        }
        let operands = (
            binary.left().data_type(schema)?,
            binary.right().data_type(schema)?,
        );
        let (
            (DataType::Decimal128(..), DataType::Decimal128(..)),
            DataType::Decimal128(precision, scale),
        ) = (&operands, binary.data_type(schema)?)
        else {
            return Ok(Transformed::no(node));
        };
        Ok(Transformed::yes(Arc::new(DecimalArithmetic {
            binary: node,
            types: DecimalTypes {
                operands,
                precision,
                scale,
            },
        }) as _))
    })
}

/// A decimal `+`, `-` or `*` (`binary`, a [`BinaryExpr`] over two
/// `Decimal128` operands) that skips the overflow checks for batches whose
/// largest magnitudes prove no result can overflow. It answers, displays
/// and types exactly like `binary`.
#[derive(Debug, Eq)]
pub(crate) struct DecimalArithmetic {
    binary: Arc<dyn PhysicalExpr>,
    /// The operand and result types `binary` was planned with.
    types: DecimalTypes,
}

/// The types a [`DecimalArithmetic`] was planned with: the operands' types
/// (two decimals; a batch with others takes the checked kernel), and the
/// result's precision and scale as `BinaryExpr` plans them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DecimalTypes {
    operands: (DataType, DataType),
    precision: u8,
    scale: i8,
}

impl DecimalArithmetic {
    fn parts(&self) -> DfResult<&BinaryExpr> {
        match self.binary.downcast_ref::<BinaryExpr>() {
            Some(binary) => Ok(binary),
            None => internal_err!("DecimalArithmetic wraps a BinaryExpr"),
        }
    }
}

/// The result of `op` over `left` and `right` computed with wrapping
/// arithmetic, or `None` when a value could overflow (or an operand is a
/// null scalar, or not of the planned type), which the checked kernel is
/// left to handle.
fn without_checks(
    op: Operator,
    types: &DecimalTypes,
    left: &ColumnarValue,
    right: &ColumnarValue,
) -> DfResult<Option<ColumnarValue>> {
    if (left.data_type(), right.data_type()) != types.operands {
        return Ok(None);
    }
    let (DataType::Decimal128(_, left_scale), DataType::Decimal128(_, right_scale)) =
        types.operands
    else {
        return Ok(None);
    };
    let (precision, scale) = (types.precision, types.scale);
    let (Some(left_max), Some(right_max)) = (largest_magnitude(left), largest_magnitude(right))
    else {
        return Ok(None);
    };
    // A sum or difference first brings both operands to the result's scale.
    let rescale = |from: i8| match op {
        Operator::Multiply => Some(1),
        _ => 10u128.checked_pow(u32::try_from(i32::from(scale) - i32::from(from)).ok()?),
    };
    let (Some(left_factor), Some(right_factor)) = (rescale(left_scale), rescale(right_scale))
    else {
        return Ok(None);
    };
    let largest = match op {
        Operator::Multiply => left_max.checked_mul(right_max),
        _ => left_max
            .checked_mul(left_factor)
            .zip(right_max.checked_mul(right_factor))
            .and_then(|(l, r)| l.checked_add(r)),
    };
    if largest.is_none_or(|largest| largest > i128::MAX as u128) {
        return Ok(None);
    }
    // Both factors are at most 10^38 here, so they fit an i128.
    let (lf, rf) = (left_factor as i128, right_factor as i128);
    let unscaled = lf == 1 && rf == 1;
    let f: fn(i128, i128, i128, i128) -> i128 = match (op, unscaled) {
        (Operator::Multiply, _) => |l, r, _, _| l.wrapping_mul(r),
        (Operator::Plus, true) => |l, r, _, _| l.wrapping_add(r),
        (Operator::Minus, true) => |l, r, _, _| l.wrapping_sub(r),
        (Operator::Plus, false) => {
            |l, r, lf, rf| l.wrapping_mul(lf).wrapping_add(r.wrapping_mul(rf))
        }
        (Operator::Minus, false) => {
            |l, r, lf, rf| l.wrapping_mul(lf).wrapping_sub(r.wrapping_mul(rf))
        }
        _ => return Ok(None),
    };
    combine(left, right, |l, r| f(l, r, lf, rf), precision, scale)
}

type Kernel = fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>;

/// The checked kernel `BinaryExpr` runs for `op` on decimals (arrow checks
/// decimal overflow in its wrapping kernels too).
fn checked_kernel(op: Operator) -> Kernel {
    match op {
        Operator::Plus => add_wrapping,
        Operator::Minus => sub_wrapping,
        _ => mul_wrapping,
    }
}

/// The largest magnitude among the stored values, null slots included (so
/// it can only overstate); `None` for a null scalar.
fn largest_magnitude(value: &ColumnarValue) -> Option<u128> {
    match value {
        ColumnarValue::Scalar(ScalarValue::Decimal128(value, ..)) => value.map(i128::unsigned_abs),
        ColumnarValue::Scalar(_) => None,
        ColumnarValue::Array(array) => Some(
            array
                .as_primitive_opt::<Decimal128Type>()?
                .values()
                .iter()
                .fold(0u128, |largest, v| largest.max(v.unsigned_abs())),
        ),
    }
}

/// `f` applied row by row, typed `Decimal128(precision, scale)`; the
/// result carries the operands' nulls.
fn combine(
    left: &ColumnarValue,
    right: &ColumnarValue,
    f: impl Fn(i128, i128) -> i128,
    precision: u8,
    scale: i8,
) -> DfResult<Option<ColumnarValue>> {
    let scalar = |value: &ScalarValue| match value {
        ScalarValue::Decimal128(Some(v), ..) => Some(*v),
        _ => None,
    };
    let array = |array: &ArrayRef| array.as_primitive_opt::<Decimal128Type>().cloned();
    let result: Decimal128Array = match (left, right) {
        (ColumnarValue::Array(l), ColumnarValue::Array(r)) => {
            let (Some(l), Some(r)) = (array(l), array(r)) else {
                return Ok(None);
            };
            binary(&l, &r, f)?
        }
        (ColumnarValue::Scalar(l), ColumnarValue::Array(r)) => {
            let (Some(l), Some(r)) = (scalar(l), array(r)) else {
                return Ok(None);
            };
            unary(&r, |r| f(l, r))
        }
        (ColumnarValue::Array(l), ColumnarValue::Scalar(r)) => {
            let (Some(l), Some(r)) = (array(l), scalar(r)) else {
                return Ok(None);
            };
            unary(&l, |l| f(l, r))
        }
        (ColumnarValue::Scalar(l), ColumnarValue::Scalar(r)) => {
            let (Some(l), Some(r)) = (scalar(l), scalar(r)) else {
                return Ok(None);
            };
            return Ok(Some(ColumnarValue::Scalar(ScalarValue::Decimal128(
                Some(f(l, r)),
                precision,
                scale,
            ))));
        }
    };
    Ok(Some(ColumnarValue::Array(Arc::new(
        result.with_precision_and_scale(precision, scale)?,
    ))))
}

impl PartialEq for DecimalArithmetic {
    fn eq(&self, other: &Self) -> bool {
        self.binary.eq(&other.binary)
    }
}

impl Hash for DecimalArithmetic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.binary.hash(state);
    }
}

impl fmt::Display for DecimalArithmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.binary.fmt(f)
    }
}

impl PhysicalExpr for DecimalArithmetic {
    fn data_type(&self, input_schema: &Schema) -> DfResult<DataType> {
        self.binary.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> DfResult<bool> {
        self.binary.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let binary = self.parts()?;
        let left = binary.left().evaluate(batch)?;
        let right = binary.right().evaluate(batch)?;
        if let Some(result) = without_checks(*binary.op(), &self.types, &left, &right)? {
            return Ok(result);
        }
        apply(&left, &right, checked_kernel(*binary.op()))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.binary.children()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self {
            binary: Arc::clone(&self.binary).with_new_children(children)?,
            // Batches whose operands are not of the planned types take
            // the checked kernel, so the planned types stay valid.
            types: self.types.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.binary.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, lit};

    fn batch() -> RecordBatch {
        let decimals = |values: Vec<Option<i128>>, scale: i8| {
            Arc::new(
                Decimal128Array::from(values)
                    .with_precision_and_scale(15, scale)
                    .unwrap(),
            ) as ArrayRef
        };
        let schema = Schema::new(vec![
            Field::new("price", DataType::Decimal128(15, 2), true),
            Field::new("discount", DataType::Decimal128(15, 2), true),
            Field::new("rate", DataType::Decimal128(15, 4), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                decimals(
                    vec![Some(123_456), None, Some(-99_999_999_999_999), Some(0)],
                    2,
                ),
                decimals(vec![Some(7), Some(10), Some(99_999_999_999_999), None], 2),
                decimals(
                    vec![Some(12_345), Some(-1), Some(99_999_999_999_999), Some(5)],
                    4,
                ),
            ],
        )
        .unwrap()
    }

    fn answers(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> DfResult<ArrayRef> {
        expr.evaluate(batch)?.into_array(batch.num_rows())
    }

    /// Every operator over columns of equal and different scales and over
    /// literals gives the checked kernel's values, nulls and types.
    #[test]
    fn answers_like_the_checked_kernels() {
        let batch = batch();
        let schema = batch.schema();
        let one = lit(ScalarValue::Decimal128(Some(1), 20, 0));
        let operands = [
            (
                col("price", &schema).unwrap(),
                col("discount", &schema).unwrap(),
            ),
            (
                col("price", &schema).unwrap(),
                col("rate", &schema).unwrap(),
            ),
            (Arc::clone(&one), col("discount", &schema).unwrap()),
            (col("rate", &schema).unwrap(), Arc::clone(&one)),
        ];
        for (left, right) in operands {
            for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
                let plain: Arc<dyn PhysicalExpr> =
                    Arc::new(BinaryExpr::new(Arc::clone(&left), op, Arc::clone(&right)));
                let fast = bounded(Arc::clone(&plain), &schema).unwrap();
                assert!(fast.transformed, "{plain} is not bounded");
                let fast = fast.data;
                let wrapper = fast.downcast_ref::<DecimalArithmetic>().unwrap();
                // These values cannot overflow: the unchecked path answers.
                let (l, r) = (
                    left.evaluate(&batch).unwrap(),
                    right.evaluate(&batch).unwrap(),
                );
                assert!(
                    without_checks(op, &wrapper.types, &l, &r)
                        .unwrap()
                        .is_some(),
                    "{plain} took the checked kernel"
                );
                assert_eq!(fast.to_string(), plain.to_string());
                assert_eq!(
                    fast.data_type(&schema).unwrap(),
                    plain.data_type(&schema).unwrap()
                );
                let expected = answers(&plain, &batch).unwrap();
                let actual = answers(&fast, &batch).unwrap();
                assert_eq!(actual.data_type(), expected.data_type(), "{plain}");
                assert_eq!(&actual, &expected, "{plain}");
            }
        }
    }

    /// A batch whose products can overflow goes through the checked kernel,
    /// which reports the overflow as before; a nested product is bounded at
    /// every level.
    #[test]
    fn a_possible_overflow_is_left_to_the_checked_kernel() {
        let schema = Schema::new(vec![Field::new("x", DataType::Decimal128(38, 0), false)]);
        let big = Decimal128Array::from(vec![10_i128.pow(30), 2])
            .with_precision_and_scale(38, 0)
            .unwrap();
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(big)]).unwrap();
        let x = col("x", &schema).unwrap();
        let square: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&x),
            Operator::Multiply,
            Arc::clone(&x),
        ));
        let plain: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(square, Operator::Plus, Arc::clone(&x)));
        let fast = bounded(Arc::clone(&plain), &schema).unwrap().data;
        let expected = answers(&plain, &batch).unwrap_err().to_string();
        let actual = answers(&fast, &batch).unwrap_err().to_string();
        assert!(expected.contains("Overflow"), "{expected}");
        assert_eq!(actual, expected);
        let nested = fast.children()[0];
        assert!(nested.downcast_ref::<DecimalArithmetic>().is_some());
    }

    /// Integer arithmetic and decimal comparisons stay as they are.
    #[test]
    fn leaves_other_expressions_alone() {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(15, 2), false),
        ]);
        let n = col("n", &schema).unwrap();
        let d = col("d", &schema).unwrap();
        let sum: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&n),
            Operator::Plus,
            Arc::clone(&n),
        ));
        let less: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&d),
            Operator::Lt,
            Arc::clone(&d),
        ));
        assert!(!bounded(sum, &schema).unwrap().transformed);
        assert!(!bounded(less, &schema).unwrap().transformed);
    }
}
