//! Properties YAML (`models/**/*.yml`): `models:`, `seeds:`, `sources:` with
//! their descriptions, columns, configs and tests, and the feature store's
//! `entities:`, `feature_views:` and `feature_services:`.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::config::ConfigMap;

/// One properties file. Keys lake does not use (`version`, `exposures`,
/// `metrics`, `semantic_models`, `macros`, ...) are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
pub struct PropertiesFile {
    #[serde(default)]
    pub models: Vec<NodeProperties>,
    #[serde(default)]
    pub seeds: Vec<NodeProperties>,
    #[serde(default)]
    pub sources: Vec<SourceProperties>,
    #[serde(default)]
    pub entities: Vec<EntityProperties>,
    #[serde(default)]
    pub feature_views: Vec<FeatureViewProperties>,
    #[serde(default)]
    pub feature_services: Vec<FeatureServiceProperties>,
}

/// An `entities:` entry: what identifies a row of a feature view.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EntityProperties {
    pub name: String,
    #[serde(default)]
    pub join_keys: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A `feature_views:` entry. Required keys are options here so that a
/// missing one is reported with the entry's line, next to every other
/// problem of the run.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeatureViewProperties {
    pub name: String,
    #[serde(default)]
    pub entities: Vec<String>,
    /// A model or seed name, or `source_name.table_name`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub timestamp_field: Option<String>,
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    /// `30d`, `1d12h`, or a number of seconds.
    #[serde(default)]
    pub ttl: Option<Json>,
    /// Each a name, or `{name, dtype, description}`.
    #[serde(default)]
    pub features: Vec<Json>,
    #[serde(default)]
    pub online: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A `feature_services:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeatureServiceProperties {
    pub name: String,
    /// Each `view:feature`, or a whole `view`.
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A `models:` or `seeds:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub config: ConfigMap,
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
    /// Model-level constraints (`primary_key` over several columns, ...).
    #[serde(default)]
    pub constraints: Vec<Json>,
    #[serde(default)]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub data_tests: Vec<Json>,
    /// Older dbt projects put these beside `config:`.
    #[serde(default)]
    pub meta: Option<Map<String, Json>>,
    #[serde(default)]
    pub tags: Option<Json>,
    #[serde(default)]
    pub docs: Option<Json>,
}

impl NodeProperties {
    /// The config this entry gives, with the older top-level `meta`/`tags`
    /// folded in.
    pub fn effective_config(&self) -> ConfigMap {
        let mut config = ConfigMap::new();
        if let Some(meta) = &self.meta {
            config.insert("meta".into(), Json::Object(meta.clone()));
        }
        if let Some(tags) = &self.tags {
            config.insert("tags".into(), tags.clone());
        }
        if let Some(docs) = &self.docs {
            config.insert("docs".into(), docs.clone());
        }
        crate::config::merge(&mut config, &self.config);
        config
    }

    pub fn all_tests(&self) -> impl Iterator<Item = &Json> {
        self.tests.iter().chain(&self.data_tests)
    }
}

/// A `columns:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ColumnProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub constraints: Vec<Json>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// dbt 1.10's place for a column's `meta` and `tags`
    /// (`config: {meta: {pii: true}, tags: [pii]}`); merged with the
    /// top-level ones.
    #[serde(default)]
    pub config: Map<String, Json>,
    #[serde(default)]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub data_tests: Vec<Json>,
}

impl ColumnProperties {
    pub fn all_tests(&self) -> impl Iterator<Item = &Json> {
        self.tests.iter().chain(&self.data_tests)
    }

    /// `meta`, with `config.meta` winning on the same key.
    pub fn effective_meta(&self) -> Map<String, Json> {
        let mut meta = self.meta.clone();
        if let Some(Json::Object(more)) = self.config.get("meta") {
            meta.extend(more.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        meta
    }

    /// `tags` and `config.tags` (a string or a list), without duplicates.
    pub fn effective_tags(&self) -> Vec<String> {
        let mut tags = self.tags.clone();
        let more: Vec<&str> = match self.config.get("tags") {
            Some(Json::String(tag)) => vec![tag.as_str()],
            Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        for tag in more {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
        tags
    }
}

/// A `sources:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SourceProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub freshness: Option<Json>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub config: ConfigMap,
    #[serde(default)]
    pub tables: Vec<SourceTableProperties>,
}

/// A source's `tables:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SourceTableProperties {
    pub name: String,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    /// `Some(Null)` for an explicit `freshness: null`, which turns off the
    /// source's freshness for this table (absent inherits it).
    #[serde(default, deserialize_with = "present")]
    pub freshness: Option<Json>,
    #[serde(default)]
    pub external: Option<Json>,
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
    #[serde(default)]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub data_tests: Vec<Json>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub config: ConfigMap,
}

impl SourceTableProperties {
    pub fn all_tests(&self) -> impl Iterator<Item = &Json> {
        self.tests.iter().chain(&self.data_tests)
    }
}

/// A key that is present deserializes to `Some`, even when its value is
/// null; an absent one stays `None` (by `serde(default)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    <Json as Deserialize>::deserialize(d).map(Some)
}

/// Finds `{% docs name %}...{% enddocs %}` blocks in a markdown file.
pub fn docs_blocks(text: &str) -> Vec<(String, String)> {
    let re = docs_regex();
    re.captures_iter(text)
        .map(|c| (c[1].to_string(), c[2].trim().to_string()))
        .collect()
}

fn docs_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"(?s)\{%-?\s*docs\s+([A-Za-z_][A-Za-z0-9_]*)\s*-?%\}(.*?)\{%-?\s*enddocs\s*-?%\}",
        )
        .expect("valid regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_docs_blocks() {
        let md = "intro\n{% docs orders %}\nOne row per order.\n{% enddocs %}\n{%- docs status -%}The status{%- enddocs -%}";
        assert_eq!(
            docs_blocks(md),
            vec![
                ("orders".to_string(), "One row per order.".to_string()),
                ("status".to_string(), "The status".to_string())
            ]
        );
    }
}
