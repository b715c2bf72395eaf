//! The compiler's output: a serde-serializable manifest in dbt's shape where
//! it fits (`nodes` keyed by `unique_id`, `sources`, `parent_map`,
//! `child_map`), plus the feature store's entities, feature views and
//! feature services, written to `target/manifest.json`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::config::NodeConfig;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Model,
    Seed,
    Test,
    Source,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Model => "model",
            ResourceType::Seed => "seed",
            ResourceType::Test => "test",
            ResourceType::Source => "source",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceType> {
        Some(match s {
            "model" => ResourceType::Model,
            "seed" => ResourceType::Seed,
            "test" => ResourceType::Test,
            "source" => ResourceType::Source,
            _ => return None,
        })
    }

    pub const ALL: [ResourceType; 4] = [
        ResourceType::Model,
        ResourceType::Seed,
        ResourceType::Test,
        ResourceType::Source,
    ];
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column as declared in properties YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Json>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What a node depends on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DependsOn {
    /// Unique ids of upstream nodes and sources, sorted.
    pub nodes: Vec<String>,
    /// Project macros the node's template can call.
    #[serde(default)]
    pub macros: Vec<String>,
}

/// For generic tests: which test, with which arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMetadata {
    /// `unique`, `not_null`, `accepted_values`, `relationships`, or a custom
    /// generic test's name.
    pub name: String,
    pub kwargs: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A model, seed or test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub name: String,
    pub package_name: String,
    /// Path relative to the resource folder (`staging/stg_orders.sql`).
    pub path: String,
    /// Path relative to the project (`models/staging/stg_orders.sql`).
    pub original_file_path: String,
    /// `[project, folder..., name]`, used by path configs and selectors.
    pub fqn: Vec<String>,
    /// The lake relation the node materializes into (`curated.orders`);
    /// `None` for ephemeral models and tests.
    pub relation_name: Option<String>,
    pub raw_code: String,
    pub compiled_code: String,
    /// Where `lake compile` wrote the compiled SQL, relative to the project.
    #[serde(default)]
    pub compiled_path: Option<String>,
    pub depends_on: DependsOn,
    /// The names given to `ref()`, in call order.
    #[serde(default)]
    pub refs: Vec<String>,
    /// The `[source, table]` pairs given to `source()`.
    #[serde(default)]
    pub sources: Vec<[String; 2]>,
    pub config: NodeConfig,
    pub tags: Vec<String>,
    pub description: String,
    #[serde(default)]
    pub columns: IndexMap<String, ColumnInfo>,
    /// Model-level `constraints:` (column-level ones sit on the columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Json>,
    /// The template called `is_incremental()`: the engine renders it again
    /// once it knows whether the table exists.
    #[serde(default)]
    pub uses_is_incremental: bool,
    /// Generic tests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_metadata: Option<TestMetadata>,
    /// Tests only: the node the test is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_node: Option<String>,
    /// Generic tests on a column only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_name: Option<String>,
    /// Messages from `log()` during rendering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// A source table declared in properties YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDefinition {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub package_name: String,
    pub source_name: String,
    pub name: String,
    pub identifier: String,
    pub relation_name: String,
    pub original_file_path: String,
    pub fqn: Vec<String>,
    pub description: String,
    pub source_description: String,
    #[serde(default)]
    pub columns: IndexMap<String, ColumnInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Json>,
    /// `external: {location, format, options}` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<Json>,
    /// The files `lake ingest` loads into this source's table (an
    /// `external:` with a `location`), validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<crate::external::ExternalFiles>,
    pub meta: Map<String, Json>,
    pub tags: Vec<String>,
    pub config: Map<String, Json>,
}

/// Facts about the run that produced the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestMetadata {
    pub lake_version: String,
    pub project_name: String,
    /// The `--target` in effect (`default` without one).
    pub target_name: String,
    /// The lake root from the project file or the target, as written there.
    #[serde(default)]
    pub lake_root: Option<String>,
    /// Variables in effect (project `vars` overridden by `--vars`).
    #[serde(default)]
    pub vars: IndexMap<String, Json>,
}

/// What identifies a row of a feature view (Feast's entity): a name and the
/// columns that join on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub original_file_path: String,
    #[serde(default)]
    pub line: usize,
}

/// One feature of a feature view: a column of its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureField {
    pub name: String,
    #[serde(default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// Features of one entity (or several) read from a model, seed or source,
/// with the timestamp that point-in-time joins go by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// `feature_view.<project>.<name>`.
    pub unique_id: String,
    pub name: String,
    /// Entity names, as declared.
    pub entities: Vec<String>,
    /// The entities' join keys in order, without duplicates.
    pub join_keys: Vec<String>,
    /// Unique id of the model, seed or source it reads.
    pub source: String,
    /// The relation it reads (`curated.customer_daily_stats`).
    pub source_relation: String,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    /// How far back a feature row stays valid; `None`: unbounded.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    pub features: Vec<FeatureField>,
    /// Whether an online table (latest row per key) is kept.
    #[serde(default = "default_true")]
    pub online: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub original_file_path: String,
    #[serde(default)]
    pub line: usize,
}

fn default_true() -> bool {
    true
}

impl FeatureView {
    /// The feature named `name`.
    pub fn feature(&self, name: &str) -> Option<&FeatureField> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// One feature of one view (`customer_stats:orders_30d`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl std::fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

/// A named set of features (Feast's feature service), the unit a model is
/// trained and served with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureService {
    /// `feature_service.<project>.<name>`.
    pub unique_id: String,
    pub name: String,
    /// Whole views expanded into their features, in declaration order.
    pub features: Vec<FeatureRef>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub original_file_path: String,
    #[serde(default)]
    pub line: usize,
}

/// Everything the engine needs to run a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub metadata: ManifestMetadata,
    pub nodes: IndexMap<String, Node>,
    pub sources: IndexMap<String, SourceDefinition>,
    /// Project macros by name, with the file they are defined in.
    pub macros: BTreeMap<String, String>,
    /// `{% docs %}` blocks by name.
    pub docs: BTreeMap<String, String>,
    /// Upstream unique ids of every node and source.
    pub parent_map: BTreeMap<String, Vec<String>>,
    /// Downstream unique ids of every node and source.
    pub child_map: BTreeMap<String, Vec<String>>,
    /// Entities by name.
    #[serde(default)]
    pub entities: IndexMap<String, Entity>,
    /// Feature views by name (not in the node DAG).
    #[serde(default)]
    pub feature_views: IndexMap<String, FeatureView>,
    /// Feature services by name.
    #[serde(default)]
    pub feature_services: IndexMap<String, FeatureService>,
}

impl Manifest {
    /// A node or source's name by unique id.
    pub fn name_of(&self, unique_id: &str) -> Option<&str> {
        self.nodes
            .get(unique_id)
            .map(|n| n.name.as_str())
            .or_else(|| self.sources.get(unique_id).map(|s| s.name.as_str()))
    }

    /// Finds a model or seed by name.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes
            .values()
            .find(|n| n.name == name && n.resource_type != ResourceType::Test)
    }

    /// Turns `view:feature` and whole-`view` references into features, in
    /// order and without duplicates. The error names the unknown view or
    /// feature, with a "did you mean" suggestion.
    pub fn resolve_features(&self, refs: &[String]) -> Result<Vec<FeatureRef>, String> {
        let mut out: Vec<FeatureRef> = Vec::new();
        for text in refs {
            let resolved = resolve_feature_ref(&self.feature_views, text)
                .map_err(|e| format!("{}; {}", e.message, e.hint))?;
            for r in resolved {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// The features of the feature service `name`.
    pub fn feature_service_refs(&self, name: &str) -> Result<Vec<FeatureRef>, String> {
        match self.feature_services.get(name) {
            Some(service) => Ok(service.features.clone()),
            None => Err(format!(
                "unknown feature service '{name}'; {}",
                did_you_mean(
                    name,
                    self.feature_services.keys().map(String::as_str),
                    "feature services are declared under `feature_services:` in properties YAML",
                )
            )),
        }
    }

    /// Node unique ids in an order where every node comes after its
    /// parents (the manifest is acyclic by construction).
    pub fn topological_order(&self) -> Vec<&str> {
        let mut indegree: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, _) in &self.nodes {
            let parents = self.parent_map.get(id).map_or(0, |p| {
                p.iter().filter(|p| self.nodes.contains_key(*p)).count()
            });
            indegree.insert(id.as_str(), parents);
        }
        let mut ready: std::collections::VecDeque<&str> = self
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|id| indegree[id] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(id) = ready.pop_front() {
            order.push(id);
            for child in self.child_map.get(id).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(child.as_str()) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push_back(child.as_str());
                    }
                }
            }
        }
        order
    }
}

/// Why a feature reference does not resolve.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureRefError {
    pub message: String,
    pub hint: String,
}

/// `view:feature` to one feature, `view` to all of the view's features.
pub(crate) fn resolve_feature_ref(
    views: &IndexMap<String, FeatureView>,
    text: &str,
) -> Result<Vec<FeatureRef>, FeatureRefError> {
    let (view_name, feature) = match text.split_once(':') {
        Some((v, f)) => (v.trim(), Some(f.trim())),
        None => (text.trim(), None),
    };
    if view_name.is_empty() || feature.is_some_and(|f| f.is_empty() || f.contains(':')) {
        return Err(FeatureRefError {
            message: format!("invalid feature reference '{text}'"),
            hint: "write `view:feature` for one feature, or `view` for all of a view's features"
                .into(),
        });
    }
    let Some(view) = views.get(view_name) else {
        return Err(FeatureRefError {
            message: format!("unknown feature view '{view_name}'"),
            hint: did_you_mean(
                view_name,
                views.keys().map(String::as_str),
                "feature views are declared under `feature_views:` in properties YAML",
            ),
        });
    };
    match feature {
        None => Ok(view
            .features
            .iter()
            .map(|f| FeatureRef {
                view: view.name.clone(),
                feature: f.name.clone(),
            })
            .collect()),
        Some(feature) if view.feature(feature).is_some() => Ok(vec![FeatureRef {
            view: view.name.clone(),
            feature: feature.to_string(),
        }]),
        Some(feature) => Err(FeatureRefError {
            message: format!("feature view '{view_name}' has no feature '{feature}'"),
            hint: did_you_mean(
                feature,
                view.features.iter().map(|f| f.name.as_str()),
                &format!(
                    "its features are: {}",
                    view.features
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }),
    }
}

/// "did you mean 'x'?" when a candidate is close, else `otherwise`.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    otherwise: &str,
) -> String {
    match crate::error::suggest(name, candidates).as_slice() {
        [] => otherwise.to_string(),
        [one] => format!("did you mean '{one}'?"),
        many => format!("did you mean one of: {}?", many.join(", ")),
    }
}

/// `{"a": 1}` from a `serde_json` map, for `meta` lookups in selectors.
pub fn json_at<'a>(value: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, key| v.get(key))
}
