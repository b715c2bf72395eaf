//! The `drift` test: how far a column's distribution moved between the
//! current Delta version of a table and an earlier one.
//!
//! Both versions are read as table providers in a session that shares the
//! build's runtime (memory pool, spill directory, object stores), so the
//! statistics are computed by DataFusion where the data lives:
//! - PSI, the Population Stability Index, `sum((c - r) * ln(c / r))` over
//!   the share of rows per category (or per quantile bin of the reference,
//!   for numeric columns), NULL being a category of its own and empty shares
//!   floored at [`PSI_FLOOR`];
//! - KS, the two-sample Kolmogorov-Smirnov statistic
//!   `max |F_current(x) - F_reference(x)|` over the non-NULL values of a
//!   numeric (or date/time) column.

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use datafusion::prelude::{SessionConfig, SessionContext};
use lake_compiler::generic_tests::{DriftMethod, DriftReference, DriftSpec};
use lake_storage::TableVersion;
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::session::LakeSession;

/// The share a category or bin gets when it has no rows on one side, so
/// that the logarithm stays finite (the usual choice for PSI).
pub const PSI_FLOOR: f64 = 1e-4;

/// What a drift test measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftMeasure {
    pub column: String,
    pub current_version: u64,
    /// `None` when the table has no earlier version yet.
    pub reference_version: Option<u64>,
    pub current_rows: u64,
    pub reference_rows: u64,
    pub psi: Option<f64>,
    pub psi_max: f64,
    pub ks: Option<f64>,
    pub ks_max: f64,
}

impl DriftMeasure {
    /// How many statistics are over their maximum (the test's failures).
    pub fn exceeded(&self) -> u64 {
        u64::from(self.psi.is_some_and(|p| p > self.psi_max))
            + u64::from(self.ks.is_some_and(|k| k > self.ks_max))
    }

    /// `psi 0.0312 (max 0.2), ks 0.0450 (max 0.1); v5 against v4`.
    pub fn describe(&self) -> String {
        let Some(reference) = self.reference_version else {
            return format!(
                "no earlier version of the table than v{} to compare with",
                self.current_version
            );
        };
        let mut parts = Vec::new();
        if let Some(p) = self.psi {
            parts.push(format!("psi {p:.4} (max {})", self.psi_max));
        }
        if let Some(k) = self.ks {
            parts.push(format!("ks {k:.4} (max {})", self.ks_max));
        }
        if parts.is_empty() {
            parts.push("no non-NULL values to compare".into());
        }
        format!(
            "{}; v{} ({} rows) against v{reference} ({} rows)",
            parts.join(", "),
            self.current_version,
            self.current_rows,
            self.reference_rows
        )
    }
}

fn df_error(what: &str) -> impl Fn(datafusion::error::DataFusionError) -> EngineError + '_ {
    move |e| EngineError::datafusion(what.to_string(), e)
}

/// Measures drift of `column` in `zone.name` (rows filtered by `filter`, a
/// SQL condition, on both sides).
pub async fn measure(
    session: &LakeSession,
    zone: &str,
    name: &str,
    column: &str,
    filter: Option<&str>,
    spec: &DriftSpec,
    file: &str,
) -> Result<DriftMeasure> {
    let relation = format!("{zone}.{name}");
    let not_a_table = || EngineError::Config {
        file: file.to_string(),
        message: format!(
            "drift compares Delta versions, and {relation} is not a Delta table (a view or not built yet)"
        ),
    };
    let current = session
        .root()
        .load_table_at(zone, name, TableVersion::Latest)
        .await?
        .ok_or_else(not_a_table)?;
    let current_version = current.version().unwrap_or(0);
    let at = match &spec.reference {
        DriftReference::Previous if current_version == 0 => None,
        DriftReference::Previous => Some(TableVersion::Version(current_version - 1)),
        DriftReference::Version(v) if *v > current_version => {
            return Err(EngineError::Config {
                file: file.to_string(),
                message: format!(
                    "drift: {relation} has no version {v} yet (the latest is {current_version})"
                ),
            });
        }
        DriftReference::Version(v) => Some(TableVersion::Version(*v)),
        DriftReference::Timestamp(t) => Some(TableVersion::AsOf(
            crate::sql::parse_instant(t).map_err(|e| EngineError::Config {
                file: file.to_string(),
                message: format!("drift: {e}"),
            })?,
        )),
    };
    let mut measure = DriftMeasure {
        column: column.to_string(),
        current_version,
        reference_version: None,
        current_rows: 0,
        reference_rows: 0,
        psi: None,
        psi_max: spec.psi_max,
        ks: None,
        ks_max: spec.ks_max,
    };
    let Some(at) = at else {
        return Ok(measure);
    };
    let reference = session
        .root()
        .load_table_at(zone, name, at)
        .await?
        .ok_or_else(not_a_table)?;
    measure.reference_version = reference.version();

    // A private namespace over the shared runtime: the two versions are
    // registered as `current_rows` and `reference_rows`.
    let config = SessionConfig::from(session.context().copied_config().options().as_ref().clone())
        .with_default_catalog_and_schema("datafusion", "public")
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, session.context().runtime_env());
    let reading = format!("reading {relation} for drift");
    ctx.register_table(
        "current_rows",
        current.table_provider().await.map_err(df_error(&reading))?,
    )
    .map_err(df_error(&reading))?;
    ctx.register_table(
        "reference_rows",
        reference
            .table_provider()
            .await
            .map_err(df_error(&reading))?,
    )
    .map_err(df_error(&reading))?;

    let filter = filter.map(|f| format!(" where {f}")).unwrap_or_default();
    let quoted = lake_storage::quote_ident(column);
    let data_type = ctx
        .sql(&format!("select {quoted} from current_rows"))
        .await
        .map_err(df_error(&reading))?
        .schema()
        .field(0)
        .data_type()
        .clone();
    let numeric = data_type.is_numeric()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        );
    // Numbers and instants compare as doubles; everything else as text.
    let value = if numeric {
        if data_type.is_numeric() {
            format!("cast({quoted} as double)")
        } else {
            format!("cast(cast({quoted} as bigint) as double)")
        }
    } else {
        format!("cast({quoted} as varchar)")
    };
    for side in ["current", "reference"] {
        ctx.sql(&format!(
            "create view {side}_values as select {value} as v from {side}_rows{filter}"
        ))
        .await
        .map_err(df_error(&reading))?;
    }
    let computing = format!("computing drift of {relation}.{column}");
    let counts = scalars(
        &ctx,
        "select (select count(*) from current_values) as c, (select count(*) from reference_values) as r, \
         (select count(v) from current_values) as cv, (select count(v) from reference_values) as rv",
        &computing,
    )
    .await?;
    let count = |i: usize| match counts.get(i) {
        Some(ScalarValue::Int64(Some(n))) => *n as u64,
        _ => 0,
    };
    measure.current_rows = count(0);
    measure.reference_rows = count(1);
    let (current_values, reference_values) = (count(2), count(3));

    let wants_ks = match spec.method {
        DriftMethod::Ks => {
            if !numeric {
                return Err(EngineError::Config {
                    file: file.to_string(),
                    message: format!(
                        "drift method 'ks' needs a numeric or date/time column, and {column} is {data_type}; use method: psi"
                    ),
                });
            }
            true
        }
        DriftMethod::Auto => numeric,
        DriftMethod::Psi => false,
    };
    let wants_psi = spec.method != DriftMethod::Ks;

    if wants_psi && measure.current_rows > 0 && measure.reference_rows > 0 {
        let bucket = if numeric {
            bin_expression(&ctx, spec.bins, &computing).await?
        } else {
            "coalesce(concat('v', v), 'null')".to_string()
        };
        let (nc, nr) = (measure.current_rows, measure.reference_rows);
        let sql = format!(
            "with c as (select {bucket} as k, count(*) as n from current_values group by 1),
                  r as (select {bucket} as k, count(*) as n from reference_values group by 1),
                  shares as (
                      select greatest(coalesce(c.n, 0) / {nc}.0, {PSI_FLOOR}) as pc,
                             greatest(coalesce(r.n, 0) / {nr}.0, {PSI_FLOOR}) as pr
                      from c full outer join r on c.k = r.k)
             select sum((pc - pr) * ln(pc / pr)) from shares"
        );
        measure.psi = scalars(&ctx, &sql, &computing)
            .await?
            .first()
            .and_then(as_f64);
    }
    if wants_ks && current_values > 0 && reference_values > 0 {
        let sql = format!(
            "with tagged as (
                 select v, 1 as c, 0 as r from current_values where v is not null
                 union all
                 select v, 0 as c, 1 as r from reference_values where v is not null),
             per_value as (select v, sum(c) as c, sum(r) as r from tagged group by v),
             cumulative as (
                 select sum(c) over (order by v rows between unbounded preceding and current row) as fc,
                        sum(r) over (order by v rows between unbounded preceding and current row) as fr
                 from per_value)
             select max(abs(fc / {current_values}.0 - fr / {reference_values}.0)) from cumulative"
        );
        measure.ks = scalars(&ctx, &sql, &computing)
            .await?
            .first()
            .and_then(as_f64);
    }
    Ok(measure)
}

/// A CASE expression over `v` that puts each value in one of `bins`
/// quantile bins of the reference (the upper edges of `ntile` groups);
/// NULL gets a bin of its own.
async fn bin_expression(ctx: &SessionContext, bins: u32, computing: &str) -> Result<String> {
    let edges_sql = format!(
        "select max(v) as edge from (
             select v, ntile({bins}) over (order by v) as b from reference_values where v is not null)
         group by b order by edge"
    );
    let batches = ctx
        .sql(&edges_sql)
        .await
        .map_err(df_error(computing))?
        .collect()
        .await
        .map_err(df_error(computing))?;
    let mut edges: Vec<String> = Vec::new();
    for batch in &batches {
        let column = batch.column(0);
        for row in 0..batch.num_rows() {
            if !column.is_null(row) {
                edges.push(
                    array_value_to_string(column, row)
                        .map_err(|e| EngineError::datafusion(computing.to_string(), e.into()))?,
                );
            }
        }
    }
    // The last edge is the reference's maximum: larger values share its bin.
    edges.pop();
    edges.dedup();
    let mut case = String::from("case when v is null then -1");
    for (i, edge) in edges.iter().enumerate() {
        case.push_str(&format!(" when v <= cast('{edge}' as double) then {i}"));
    }
    case.push_str(&format!(" else {} end", edges.len()));
    Ok(case)
}

async fn scalars(ctx: &SessionContext, sql: &str, computing: &str) -> Result<Vec<ScalarValue>> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(df_error(computing))?
        .collect()
        .await
        .map_err(df_error(computing))?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(vec![]);
    };
    (0..batch.num_columns())
        .map(|c| ScalarValue::try_from_array(batch.column(c), 0).map_err(df_error(computing)))
        .collect()
}

fn as_f64(value: &ScalarValue) -> Option<f64> {
    match value {
        ScalarValue::Float64(v) => *v,
        other => other
            .cast_to(&DataType::Float64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::Float64(f) => f,
                _ => None,
            }),
    }
}
