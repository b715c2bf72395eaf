//! The object stores behind a lake root, registered with deltalake so that
//! every table opened through it uses them:
//!
//! - `memory://`: one in-memory store per process. object_store's default
//!   makes a new, empty store on every open, so a table written through one
//!   handle would be invisible to the next.
//! - `file://`: the local file system, made durable. object_store 0.13
//!   does not fsync; a Delta commit acknowledged on a local disk must
//!   survive a power loss, so after writing a `_delta_log` entry this store
//!   syncs the file and its directory.
//! - `s3://` and `s3a://` (cargo feature `s3`): S3 and S3-compatible
//!   stores through object_store's S3 client, configured by the `AWS_*`
//!   environment and the storage options; see the `s3` module.
//!
//! Storage options hold secrets (keys, tokens): show them only through
//! [`redacted`], and a location only through [`shown`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, Once};

use async_trait::async_trait;
use deltalake::logstore::{
    ObjectStoreFactory, ObjectStoreRef, StorageConfig, object_store_factories,
};
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use crate::error::{Result, StorageError};

#[cfg(feature = "s3")]
pub mod s3;

/// The process's one in-memory store.
pub static MEMORY: LazyLock<Arc<InMemory>> = LazyLock::new(|| Arc::new(InMemory::new()));

/// Registers lake's stores with deltalake (once per process).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factories = object_store_factories();
        factories.insert(
            Url::parse("memory://").expect("valid"),
            Arc::new(MemoryFactory),
        );
        factories.insert(
            Url::parse("file://").expect("valid"),
            Arc::new(DurableLocalFactory),
        );
        #[cfg(feature = "s3")]
        for scheme in s3::SCHEMES {
            let scheme = Url::parse(&format!("{scheme}://")).expect("valid");
            factories.insert(scheme.clone(), Arc::new(s3::S3Factory));
            deltalake::logstore::logstore_factories()
                .insert(scheme, Arc::new(s3::ConditionalPutLogStore));
        }
    });
}

/// The store for a location's scheme, rooted at scheme and host (the
/// bucket), configured by `options` (and, for S3, the `AWS_*`
/// environment).
pub fn store_for(url: &Url, options: &HashMap<String, String>) -> Result<ObjectStoreRef> {
    let invalid = |message: String| StorageError::InvalidLocation {
        location: shown(url),
        message,
    };
    match url.scheme() {
        "memory" => Ok(MEMORY.clone()),
        "file" => Ok(Arc::new(DurableLocalStore::new())),
        #[cfg(feature = "s3")]
        "s3" | "s3a" => s3::store(url, options)
            .map(|store| store as ObjectStoreRef)
            .map_err(invalid),
        #[cfg(not(feature = "s3"))]
        "s3" | "s3a" => {
            let _ = options;
            Err(invalid(
                "this lake was built without S3 support\n  hint: build it with the cargo feature `s3` (the `lake` binary's default)".into(),
            ))
        }
        other => Err(invalid(format!(
            "unsupported scheme '{other}://'; lake reads local paths, file://, memory:// and s3://"
        ))),
    }
}

/// A location as it may be printed: without a user name or password.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() || !url.username().is_empty() {
        let _ = url.set_password(None);
        let _ = url.set_username("");
    }
    url.to_string()
}

/// The URL of `path` in the store of `base` (its scheme and bucket), as
/// errors show it: `s3://bucket/lake/raw/orders/_delta_log`.
pub fn location_of(base: &Url, path: &Path) -> String {
    format!(
        "{}://{}/{path}",
        base.scheme(),
        base.host_str().unwrap_or_default()
    )
}

/// Storage option keys whose values are not secret (matched without case
/// and without an `aws_` prefix); every other value is shown as `***`.
const PLAIN_OPTIONS: [&str; 20] = [
    "region",
    "default_region",
    "endpoint",
    "endpoint_url",
    "endpoint_url_s3",
    "allow_http",
    "virtual_hosted_style_request",
    "bucket",
    "bucket_name",
    "max_retries",
    "retry_timeout",
    "timeout",
    "connect_timeout",
    "conditional_put",
    "copy_if_not_exists",
    "skip_signature",
    "unsigned_payload",
    "checksum_algorithm",
    "s3_express",
    "request_payer",
];

/// `options` as they may be printed: only the values of known non-secret
/// keys (region, endpoint, ...); keys, tokens and anything unknown are
/// `***`.
pub fn redacted(options: &HashMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(key, value)| {
            let lower = key.to_ascii_lowercase();
            let name = lower.strip_prefix("aws_").unwrap_or(&lower);
            let shown = if PLAIN_OPTIONS.contains(&name) {
                value.clone()
            } else {
                "***".to_string()
            };
            (key.clone(), shown)
        })
        .collect()
}

fn path_of(url: &Url) -> deltalake::DeltaResult<Path> {
    Path::from_url_path(url.path())
        .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))
}

struct MemoryFactory;

impl ObjectStoreFactory for MemoryFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, Path)> {
        Ok((MEMORY.clone(), path_of(url)?))
    }
}

struct DurableLocalFactory;

impl ObjectStoreFactory for DurableLocalFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, Path)> {
        Ok((Arc::new(DurableLocalStore::new()), path_of(url)?))
    }
}

/// The local file system, with Delta log entries synced to disk.
#[derive(Debug)]
pub struct DurableLocalStore {
    inner: LocalFileSystem,
}

impl DurableLocalStore {
    pub fn new() -> DurableLocalStore {
        DurableLocalStore {
            inner: LocalFileSystem::new(),
        }
    }
}

impl Default for DurableLocalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DurableLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocalStore({})", self.inner)
    }
}

/// Syncs a written file and the directory that names it.
async fn sync_file_and_dir(path: std::path::PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)?.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

fn is_log_entry(location: &Path) -> bool {
    location.as_ref().contains("_delta_log/") || location.as_ref().contains("_lake/")
}

#[async_trait]
impl ObjectStore for DurableLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        if is_log_entry(location) {
            let path = self.inner.path_to_filesystem(location)?;
            sync_file_and_dir(path)
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "DurableLocalStore",
                    source: Box::new(e),
                })?;
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    // The local store renames atomically; the trait's default would copy
    // and delete.
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
