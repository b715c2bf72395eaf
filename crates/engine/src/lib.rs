//! `lake-engine` runs a compiled project: the DataFusion session over a
//! lake (catalog `lake`, deltalake's planner, a spilling memory pool), the
//! DAG runner (`threads` at a time, failures skip what is downstream),
//! materializations (seed, view, table, incremental with its strategies
//! and schema-change modes), ingestion of external sources' files, data
//! tests, and `run_results.json`.

mod contract;
mod decimal_arith;
mod drift;
mod error;
mod filter_order;
mod freshness;
mod ingest;
mod materialize;
mod optimize;
mod results;
mod runner;
mod seed;
mod session;
mod shared_subplan;
pub mod sql;

pub use drift::{DriftMeasure, PSI_FLOOR};
pub use error::{EngineError, Result};
pub use freshness::{
    FreshnessResult, FreshnessResults, FreshnessStatus, check_source, checked_sources,
};
pub use ingest::{
    APP_ID as INGEST_APP_ID, FileFailure, INGESTED_AT_COLUMN, Ingest, IngestOutcome, IngestedFile,
    QUARANTINE_DIR, QuarantinedFile, SOURCE_FILE_COLUMN,
};
pub use materialize::{NodeOutcome, split_relation};
pub use results::{AdapterResponse, NodeResult, RunMetadata, RunResults, Status};
pub use runner::{RunEvent, RunOptions, Runner, describe, new_run_id, runnable};
pub use session::{LakeSession, SessionOptions, query_config};
pub use sql::Executed;
