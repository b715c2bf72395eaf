//! A lake root: where the zones live, how to reach tables and views there.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::error::{Result, StorageError};
use crate::stores;
use crate::views::ViewCatalog;

/// The zones of a lake, in the order they are listed.
pub const ZONES: [&str; 4] = ["raw", "curated", "features", "audit"];

/// A lake root on an object store: `<root>/<zone>/<name>/` holds a Delta
/// table, `<root>/_lake/` lake's own catalog (views).
#[derive(Clone)]
pub struct LakeRoot {
    url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    storage_options: HashMap<String, String>,
}

/// Which version of a Delta table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableVersion {
    Latest,
    /// A commit number (`VERSION AS OF 3`).
    Version(u64),
    /// The last commit at or before an instant (`TIMESTAMP AS OF ...`).
    AsOf(chrono::DateTime<chrono::Utc>),
}

impl TableVersion {
    /// The table name that reads `name` at this version through the `lake`
    /// catalog: `orders@v3`, `orders@2026-11-01T00:00:00Z`. Time travel in
    /// SQL is rewritten to these names, so a plan that pins versions is
    /// plain SQL.
    pub fn pinned_name(&self, name: &str) -> String {
        match self {
            TableVersion::Latest => name.to_string(),
            TableVersion::Version(v) => format!("{name}@v{v}"),
            TableVersion::AsOf(t) => format!(
                "{name}@{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }

    /// Splits a name made by [`pinned_name`](Self::pinned_name).
    pub fn split_pinned(name: &str) -> (&str, TableVersion) {
        let Some((base, pin)) = name.rsplit_once('@') else {
            return (name, TableVersion::Latest);
        };
        if let Some(v) = pin.strip_prefix('v').and_then(|v| v.parse().ok()) {
            return (base, TableVersion::Version(v));
        }
        match chrono::DateTime::parse_from_rfc3339(pin) {
            Ok(t) => (base, TableVersion::AsOf(t.with_timezone(&chrono::Utc))),
            Err(_) => (name, TableVersion::Latest),
        }
    }
}

/// Shows the storage options redacted: they hold keys and tokens.
impl std::fmt::Debug for LakeRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeRoot")
            .field("url", &self.url.as_str())
            .field("store", &format_args!("{}", self.store))
            .field("prefix", &self.prefix.as_ref())
            .field("storage_options", &stores::redacted(&self.storage_options))
            .finish()
    }
}

impl LakeRoot {
    /// Opens the root given as a local path (relative ones resolve against
    /// `base`), a `file://`, `memory://` or (with the `s3` feature)
    /// `s3://bucket/prefix` URL, with storage options for the store (S3
    /// keys, endpoint, region: see [`stores::store_for`]). A local root is
    /// created if missing; a bucket is not checked until it is used.
    pub fn open(
        root: &str,
        base: &std::path::Path,
        storage_options: HashMap<String, String>,
    ) -> Result<LakeRoot> {
        stores::register();
        let invalid = |message: String| StorageError::InvalidRoot {
            root: root.to_string(),
            message,
        };
        let url = if root.contains("://") {
            let mut url = Url::parse(root).map_err(|e| invalid(e.to_string()))?;
            if url.password().is_some() || !url.username().is_empty() {
                return Err(StorageError::InvalidRoot {
                    root: stores::shown(&url),
                    message: "credentials in the URL are not supported\n  hint: use the AWS_* environment variables or `lake: storage_options:` in the project file".into(),
                });
            }
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|_| invalid("not a local path".into()))?;
                url = local_dir_url(&path).map_err(|e| invalid(e.to_string()))?;
            }
            url
        } else {
            let path = std::path::Path::new(root);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            local_dir_url(&path).map_err(|e| invalid(e.to_string()))?
        };
        let mut url = url;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let store = stores::store_for(&url, &storage_options).map_err(|e| match e {
            StorageError::InvalidLocation { message, .. } => invalid(message),
            other => other,
        })?;
        let prefix = Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
        Ok(LakeRoot {
            url,
            store,
            prefix,
            storage_options,
        })
    }

    /// The root's URL, ending in `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The object-store path of something under the root.
    pub fn path(&self, parts: &[&str]) -> Path {
        let mut path = self.prefix.clone();
        for part in parts {
            path = path.join(*part);
        }
        path
    }

    /// The URL of the table `zone.name`.
    pub fn table_url(&self, zone: &str, name: &str) -> Result<Url> {
        check_zone(zone)?;
        check_name(name)?;
        self.url
            .join(&format!("{zone}/{name}/"))
            .map_err(|e| StorageError::InvalidName {
                name: name.to_string(),
                message: e.to_string(),
            })
    }

    /// The lake's view catalog.
    pub fn views(&self) -> ViewCatalog {
        ViewCatalog::new(
            self.store.clone(),
            self.url.clone(),
            self.path(&["_lake", "views"]),
        )
    }

    /// Opens the latest version of `zone.name`, or `None` when there is no
    /// Delta table there.
    pub async fn load_table(&self, zone: &str, name: &str) -> Result<Option<DeltaTable>> {
        self.load_table_at(zone, name, TableVersion::Latest).await
    }

    /// Opens `zone.name` at a version or a point in time (Delta time
    /// travel), or `None` when there is no Delta table there.
    pub async fn load_table_at(
        &self,
        zone: &str,
        name: &str,
        at: TableVersion,
    ) -> Result<Option<DeltaTable>> {
        if !self.has_table(zone, name).await? {
            return Ok(None);
        }
        let url = self.table_url(zone, name)?;
        let mut builder = DeltaTableBuilder::from_url(url)
            .map_err(|e| StorageError::delta(format!("{zone}.{name}"), e))?
            .with_storage_options(self.storage_options.clone());
        match at {
            TableVersion::Latest => {}
            TableVersion::Version(v) => builder = builder.with_version(v),
            TableVersion::AsOf(t) => builder = builder.with_timestamp(t),
        }
        match builder.load().await {
            Ok(table) => {
                // deltalake opens the first version for an instant before
                // it; there was no table then.
                if let TableVersion::AsOf(t) = at
                    && let Ok(state) = table.snapshot()
                    && let Some(created) = state.version_timestamp(table.version().unwrap_or(0))
                    && created > t.timestamp_millis()
                {
                    return Err(StorageError::NoTable {
                        table: format!("{zone}.{name}"),
                        hint: format!(" as of {t}: its first version is later"),
                    });
                }
                Ok(Some(table))
            }
            Err(DeltaTableError::NotATable(_)) | Err(DeltaTableError::InvalidTableLocation(_)) => {
                Ok(None)
            }
            Err(e) => Err(StorageError::delta(format!("{zone}.{name}"), e)),
        }
    }

    /// An unloaded handle on `zone.name` that a first write creates.
    pub async fn table_for_write(&self, zone: &str, name: &str) -> Result<DeltaTable> {
        if let Some(table) = self.load_table(zone, name).await? {
            return Ok(table);
        }
        let url = self.table_url(zone, name)?;
        // deltalake wants a local table's folder to exist before the first
        // write creates the table in it.
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::InvalidRoot {
                root: self.url.to_string(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        DeltaTableBuilder::from_url(url)
            .and_then(|b| b.with_storage_options(self.storage_options.clone()).build())
            .map_err(|e| StorageError::delta(format!("{zone}.{name}"), e))
    }

    /// Whether `zone.name` is a Delta table, without loading it.
    pub async fn has_table(&self, zone: &str, name: &str) -> Result<bool> {
        check_zone(zone)?;
        check_name(name)?;
        self.has_log(&self.path(&[zone, name])).await
    }

    /// Whether `version` is still the newest commit of `zone.name`: one
    /// listing of the log from that version's entry on. A missing entry (the
    /// table was dropped and made again) also answers no.
    pub async fn is_latest_version(&self, zone: &str, name: &str, version: u64) -> Result<bool> {
        let log = self.path(&[zone, name]).join("_delta_log");
        // Just before "<version>.json", so the listing starts with it.
        let offset = log.clone().join(format!("{version:020}.jso"));
        let mut listing = self.store.list_with_offset(Some(&log), &offset);
        let mut found = false;
        while let Some(entry) =
            listing
                .try_next()
                .await
                .map_err(|source| StorageError::ObjectStore {
                    location: stores::location_of(&self.url, &log),
                    source,
                })?
        {
            let commit = entry
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|v| v.parse::<u64>().ok());
            match commit {
                Some(v) if v == version => found = true,
                Some(v) if v > version => return Ok(false),
                _ => {}
            }
        }
        Ok(found)
    }

    /// A folder is a table once it has a log entry: a first write that never
    /// committed leaves a folder without one.
    async fn has_log(&self, table: &Path) -> Result<bool> {
        let log = table.clone().join("_delta_log");
        let first = self.store.list(Some(&log)).try_next().await;
        first
            .map(|entry| entry.is_some())
            .map_err(|source| StorageError::ObjectStore {
                location: stores::location_of(&self.url, &log),
                source,
            })
    }

    /// The names of the Delta tables in `zone`.
    pub async fn list_tables(&self, zone: &str) -> Result<Vec<String>> {
        check_zone(zone)?;
        let zone_path = self.path(&[zone]);
        let listing = match self.store.list_with_delimiter(Some(&zone_path)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(vec![]),
            Err(source) => {
                return Err(StorageError::ObjectStore {
                    location: stores::location_of(&self.url, &zone_path),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for dir in listing.common_prefixes {
            let Some(name) = dir.filename() else { continue };
            if self.has_log(&dir).await? {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

fn local_dir_url(path: &std::path::Path) -> std::io::Result<Url> {
    std::fs::create_dir_all(path)?;
    let path = path.canonicalize()?;
    Url::from_directory_path(&path)
        .map_err(|_| std::io::Error::other(format!("cannot make a URL of {}", path.display())))
}

/// Zones are fixed.
pub fn check_zone(zone: &str) -> Result<()> {
    if ZONES.contains(&zone) {
        Ok(())
    } else {
        Err(StorageError::UnknownZone {
            zone: zone.to_string(),
        })
    }
}

/// Table and view names: letters, digits, `_` and `-`, so they are safe as
/// path segments.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName {
            name: name.to_string(),
            message: "use letters, digits and underscores (not starting with '_')".into(),
        })
    }
}

impl LakeRoot {
    /// The object store for another location (a landing folder), with
    /// this root's storage options (and the environment's, for S3).
    pub fn store_for_location(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        stores::store_for(url, &self.storage_options)
    }
}
