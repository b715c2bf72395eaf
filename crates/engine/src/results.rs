//! `target/run_results.json`, in dbt's shape.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// dbt's node statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
    Skipped,
    Pass,
    Fail,
    Warn,
}

impl Status {
    /// Whether nodes that depend on this one may run.
    pub fn lets_children_run(self) -> bool {
        matches!(self, Status::Success | Status::Pass | Status::Warn)
    }

    /// What `lake retry` runs again.
    pub fn needs_retry(self) -> bool {
        matches!(self, Status::Error | Status::Skipped | Status::Fail)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Skipped => "skipped",
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
        }
    }
}

/// What the engine reports of a write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdapterResponse {
    #[serde(rename = "_message")]
    pub message: String,
    pub rows_affected: Option<u64>,
    pub delta_version: Option<u64>,
    /// Drift tests: the measured statistics and the versions compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<serde_json::Value>,
    /// Ingested sources: the files loaded, quarantined and already in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<serde_json::Value>,
}

/// One node's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    pub unique_id: String,
    pub status: Status,
    /// Seconds.
    pub execution_time: f64,
    pub message: String,
    /// Tests: failing rows.
    pub failures: Option<u64>,
    pub adapter_response: AdapterResponse,
    pub thread_id: String,
    /// The relation written, if any (`curated.orders`).
    #[serde(default)]
    pub relation_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    pub lake_version: String,
    pub generated_at: String,
    pub invocation_id: String,
}

/// All results of one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub metadata: RunMetadata,
    pub results: Vec<NodeResult>,
    /// Seconds.
    pub elapsed_time: f64,
    pub args: serde_json::Value,
}

impl RunResults {
    /// Counts by status.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// True when nothing errored or failed.
    pub fn succeeded(&self) -> bool {
        self.count(Status::Error) == 0 && self.count(Status::Fail) == 0
    }

    /// Writes `run_results.json` into `dir` (atomically).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("run_results.json.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join("run_results.json"))
    }

    /// Reads `run_results.json` from `dir`.
    pub fn read(dir: &Path) -> std::io::Result<RunResults> {
        let bytes = std::fs::read(dir.join("run_results.json"))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}
