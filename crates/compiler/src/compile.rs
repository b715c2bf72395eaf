//! From a project folder to a [`Manifest`]: discover files, parse
//! properties, render every template (in parallel), resolve configs, build
//! the tests and the DAG, and resolve `ref()`s. Every problem found along the
//! way is collected, so one run reports them all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use indexmap::IndexMap;
use minijinja::Value;
use rayon::prelude::*;
use serde_json::{Map, Value as Json};

use crate::config::{self, ConfigMap, NodeConfig};
use crate::error::{CompileError, CompileErrors, Location, RefKind, suggest};
use crate::features;
use crate::generic_tests::{self, TestSpec};
use crate::jinja::{self, Capture, MacroFile, RefTarget, Registry, Relation, Renderer};
use crate::manifest::{
    ColumnInfo, DependsOn, Manifest, ManifestMetadata, Node, ResourceType, SourceDefinition,
    TestMetadata,
};
use crate::project::ProjectFile;
use crate::properties::{self, ColumnProperties, NodeProperties, PropertiesFile};
use crate::yaml;

/// What a compile run may vary.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `--target NAME`.
    pub target: Option<String>,
    /// `--vars '{...}'` (YAML or JSON).
    pub vars: Option<String>,
}

/// A compiled project: the manifest, plus what the engine needs to render
/// a node again (for `is_incremental()`).
#[derive(Debug)]
pub struct Compiled {
    pub manifest: Manifest,
    pub project: ProjectFile,
    /// Non-fatal findings (properties for models that do not exist, ...).
    pub warnings: Vec<String>,
    /// How long each phase took (for `LAKE_TIMINGS=1`).
    pub timings: Vec<(&'static str, std::time::Duration)>,
    renderer: Renderer,
    /// Rendered SQL with `ref()` sentinels still in, by unique id.
    rendered: HashMap<String, String>,
}

/// A `.sql` file of a model or singular test.
#[derive(Debug, Clone)]
struct SqlFile {
    name: String,
    path: String,
    original_file_path: String,
    fqn: Vec<String>,
    raw: String,
}

#[derive(Debug, Clone)]
struct SeedFile {
    name: String,
    path: String,
    original_file_path: String,
    fqn: Vec<String>,
}

#[derive(Debug, Default)]
struct Discovered {
    models: Vec<SqlFile>,
    seeds: Vec<SeedFile>,
    singular_tests: Vec<SqlFile>,
    macro_files: Vec<MacroFile>,
    /// (path, text) of properties YAML files.
    property_files: Vec<(String, String)>,
    docs: BTreeMap<String, String>,
}

/// Properties of one node with the file they came from.
#[derive(Debug, Clone)]
struct Patch {
    file: String,
    line: usize,
    props: NodeProperties,
}

/// Compiles the project in `dir`.
pub fn compile(dir: &Path, options: &CompileOptions) -> Result<Compiled, CompileErrors> {
    let mut clock = Clock::new();
    let project = ProjectFile::load(dir)?;
    let mut errors: Vec<CompileError> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    let target_name = project.resolve_target(options.target.as_deref())?;
    let vars = resolve_vars(&project, options.vars.as_deref())?;
    let found = discover(&project, &mut errors);
    clock.lap("discover");

    // Properties YAML.
    let mut model_patches: HashMap<String, Patch> = HashMap::new();
    let mut seed_patches: HashMap<String, Patch> = HashMap::new();
    let mut source_props: Vec<(String, properties::SourceProperties)> = Vec::new();
    let mut name_lines: HashMap<String, yaml::NameLines> = HashMap::new();
    let mut feature_decls: Vec<features::Declared<'_>> = Vec::new();
    let parsed_files: Vec<(
        &String,
        &String,
        yaml::NameLines,
        Result<PropertiesFile, CompileError>,
    )> = found
        .property_files
        .par_iter()
        .map(|(file, text)| {
            (
                file,
                text,
                yaml::NameLines::new(text),
                yaml::from_str(text, file),
            )
        })
        .collect();
    for (file, text, lines, parsed) in parsed_files {
        let lines = name_lines.entry(file.clone()).or_insert(lines);
        let parsed: PropertiesFile = match parsed {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for (list, patches) in [
            (parsed.models, &mut model_patches),
            (parsed.seeds, &mut seed_patches),
        ] {
            for props in list {
                let line = lines.find(&props.name, 1);
                if let Some(previous) = patches.get(&props.name) {
                    errors.push(CompileError::InvalidProperty {
                        location: Location::new(file.clone(), line),
                        message: format!(
                            "'{}' already has properties in {}:{}",
                            props.name, previous.file, previous.line
                        ),
                        hint: Some("merge the two entries into one".into()),
                    });
                    continue;
                }
                patches.insert(
                    props.name.clone(),
                    Patch {
                        file: file.clone(),
                        line,
                        props,
                    },
                );
            }
        }
        for source in parsed.sources {
            source_props.push((file.clone(), source));
        }
        let decl = features::Declared {
            file,
            text,
            entities: parsed.entities,
            views: parsed.feature_views,
            services: parsed.feature_services,
        };
        if !decl.is_empty() {
            feature_decls.push(decl);
        }
    }

    clock.lap("properties");

    // Names and duplicates.
    let mut refs: HashMap<String, RefTarget> = HashMap::new();
    let mut name_files: HashMap<String, String> = HashMap::new();
    let mut pre_configs: HashMap<String, ConfigMap> = HashMap::new();
    // Models and seeds share one namespace; their pre-render config comes
    // from the project tree and properties YAML.
    let named = found
        .models
        .iter()
        .map(|m| (&m.name, &m.original_file_path, &m.fqn, ResourceType::Model))
        .chain(
            found
                .seeds
                .iter()
                .map(|s| (&s.name, &s.original_file_path, &s.fqn, ResourceType::Seed)),
        );
    for (name, file, fqn, resource) in named {
        if let Some(other) = name_files.insert(name.clone(), file.clone()) {
            errors.push(CompileError::DuplicateName {
                resource_type: match resource {
                    ResourceType::Model => "model".into(),
                    _ => "model or seed".into(),
                },
                name: name.clone(),
                files: [other, file.clone()],
            });
            continue;
        }
        let (tree, patches, default_zone) = match resource {
            ResourceType::Model => (&project.models, &model_patches, "curated"),
            _ => (&project.seeds, &seed_patches, "raw"),
        };
        let mut cfg = config::from_tree(tree, fqn);
        if let Some(patch) = patches.get(name) {
            config::merge(&mut cfg, &patch.props.effective_config());
        }
        let zone = cfg
            .get("zone")
            .and_then(Json::as_str)
            .unwrap_or(default_zone)
            .to_string();
        refs.insert(name.clone(), RefTarget { zone });
        pre_configs.insert(name.clone(), cfg);
    }
    for (patches, kind) in [(&model_patches, "model"), (&seed_patches, "seed")] {
        let mut names: Vec<&String> = patches.keys().collect();
        names.sort();
        for name in names {
            if !refs.contains_key(name) {
                let patch = &patches[name];
                let did_you_mean = suggest(name, refs.keys().map(String::as_str));
                warnings.push(format!(
                    "{}:{}: properties for {kind} '{name}', but there is no such {kind}{}",
                    patch.file,
                    patch.line,
                    did_you_mean
                        .first()
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default()
                ));
            }
        }
    }

    // Sources.
    let mut sources: IndexMap<String, SourceDefinition> = IndexMap::new();
    let mut source_relations: HashMap<(String, String), String> = HashMap::new();
    let mut source_tests: Vec<(String, usize, String, Option<String>, TestSpec)> = Vec::new();
    for (file, source) in &source_props {
        let lines = &name_lines[file];
        for table in &source.tables {
            let mut cfg = config::from_tree(
                &project.sources,
                &[
                    project.name.clone(),
                    source.name.clone(),
                    table.name.clone(),
                ],
            );
            config::merge(&mut cfg, &source.config);
            config::merge(&mut cfg, &table.config);
            if cfg.get("enabled").and_then(Json::as_bool) == Some(false) {
                continue;
            }
            let zone = cfg
                .get("zone")
                .and_then(Json::as_str)
                .unwrap_or("raw")
                .to_string();
            let identifier = table
                .identifier
                .clone()
                .unwrap_or_else(|| format!("{}__{}", source.name, table.name));
            let relation_name = format!("{zone}.{identifier}");
            let unique_id = format!("source.{}.{}.{}", project.name, source.name, table.name);
            source_relations.insert(
                (source.name.clone(), table.name.clone()),
                relation_name.clone(),
            );
            let mut tags = source.tags.clone();
            tags.extend(table.tags.iter().cloned());
            let mut meta = source.meta.clone();
            meta.extend(table.meta.clone());
            let table_line = lines.find(&table.name, 1);
            for entry in table.all_tests() {
                push_test_spec(
                    &mut source_tests,
                    &mut errors,
                    file,
                    table_line,
                    &unique_id,
                    None,
                    entry,
                );
            }
            for column in &table.columns {
                let line = lines.find(&column.name, table_line);
                for entry in column.all_tests() {
                    push_test_spec(
                        &mut source_tests,
                        &mut errors,
                        file,
                        line,
                        &unique_id,
                        Some(&column.name),
                        entry,
                    );
                }
            }
            let ingest = match &table.external {
                Some(external) => {
                    match crate::external::parse_external(external, file, table_line) {
                        Ok(ingest) => ingest,
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    }
                }
                None => None,
            };
            sources.insert(
                unique_id.clone(),
                SourceDefinition {
                    unique_id,
                    resource_type: ResourceType::Source,
                    package_name: project.name.clone(),
                    source_name: source.name.clone(),
                    name: table.name.clone(),
                    identifier,
                    relation_name,
                    original_file_path: file.clone(),
                    fqn: vec![
                        project.name.clone(),
                        source.name.clone(),
                        table.name.clone(),
                    ],
                    description: table.description.clone().unwrap_or_default(),
                    source_description: source.description.clone().unwrap_or_default(),
                    columns: columns_of(&table.columns),
                    loaded_at_field: table
                        .loaded_at_field
                        .clone()
                        .or_else(|| source.loaded_at_field.clone()),
                    freshness: table.freshness.clone().or_else(|| source.freshness.clone()),
                    external: table.external.clone(),
                    ingest,
                    meta,
                    tags,
                    config: cfg,
                },
            );
        }
    }

    // The Jinja environment.
    let mut registry = Registry {
        project_name: project.name.clone(),
        target_name: target_name.clone(),
        refs,
        sources: source_relations,
        vars: vars.clone(),
        docs: found.docs.clone(),
        ..Registry::default()
    };
    let mut macro_index: BTreeMap<String, String> = BTreeMap::new();
    for (i, file) in found.macro_files.iter().enumerate() {
        registry.macro_files.push(file.path.clone());
        for name in &file.names {
            if let Some(other) = macro_index.insert(name.clone(), file.path.clone()) {
                errors.push(CompileError::DuplicateName {
                    resource_type: "macro".into(),
                    name: name.clone(),
                    files: [other, file.path.clone()],
                });
            }
            registry.macros.insert(name.clone(), i);
        }
    }
    let renderer = match Renderer::new(registry, &found.macro_files) {
        Ok(r) => r,
        Err(mut macro_errors) => {
            errors.append(&mut macro_errors);
            return Err(CompileErrors(errors));
        }
    };

    clock.lap("sources and macros");

    // Render models and singular tests, in parallel.
    let render_one =
        |file: &SqlFile, resource: ResourceType| -> Result<(String, Capture), CompileError> {
            let pre = pre_configs.get(&file.name).cloned().unwrap_or_default();
            let zone = pre
                .get("zone")
                .and_then(Json::as_str)
                .unwrap_or("curated")
                .to_string();
            let ctx = node_context(
                &file.name,
                &project.name,
                resource,
                &file.original_file_path,
                &zone,
                pre,
                false,
            );
            renderer
                .render(&file.original_file_path, &file.raw, ctx)
                .map_err(|e| jinja::to_compile_error(&e, &file.original_file_path, &file.name))
        };
    // Configs are typed here too, in parallel: config() calls are only
    // known after rendering.
    let rendered_models: Vec<Result<(String, Capture, NodeConfig), CompileError>> = found
        .models
        .par_iter()
        .map(|m| {
            let (sql, capture) = render_one(m, ResourceType::Model)?;
            let location = Location::new(m.original_file_path.clone(), config_line(&m.raw));
            let mut cfg = pre_configs.get(&m.name).cloned().unwrap_or_default();
            config::merge(&mut cfg, &capture.config);
            let node_config = NodeConfig::from_map(cfg, "view", "curated", &location)?;
            Ok((sql, capture, node_config))
        })
        .collect();
    let rendered_tests: Vec<Result<(String, Capture), CompileError>> = found
        .singular_tests
        .par_iter()
        .map(|t| render_one(t, ResourceType::Test))
        .collect();

    clock.lap("render");

    // Model and seed nodes.
    let mut nodes: IndexMap<String, Node> = IndexMap::new();
    let mut rendered: HashMap<String, String> = HashMap::new();
    let mut disabled: BTreeSet<String> = BTreeSet::new();
    let mut ref_lines: HashMap<String, Vec<(String, usize)>> = HashMap::new();
    let empty_patch = NodeProperties::default();
    for (file, result) in found.models.iter().zip(rendered_models) {
        if name_files.get(&file.name) != Some(&file.original_file_path) {
            continue; // a duplicate, reported above
        }
        let (sql, capture, node_config) = match result {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !node_config.enabled {
            disabled.insert(file.name.clone());
            continue;
        }
        let patch = model_patches.get(&file.name);
        let props = patch.map_or(&empty_patch, |p| &p.props);
        let unique_id = format!("model.{}.{}", project.name, file.name);
        ref_lines.insert(
            unique_id.clone(),
            capture
                .refs
                .iter()
                .map(|r| (r.clone(), ref_line(&file.raw, r)))
                .collect(),
        );
        let description = describe(&renderer, patch, &mut errors);
        let relation_name = (node_config.materialized != "ephemeral").then(|| {
            format!(
                "{}.{}",
                node_config.zone,
                node_config.alias.as_deref().unwrap_or(&file.name)
            )
        });
        rendered.insert(unique_id.clone(), sql);
        let node = Node {
            unique_id: unique_id.clone(),
            resource_type: ResourceType::Model,
            name: file.name.clone(),
            package_name: project.name.clone(),
            path: file.path.clone(),
            original_file_path: file.original_file_path.clone(),
            fqn: file.fqn.clone(),
            relation_name,
            raw_code: file.raw.clone(),
            compiled_code: String::new(),
            compiled_path: None,
            depends_on: DependsOn {
                nodes: vec![],
                macros: capture
                    .macros_called
                    .iter()
                    .map(|m| format!("macro.{}.{m}", project.name))
                    .collect(),
            },
            refs: dedup(capture.refs.clone()),
            sources: dedup(capture.sources.clone()),
            tags: node_config.tags.clone(),
            config: node_config,
            description,
            columns: columns_of(&props.columns),
            constraints: props.constraints.clone(),
            uses_is_incremental: capture.uses_is_incremental,
            test_metadata: None,
            attached_node: None,
            column_name: None,
            logs: capture.logs,
        };
        for problem in crate::contract::validate(&node) {
            errors.push(CompileError::InvalidProperty {
                location: match patch {
                    Some(p) => Location::new(p.file.clone(), p.line),
                    None => Location::new(file.original_file_path.clone(), 0),
                },
                message: format!("model '{}': {problem}", file.name),
                hint: Some(
                    "see docs/project-format.md#contracts: enforced contracts need every column with a data_type; constraints are not_null, unique, primary_key, check (with expression), foreign_key, custom".into(),
                ),
            });
        }
        nodes.insert(unique_id, node);
    }
    for seed in &found.seeds {
        if name_files.get(&seed.name) != Some(&seed.original_file_path) {
            continue;
        }
        let location = Location::new(seed.original_file_path.clone(), 0);
        let cfg = pre_configs.remove(&seed.name).unwrap_or_default();
        let node_config = match NodeConfig::from_map(cfg, "seed", "raw", &location) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !node_config.enabled {
            disabled.insert(seed.name.clone());
            continue;
        }
        let patch = seed_patches.get(&seed.name);
        let props = patch.map_or(&empty_patch, |p| &p.props);
        let unique_id = format!("seed.{}.{}", project.name, seed.name);
        let description = describe(&renderer, patch, &mut errors);
        nodes.insert(
            unique_id.clone(),
            Node {
                unique_id,
                resource_type: ResourceType::Seed,
                name: seed.name.clone(),
                package_name: project.name.clone(),
                path: seed.path.clone(),
                original_file_path: seed.original_file_path.clone(),
                fqn: seed.fqn.clone(),
                relation_name: Some(format!(
                    "{}.{}",
                    node_config.zone,
                    node_config.alias.as_deref().unwrap_or(&seed.name)
                )),
                raw_code: String::new(),
                compiled_code: String::new(),
                compiled_path: None,
                depends_on: DependsOn::default(),
                refs: vec![],
                sources: vec![],
                tags: node_config.tags.clone(),
                config: node_config,
                description,
                columns: columns_of(&props.columns),
                constraints: vec![],
                uses_is_incremental: false,
                test_metadata: None,
                attached_node: None,
                column_name: None,
                logs: vec![],
            },
        );
    }
    let by_name: HashMap<String, String> = nodes
        .values()
        .map(|n| (n.name.clone(), n.unique_id.clone()))
        .collect();

    // Singular tests.
    for (file, result) in found.singular_tests.iter().zip(rendered_tests) {
        let (sql, capture) = match result {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let location = Location::new(file.original_file_path.clone(), config_line(&file.raw));
        let mut cfg = config::from_tree(&project.data_tests, &file.fqn);
        config::merge(&mut cfg, &capture.config);
        let node_config = match NodeConfig::from_map(cfg, "test", "audit", &location) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !node_config.enabled {
            continue;
        }
        let unique_id = format!("test.{}.{}", project.name, file.name);
        ref_lines.insert(
            unique_id.clone(),
            capture
                .refs
                .iter()
                .map(|r| (r.clone(), ref_line(&file.raw, r)))
                .collect(),
        );
        rendered.insert(unique_id.clone(), sql);
        nodes.insert(
            unique_id.clone(),
            Node {
                unique_id,
                resource_type: ResourceType::Test,
                name: file.name.clone(),
                package_name: project.name.clone(),
                path: file.path.clone(),
                original_file_path: file.original_file_path.clone(),
                fqn: file.fqn.clone(),
                relation_name: None,
                raw_code: file.raw.clone(),
                compiled_code: String::new(),
                compiled_path: None,
                depends_on: DependsOn::default(),
                refs: dedup(capture.refs),
                sources: dedup(capture.sources),
                tags: node_config.tags.clone(),
                config: node_config,
                description: String::new(),
                columns: IndexMap::new(),
                constraints: vec![],
                uses_is_incremental: false,
                test_metadata: None,
                attached_node: None,
                column_name: None,
                logs: capture.logs,
            },
        );
    }

    clock.lap("nodes");

    // Generic tests of models and seeds, then of sources.
    let mut specs: Vec<(String, usize, String, Option<String>, TestSpec)> = Vec::new();
    for (patches, prefix) in [(&model_patches, "model"), (&seed_patches, "seed")] {
        for (name, patch) in patches {
            let unique_id = format!("{prefix}.{}.{name}", project.name);
            if !nodes.contains_key(&unique_id) {
                // The node failed to render or is disabled: its tests do not
                // run, but a misspelled test name is still worth reporting now.
                if !disabled.contains(name) {
                    let entries = patch
                        .props
                        .all_tests()
                        .chain(patch.props.columns.iter().flat_map(|c| c.all_tests()));
                    for entry in entries {
                        if let Ok(spec) = generic_tests::parse_entry(entry)
                            && let Some(e) = unknown_test(
                                &renderer,
                                &spec,
                                Location::new(patch.file.clone(), patch.line),
                            )
                        {
                            errors.push(e);
                        }
                    }
                }
                continue;
            }
            for entry in patch.props.all_tests() {
                push_test_spec(
                    &mut specs,
                    &mut errors,
                    &patch.file,
                    patch.line,
                    &unique_id,
                    None,
                    entry,
                );
            }
            let lines = &name_lines[&patch.file];
            for column in &patch.props.columns {
                let line = lines.find(&column.name, patch.line);
                for entry in column.all_tests() {
                    push_test_spec(
                        &mut specs,
                        &mut errors,
                        &patch.file,
                        line,
                        &unique_id,
                        Some(&column.name),
                        entry,
                    );
                }
            }
        }
    }
    specs.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    specs.extend(source_tests);
    let built: Vec<Result<Option<(Node, String)>, CompileError>> = specs
        .par_iter()
        .map(|(file, line, attached, column, spec)| {
            generic_test_node(
                &project,
                &renderer,
                &nodes,
                &sources,
                file,
                *line,
                attached,
                column.as_deref(),
                spec,
            )
        })
        .collect();
    for result in built {
        match result {
            Ok(Some((node, sql))) => {
                if nodes.contains_key(&node.unique_id) {
                    continue; // the same test declared twice
                }
                rendered.insert(node.unique_id.clone(), sql);
                nodes.insert(node.unique_id.clone(), node);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    clock.lap("generic tests");

    // Entities, feature views and feature services (not in the DAG).
    let feature_defs = features::build(
        &feature_decls,
        &features::Catalog {
            project: &project.name,
            nodes: &nodes,
            sources: &sources,
            names: &name_files,
            disabled: &disabled,
            renderer: &renderer,
        },
        &mut errors,
    );
    drop(feature_decls);

    // Dependencies.
    let mut parent_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes.values_mut() {
        let mut deps: BTreeSet<String> = BTreeSet::new();
        for r in &node.refs {
            match by_name.get(r) {
                Some(id) => {
                    deps.insert(id.clone());
                }
                None if disabled.contains(r) => {
                    let line = ref_lines
                        .get(&node.unique_id)
                        .and_then(|l| l.iter().find(|(n, _)| n == r))
                        .map_or(0, |(_, l)| *l);
                    errors.push(CompileError::DisabledRef {
                        location: Location::new(node.original_file_path.clone(), line),
                        model: node.name.clone(),
                        name: r.clone(),
                    });
                }
                None => {} // unknown refs failed while rendering
            }
        }
        for [s, t] in &node.sources {
            deps.insert(format!("source.{}.{s}.{t}", project.name));
        }
        if let Some(attached) = &node.attached_node {
            deps.insert(attached.clone());
        }
        node.depends_on.nodes = deps.into_iter().collect();
        parent_map.insert(node.unique_id.clone(), node.depends_on.nodes.clone());
    }
    for id in sources.keys() {
        parent_map.insert(id.clone(), vec![]);
    }
    let name_of = |id: &str| -> String {
        nodes
            .get(id)
            .map(|n| n.name.clone())
            .or_else(|| {
                sources
                    .get(id)
                    .map(|s| format!("{}.{}", s.source_name, s.name))
            })
            .unwrap_or_else(|| id.to_string())
    };
    for cycle in crate::dag::find_cycles(&parent_map) {
        errors.push(CompileError::Cycle {
            path: cycle.iter().map(|id| name_of(id)).collect(),
        });
    }
    if !errors.is_empty() {
        return Err(CompileErrors(errors));
    }
    clock.lap("dag");
    let mut child_map: BTreeMap<String, Vec<String>> =
        parent_map.keys().map(|k| (k.clone(), vec![])).collect();
    for (child, parents) in &parent_map {
        for p in parents {
            child_map.entry(p.clone()).or_default().push(child.clone());
        }
    }

    let mut manifest = Manifest {
        metadata: ManifestMetadata {
            lake_version: env!("CARGO_PKG_VERSION").to_string(),
            project_name: project.name.clone(),
            target_name,
            lake_root: project
                .targets
                .get(renderer.registry().target_name.as_str())
                .and_then(|t| t.root.clone())
                .or_else(|| project.lake.root.clone()),
            vars,
        },
        nodes,
        sources,
        macros: macro_index,
        docs: found.docs,
        parent_map,
        child_map,
        entities: feature_defs.entities,
        feature_views: feature_defs.feature_views,
        feature_services: feature_defs.feature_services,
    };

    // Resolve refs. Ephemeral models first, parents before children, since
    // their children inline their compiled code; then everything else, in
    // parallel.
    for id in ephemeral_order(&manifest) {
        if let Some(sql) = rendered.get(&id) {
            let compiled = finish_sql(&manifest, &id, sql);
            manifest.nodes[&id].compiled_code = compiled;
        }
    }
    let finished: Vec<(&String, String)> = rendered
        .par_iter()
        .filter(|(id, _)| {
            manifest
                .nodes
                .get(*id)
                .is_some_and(|n| n.config.materialized != "ephemeral")
        })
        .map(|(id, sql)| (id, finish_sql(&manifest, id, sql)))
        .collect();
    for (id, compiled) in finished {
        if let Some(node) = manifest.nodes.get_mut(id) {
            node.compiled_code = compiled;
        }
    }
    clock.lap("resolve refs");
    Ok(Compiled {
        manifest,
        project,
        warnings,
        timings: clock.laps,
        renderer,
        rendered,
    })
}

impl Compiled {
    /// Renders a model again with `is_incremental()` answering
    /// `is_incremental`, and resolves its refs like the first time.
    pub fn render_node(
        &self,
        unique_id: &str,
        is_incremental: bool,
    ) -> Result<String, CompileError> {
        let node = self
            .manifest
            .nodes
            .get(unique_id)
            .ok_or_else(|| CompileError::Internal(format!("no node '{unique_id}'")))?;
        if !is_incremental || !node.uses_is_incremental {
            return Ok(node.compiled_code.clone());
        }
        let pre = serde_json::to_value(&node.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let ctx = node_context(
            &node.name,
            &self.project.name,
            node.resource_type,
            &node.original_file_path,
            &node.config.zone,
            pre,
            true,
        );
        let (sql, _) = self
            .renderer
            .render(&node.original_file_path, &node.raw_code, ctx)
            .map_err(|e| jinja::to_compile_error(&e, &node.original_file_path, &node.name))?;
        Ok(finish_sql(&self.manifest, unique_id, &sql))
    }

    /// Renders SQL typed on the command line (`lake show --inline`) with
    /// the project's macros, `ref()` and `source()`.
    pub fn render_inline(&self, sql: &str) -> Result<String, CompileError> {
        const FILE: &str = "<inline>";
        let ctx = node_context(
            "inline",
            &self.project.name,
            ResourceType::Model,
            FILE,
            "curated",
            ConfigMap::new(),
            false,
        );
        let (rendered, capture) = self
            .renderer
            .render(FILE, sql, ctx)
            .map_err(|e| jinja::to_compile_error(&e, FILE, "inline"))?;
        let project = &self.project.name;
        for name in &capture.refs {
            let known = self
                .manifest
                .nodes
                .contains_key(&format!("model.{project}.{name}"))
                || self
                    .manifest
                    .nodes
                    .contains_key(&format!("seed.{project}.{name}"));
            if !known {
                return Err(CompileError::UnknownRef {
                    location: Location::new(FILE, 1),
                    model: "the inline query".into(),
                    kind: RefKind::Model,
                    name: name.clone(),
                    suggestions: suggest(
                        name,
                        self.manifest
                            .nodes
                            .values()
                            .filter(|n| {
                                matches!(n.resource_type, ResourceType::Model | ResourceType::Seed)
                            })
                            .map(|n| n.name.as_str()),
                    ),
                });
            }
        }
        Ok(finish_sql(
            &self.manifest,
            "sql_operation.inline",
            &rendered,
        ))
    }

    /// The rendered SQL of a node before refs are resolved.
    pub fn rendered_sql(&self, unique_id: &str) -> Option<&str> {
        self.rendered.get(unique_id).map(String::as_str)
    }
}

/// Phase timings.
struct Clock {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

/// The per-node render context.
fn node_context(
    name: &str,
    project: &str,
    resource: ResourceType,
    file: &str,
    zone: &str,
    pre_config: ConfigMap,
    is_incremental: bool,
) -> Value {
    let this = Relation {
        rendered: format!("{}{name}{}", jinja::SENTINEL_OPEN, jinja::SENTINEL_CLOSE),
        identifier: name.to_string(),
        zone: zone.to_string(),
    };
    minijinja::context! {
        this => Value::from_object(this),
        model => minijinja::context! {
            name => name,
            unique_id => format!("{}.{project}.{name}", resource.as_str()),
            resource_type => resource.as_str(),
            original_file_path => file,
            package_name => project,
        },
        __lake_config => jinja::to_value(&pre_config),
        __lake_is_incremental => is_incremental,
    }
}

/// Ephemeral models, each after its ephemeral parents.
fn ephemeral_order(manifest: &Manifest) -> Vec<String> {
    let is_ephemeral = |id: &str| {
        manifest
            .nodes
            .get(id)
            .is_some_and(|n| n.config.materialized == "ephemeral")
    };
    let mut pending: Vec<&Node> = manifest
        .nodes
        .values()
        .filter(|n| is_ephemeral(&n.unique_id))
        .collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|n| {
            let ready = n
                .depends_on
                .nodes
                .iter()
                .all(|p| !is_ephemeral(p) || done.contains(p));
            if ready {
                done.insert(n.unique_id.clone());
                order.push(n.unique_id.clone());
            }
            !ready
        });
        if pending.len() == before {
            break; // a cycle, reported by the DAG check before this runs
        }
    }
    order
}

/// Replaces sentinels with relation names (or ephemeral CTE names) and
/// prepends the CTEs of ephemeral parents.
fn finish_sql(manifest: &Manifest, unique_id: &str, rendered: &str) -> String {
    let project = &manifest.metadata.project_name;
    let lookup = |name: &str| -> Option<&Node> {
        manifest
            .nodes
            .get(&format!("model.{project}.{name}"))
            .or_else(|| manifest.nodes.get(&format!("seed.{project}.{name}")))
    };
    let mut ephemerals: Vec<String> = Vec::new();
    let sql = jinja::resolve_sentinels(rendered, |name| match lookup(name) {
        Some(n) if n.config.materialized == "ephemeral" && n.unique_id != unique_id => {
            if !ephemerals.contains(&n.unique_id) {
                ephemerals.push(n.unique_id.clone());
            }
            format!("__lake_cte__{name}")
        }
        Some(n) => n.relation_name.clone().unwrap_or_else(|| name.to_string()),
        None => name.to_string(),
    });
    if ephemerals.is_empty() {
        return sql;
    }
    // Every ephemeral ancestor reachable through ephemeral models, parents
    // first; an ephemeral parent's compiled code already carries its own
    // CTEs, so only its body is taken here.
    let mut ctes: Vec<(String, String)> = Vec::new();
    for id in &ephemerals {
        collect_ctes(manifest, id, &mut ctes);
    }
    inject_ctes(&sql, &ctes)
}

fn collect_ctes(manifest: &Manifest, id: &str, ctes: &mut Vec<(String, String)>) {
    let Some(node) = manifest.nodes.get(id) else {
        return;
    };
    if ctes.iter().any(|(n, _)| *n == node.name) {
        return;
    }
    for parent in &node.depends_on.nodes {
        if manifest
            .nodes
            .get(parent)
            .is_some_and(|p| p.config.materialized == "ephemeral")
        {
            collect_ctes(manifest, parent, ctes);
        }
    }
    let (_, body) = split_ctes(&node.compiled_code);
    ctes.push((
        node.name.clone(),
        body.trim().trim_end_matches(';').trim_end().to_string(),
    ));
}

/// Splits `with __lake_cte__... as (...), ` (as added by [`inject_ctes`])
/// from the body.
fn split_ctes(sql: &str) -> (&str, &str) {
    match sql.find("\n/* end lake ctes */\n") {
        Some(i) => (&sql[..i], &sql[i + "\n/* end lake ctes */\n".len()..]),
        None => ("", sql),
    }
}

/// Prepends CTEs to `sql`, merging with its own `WITH` if it has one.
pub fn inject_ctes(sql: &str, ctes: &[(String, String)]) -> String {
    let defs: Vec<String> = ctes
        .iter()
        .map(|(name, body)| format!("__lake_cte__{name} as (\n{body}\n)"))
        .collect();
    let defs = defs.join(",\n");
    let start = skip_comments(sql);
    let head = &sql[start..];
    let starts_with_with = head.len() >= 4
        && head[..4].eq_ignore_ascii_case("with")
        && head[4..].starts_with(|c: char| c.is_whitespace());
    if starts_with_with {
        // Leading comments stay in front; leading blank lines go.
        let prefix = &sql[..start];
        let prefix = if prefix.trim().is_empty() { "" } else { prefix };
        format!(
            "{prefix}with {defs},\n/* end lake ctes */\n{}",
            head[4..].trim_start()
        )
    } else {
        format!("with {defs}\n/* end lake ctes */\n{sql}")
    }
}

/// The byte offset of the first character that is not whitespace or a
/// comment.
fn skip_comments(sql: &str) -> usize {
    let mut i = 0;
    let bytes = sql.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(sql.len(), |n| i + n + 1);
        } else if sql[i..].starts_with("/*") {
            i = sql[i..].find("*/").map_or(sql.len(), |n| i + n + 2);
        } else {
            return i;
        }
    }
}

fn resolve_vars(
    project: &ProjectFile,
    cli: Option<&str>,
) -> Result<IndexMap<String, Json>, CompileError> {
    let mut vars = project.scoped_vars();
    if let Some(text) = cli.filter(|t| !t.trim().is_empty()) {
        let parsed: Json = serde_yaml::from_str(text).map_err(|e| CompileError::InvalidVars {
            message: e.to_string(),
        })?;
        match parsed {
            Json::Object(map) => vars.extend(map),
            Json::Null => {}
            other => {
                return Err(CompileError::InvalidVars {
                    message: format!("expected a mapping, got {other}"),
                });
            }
        }
    }
    Ok(vars)
}

/// What a discovered file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Model,
    Seed,
    /// A `.sql` file under macro-paths, or a test-paths file that defines
    /// macros (dbt's `tests/generic/`).
    Macro,
    /// A `.sql` file under test-paths: a singular test, unless it defines
    /// `{% test %}` blocks.
    TestSql,
    Properties,
    Docs,
}

/// Walks each project folder once, in name order, and reads every file it
/// needs in parallel.
fn discover(project: &ProjectFile, errors: &mut Vec<CompileError>) -> Discovered {
    let mut roles: Vec<(&String, FileKind)> = Vec::new();
    roles.extend(project.model_paths.iter().map(|r| (r, FileKind::Model)));
    roles.extend(project.seed_paths.iter().map(|r| (r, FileKind::Seed)));
    roles.extend(project.macro_paths.iter().map(|r| (r, FileKind::Macro)));
    roles.extend(project.test_paths.iter().map(|r| (r, FileKind::TestSql)));
    // (kind, path on disk, path within its folder, path within the project)
    let mut listed: Vec<(FileKind, std::path::PathBuf, String, String)> = Vec::new();
    let mut seen_text: BTreeSet<String> = BTreeSet::new();
    for (root, role) in roles {
        let base = project.dir.join(root);
        if !base.is_dir() {
            continue;
        }
        let entries = walkdir::WalkDir::new(&base)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'));
        for e in entries {
            let Ok(within) = e.path().strip_prefix(&base) else {
                continue;
            };
            let within = within.to_string_lossy().replace('\\', "/");
            let original = format!("{}/{within}", root.trim_end_matches('/'));
            let ext = e.path().extension().and_then(|x| x.to_str()).unwrap_or("");
            let kind = match (ext, role) {
                ("yml" | "yaml", _) => FileKind::Properties,
                ("md", _) => FileKind::Docs,
                ("sql", FileKind::Model | FileKind::Macro | FileKind::TestSql) => role,
                ("csv", FileKind::Seed) => FileKind::Seed,
                _ => continue,
            };
            // A folder listed under two roles is read once per kind of text.
            if matches!(kind, FileKind::Properties | FileKind::Docs)
                && !seen_text.insert(original.clone())
            {
                continue;
            }
            listed.push((kind, e.path().to_path_buf(), within, original));
        }
    }
    let texts: Vec<Result<String, CompileError>> = listed
        .par_iter()
        .map(|(kind, path, _, original)| {
            if *kind == FileKind::Seed {
                return Ok(String::new()); // seeds are read by the engine
            }
            std::fs::read_to_string(path).map_err(|e| CompileError::Io {
                location: Location::new(original.clone(), 0),
                message: e.to_string(),
            })
        })
        .collect();
    let fqn_of = |within: &str, name: &str| -> Vec<String> {
        let mut fqn = vec![project.name.clone()];
        let mut parts: Vec<&str> = within.split('/').collect();
        parts.pop();
        fqn.extend(parts.iter().map(|p| p.to_string()));
        fqn.push(name.to_string());
        fqn
    };
    let stem = |within: &str| -> String {
        let file = within.rsplit('/').next().unwrap_or(within);
        file.rsplit_once('.').map_or(file, |(s, _)| s).to_string()
    };
    let sql_file = |within: String, original_file_path: String, raw: String| {
        let name = stem(&within);
        SqlFile {
            fqn: fqn_of(&within, &name),
            name,
            path: within,
            original_file_path,
            raw,
        }
    };
    let mut found = Discovered::default();
    for ((kind, _, within, original), text) in listed.into_iter().zip(texts) {
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match kind {
            FileKind::Properties => found.property_files.push((original, text)),
            FileKind::Docs => found.docs.extend(properties::docs_blocks(&text)),
            FileKind::Seed => {
                let name = stem(&within);
                found.seeds.push(SeedFile {
                    fqn: fqn_of(&within, &name),
                    name,
                    path: within,
                    original_file_path: original,
                });
            }
            FileKind::Model => found.models.push(sql_file(within, original, text)),
            FileKind::Macro | FileKind::TestSql => {
                let macro_file = jinja::prepare_macro_file(&original, &text);
                if kind == FileKind::Macro || !macro_file.names.is_empty() {
                    found.macro_files.push(macro_file);
                } else {
                    found.singular_tests.push(sql_file(within, original, text));
                }
            }
        }
    }
    found
}

fn columns_of(columns: &[ColumnProperties]) -> IndexMap<String, ColumnInfo> {
    columns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                ColumnInfo {
                    name: c.name.clone(),
                    description: c.description.clone().unwrap_or_default(),
                    data_type: c.data_type.clone(),
                    constraints: c.constraints.clone(),
                    meta: c.effective_meta(),
                    tags: c.effective_tags(),
                },
            )
        })
        .collect()
}

fn describe(renderer: &Renderer, patch: Option<&Patch>, errors: &mut Vec<CompileError>) -> String {
    let Some(patch) = patch else {
        return String::new();
    };
    let text = patch.props.description.clone().unwrap_or_default();
    match renderer.render_description(&patch.file, &text) {
        Ok(t) => t,
        Err(e) => {
            let mut err = jinja::to_compile_error(&e, &patch.file, &patch.props.name);
            if let CompileError::Jinja { location, .. } | CompileError::Raised { location, .. } =
                &mut err
            {
                *location = Location::new(patch.file.clone(), patch.line);
            }
            errors.push(err);
            String::new()
        }
    }
}

fn dedup<T: PartialEq + Clone>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The line of the first `config(` call in `raw` (1 when there is none: the
/// config then comes from YAML, and the file is still the node's).
fn config_line(raw: &str) -> usize {
    raw.lines()
        .position(|l| l.contains("config("))
        .map_or(1, |i| i + 1)
}

/// The line of the first `ref('name')` in `raw`.
fn ref_line(raw: &str, name: &str) -> usize {
    for quote in ['\'', '"'] {
        let needle = format!("{quote}{name}{quote}");
        for (i, line) in raw.lines().enumerate() {
            if line.contains("ref") && line.contains(&needle) {
                return i + 1;
            }
        }
    }
    0
}

fn push_test_spec(
    specs: &mut Vec<(String, usize, String, Option<String>, TestSpec)>,
    errors: &mut Vec<CompileError>,
    file: &str,
    line: usize,
    attached: &str,
    column: Option<&str>,
    entry: &Json,
) {
    match generic_tests::parse_entry(entry) {
        Ok(spec) => specs.push((
            file.to_string(),
            line,
            attached.to_string(),
            column.map(str::to_string),
            spec,
        )),
        Err(message) => errors.push(CompileError::InvalidProperty {
            location: Location::new(file, line),
            message,
            hint: Some("see docs/project-format.md, section Tests".into()),
        }),
    }
}

/// Builds the node of one generic test. `Ok(None)` when it is disabled.
#[allow(clippy::too_many_arguments)]
fn generic_test_node(
    project: &ProjectFile,
    renderer: &Renderer,
    nodes: &IndexMap<String, Node>,
    sources: &IndexMap<String, SourceDefinition>,
    file: &str,
    line: usize,
    attached: &str,
    column: Option<&str>,
    spec: &TestSpec,
) -> Result<Option<(Node, String)>, CompileError> {
    let location = Location::new(file, line);
    let (target_name, relation) = if let Some(node) = nodes.get(attached) {
        (
            node.name.clone(),
            format!(
                "{}{}{}",
                jinja::SENTINEL_OPEN,
                node.name,
                jinja::SENTINEL_CLOSE
            ),
        )
    } else if let Some(source) = sources.get(attached) {
        (
            format!("source_{}_{}", source.source_name, source.name),
            source.relation_name.clone(),
        )
    } else {
        return Ok(None);
    };
    // Arguments: `column_name` first, as dbt passes it.
    let mut args: Map<String, Json> = Map::new();
    if let Some(c) = column {
        args.insert("column_name".into(), Json::from(c));
    }
    args.extend(spec.kwargs.clone());
    // dbt prefixes a package's tests with its name (`dbt_utils_accepted_range_...`).
    let test_type = match &spec.namespace {
        Some(ns) => format!("{ns}_{}", spec.test_name),
        None => spec.test_name.clone(),
    };
    let (full_name, short_name) = generic_tests::synthesize_name(&test_type, &target_name, &args);
    let name = spec.custom_name.clone().unwrap_or(full_name);
    // dbt names a generic test after the folder of its properties file.
    let mut fqn = vec![project.name.clone()];
    let within = project
        .model_paths
        .iter()
        .chain(&project.seed_paths)
        .find_map(|root| file.strip_prefix(&format!("{}/", root.trim_end_matches('/'))))
        .unwrap_or(file);
    let mut folders: Vec<&str> = within.split('/').collect();
    folders.pop();
    fqn.extend(folders.iter().map(|f| f.to_string()));
    fqn.push(name.clone());
    let mut cfg = config::from_tree(&project.data_tests, &fqn);
    config::merge(&mut cfg, &spec.config);
    let node_config = NodeConfig::from_map(cfg, "test", "audit", &location)?;
    if !node_config.enabled {
        return Ok(None);
    }
    // Render arguments that are Jinja (`to: ref('customers')`).
    let mut rendered_args = Map::new();
    let mut refs = Vec::new();
    let mut test_sources = Vec::new();
    for (key, value) in &args {
        let value = match value {
            Json::String(s)
                if key != "column_name"
                    && (generic_tests::looks_like_call(s) || s.contains("{{")) =>
            {
                let template = if s.contains("{{") {
                    s.clone()
                } else {
                    format!("{{{{ {s} }}}}")
                };
                let (out, capture) =
                    renderer
                        .render(file, &template, Value::from(()))
                        .map_err(|e| {
                            let mut err = jinja::to_compile_error(&e, file, &name);
                            if let CompileError::UnknownRef { location: l, .. }
                            | CompileError::Jinja { location: l, .. }
                            | CompileError::MissingVar { location: l, .. } = &mut err
                            {
                                *l = location.clone();
                            }
                            err
                        })?;
                refs.extend(capture.refs);
                test_sources.extend(capture.sources);
                Json::String(out)
            }
            other => other.clone(),
        };
        rendered_args.insert(key.clone(), value);
    }
    let tested = generic_tests::test_relation(&relation, node_config.where_.as_deref());
    let custom_macro = format!("test_{}", spec.test_name);
    let sql = if renderer.registry().macros.contains_key(&custom_macro) {
        // A project macro (`{% test name(model, column_name, ...) %}`).
        let mut call_args = vec!["model=__lake_model".to_string()];
        for key in rendered_args.keys() {
            call_args.push(format!("{key}=__lake_args[{key:?}]"));
        }
        let template = format!("{{{{ {custom_macro}({}) }}}}", call_args.join(", "));
        let ctx = minijinja::context! {
            __lake_model => Value::from_object(Relation { rendered: tested.clone(), identifier: target_name.clone(), zone: String::new() }),
            __lake_args => jinja::to_value(&rendered_args),
        };
        let (out, capture) = renderer
            .render(file, &template, ctx)
            .map_err(|e| jinja::to_compile_error(&e, file, &name))?;
        refs.extend(capture.refs);
        test_sources.extend(capture.sources);
        out
    } else {
        match generic_tests::builtin_sql(&spec.test_name, &tested, column, &rendered_args) {
            Ok(Some(sql)) => sql,
            Ok(None) => {
                return Err(unknown_test(renderer, spec, location).unwrap_or_else(|| {
                    CompileError::Internal(format!("test '{}' has no SQL", spec.test_name))
                }));
            }
            Err(message) => {
                return Err(CompileError::InvalidProperty {
                    location,
                    message,
                    hint: None,
                });
            }
        }
    };
    let hash = &generic_tests::md5_hex(&format!(
        "{attached}.{name}.{}",
        serde_json::Value::Object(args.clone())
    ))[..10];
    let unique_id = format!("test.{}.{name}.{hash}", project.name);
    if let Some(node) = nodes.get(attached) {
        refs.insert(0, node.name.clone());
    } else if let Some(source) = sources.get(attached) {
        test_sources.insert(0, [source.source_name.clone(), source.name.clone()]);
    }
    let path = format!("{file}/{short_name}.sql");
    Ok(Some((
        Node {
            unique_id,
            resource_type: ResourceType::Test,
            name: name.clone(),
            package_name: project.name.clone(),
            path: path.clone(),
            original_file_path: file.to_string(),
            fqn,
            relation_name: None,
            raw_code: test_raw_code(&spec.test_name, spec.namespace.as_deref()),
            compiled_code: String::new(),
            compiled_path: None,
            depends_on: DependsOn::default(),
            refs: dedup(refs),
            sources: dedup(test_sources),
            tags: node_config.tags.clone(),
            config: node_config,
            description: String::new(),
            columns: IndexMap::new(),
            constraints: vec![],
            uses_is_incremental: false,
            test_metadata: Some(TestMetadata {
                name: spec.test_name.clone(),
                kwargs: args,
                namespace: spec.namespace.clone(),
            }),
            attached_node: Some(attached.to_string()),
            column_name: column.map(str::to_string),
            logs: vec![],
        },
        sql,
    )))
}

/// The error for a test that is neither built in nor a project macro.
fn unknown_test(renderer: &Renderer, spec: &TestSpec, location: Location) -> Option<CompileError> {
    let macros = &renderer.registry().macros;
    if generic_tests::BUILTIN.contains(&spec.test_name.as_str())
        || macros.contains_key(&format!("test_{}", spec.test_name))
    {
        return None;
    }
    let known: Vec<&str> = generic_tests::BUILTIN
        .iter()
        .copied()
        .chain(macros.keys().filter_map(|m| m.strip_prefix("test_")))
        .collect();
    let suggestions = suggest(&spec.test_name, known.iter().copied());
    Some(CompileError::InvalidProperty {
        location,
        message: format!("unknown generic test '{}'", spec.test_name),
        hint: Some(match suggestions.first() {
            Some(s) => format!("did you mean '{s}'? custom tests are `{{% test name(model, column_name) %}}` blocks in macro-paths"),
            None => "custom tests are `{% test name(model, column_name) %}` blocks in macro-paths or tests/generic".into(),
        }),
    })
}

fn test_raw_code(test_name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{{{{ {ns}.test_{test_name}(**_dbt_generic_test_kwargs) }}}}"),
        None => format!("{{{{ test_{test_name}(**_dbt_generic_test_kwargs) }}}}"),
    }
}
