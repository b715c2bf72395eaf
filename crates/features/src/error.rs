//! What can go wrong while building a training set or an online table.

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A column the request or the feature view names is not there.
    #[error("{what}: no column '{column}' in {table}{}{hint}", suggestion(.suggestions))]
    UnknownColumn {
        what: String,
        column: String,
        table: String,
        suggestions: Vec<String>,
        hint: String,
    },
    /// An event-time column of a type that is not a time.
    #[error(
        "{what}: column '{column}' of {table} is {data_type}, not a timestamp or a date\n  hint: cast it in the model, e.g. `cast({column} as timestamp)`"
    )]
    NotATime {
        what: String,
        column: String,
        table: String,
        data_type: DataType,
    },
    /// Spine and feature view keys that cannot be compared.
    #[error(
        "join key '{key}' is {spine_type} in the spine but {view_type} in feature view '{view}'\n  hint: cast one side so both are integers, or both strings"
    )]
    KeyTypeMismatch {
        view: String,
        key: String,
        spine_type: DataType,
        view_type: DataType,
    },
    /// Two output columns with one name.
    #[error(
        "the training set would have two columns named '{column}' ({first} and {second})\n  hint: use full feature names (`<view>__<feature>`), or drop one of them"
    )]
    DuplicateColumn {
        column: String,
        first: String,
        second: String,
    },
    /// A request that names no feature, an unknown view or service, ...
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Storage(#[from] lake_storage::StorageError),
}

impl From<ArrowError> for FeatureError {
    fn from(e: ArrowError) -> Self {
        FeatureError::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

fn suggestion(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean '{one}'?)"),
        many => format!(
            " (did you mean one of {}?)",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl FeatureError {
    /// Whether the request, not the lake or the server, is at fault.
    pub fn is_user_error(&self) -> bool {
        match self {
            FeatureError::UnknownColumn { .. }
            | FeatureError::NotATime { .. }
            | FeatureError::KeyTypeMismatch { .. }
            | FeatureError::DuplicateColumn { .. }
            | FeatureError::BadRequest(_) => true,
            FeatureError::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::Plan(_) | DataFusionError::SchemaError(..)
            ),
            FeatureError::Storage(_) => false,
        }
    }
}

impl FeatureError {
    /// For a DataFusion stream.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            FeatureError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
