//! `lake-compiler` owns everything between a project folder and a
//! [`Manifest`]: loading `lake_project.yml` (or an unmodified
//! `dbt_project.yml`), discovering models, seeds, macros, tests and
//! properties YAML (with the feature store's entities, feature views and
//! feature services, and the files external sources ingest), rendering Jinja SQL with dbt's context, resolving configs
//! with dbt's precedence, building generic tests and the DAG, node
//! selection, and writing `target/manifest.json` and the compiled SQL.
//!
//! It deliberately depends on no async runtime, Arrow or DataFusion: its
//! output is a plain serde type that the engine consumes, and its tests run
//! in seconds.

mod compile;
pub mod config;
pub mod contract;
mod dag;
mod error;
pub mod external;
mod features;
pub mod generic_tests;
mod jinja;
pub mod manifest;
mod project;
mod properties;
mod select;
mod write;
mod yaml;

pub use compile::{CompileOptions, Compiled, compile, inject_ctes};
pub use config::{NodeConfig, OneOrMany};
pub use error::{CompileError, CompileErrors, Location, RefKind, suggest};
pub use external::{ExternalFiles, FileFormat, OnError};
pub use features::{format_ttl, parse_ttl};
pub use manifest::{
    ColumnInfo, Entity, FeatureField, FeatureRef, FeatureService, FeatureView, Manifest, Node,
    ResourceType, SourceDefinition,
};
pub use project::{LakeSettings, PROJECT_FILE_NAMES, ProjectFile, TargetSettings};
pub use select::{select, wildcard_match};
pub use write::{WriteStats, write_artifacts};
