//! The storage layer's errors.

/// What can go wrong between lake and its object store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The lake root is not a path or URL lake can open.
    #[error("invalid lake root '{root}': {message}")]
    InvalidRoot { root: String, message: String },

    /// A name that cannot be a table or view name.
    #[error("invalid name '{name}': {message}")]
    InvalidName { name: String, message: String },

    /// An unknown zone.
    #[error("unknown zone '{zone}'; zones are raw, curated, features, audit")]
    UnknownZone { zone: String },

    /// Another writer committed first and the change conflicts with it.
    #[error("commit conflict on {table}: {message}")]
    Conflict { table: String, message: String },

    /// A Delta Lake operation failed.
    #[error("{table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// The object store failed.
    #[error("{location}: {source}")]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// No Delta table by that name.
    #[error("{table} is not a Delta table{hint}")]
    NoTable { table: String, hint: String },

    /// A stored view definition could not be read.
    #[error("view {view}: corrupt definition at {location}: {message}")]
    CorruptView {
        view: String,
        location: String,
        message: String,
    },

    /// DataFusion failed while planning or running a write.
    #[error("{0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
}

impl StorageError {
    /// Wraps a deltalake error for `table`, telling conflicts apart.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> StorageError {
        use deltalake::DeltaTableError as E;
        use deltalake::kernel::transaction::TransactionError as T;
        let table = table.into();
        match &source {
            E::VersionAlreadyExists(v) => StorageError::Conflict {
                table,
                message: format!("version {v} was written by another process at the same time"),
            },
            E::Transaction {
                source: T::CommitConflict(c),
            } => StorageError::Conflict {
                table,
                message: format!("another writer changed the table first ({c})"),
            },
            E::Transaction {
                source: T::MaxCommitAttempts(n),
            } => StorageError::Conflict {
                table,
                message: format!("gave up after {n} attempts while other writers kept committing"),
            },
            _ => StorageError::Delta {
                table,
                source: Box::new(source),
            },
        }
    }

    /// True when retrying the same operation later may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict { .. })
    }
}

impl From<datafusion::error::DataFusionError> for StorageError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        StorageError::DataFusion(Box::new(e))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
