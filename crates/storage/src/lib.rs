//! `lake-storage` owns the lake on object storage: the lake root (a local
//! path, `file://`, `memory://`, or `s3://` with the feature `s3`), its
//! zones of Delta tables (`<root>/<zone>/<name>/`), the view catalog
//! (`<root>/_lake/views/`), the DataFusion catalog `lake` over both, and the
//! writes (each one Delta commit). Local commits are made durable (fsync of
//! the log entry and its directory); S3 commits are conditional writes.

mod catalog;
mod delta;
mod error;
mod plain_scan;
mod root;
mod scan_stats;
pub mod stores;
mod views;

pub use catalog::{CATALOG, LakeCatalog, ZoneSchema, load_travelled, read_only};
pub use delta::{
    CommitOutcome, SchemaChange, TableDelete, TableMerge, TableUpdate, TableWrite, WriteMode,
    app_transaction_version, delta_compatible, quote_ident, stored_type,
};
pub use error::{Result, StorageError};
pub use root::{LakeRoot, TableVersion, ZONES, check_name, check_zone};
pub use views::{ViewCatalog, ViewDefinition};

pub use deltalake;
