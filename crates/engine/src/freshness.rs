//! Source freshness: how old the newest row of each source table is,
//! against its `freshness: {warn_after, error_after}`; `target/sources.json`
//! in dbt's shape.

use std::path::Path;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, Float64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use lake_compiler::SourceDefinition;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::session::LakeSession;

/// dbt's freshness statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreshnessStatus {
    #[serde(rename = "pass")]
    Pass,
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "runtime error")]
    RuntimeError,
}

/// One source table's freshness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshnessResult {
    pub unique_id: String,
    pub status: FreshnessStatus,
    /// The newest `loaded_at_field` value (RFC 3339, UTC).
    pub max_loaded_at: Option<String>,
    pub snapshotted_at: String,
    pub max_loaded_at_time_ago_in_s: Option<f64>,
    pub criteria: Json,
    pub execution_time: f64,
    /// Why a runtime error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `target/sources.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshnessResults {
    pub metadata: Json,
    pub results: Vec<FreshnessResult>,
    pub elapsed_time: f64,
}

impl FreshnessResults {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("sources.json.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join("sources.json"))
    }
}

/// `{count: 12, period: hour}` in seconds.
fn period_seconds(threshold: &Json) -> Result<Option<f64>, String> {
    if threshold.is_null() {
        return Ok(None);
    }
    let count = threshold
        .get("count")
        .and_then(Json::as_f64)
        .ok_or_else(|| format!("a freshness threshold needs a numeric `count`: {threshold}"))?;
    let unit = match threshold.get("period").and_then(Json::as_str) {
        Some("minute") => 60.0,
        Some("hour") => 3600.0,
        Some("day") => 86400.0,
        other => {
            return Err(format!(
                "freshness `period` must be minute, hour or day, not {other:?}"
            ));
        }
    };
    Ok(Some(count * unit))
}

/// The sources that declare freshness and a `loaded_at_field`.
pub fn checked_sources<'a>(
    sources: impl Iterator<Item = &'a SourceDefinition>,
) -> Vec<&'a SourceDefinition> {
    sources
        .filter(|s| {
            s.loaded_at_field.is_some() && s.freshness.as_ref().is_some_and(|f| !f.is_null())
        })
        .collect()
}

/// Checks one source table at `now`.
pub async fn check_source(
    session: &LakeSession,
    source: &SourceDefinition,
    now: DateTime<Utc>,
) -> FreshnessResult {
    let started = std::time::Instant::now();
    let criteria = source.freshness.clone().unwrap_or(Json::Null);
    let mut result = FreshnessResult {
        unique_id: source.unique_id.clone(),
        status: FreshnessStatus::RuntimeError,
        max_loaded_at: None,
        snapshotted_at: now.to_rfc3339(),
        max_loaded_at_time_ago_in_s: None,
        criteria: criteria.clone(),
        execution_time: 0.0,
        message: None,
    };
    let outcome = measure(session, source, &criteria).await;
    result.execution_time = started.elapsed().as_secs_f64();
    let (epoch, text) = match outcome {
        Ok(v) => v,
        Err(message) => {
            result.message = Some(message);
            return result;
        }
    };
    let Some(epoch) = epoch else {
        result.message = Some(format!(
            "{} has no rows with a {}",
            source.relation_name,
            source.loaded_at_field.as_deref().unwrap_or("")
        ));
        return result;
    };
    let age = now.timestamp_millis() as f64 / 1000.0 - epoch;
    result.max_loaded_at = text;
    result.max_loaded_at_time_ago_in_s = Some(age);
    let thresholds = (
        period_seconds(criteria.get("warn_after").unwrap_or(&Json::Null)),
        period_seconds(criteria.get("error_after").unwrap_or(&Json::Null)),
    );
    match thresholds {
        (Ok(warn), Ok(error)) => {
            result.status = if error.is_some_and(|e| age > e) {
                FreshnessStatus::Error
            } else if warn.is_some_and(|w| age > w) {
                FreshnessStatus::Warn
            } else {
                FreshnessStatus::Pass
            };
        }
        (Err(m), _) | (_, Err(m)) => result.message = Some(m),
    }
    result
}

/// The newest `loaded_at_field` as epoch seconds and as text.
async fn measure(
    session: &LakeSession,
    source: &SourceDefinition,
    criteria: &Json,
) -> Result<(Option<f64>, Option<String>), String> {
    let field = source.loaded_at_field.as_deref().unwrap_or_default();
    let filter = criteria
        .get("filter")
        .and_then(Json::as_str)
        .map(|f| format!(" where {f}"))
        .unwrap_or_default();
    let sql = format!(
        "select extract(epoch from max(cast({field} as timestamp))) as epoch, cast(max(cast({field} as timestamp)) as varchar) as newest from {}{filter}",
        source.relation_name
    );
    let batches = session
        .plan_query(&sql)
        .await
        .map_err(|e| format!("{}: {e}", source.original_file_path))?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok((None, None));
    };
    let epoch = cast(batch.column(0), &DataType::Float64).map_err(|e| e.to_string())?;
    let epoch = epoch
        .as_any()
        .downcast_ref::<Float64Array>()
        .filter(|a| !a.is_null(0))
        .map(|a| a.value(0));
    let text = cast(batch.column(1), &DataType::Utf8).map_err(|e| e.to_string())?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .filter(|a| !a.is_null(0))
        .map(|a| a.value(0).to_string());
    Ok((epoch, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(
            period_seconds(&serde_json::json!({"count": 12, "period": "hour"})),
            Ok(Some(43200.0))
        );
        assert_eq!(period_seconds(&Json::Null), Ok(None));
        assert!(period_seconds(&serde_json::json!({"count": 1, "period": "week"})).is_err());
    }
}
