//! S3 and S3-compatible stores (`s3://bucket/prefix`, `s3a://...`),
//! through object_store's own S3 client (no AWS SDK).
//!
//! Configuration: the usual `AWS_*` environment variables first, then the
//! storage options (the project file's `lake: storage_options:`), which
//! win. Keys are object_store's (`AmazonS3ConfigKey`), matched without
//! regard to case: `aws_endpoint_url` or `endpoint`, `aws_region` or
//! `region`, `aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`, `aws_allow_http` or `allow_http`, ... Requests are
//! path-style (`ENDPOINT/bucket/key`) unless
//! `aws_virtual_hosted_style_request` is true. Two keys are lake's own:
//! `max_retries` and `retry_timeout`.
//!
//! Commits: deltalake writes a log entry with put-if-absent
//! (`PutMode::Create`), which object_store sends as an S3 conditional
//! write (`If-None-Match: *`), so two writers never both write the same
//! version: one gets `412 Precondition Failed` and deltalake retries it as
//! the next version. No locking provider (DynamoDB) is needed.
//!
//! Transient errors (timeouts, connection failures, 5xx, 429) are retried
//! with exponential backoff (100 ms doubling up to 15 s, with jitter), at
//! most [`DEFAULT_MAX_RETRIES`] times and for at most
//! [`DEFAULT_RETRY_TIMEOUT`] per request; other errors (403, 404, a
//! missing bucket) fail at once.
//!
//! One store per bucket and configuration is kept for the process, so
//! every table of a lake shares one HTTP client and its connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deltalake::logstore::{
    DeltaIOStorageBackend, LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef,
    StorageConfig, default_logstore,
};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use parking_lot::Mutex;
use url::Url;

/// The URL schemes of S3 locations.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

/// How many times a request that failed transiently is retried.
pub const DEFAULT_MAX_RETRIES: usize = 10;

/// How long after its first attempt a request is no longer retried.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(180);

/// The stores made so far: by bucket, `AWS_*` environment and options.
type StoreKey = (String, BTreeMap<String, String>, BTreeMap<String, String>);
static STORES: LazyLock<Mutex<HashMap<StoreKey, Arc<AmazonS3>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The store of `url`'s bucket, configured by the environment and
/// `options`. The error never holds an option's value.
pub(crate) fn store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<AmazonS3>, String> {
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "no bucket in the URL; write s3://BUCKET/prefix".to_string())?
        .to_string();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let options: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let key = (bucket, env, options);
    if let Some(store) = STORES.lock().get(&key) {
        return Ok(store.clone());
    }
    let store = Arc::new(build(&key.0, &key.1, &key.2)?);
    STORES.lock().insert(key, store.clone());
    Ok(store)
}

fn build(
    bucket: &str,
    env: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
) -> Result<AmazonS3, String> {
    let mut builder = AmazonS3Builder::new();
    // As object_store's `from_env`: unknown `AWS_*` variables (a profile
    // name, a config file) are not ours to judge.
    for (key, value) in env {
        if let Ok(key) = key.parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    let mut retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: DEFAULT_MAX_RETRIES,
        retry_timeout: DEFAULT_RETRY_TIMEOUT,
    };
    for (key, value) in options {
        match key.as_str() {
            "max_retries" => {
                retry.max_retries = value.trim().parse().map_err(|_| {
                    format!("storage option max_retries: expected a whole number, got '{value}'")
                })?;
            }
            "retry_timeout" => {
                retry.retry_timeout = parse_duration(value).ok_or_else(|| {
                    format!(
                        "storage option retry_timeout: expected a duration such as 180s or 3m, got '{value}'"
                    )
                })?;
            }
            _ => match key.parse::<AmazonS3ConfigKey>() {
                Ok(parsed) => builder = builder.with_config(parsed, value),
                // Keys of deltalake's own (concurrency limits, IO runtime)
                // pass; an `aws_` key that object_store does not know is a
                // typo that would otherwise be silently ignored.
                Err(_) if key.starts_with("aws_") => {
                    return Err(format!(
                        "unknown storage option '{key}'\n  hint: S3 options are object_store's: \
                         aws_endpoint_url, aws_region, aws_access_key_id, aws_secret_access_key, \
                         aws_session_token, aws_allow_http, aws_virtual_hosted_style_request, ... \
                         (see docs/storage.md)"
                    ));
                }
                Err(_) => {}
            },
        }
    }
    // The URL names the bucket, whatever the options say.
    builder = builder.with_bucket_name(bucket).with_retry(retry);
    if let Some(endpoint) = builder.get_config_value(&AmazonS3ConfigKey::Endpoint)
        && endpoint.starts_with("http://")
        && !builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(format!(
            "the endpoint {endpoint} is plain HTTP\n  hint: set AWS_ALLOW_HTTP=true (or allow_http: true under lake: storage_options:) to allow it"
        ));
    }
    builder.build().map_err(|e| e.to_string())
}

/// `180`, `180s`, `500ms`, `3m`, `1h`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" | "sec" | "secs" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" | "min" | "mins" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// deltalake's way to S3 through [`store`].
pub(crate) struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, Path)> {
        let store = store(url, &config.raw).map_err(|message| {
            deltalake::DeltaTableError::Generic(format!("{}: {message}", super::shown(url)))
        })?;
        let store: ObjectStoreRef = match &config.runtime {
            Some(runtime) => Arc::new(DeltaIOStorageBackend::new(
                store.as_ref().clone(),
                runtime.clone(),
            )),
            None => store,
        };
        Ok((store, super::path_of(url)?))
    }
}

/// deltalake's default log store, which commits with put-if-absent: what
/// deltalake uses for `file://` and `memory://` too. (deltalake finds no
/// log store for a scheme nobody registered one for.)
pub(crate) struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("180"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("3 weeks"), None);
    }

    #[test]
    fn options_are_checked_without_echoing_values() {
        let url = Url::parse("s3://bucket/lake/").unwrap();
        let err = store(
            &url,
            &options(&[("AWS_SECRET_ACESS_KEY", "very-secret-value")]),
        )
        .unwrap_err();
        assert!(
            err.contains("unknown storage option 'aws_secret_acess_key'"),
            "{err}"
        );
        assert!(!err.contains("very-secret-value"), "{err}");

        let err = store(
            &url,
            &options(&[("endpoint", "http://127.0.0.1:1"), ("allow_http", "false")]),
        )
        .unwrap_err();
        assert!(err.contains("AWS_ALLOW_HTTP=true"), "{err}");

        let err = store(&Url::parse("s3:///lake/").unwrap(), &HashMap::new()).unwrap_err();
        assert!(err.contains("no bucket"), "{err}");

        // deltalake's own keys pass.
        store(
            &url,
            &options(&[
                ("region", "eu-west-1"),
                ("max_retries", "3"),
                ("retry_timeout", "30s"),
                ("OBJECT_STORE_CONCURRENCY_LIMIT", "8"),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn one_store_per_bucket_and_configuration() {
        let url = Url::parse("s3://bucket-a/x/").unwrap();
        let a = store(&url, &options(&[("region", "eu-west-1")])).unwrap();
        let b = store(
            &Url::parse("s3a://bucket-a/y/").unwrap(),
            &options(&[("REGION", "eu-west-1")]),
        )
        .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = store(&url, &options(&[("region", "eu-west-2")])).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
