//! Node configs: the hierarchical `models:`/`seeds:`/`data_tests:` trees of
//! the project file, properties YAML `config:` blocks and `config()` calls,
//! merged with dbt's precedence and rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::{CompileError, Location};

/// A config as a plain map while it is being merged.
pub type ConfigMap = Map<String, Json>;

/// Config keys that may appear without a `+` in the project tree (dbt
/// accepts both spellings for its known configs). Anything else without a
/// `+` is a folder or a node name.
const KNOWN_KEYS: &[&str] = &[
    "materialized",
    "enabled",
    "tags",
    "schema",
    "database",
    "alias",
    "zone",
    "persist_docs",
    "pre_hook",
    "post_hook",
    "quoting",
    "column_types",
    "full_refresh",
    "unique_key",
    "on_schema_change",
    "incremental_strategy",
    "partition_by",
    "meta",
    "docs",
    "contract",
    "grants",
    "severity",
    "store_failures",
    "store_failures_as",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "delimiter",
    "quote_columns",
    "sql_header",
    "cluster_by",
    "access",
    "group",
    "event_time",
    "on_configuration_change",
    "labels",
];

/// dbt spells some keys with dashes (`pre-hook`); lake stores underscores.
pub fn normalize_key(key: &str) -> String {
    key.trim_start_matches('+').replace('-', "_")
}

/// Merges `from` into `into`: `tags` and hooks accumulate, `meta` and
/// `docs` merge key by key, everything else is replaced.
pub fn merge(into: &mut ConfigMap, from: &ConfigMap) {
    for (key, value) in from {
        let key = normalize_key(key);
        match key.as_str() {
            "tags" | "pre_hook" | "post_hook" => {
                let mut items = as_list(into.get(&key));
                for item in as_list(Some(value)) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                into.insert(key, Json::Array(items));
            }
            "meta" | "docs" => match (into.get_mut(&key), value) {
                (Some(Json::Object(existing)), Json::Object(new)) => {
                    for (k, v) in new {
                        existing.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    into.insert(key, value.clone());
                }
            },
            _ => {
                into.insert(key, value.clone());
            }
        }
    }
}

fn as_list(value: Option<&Json>) -> Vec<Json> {
    match value {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// The config that the project tree gives the node with this `fqn`
/// (`[project, folder..., name]`): each level on the way down applies its
/// `+key` entries, deeper levels winning.
pub fn from_tree(tree: &Json, fqn: &[String]) -> ConfigMap {
    let mut config = ConfigMap::new();
    let Some(mut level) = tree.as_object() else {
        return config;
    };
    merge(&mut config, &level_configs(level));
    for segment in fqn {
        match level.get(segment).and_then(Json::as_object) {
            Some(next) => {
                level = next;
                merge(&mut config, &level_configs(level));
            }
            None => break,
        }
    }
    config
}

fn level_configs(level: &Map<String, Json>) -> ConfigMap {
    level
        .iter()
        .filter(|(k, v)| {
            k.starts_with('+')
                || (KNOWN_KEYS.contains(&normalize_key(k).as_str()) && !is_subtree(v))
        })
        .map(|(k, v)| (normalize_key(k), v.clone()))
        .collect()
}

/// A mapping under a known key name is still a config for `meta`, `docs`,
/// `contract`, ... but `tags: {...}` would be a folder named `tags`: dbt
/// resolves the same ambiguity by the value's shape.
fn is_subtree(value: &Json) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.starts_with('+')))
}

/// `unique_key` and friends: one column or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A model contract (`contract: {enforced: true}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    #[serde(default)]
    pub enforced: bool,
}

/// The resolved config of a node, as written to the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub materialized: String,
    /// The lake zone the node's table lives in.
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    #[serde(default = "ignore")]
    pub on_schema_change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_refresh: Option<bool>,
    #[serde(default)]
    pub contract: Contract,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_if: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_if: Option<String>,
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_failures: Option<bool>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub column_types: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_columns: Option<bool>,
    /// Every other key, kept as given (dbt adapters' configs, hooks, ...).
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

fn yes() -> bool {
    true
}
fn ignore() -> String {
    "ignore".into()
}

/// The materializations lake runs.
pub const MATERIALIZATIONS: &[&str] = &[
    "view",
    "table",
    "ephemeral",
    "incremental",
    "seed",
    "test",
    "snapshot",
];

/// The incremental strategies lake runs.
pub const INCREMENTAL_STRATEGIES: &[&str] =
    &["append", "merge", "delete+insert", "insert_overwrite"];

/// The `on_schema_change` modes lake runs.
pub const SCHEMA_CHANGE_MODES: &[&str] =
    &["ignore", "fail", "append_new_columns", "sync_all_columns"];

/// The zones of a lake.
pub const ZONES: &[&str] = &["raw", "curated", "features", "audit"];

impl NodeConfig {
    /// Types the merged map, with defaults for `materialized` and `zone`,
    /// and checks the values lake must understand.
    pub fn from_map(
        mut map: ConfigMap,
        default_materialized: &str,
        default_zone: &str,
        location: &Location,
    ) -> Result<NodeConfig, CompileError> {
        map.entry("materialized")
            .or_insert_with(|| Json::from(default_materialized));
        map.entry("zone")
            .or_insert_with(|| Json::from(default_zone));
        for list_key in ["tags", "partition_by"] {
            if let Some(value) = map.get(list_key) {
                let list = as_list(Some(value));
                map.insert(list_key.into(), Json::Array(list));
            }
        }
        // `severity: ERROR` is accepted by dbt.
        if let Some(Json::String(s)) = map.get_mut("severity") {
            *s = s.to_ascii_lowercase();
        }
        let config: NodeConfig =
            serde_json::from_value(Json::Object(map)).map_err(|e| CompileError::InvalidConfig {
                location: location.clone(),
                message: e.to_string(),
            })?;
        config.validate(location)?;
        Ok(config)
    }

    fn validate(&self, location: &Location) -> Result<(), CompileError> {
        let invalid = |what: &str, value: &str, allowed: &[&str]| CompileError::InvalidConfig {
            location: location.clone(),
            message: format!(
                "unknown {what} '{value}'; lake knows: {}",
                allowed.join(", ")
            ),
        };
        if !MATERIALIZATIONS.contains(&self.materialized.as_str()) {
            return Err(invalid(
                "materialization",
                &self.materialized,
                MATERIALIZATIONS,
            ));
        }
        if let Some(strategy) = &self.incremental_strategy
            && !INCREMENTAL_STRATEGIES.contains(&strategy.as_str())
        {
            return Err(invalid(
                "incremental_strategy",
                strategy,
                INCREMENTAL_STRATEGIES,
            ));
        }
        if !SCHEMA_CHANGE_MODES.contains(&self.on_schema_change.as_str()) {
            return Err(invalid(
                "on_schema_change",
                &self.on_schema_change,
                SCHEMA_CHANGE_MODES,
            ));
        }
        if !ZONES.contains(&self.zone.as_str()) {
            return Err(invalid("zone", &self.zone, ZONES));
        }
        if let Some(severity) = &self.severity
            && severity != "error"
            && severity != "warn"
        {
            return Err(invalid("severity", severity, &["error", "warn"]));
        }
        Ok(())
    }

    /// A config value by name, typed fields included (for `config.get()`).
    pub fn get(&self, key: &str) -> Option<Json> {
        let all = serde_json::to_value(self).ok()?;
        all.get(key).cloned().filter(|v| !v.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tree_applies_levels_deeper_wins_and_tags_accumulate() {
        let tree = json!({
            "+tags": ["all"],
            "shop": {
                "+materialized": "view",
                "marts": {"+materialized": "table", "tags": "mart", "orders": {"+zone": "features"}},
            }
        });
        let fqn = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = from_tree(&tree, &fqn(&["shop", "marts", "orders"]));
        assert_eq!(c["materialized"], json!("table"));
        assert_eq!(c["zone"], json!("features"));
        assert_eq!(c["tags"], json!(["all", "mart"]));
        let c = from_tree(&tree, &fqn(&["shop", "staging", "stg"]));
        assert_eq!(c["materialized"], json!("view"));
        let c = from_tree(&tree, &fqn(&["other", "x"]));
        assert!(!c.contains_key("materialized"));
    }

    #[test]
    fn merge_overrides_and_merges_meta() {
        let mut a = json!({"materialized": "view", "meta": {"a": 1}, "tags": ["x"]})
            .as_object()
            .unwrap()
            .clone();
        let b = json!({"materialized": "table", "meta": {"b": 2}, "tags": ["x", "y"], "pre-hook": "select 1"})
            .as_object()
            .unwrap()
            .clone();
        merge(&mut a, &b);
        assert_eq!(
            Json::Object(a),
            json!({"materialized": "table", "meta": {"a": 1, "b": 2}, "tags": ["x", "y"], "pre_hook": ["select 1"]})
        );
    }

    #[test]
    fn from_map_rejects_unknown_materialization_and_zone() {
        let loc = Location::new("models/x.sql", 1);
        let bad = json!({"materialized": "tabel"})
            .as_object()
            .unwrap()
            .clone();
        let err = NodeConfig::from_map(bad, "view", "curated", &loc).unwrap_err();
        assert!(
            err.to_string().contains("unknown materialization 'tabel'"),
            "{err}"
        );
        let bad = json!({"zone": "gold"}).as_object().unwrap().clone();
        assert!(NodeConfig::from_map(bad, "view", "curated", &loc).is_err());
        let ok = json!({"tags": "a", "unique_key": ["a", "b"], "custom": 1})
            .as_object()
            .unwrap()
            .clone();
        let c = NodeConfig::from_map(ok, "view", "curated", &loc).unwrap();
        assert_eq!(c.tags, vec!["a"]);
        assert_eq!(c.unique_key.unwrap().to_vec(), vec!["a", "b"]);
        assert_eq!(c.extra["custom"], json!(1));
    }
}
