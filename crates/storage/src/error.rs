//! The storage layer's errors.

/// What can go wrong between lake and its object store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The lake root is not a path or URL lake can open.
    #[error("invalid lake root '{root}': {message}")]
    InvalidRoot { root: String, message: String },

    /// A storage location (a URL and its storage options) lake cannot open:
    /// an unsupported scheme, a missing bucket, a bad option. The message
    /// never holds an option's value.
    #[error("cannot open '{location}': {message}")]
    InvalidLocation { location: String, message: String },

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
    #[error("{table}: {}", explain_store_failure(&.source.to_string()))]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// The object store failed (after retrying what was transient).
    #[error("{location}: {}", describe_store_error(.source))]
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

/// An object store's error for a person: what it means, with a hint, for
/// the usual permanent failures (a missing bucket, denied access, an
/// unreachable endpoint), then the store's own words, an S3 error body
/// shortened to its code and message. Object store errors hold URLs and
/// response bodies, never credentials (requests are signed in headers).
pub fn describe_store_error(source: &object_store::Error) -> String {
    explain_store_failure(&source.to_string())
}

/// [`describe_store_error`] of an error's text (deltalake's errors carry
/// the store's inside).
fn explain_store_failure(text: &str) -> String {
    let text = shorten_s3_body(text);
    let meaning = if text.contains("NoSuchBucket") {
        Some(
            "the bucket does not exist\n  hint: create it, or fix the location (for the lake root: --lake-root, LAKE_ROOT or `lake: root:`)",
        )
    } else if [
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "403 Forbidden",
    ]
    .iter()
    .any(|code| text.contains(code))
    {
        Some(
            "access denied\n  hint: check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the same keys under `lake: storage_options:`) and what they may do in this bucket",
        )
    } else if ["error sending request", "Connection refused", "dns error"]
        .iter()
        .any(|cause| text.contains(cause))
    {
        Some(
            "cannot reach the store\n  hint: check the endpoint (AWS_ENDPOINT_URL, or endpoint under `lake: storage_options:`) and the network",
        )
    } else {
        None
    };
    match meaning {
        Some(meaning) => format!("{meaning}\n  cause: {text}"),
        None => text,
    }
}

/// `... 404 Not Found: <?xml ...><Error><Code>NoSuchBucket</Code><Message>The
/// specified bucket does not exist</Message>...` becomes `... 404 Not Found:
/// NoSuchBucket: The specified bucket does not exist`.
fn shorten_s3_body(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let element = |name: &str| {
        let open = format!("<{name}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find(&format!("</{name}>"))? + from;
        Some(&text[from..to])
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{}{code}: {message}", &text[..start]),
        (Some(code), None) => format!("{}{code}", &text[..start]),
        _ => text.to_string(),
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_are_told_plainly() {
        let source = object_store::Error::Generic {
            store: "S3",
            source: "Error performing list request: Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName><RequestId>X</RequestId></Error>".into(),
        };
        let shown = describe_store_error(&source);
        assert!(
            shown.starts_with("the bucket does not exist\n  hint: create it"),
            "{shown}"
        );
        assert!(
            shown.ends_with("404 Not Found: NoSuchBucket: The specified bucket does not exist"),
            "{shown}"
        );
        let denied = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://h/b/k - Server returned non-2xx status code: 403 Forbidden: <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".into(),
        };
        let shown = describe_store_error(&denied);
        assert!(
            shown.starts_with("access denied\n  hint: check the credentials"),
            "{shown}"
        );
        assert!(
            shown.ends_with("403 Forbidden: AccessDenied: Access Denied"),
            "{shown}"
        );
        let plain = object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        };
        assert_eq!(describe_store_error(&plain), plain.to_string());
    }
}
