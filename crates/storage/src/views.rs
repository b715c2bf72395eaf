//! Views live in the lake's own catalog (`<root>/_lake/views/<zone>/<name>.json`),
//! not as Delta tables, so every process that opens the root sees them.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::root::{check_name, check_zone};
use crate::stores::location_of;

/// A stored view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDefinition {
    pub zone: String,
    pub name: String,
    /// The SQL the view stands for, with fully qualified table names.
    pub sql: String,
    /// What wrote it (for example a model's unique id).
    #[serde(default)]
    pub written_by: Option<String>,
    /// When it was written (RFC 3339).
    pub written_at: String,
}

/// The view catalog of one lake root.
#[derive(Debug, Clone)]
pub struct ViewCatalog {
    store: Arc<dyn ObjectStore>,
    /// The store's URL (scheme and bucket), for errors.
    base: url::Url,
    prefix: Path,
}

impl ViewCatalog {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, base: url::Url, prefix: Path) -> ViewCatalog {
        ViewCatalog {
            store,
            base,
            prefix,
        }
    }

    fn failed(&self, location: &Path, source: object_store::Error) -> StorageError {
        StorageError::ObjectStore {
            location: location_of(&self.base, location),
            source,
        }
    }

    fn location(&self, zone: &str, name: &str) -> Path {
        self.prefix.clone().join(zone).join(format!("{name}.json"))
    }

    /// Writes (or replaces) a view. One object put: readers see the old
    /// definition or the new one.
    pub async fn put(&self, view: &ViewDefinition) -> Result<()> {
        check_zone(&view.zone)?;
        check_name(&view.name)?;
        let location = self.location(&view.zone, &view.name);
        let body = serde_json::to_vec_pretty(view).map_err(|e| StorageError::CorruptView {
            view: format!("{}.{}", view.zone, view.name),
            location: location.to_string(),
            message: e.to_string(),
        })?;
        self.store
            .put(&location, PutPayload::from(body))
            .await
            .map_err(|source| self.failed(&location, source))?;
        Ok(())
    }

    /// The view `zone.name`, if there is one.
    pub async fn get(&self, zone: &str, name: &str) -> Result<Option<ViewDefinition>> {
        check_zone(zone)?;
        if check_name(name).is_err() {
            return Ok(None);
        }
        let location = self.location(zone, name);
        let bytes = match self.store.get(&location).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|source| self.failed(&location, source))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.failed(&location, source)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::CorruptView {
                view: format!("{zone}.{name}"),
                location: location.to_string(),
                message: e.to_string(),
            })
    }

    /// Removes the view `zone.name`; true if there was one.
    pub async fn remove(&self, zone: &str, name: &str) -> Result<bool> {
        check_zone(zone)?;
        let location = self.location(zone, name);
        let failed = |source| self.failed(&location, source);
        // Object stores delete missing keys without complaint, so ask first.
        match self.store.head(&location).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(source) => return Err(failed(source)),
        }
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(source) => Err(failed(source)),
        }
    }

    /// The names of the views in `zone`.
    pub async fn list(&self, zone: &str) -> Result<Vec<String>> {
        check_zone(zone)?;
        let dir = self.prefix.clone().join(zone);
        let listing = match self.store.list_with_delimiter(Some(&dir)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(vec![]),
            Err(source) => return Err(self.failed(&dir, source)),
        };
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}
