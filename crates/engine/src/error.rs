//! The engine's errors: what failed, in which file, and what to do.

use lake_compiler::CompileError;
use lake_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model's SQL does not parse or plan. `compiled_path` is where
    /// `lake compile` writes the SQL that was run.
    #[error("{file}: {message}\n  compiled SQL: {compiled_path}")]
    Sql {
        file: String,
        compiled_path: String,
        message: String,
    },

    /// A config the materialization needs is missing or wrong.
    #[error("{file}: {message}")]
    Config { file: String, message: String },

    /// The model's columns changed and `on_schema_change` says no.
    #[error(
        "{file}: the columns of {relation} changed ({changes}) and on_schema_change is '{mode}'"
    )]
    SchemaChanged {
        file: String,
        relation: String,
        changes: String,
        mode: String,
    },

    /// A model's output breaks its enforced contract; nothing was written.
    #[error(
        "{file}: the contract of {relation} is violated, so nothing was written ({relation} is unchanged):{}",
        problems.iter().map(|p| format!("\n  - {p}")).collect::<String>()
    )]
    Contract {
        file: String,
        relation: String,
        problems: Vec<String>,
    },

    /// A statement typed by a person (`lake sql`) cannot run.
    #[error("{0}")]
    Query(String),

    /// A seed file could not be loaded.
    #[error("{file}: {message}")]
    Seed { file: String, message: String },

    /// Re-rendering a node failed.
    #[error(transparent)]
    Compile(#[from] CompileError),

    /// Storage or Delta failed.
    #[error(transparent)]
    Storage(Box<StorageError>),

    /// DataFusion failed while running a query.
    #[error("{context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// The session could not be set up.
    #[error("cannot set up the query engine: {0}")]
    Session(String),

    /// Cancelled (for example by --fail-fast).
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl EngineError {
    pub fn datafusion(
        context: impl Into<String>,
        source: datafusion::error::DataFusionError,
    ) -> EngineError {
        EngineError::DataFusion {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Problems in the project or its data (as opposed to lake's own or the
    /// environment's).
    pub fn is_user_error(&self) -> bool {
        match self {
            EngineError::Sql { .. }
            | EngineError::Config { .. }
            | EngineError::SchemaChanged { .. }
            | EngineError::Contract { .. }
            | EngineError::Query(_)
            | EngineError::Seed { .. } => true,
            EngineError::Compile(e) => e.is_user_error(),
            EngineError::Storage(e) => e.is_conflict(),
            EngineError::DataFusion { .. }
            | EngineError::Session(_)
            | EngineError::Cancelled(_) => false,
        }
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        EngineError::Storage(Box::new(e))
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
