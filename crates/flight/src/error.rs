//! The server's one error type, [`ServeError`], and how each variant
//! becomes a gRPC status. User mistakes (bad SQL, unknown tables, refused
//! statements, missing rights) never become INTERNAL.

use std::net::SocketAddr;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use lake_storage::StorageError;
use tonic::{Code, Status};

/// What can go wrong while serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Missing, malformed or wrong credentials. One message for every cause,
    /// so a client learns nothing about which part was wrong.
    #[error("authentication failed")]
    Unauthenticated,

    /// The principal's role may not read a zone the query touches.
    #[error("permission denied: {principal} (role {role}) may not read the {zone} zone")]
    ZoneDenied {
        principal: String,
        role: String,
        zone: String,
    },

    /// The principal's role may not run this command.
    #[error("permission denied: {principal} (role {role}) may not {action}")]
    ActionDenied {
        principal: String,
        role: String,
        action: String,
    },

    /// A statement the serving session never runs, whatever the role (DDL,
    /// DML, COPY, SET, ...).
    #[error("{statement} is not allowed here: {reason}")]
    Refused { statement: String, reason: String },

    /// The SQL does not parse, plan or run (DataFusion's message).
    #[error("{0}")]
    BadQuery(String),

    /// A table the query names does not exist (or is not visible).
    #[error("table {table} not found; {hint}")]
    TableNotFound { table: String, hint: String },

    /// A malformed request: a ticket or handle this server did not issue,
    /// parameters that do not fit, a bad ingest command.
    #[error("{0}")]
    BadRequest(String),

    /// Bulk ingest into a table that exists, when the client said not to.
    #[error("{0}")]
    AlreadyExists(String),

    /// Something the Flight SQL protocol offers that lake does not do
    /// (transactions, temporary tables, ...).
    #[error("not supported: {0}")]
    Unsupported(String),

    /// The limit on concurrent queries is reached.
    #[error("the server is already running its limit of {limit} queries; try again shortly")]
    Busy { limit: usize },

    /// A query needed more memory than the server may give it.
    #[error("{0}")]
    ResourcesExhausted(String),

    /// Another writer committed first (bulk ingest); retrying may succeed.
    #[error("{0}")]
    Conflict(String),

    /// Serving without authentication on an address other machines reach.
    #[error(
        "refusing to serve on {addr} without authentication: anyone who can reach it would be an admin; \
         bind a loopback address (127.0.0.1 or ::1) or configure an auth file"
    )]
    InsecureBind { addr: SocketAddr },

    /// The TLS certificate or key could not be used.
    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// Binding or serving the socket failed.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),

    /// The gRPC transport failed.
    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// Storage failed (object store, Delta log).
    #[error(transparent)]
    Storage(Box<StorageError>),

    /// A failure inside the server or the query engine, not caused by the
    /// request.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for ServeError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidName { .. } | StorageError::UnknownZone { .. } => {
                ServeError::BadRequest(e.to_string())
            }
            StorageError::Conflict { .. } => ServeError::Conflict(e.to_string()),
            StorageError::DataFusion(inner) => ServeError::from(*inner),
            other => ServeError::Storage(Box::new(other)),
        }
    }
}

impl From<DataFusionError> for ServeError {
    /// Sorts DataFusion's errors into the user's mistakes and the server's.
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                ServeError::from(*inner)
            }
            DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
                Ok(e) => ServeError::from(e),
                Err(shared) => ServeError::from(copy_of(&shared)),
            },
            DataFusionError::Collection(mut errors) if !errors.is_empty() => {
                ServeError::from(errors.swap_remove(0))
            }
            DataFusionError::External(boxed) => external(boxed),
            DataFusionError::Plan(_) => {
                let message = e.strip_backtrace();
                match missing_table(&message) {
                    Some(table) => ServeError::TableNotFound {
                        table,
                        hint: NO_SUGGESTION.to_string(),
                    },
                    None => ServeError::BadQuery(message),
                }
            }
            DataFusionError::SQL(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_)
            | DataFusionError::Execution(_) => ServeError::BadQuery(e.strip_backtrace()),
            DataFusionError::ArrowError(ref arrow, _) if is_user_arrow_error(arrow) => {
                ServeError::BadQuery(e.strip_backtrace())
            }
            DataFusionError::ArrowError(ref arrow, _)
                if matches!(**arrow, ArrowError::MemoryError(_)) =>
            {
                ServeError::ResourcesExhausted(e.strip_backtrace())
            }
            DataFusionError::ResourcesExhausted(_) => {
                ServeError::ResourcesExhausted(e.strip_backtrace())
            }
            // The server's side: its files, its store, its own bugs.
            DataFusionError::ArrowError(..)
            | DataFusionError::ParquetError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::ExecutionJoin(_)
            | DataFusionError::Substrait(_)
            | DataFusionError::Ffi(_)
            | DataFusionError::Collection(_) => ServeError::Internal(e.strip_backtrace()),
        }
    }
}

/// A copy of an error others still hold (DataFusion shares one error
/// between the partitions that hit it), keeping what decides its code.
fn copy_of(e: &DataFusionError) -> DataFusionError {
    match e.find_root() {
        DataFusionError::Plan(m) => DataFusionError::Plan(m.clone()),
        DataFusionError::Execution(m) => DataFusionError::Execution(m.clone()),
        DataFusionError::NotImplemented(m) => DataFusionError::NotImplemented(m.clone()),
        DataFusionError::Configuration(m) => DataFusionError::Configuration(m.clone()),
        DataFusionError::ResourcesExhausted(m) => DataFusionError::ResourcesExhausted(m.clone()),
        other => DataFusionError::Internal(other.strip_backtrace()),
    }
}

/// The hint when no close name is found.
pub(crate) const NO_SUGGESTION: &str = "GetTables lists the tables and views you may read";

/// `curated.orders` from DataFusion's "table 'lake.curated.orders' not
/// found".
fn missing_table(message: &str) -> Option<String> {
    let from = message.find("table '")? + "table '".len();
    let len = message[from..].find("' not found")?;
    let name = &message[from..from + len];
    Some(
        name.strip_prefix(&format!("{}.", lake_storage::CATALOG))
            .unwrap_or(name)
            .to_string(),
    )
}

/// Errors raised inside the server's own catalog come back from DataFusion
/// boxed; unbox the ones we know.
fn external(boxed: Box<dyn std::error::Error + Send + Sync>) -> ServeError {
    let boxed = match boxed.downcast::<ServeError>() {
        Ok(serve) => return *serve,
        Err(other) => other,
    };
    let boxed = match boxed.downcast::<DataFusionError>() {
        Ok(df) => return ServeError::from(*df),
        Err(other) => other,
    };
    let boxed = match boxed.downcast::<StorageError>() {
        Ok(storage) => return ServeError::from(*storage),
        Err(other) => other,
    };
    match boxed.downcast::<arrow_flight::error::FlightError>() {
        // An upload (bulk ingest) that could not be decoded.
        Ok(flight) => ServeError::BadRequest(format!("cannot read the uploaded data: {flight}")),
        Err(other) => ServeError::Internal(other.to_string()),
    }
}

/// Arrow errors a query's data or expressions cause (a division by zero, a
/// cast that does not fit), as opposed to the server's.
fn is_user_arrow_error(e: &ArrowError) -> bool {
    matches!(
        e,
        ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::SchemaError(_)
    )
}

impl ServeError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServeError::Unauthenticated => Code::Unauthenticated,
            ServeError::ZoneDenied { .. }
            | ServeError::ActionDenied { .. }
            | ServeError::Refused { .. } => Code::PermissionDenied,
            ServeError::BadQuery(_) | ServeError::BadRequest(_) => Code::InvalidArgument,
            ServeError::TableNotFound { .. } => Code::NotFound,
            ServeError::AlreadyExists(_) => Code::AlreadyExists,
            ServeError::Unsupported(_) => Code::Unimplemented,
            ServeError::Busy { .. } | ServeError::ResourcesExhausted(_) => Code::ResourceExhausted,
            ServeError::Conflict(_) => Code::Aborted,
            ServeError::InsecureBind { .. } | ServeError::Tls(_) => Code::FailedPrecondition,
            ServeError::Io(_)
            | ServeError::Transport(_)
            | ServeError::Storage(_)
            | ServeError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServeError> for Status {
    fn from(e: ServeError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_missing_table_from_datafusion() {
        assert_eq!(
            missing_table("Error during planning: table 'lake.curated.ordrs' not found"),
            Some("curated.ordrs".to_string())
        );
        assert_eq!(missing_table("No field named x"), None);
    }

    #[test]
    fn user_mistakes_are_not_internal() {
        let plan = ServeError::from(DataFusionError::Plan(
            "table 'lake.curated.nope' not found".into(),
        ));
        assert_eq!(plan.code(), Code::NotFound);
        let cast = ServeError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        assert_eq!(cast.code(), Code::InvalidArgument);
        let wrapped = ServeError::from(DataFusionError::External(Box::new(
            ServeError::ZoneDenied {
                principal: "alice".into(),
                role: "reader".into(),
                zone: "raw".into(),
            },
        )));
        assert_eq!(wrapped.code(), Code::PermissionDenied);
        assert!(wrapped.to_string().contains("raw"));
    }
}
