//! The project file: `lake_project.yml`, or an unmodified `dbt_project.yml`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{CompileError, Location};
use crate::yaml;

/// The file names a project folder is recognised by, in order of preference.
pub const PROJECT_FILE_NAMES: [&str; 2] = ["lake_project.yml", "dbt_project.yml"];

/// The parsed project file. Unknown keys (dbt's `profile`, `clean-targets`,
/// `require-dbt-version`, `config-version`, ...) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProjectFile {
    pub name: String,
    #[serde(default)]
    pub version: Option<Json>,
    #[serde(default = "default_model_paths")]
    pub model_paths: Vec<String>,
    #[serde(default = "default_seed_paths")]
    pub seed_paths: Vec<String>,
    #[serde(default = "default_macro_paths")]
    pub macro_paths: Vec<String>,
    #[serde(default = "default_test_paths")]
    pub test_paths: Vec<String>,
    #[serde(default = "default_snapshot_paths")]
    pub snapshot_paths: Vec<String>,
    #[serde(default = "default_target_path")]
    pub target_path: String,
    #[serde(default)]
    pub vars: IndexMap<String, Json>,
    /// Hierarchical configs, by path: `models: {<project>: {staging: {+materialized: view}}}`.
    #[serde(default)]
    pub models: Json,
    #[serde(default)]
    pub seeds: Json,
    #[serde(default, rename = "data_tests", alias = "tests")]
    pub data_tests: Json,
    #[serde(default)]
    pub sources: Json,
    #[serde(default)]
    pub lake: LakeSettings,
    #[serde(default)]
    pub targets: IndexMap<String, TargetSettings>,
    /// The project folder (not in the file).
    #[serde(skip)]
    pub dir: PathBuf,
    /// `lake_project.yml` or `dbt_project.yml`.
    #[serde(skip)]
    pub file_name: String,
}

/// Lake's own settings, under `lake:`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct LakeSettings {
    /// The lake root: a path relative to the project, or an object_store URL.
    #[serde(default)]
    pub root: Option<String>,
    /// Object-store options (keys, endpoints). Never printed.
    #[serde(default)]
    pub storage_options: IndexMap<String, String>,
}

/// One entry of `targets:`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct TargetSettings {
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub storage_options: IndexMap<String, String>,
}

fn default_model_paths() -> Vec<String> {
    vec!["models".into()]
}
fn default_seed_paths() -> Vec<String> {
    vec!["seeds".into()]
}
fn default_macro_paths() -> Vec<String> {
    vec!["macros".into()]
}
fn default_test_paths() -> Vec<String> {
    vec!["tests".into()]
}
fn default_snapshot_paths() -> Vec<String> {
    vec!["snapshots".into()]
}
fn default_target_path() -> String {
    "target".into()
}

impl ProjectFile {
    /// Finds and parses the project file in `dir`.
    pub fn load(dir: &Path) -> Result<ProjectFile, CompileError> {
        let Some(file_name) = PROJECT_FILE_NAMES
            .iter()
            .find(|name| dir.join(name).is_file())
        else {
            return Err(CompileError::ProjectNotFound {
                dir: dir.to_path_buf(),
            });
        };
        let path = dir.join(file_name);
        let text = std::fs::read_to_string(&path).map_err(|e| CompileError::Io {
            location: Location::new(*file_name, 0),
            message: e.to_string(),
        })?;
        let mut project: ProjectFile = yaml::from_str(&text, file_name)?;
        if project.name.trim().is_empty() {
            return Err(CompileError::InvalidProperty {
                location: Location::new(*file_name, yaml::find_key_line(&text, "name")),
                message: "the project `name` is empty".into(),
                hint: Some("give the project a name, for example `name: analytics`".into()),
            });
        }
        project.dir = dir.to_path_buf();
        project.file_name = file_name.to_string();
        Ok(project)
    }

    /// The variables visible to this project's templates: global `vars`, then
    /// the ones scoped to this project (`vars: {<project>: {...}}`), which win.
    /// The target in effect: `wanted` if declared, else the first target
    /// declared, else `default`.
    pub fn resolve_target(&self, wanted: Option<&str>) -> Result<String, CompileError> {
        match wanted {
            Some(name) if self.targets.contains_key(name) => Ok(name.to_string()),
            Some(name) if self.targets.is_empty() && name == "default" => Ok(name.to_string()),
            Some(name) => Err(CompileError::UnknownTarget {
                name: name.to_string(),
                suggestions: crate::error::suggest(name, self.targets.keys().map(String::as_str)),
            }),
            None => Ok(self
                .targets
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "default".into())),
        }
    }

    pub fn scoped_vars(&self) -> IndexMap<String, Json> {
        let mut vars = IndexMap::new();
        let mut scoped = None;
        for (key, value) in &self.vars {
            if key == &self.name && value.is_object() {
                scoped = value.as_object();
            } else {
                vars.insert(key.clone(), value.clone());
            }
        }
        if let Some(scoped) = scoped {
            for (k, v) in scoped {
                vars.insert(k.clone(), v.clone());
            }
        }
        vars
    }
}
