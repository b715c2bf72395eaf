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
    });
}

/// The store for a root URL's scheme, rooted at scheme and host.
pub fn store_for(url: &Url) -> Option<ObjectStoreRef> {
    match url.scheme() {
        "memory" => Some(MEMORY.clone()),
        "file" => Some(Arc::new(DurableLocalStore::new())),
        _ => None,
    }
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
