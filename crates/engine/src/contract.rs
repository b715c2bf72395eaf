//! Enforcing model contracts before a Delta commit.
//!
//! The shape (column names and `data_type`s) is checked when the model is
//! planned. `not_null`, `check` and the not-null half of `primary_key` are
//! evaluated while the rows stream into the write: a volatile
//! `lake_assert(value, ok, message)` wraps the first output column and fails
//! the query at the first bad row, so the commit never happens and the rows
//! are read once. `unique` (and the unique half of `primary_key`) needs all
//! the keys, so it runs as one grouped count before the write.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility, cast, ident, lit,
};
use datafusion::prelude::DataFrame;
use lake_compiler::Node;
use lake_compiler::contract::{Constraint, ConstraintKind, constraints_of};

use crate::error::{EngineError, Result};
use crate::session::LakeSession;

/// Starts every error `lake_assert` raises, so a failed write can be told
/// apart from other failures.
const VIOLATION: &str = "lake contract violated: ";

/// `lake_assert(value, ok, message)`: `value` unchanged, or an execution
/// error carrying `message` when `ok` is false in any row (NULL passes, as a
/// SQL CHECK does).
#[derive(Debug, PartialEq, Eq, Hash)]
struct LakeAssert {
    signature: Signature,
}

impl ScalarUDFImpl for LakeAssert {
    fn name(&self) -> &str {
        "lake_assert"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs<'_>,
    ) -> datafusion::error::Result<FieldRef> {
        // The value passes through untouched, nullability included.
        Ok(Arc::new(
            args.arg_fields[0].as_ref().clone().with_name(self.name()),
        ))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [value, ok, message] = &args.args[..] else {
            return Err(DataFusionError::Internal(
                "lake_assert takes (value, ok, message)".into(),
            ));
        };
        let failed = match ok {
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))) => true,
            ColumnarValue::Scalar(_) => false,
            ColumnarValue::Array(array) => array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|b| b.false_count() > 0),
        };
        if failed {
            let message = match message {
                ColumnarValue::Scalar(s) => s.to_string(),
                ColumnarValue::Array(_) => "a constraint failed".into(),
            };
            return Err(DataFusionError::Execution(format!("{VIOLATION}{message}")));
        }
        Ok(value.clone())
    }
}

fn lake_assert() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(LakeAssert {
        signature: Signature::any(3, Volatility::Volatile),
    }))
}

/// A row-level check: the condition and what it means.
#[derive(Debug, Clone)]
struct RowCheck {
    ok: Expr,
    describe: String,
}

/// A model's contract, ready to guard its writes.
#[derive(Debug)]
pub(crate) struct ContractGuard {
    file: String,
    relation: String,
    /// The model's rows before guarding, for counting violations.
    rows: DataFrame,
    row_checks: Vec<RowCheck>,
    unique: Vec<Vec<String>>,
    unenforced: Vec<String>,
}

impl ContractGuard {
    /// Checks the shape of `df` against `node`'s enforced contract and puts
    /// its columns in the contract's order. `None` when the model has no
    /// enforced contract.
    pub async fn plan(
        session: &LakeSession,
        node: &Node,
        df: DataFrame,
    ) -> Result<(DataFrame, Option<ContractGuard>)> {
        if !node.config.contract.enforced {
            return Ok((df, None));
        }
        let relation = node.relation_name.clone().unwrap_or_default();
        let file = node.original_file_path.clone();
        let fail = |problems: Vec<String>| EngineError::Contract {
            file: file.clone(),
            relation: relation.clone(),
            problems,
        };
        let mut problems = Vec::new();
        let mut exprs = Vec::new();
        for column in node.columns.values() {
            let declared = column.data_type.as_deref().unwrap_or_default();
            let declared_type = match declared_type(session, declared).await {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!(
                        "column '{}': data_type '{declared}' is not a type lake knows ({e})",
                        column.name
                    ));
                    continue;
                }
            };
            match df.schema().field_with_unqualified_name(&column.name) {
                Err(_) => problems.push(format!(
                    "column '{}' is in the contract but the SQL does not return it",
                    column.name
                )),
                Ok(field) => {
                    let actual = crate::materialize::normalized(field.data_type());
                    let expected = crate::materialize::normalized(&declared_type);
                    if actual != expected {
                        problems.push(format!(
                            "column '{}': the SQL returns {actual} but the contract says {declared} ({expected}); cast it in the SQL or change data_type",
                            column.name
                        ));
                    }
                    exprs.push(ident(&column.name));
                }
            }
        }
        for field in df.schema().fields() {
            if !node.columns.contains_key(field.name()) {
                problems.push(format!(
                    "column '{}' is returned by the SQL but missing from the contract",
                    field.name()
                ));
            }
        }
        let constraints = constraints_of(node).map_err(|e| fail(vec![e]))?;
        let sql_error = |e: DataFusionError| fail(vec![e.to_string()]);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        let rows = df.select(exprs).map_err(sql_error)?;
        let mut guard = ContractGuard {
            file: file.clone(),
            relation: relation.clone(),
            rows: rows.clone(),
            row_checks: vec![],
            unique: vec![],
            unenforced: vec![],
        };
        for constraint in &constraints {
            guard.add(&rows, constraint).map_err(|e| {
                fail(vec![format!(
                    "{}: {}",
                    constraint.describe(),
                    e.strip_backtrace()
                )])
            })?;
        }
        let guarded = guard.wrap(rows).map_err(sql_error)?;
        Ok((guarded, Some(guard)))
    }

    fn add(&mut self, rows: &DataFrame, constraint: &Constraint) -> datafusion::error::Result<()> {
        for c in &constraint.columns {
            if rows.schema().field_with_unqualified_name(c).is_err() {
                return Err(DataFusionError::Plan(format!(
                    "no column '{c}' in the model"
                )));
            }
        }
        match &constraint.kind {
            ConstraintKind::NotNull | ConstraintKind::PrimaryKey => {
                for c in &constraint.columns {
                    self.row_checks.push(RowCheck {
                        ok: ident(c).is_not_null(),
                        describe: format!("{}: column '{c}' is NULL", constraint.describe()),
                    });
                }
                if constraint.kind == ConstraintKind::PrimaryKey {
                    self.unique.push(constraint.columns.clone());
                }
            }
            ConstraintKind::Unique => self.unique.push(constraint.columns.clone()),
            ConstraintKind::Check(sql) => {
                let ok = rows.parse_sql_expr(sql)?;
                // Fails at plan time when the expression is not boolean.
                let data_type = ok.get_type(rows.schema())?;
                if data_type != DataType::Boolean && data_type != DataType::Null {
                    return Err(DataFusionError::Plan(format!(
                        "the expression is {data_type}, not boolean"
                    )));
                }
                self.row_checks.push(RowCheck {
                    ok,
                    describe: constraint.describe(),
                });
            }
            ConstraintKind::ForeignKey | ConstraintKind::Custom => {
                self.unenforced.push(constraint.describe());
            }
        }
        Ok(())
    }

    /// The rows with every row check evaluated on the way through.
    fn wrap(&self, rows: DataFrame) -> datafusion::error::Result<DataFrame> {
        if self.row_checks.is_empty() {
            return Ok(rows);
        }
        let udf = lake_assert();
        let mut exprs: Vec<Expr> = rows
            .schema()
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect();
        let first = rows.schema().field(0).name().clone();
        let mut guarded = ident(&first);
        for check in &self.row_checks {
            guarded = udf.call(vec![guarded, check.ok.clone(), lit(check.describe.clone())]);
        }
        exprs[0] = guarded.alias(first);
        rows.select(exprs)
    }

    /// Runs the checks that need every key (`unique`, `primary_key`); call
    /// before writing.
    pub async fn check_unique(&self) -> Result<()> {
        let mut problems = Vec::new();
        for columns in &self.unique {
            let keys: Vec<Expr> = columns.iter().map(ident).collect();
            let not_null = keys
                .iter()
                .map(|k| k.clone().is_not_null())
                .reduce(Expr::and)
                .unwrap_or(lit(true));
            let duplicates = self
                .rows
                .clone()
                .filter(not_null)
                .and_then(|d| d.aggregate(keys, vec![count(lit(1)).alias("lake_n")]))
                .and_then(|d| d.filter(ident("lake_n").gt(lit(1))))
                .map_err(|e| self.error(vec![e.to_string()]))?
                .count()
                .await
                .map_err(|e| {
                    EngineError::datafusion(
                        format!("checking the contract of {}", self.relation),
                        e,
                    )
                })?;
            if duplicates > 0 {
                problems.push(format!(
                    "unique({}): {duplicates} value{} appear{} more than once",
                    columns.join(", "),
                    if duplicates == 1 { "" } else { "s" },
                    if duplicates == 1 { "s" } else { "" },
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.error(problems))
        }
    }

    /// Turns a write that `lake_assert` stopped into a contract error that
    /// counts the bad rows of every check; other errors pass through.
    pub async fn explain(&self, error: EngineError) -> EngineError {
        if !format!("{error:?}").contains(VIOLATION) {
            return error;
        }
        let sums: Vec<Expr> = self
            .row_checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                sum(cast(c.ok.clone().is_false(), DataType::Int64)).alias(format!("lake_bad_{i}"))
            })
            .collect();
        let counted = match self.rows.clone().aggregate(vec![], sums) {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        let problems = match counted {
            Ok(batches) => {
                let batch = batches.iter().find(|b| b.num_rows() > 0);
                self.row_checks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, check)| {
                        let bad = batch
                            .and_then(|b| ScalarValue::try_from_array(b.column(i), 0).ok())
                            .and_then(|v| match v {
                                ScalarValue::Int64(Some(n)) => Some(n),
                                _ => None,
                            })
                            .unwrap_or(0);
                        (bad > 0).then(|| {
                            format!(
                                "{} ({bad} row{})",
                                check.describe,
                                if bad == 1 { "" } else { "s" }
                            )
                        })
                    })
                    .collect()
            }
            Err(_) => vec![],
        };
        if problems.is_empty() {
            // Counting failed or raced with new data: say what the write saw.
            let text = format!("{error}");
            let first = text
                .split(VIOLATION)
                .nth(1)
                .map(|s| s.lines().next().unwrap_or(s).to_string())
                .unwrap_or(text);
            return self.error(vec![first]);
        }
        self.error(problems)
    }

    /// Constraints declared but not enforced, for the node's message.
    pub fn unenforced(&self) -> &[String] {
        &self.unenforced
    }

    fn error(&self, problems: Vec<String>) -> EngineError {
        EngineError::Contract {
            file: self.file.clone(),
            relation: self.relation.clone(),
            problems,
        }
    }
}

/// The Arrow type a contract's `data_type` names, as DataFusion's SQL
/// understands it (`bigint`, `varchar`, `decimal(10,2)`, `timestamp`, ...).
async fn declared_type(
    session: &LakeSession,
    data_type: &str,
) -> datafusion::error::Result<DataType> {
    if data_type.contains(';') || data_type.contains("--") {
        return Err(DataFusionError::Plan("not a type name".into()));
    }
    let df = session
        .plan_query(&format!("select cast(null as {data_type}) as t"))
        .await
        .map_err(|e| {
            DataFusionError::Plan(
                e.strip_backtrace()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )
        })?;
    Ok(df.schema().field(0).data_type().clone())
}
