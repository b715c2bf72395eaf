//! Seeds: a CSV file to a typed table. Types are inferred from the values
//! (integers, floating point numbers, dates, timestamps, booleans, strings,
//! as dbt-duckdb infers them); `column_types` overrides them per column.

use std::path::Path;

use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use lake_compiler::Node;
use lake_storage::quote_ident;

use crate::error::{EngineError, Result};

/// Rows read to infer column types (all of any reasonable seed).
const INFER_ROWS: usize = 1_000_000;

/// The plan reading seed `node`'s CSV file with its final column types. It
/// runs in its own scratch session: the plan carries its CSV source, so
/// the lake's session can execute it.
pub async fn seed_plan(project_dir: &Path, node: &Node) -> Result<LogicalPlan> {
    let file = node.original_file_path.clone();
    let seed_err = |message: String| EngineError::Seed {
        file: file.clone(),
        message,
    };
    let path = project_dir.join(&node.original_file_path);
    let path = path
        .to_str()
        .ok_or_else(|| seed_err("the path is not valid UTF-8".into()))?
        .to_string();
    let delimiter = match node.config.delimiter.as_deref() {
        None => b',',
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some("\\t") => b'\t',
        Some(other) => {
            return Err(seed_err(format!(
                "delimiter must be one character, not '{other}'"
            )));
        }
    };
    let scratch = SessionContext::new();
    let options = CsvReadOptions::new()
        .has_header(true)
        .delimiter(delimiter)
        .file_extension(".csv")
        .schema_infer_max_records(INFER_ROWS);
    scratch
        .register_csv("seed", &path, options)
        .await
        .map_err(|e| seed_err(format!("cannot read the CSV: {e}")))?;
    let schema = scratch
        .table("seed")
        .await
        .map_err(|e| seed_err(e.to_string()))?
        .schema()
        .clone();
    let mut unknown: Vec<&String> = node
        .config
        .column_types
        .keys()
        .filter(|c| schema.field_with_unqualified_name(c).is_err())
        .collect();
    if let Some(first) = unknown.pop() {
        return Err(seed_err(format!(
            "column_types names column '{first}', which the CSV does not have (columns: {})",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let q = quote_ident(f.name());
            match node
                .config
                .column_types
                .get(f.name())
                .and_then(|t| t.as_str())
            {
                Some(sql_type) => format!("cast({q} as {sql_type}) as {q}"),
                None => q,
            }
        })
        .collect();
    let sql = format!("select {} from seed", columns.join(", "));
    let df = scratch
        .sql(&sql)
        .await
        .map_err(|e| seed_err(format!("column_types: {e}")))?;
    Ok(df.into_unoptimized_plan())
}
