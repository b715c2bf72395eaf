//! The feature store's declarations (Feast semantics): `entities:`,
//! `feature_views:` and `feature_services:` of properties YAML, checked
//! against the project's models, seeds and sources and turned into the
//! manifest's [`Entity`], [`FeatureView`] and [`FeatureService`] maps.
//! Feature views are not nodes: the DAG does not change.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::error::{CompileError, Location};
use crate::jinja::{self, Renderer};
use crate::manifest::{
    Entity, FeatureField, FeatureRef, FeatureService, FeatureView, Node, ResourceType,
    SourceDefinition, did_you_mean, resolve_feature_ref,
};
use crate::properties::{EntityProperties, FeatureServiceProperties, FeatureViewProperties};
use crate::yaml::NameLines;

const TTL_SYNTAX: &str = "write a duration such as 30d, 12h, 15m, 45s, 2w or 1d12h, or a number of seconds; 0 means unbounded";

/// Parses a time to live: `30d`, `12h`, `15m`, `45s`, `2w`, combinations
/// such as `1d12h`, or a whole number of seconds (`90`). Returns seconds;
/// 0 means unbounded.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty ttl".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map_err(|_| format!("'{t}' is too large a number of seconds"));
    }
    let too_long = || format!("'{t}' is too long a duration");
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("'{t}' has a unit without a number before it"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        let after = &rest[digits..];
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !c.is_ascii_alphabetic())
            .map_or(after.len(), |(i, _)| i);
        let unit = &after[..unit_len];
        let seconds: u64 = match unit {
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            "" => return Err(format!("'{t}' has a number without a unit after it")),
            other => {
                return Err(format!(
                    "unknown unit '{other}' in '{t}' (units: w, d, h, m, s)"
                ));
            }
        };
        total = n
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(too_long)?;
        rest = &after[unit_len..];
    }
    Ok(total)
}

/// Seconds as the shortest ttl that [`parse_ttl`] reads back: `30d`,
/// `1d12h`, `90s` (`0s` for 0). Weeks are shown as days.
pub fn format_ttl(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// The feature store declarations of one properties file.
#[derive(Debug)]
pub(crate) struct Declared<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub entities: Vec<EntityProperties>,
    pub views: Vec<FeatureViewProperties>,
    pub services: Vec<FeatureServiceProperties>,
}

impl Declared<'_> {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.views.is_empty() && self.services.is_empty()
    }
}

/// What feature views are checked against.
pub(crate) struct Catalog<'a> {
    pub project: &'a str,
    pub nodes: &'a IndexMap<String, Node>,
    pub sources: &'a IndexMap<String, SourceDefinition>,
    /// Every model and seed found, by name (enabled or not, rendered or not).
    pub names: &'a HashMap<String, String>,
    /// Names of disabled models and seeds.
    pub disabled: &'a BTreeSet<String>,
    pub renderer: &'a Renderer,
}

/// The manifest's feature store maps.
#[derive(Debug, Default)]
pub(crate) struct Features {
    pub entities: IndexMap<String, Entity>,
    pub feature_views: IndexMap<String, FeatureView>,
    pub feature_services: IndexMap<String, FeatureService>,
}

/// Builds and checks every entity, then every feature view, then every
/// feature service (names are global, so a view may use an entity declared
/// in another file). Problems go to `errors`, each with its file and line.
pub(crate) fn build(
    declared: &[Declared<'_>],
    catalog: &Catalog<'_>,
    errors: &mut Vec<CompileError>,
) -> Features {
    let mut out = Features::default();
    let files: Vec<FileLines<'_>> = declared.iter().map(FileLines::new).collect();
    for (decl, lines) in declared.iter().zip(&files) {
        let spans = lines.entries("entities", decl.entities.iter().map(|e| e.name.as_str()));
        for (props, span) in decl.entities.iter().zip(spans) {
            entity(decl.file, lines, span, props, catalog, &mut out, errors);
        }
    }
    for (decl, lines) in declared.iter().zip(&files) {
        let spans = lines.entries("feature_views", decl.views.iter().map(|v| v.name.as_str()));
        for (props, span) in decl.views.iter().zip(spans) {
            feature_view(decl.file, lines, span, props, catalog, &mut out, errors);
        }
    }
    for (decl, lines) in declared.iter().zip(&files) {
        let spans = lines.entries(
            "feature_services",
            decl.services.iter().map(|s| s.name.as_str()),
        );
        for (props, span) in decl.services.iter().zip(spans) {
            feature_service(decl.file, lines, span, props, catalog, &mut out, errors);
        }
    }
    out
}

fn invalid(file: &str, line: usize, message: String, hint: impl Into<String>) -> CompileError {
    CompileError::InvalidProperty {
        location: Location::new(file, line),
        message,
        hint: Some(hint.into()),
    }
}

/// A second declaration of `what` (`feature view 'x'`); names are global
/// in a project.
fn duplicate(file: &str, line: usize, what: &str, previous: (&str, usize)) -> CompileError {
    let kind = what.split(" '").next().unwrap_or(what);
    invalid(
        file,
        line,
        format!(
            "{what} is already declared at {}:{}",
            previous.0, previous.1
        ),
        format!("{kind} names are global in a project: rename one of the two, or merge them"),
    )
}

fn describe(
    catalog: &Catalog<'_>,
    file: &str,
    line: usize,
    name: &str,
    text: Option<&str>,
    errors: &mut Vec<CompileError>,
) -> String {
    let text = text.unwrap_or_default();
    match catalog.renderer.render_description(file, text) {
        Ok(t) => t,
        Err(e) => {
            let mut err = jinja::to_compile_error(&e, file, name);
            if let CompileError::Jinja { location, .. } | CompileError::Raised { location, .. } =
                &mut err
            {
                *location = Location::new(file, line);
            }
            errors.push(err);
            String::new()
        }
    }
}

fn entity(
    file: &str,
    lines: &FileLines<'_>,
    span: Span,
    props: &EntityProperties,
    catalog: &Catalog<'_>,
    out: &mut Features,
    errors: &mut Vec<CompileError>,
) {
    let name = &props.name;
    if let Some(previous) = out.entities.get(name) {
        let what = format!("entity '{name}'");
        let at = (previous.original_file_path.as_str(), previous.line);
        errors.push(duplicate(file, span.start, &what, at));
        return;
    }
    let mut join_keys: Vec<String> = Vec::new();
    for key in props.join_keys.iter().map(|k| k.trim()) {
        if !key.is_empty() && !join_keys.iter().any(|k| k == key) {
            join_keys.push(key.to_string());
        }
    }
    if join_keys.is_empty() {
        errors.push(invalid(
            file,
            lines.key_line(span, "join_keys"),
            format!("entity '{name}' has no join_keys"),
            "list the columns that identify it, for example `join_keys: [customer_id]`",
        ));
    }
    let description = describe(
        catalog,
        file,
        span.start,
        name,
        props.description.as_deref(),
        errors,
    );
    out.entities.insert(
        name.clone(),
        Entity {
            name: name.clone(),
            join_keys,
            description,
            original_file_path: file.to_string(),
            line: span.start,
        },
    );
}

fn feature_view(
    file: &str,
    lines: &FileLines<'_>,
    span: Span,
    props: &FeatureViewProperties,
    catalog: &Catalog<'_>,
    out: &mut Features,
    errors: &mut Vec<CompileError>,
) {
    let name = &props.name;
    let what = format!("feature view '{name}'");
    if let Some(previous) = out.feature_views.get(name) {
        let at = (previous.original_file_path.as_str(), previous.line);
        errors.push(duplicate(file, span.start, &what, at));
        return;
    }

    // Entities and their join keys.
    let mut join_keys: Vec<String> = Vec::new();
    // Which entity each join key comes from.
    let mut key_owner: HashMap<String, String> = HashMap::new();
    if props.entities.is_empty() {
        errors.push(invalid(
            file,
            lines.key_line(span, "entities"),
            format!("{what} names no entities"),
            "list the entities whose join keys identify its rows, for example `entities: [customer]`",
        ));
    }
    for entity in &props.entities {
        match out.entities.get(entity) {
            Some(e) => {
                for key in &e.join_keys {
                    if !join_keys.contains(key) {
                        join_keys.push(key.clone());
                        key_owner.insert(key.clone(), entity.clone());
                    }
                }
            }
            None => errors.push(invalid(
                file,
                lines.value_line(span, "entities", entity),
                format!("{what} names unknown entity '{entity}'"),
                did_you_mean(
                    entity,
                    out.entities.keys().map(String::as_str),
                    "entities are declared under `entities:` in properties YAML",
                ),
            )),
        }
    }

    // The source and the columns it declares.
    let (source, source_relation, columns) = match props.source.as_deref().map(str::trim) {
        None | Some("") => {
            errors.push(invalid(
                file,
                span.start,
                format!("{what} has no source"),
                "name the model, seed or `source_name.table_name` it reads, for example `source: customer_daily_stats`",
            ));
            (String::new(), String::new(), None)
        }
        Some(source) => match resolve_source(catalog, source) {
            Ok(Resolved {
                unique_id,
                relation,
                columns,
            }) => (unique_id, relation, columns),
            Err(problem) => {
                if let Some((message, hint)) = problem {
                    errors.push(invalid(
                        file,
                        lines.key_line(span, "source"),
                        format!("{what} {message}"),
                        hint,
                    ));
                }
                (String::new(), String::new(), None)
            }
        },
    };

    let timestamp_field = props
        .timestamp_field
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if timestamp_field.is_empty() {
        errors.push(invalid(
            file,
            span.start,
            format!("{what} has no timestamp_field"),
            "name the column that says when each feature row became true, for example `timestamp_field: event_ts`",
        ));
    }
    let created_timestamp_field = props
        .created_timestamp_field
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);

    let ttl_seconds = match &props.ttl {
        None | Some(Json::Null) => None,
        Some(value) => {
            let parsed = match value {
                Json::Number(n) => n
                    .as_u64()
                    .ok_or_else(|| format!("'{n}' is not a whole, non-negative number of seconds")),
                Json::String(s) => parse_ttl(s),
                other => Err(format!("expected a duration, got {other}")),
            };
            match parsed {
                Ok(0) => None,
                Ok(seconds) => Some(seconds),
                Err(message) => {
                    errors.push(invalid(
                        file,
                        lines.key_line(span, "ttl"),
                        format!("{what}: invalid ttl: {message}"),
                        TTL_SYNTAX,
                    ));
                    None
                }
            }
        }
    };

    // Features.
    let mut features: Vec<FeatureField> = Vec::new();
    if props.features.is_empty() {
        errors.push(invalid(
            file,
            lines.key_line(span, "features"),
            format!("{what} has no features"),
            "list the source columns it serves, for example `features: [orders_30d, avg_order_value]`",
        ));
    }
    for entry in &props.features {
        let field = match feature_field(entry) {
            Ok(f) => f,
            Err(message) => {
                errors.push(invalid(
                    file,
                    lines.key_line(span, "features"),
                    format!("{what}: {message}"),
                    "a feature is a column name, or a mapping `{name: x, dtype: bigint, description: ...}`",
                ));
                continue;
            }
        };
        let line = lines.value_line(span, "features", &field.name);
        if features.iter().any(|f| f.name == field.name) {
            errors.push(invalid(
                file,
                line,
                format!("{what} lists feature '{}' twice", field.name),
                "remove one of the two",
            ));
            continue;
        }
        if let Some(entity) = key_owner.get(&field.name) {
            errors.push(invalid(
                file,
                line,
                format!(
                    "{what}: feature '{}' is a join key of entity '{entity}'",
                    field.name
                ),
                "join keys identify the rows and come with every result already; remove it from `features:`",
            ));
        } else if field.name == timestamp_field
            || created_timestamp_field.as_deref() == Some(field.name.as_str())
        {
            let key = if field.name == timestamp_field {
                "timestamp_field"
            } else {
                "created_timestamp_field"
            };
            errors.push(invalid(
                file,
                line,
                format!("{what}: feature '{}' is its {key}", field.name),
                "the timestamps drive the point-in-time join and are not served as features; remove it from `features:`",
            ));
        }
        features.push(field);
    }

    // Every column named must exist, when the source lists its columns.
    if let Some((kind, source_name, columns)) = &columns {
        let mut named: Vec<(&str, &str, &str)> = Vec::new(); // (column, role, key)
        named.extend(
            join_keys
                .iter()
                .map(|k| (k.as_str(), "a join key", "entities")),
        );
        if !timestamp_field.is_empty() {
            named.push((
                timestamp_field.as_str(),
                "its timestamp_field",
                "timestamp_field",
            ));
        }
        if let Some(c) = &created_timestamp_field {
            named.push((
                c.as_str(),
                "its created_timestamp_field",
                "created_timestamp_field",
            ));
        }
        named.extend(
            features
                .iter()
                .map(|f| (f.name.as_str(), "a feature", "features")),
        );
        for (column, role, key) in named {
            if columns.iter().any(|c| c == column) {
                continue;
            }
            let line = if key == "entities" {
                // The key comes from an entity: point at the view's entities.
                lines.key_line(span, key)
            } else {
                lines.value_line(span, key, column)
            };
            errors.push(invalid(
                file,
                line,
                format!(
                    "{what}: column '{column}' ({role}) is not a column of {kind} '{source_name}'"
                ),
                did_you_mean(
                    column,
                    columns.iter().map(String::as_str),
                    &format!(
                        "the columns {kind} '{source_name}' declares in its properties YAML are: {}",
                        columns.join(", ")
                    ),
                ),
            ));
        }
    }

    let description = describe(
        catalog,
        file,
        span.start,
        name,
        props.description.as_deref(),
        errors,
    );
    out.feature_views.insert(
        name.clone(),
        FeatureView {
            unique_id: format!("feature_view.{}.{name}", catalog.project),
            name: name.clone(),
            entities: props.entities.clone(),
            join_keys,
            source,
            source_relation,
            timestamp_field,
            created_timestamp_field,
            ttl_seconds,
            features,
            online: props.online.unwrap_or(true),
            description,
            tags: props.tags.clone(),
            original_file_path: file.to_string(),
            line: span.start,
        },
    );
}

fn feature_field(entry: &Json) -> Result<FeatureField, String> {
    let blank = || "a feature has an empty name".to_string();
    match entry {
        Json::String(name) if name.trim().is_empty() => Err(blank()),
        Json::String(name) => Ok(FeatureField {
            name: name.trim().to_string(),
            dtype: None,
            description: String::new(),
        }),
        Json::Object(map) => {
            if let Some(key) = map
                .keys()
                .find(|k| !matches!(k.as_str(), "name" | "dtype" | "description"))
            {
                return Err(format!(
                    "unknown key '{key}' in a feature (keys: name, dtype, description)"
                ));
            }
            let name = match map.get("name") {
                Some(Json::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
                Some(Json::String(_)) => return Err(blank()),
                _ => return Err("a feature mapping needs a `name`".into()),
            };
            let text = |key: &str| -> Result<Option<String>, String> {
                match map.get(key) {
                    None | Some(Json::Null) => Ok(None),
                    Some(Json::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(format!(
                        "feature '{name}': `{key}` must be text, got {other}"
                    )),
                }
            };
            Ok(FeatureField {
                dtype: text("dtype")?,
                description: text("description")?.unwrap_or_default(),
                name,
            })
        }
        other => Err(format!(
            "a feature must be a name or a mapping, got {other}"
        )),
    }
}

fn feature_service(
    file: &str,
    lines: &FileLines<'_>,
    span: Span,
    props: &FeatureServiceProperties,
    catalog: &Catalog<'_>,
    out: &mut Features,
    errors: &mut Vec<CompileError>,
) {
    let name = &props.name;
    let what = format!("feature service '{name}'");
    if let Some(previous) = out.feature_services.get(name) {
        let at = (previous.original_file_path.as_str(), previous.line);
        errors.push(duplicate(file, span.start, &what, at));
        return;
    }
    if props.features.is_empty() {
        errors.push(invalid(
            file,
            lines.key_line(span, "features"),
            format!("{what} has no features"),
            "list `view:feature` references or whole views, for example `features: [customer_stats:orders_30d, customer_stats]`",
        ));
    }
    let mut features: Vec<FeatureRef> = Vec::new();
    for text in &props.features {
        match resolve_feature_ref(&out.feature_views, text) {
            Ok(refs) => {
                for r in refs {
                    if !features.contains(&r) {
                        features.push(r);
                    }
                }
            }
            Err(e) => errors.push(invalid(
                file,
                lines.value_line(span, "features", text.trim()),
                format!("{what}: {}", e.message),
                e.hint,
            )),
        }
    }
    let description = describe(
        catalog,
        file,
        span.start,
        name,
        props.description.as_deref(),
        errors,
    );
    out.feature_services.insert(
        name.clone(),
        FeatureService {
            unique_id: format!("feature_service.{}.{name}", catalog.project),
            name: name.clone(),
            features,
            description,
            tags: props.tags.clone(),
            original_file_path: file.to_string(),
            line: span.start,
        },
    );
}

/// A feature view's source, found.
struct Resolved {
    unique_id: String,
    relation: String,
    /// (`model`, `seed` or `source`, its name, its declared columns) when it
    /// declares any.
    columns: Option<(&'static str, String, Vec<String>)>,
}

/// Finds a model, seed or `source_name.table_name`. `Err(None)` when the
/// problem was reported already (the model failed to render).
fn resolve_source(catalog: &Catalog<'_>, name: &str) -> Result<Resolved, Option<(String, String)>> {
    let columns_of = |columns: Vec<String>| (!columns.is_empty()).then_some(columns);
    if let Some((source_name, table)) = name.split_once('.') {
        let id = format!("source.{}.{source_name}.{table}", catalog.project);
        if let Some(s) = catalog.sources.get(&id) {
            return Ok(Resolved {
                unique_id: id,
                relation: s.relation_name.clone(),
                columns: columns_of(s.columns.keys().cloned().collect())
                    .map(|c| ("source", name.to_string(), c)),
            });
        }
    } else if let Some(node) = catalog
        .nodes
        .values()
        .find(|n| n.name == name && n.resource_type != ResourceType::Test)
    {
        let kind = node.resource_type.as_str();
        let Some(relation) = &node.relation_name else {
            return Err(Some((
                format!("reads ephemeral model '{name}', which is not materialized"),
                format!(
                    "make '{name}' a table, view or incremental model (config materialized: table), or read a model that is materialized"
                ),
            )));
        };
        return Ok(Resolved {
            unique_id: node.unique_id.clone(),
            relation: relation.clone(),
            columns: columns_of(node.columns.keys().cloned().collect())
                .map(|c| (kind, name.to_string(), c)),
        });
    } else if catalog.disabled.contains(name) {
        return Err(Some((
            format!("reads disabled model '{name}'"),
            format!("enable '{name}' (config enabled: true) or read another model"),
        )));
    } else if catalog.names.contains_key(name) {
        return Err(None); // it failed to render or configure: reported already
    }
    let sources: Vec<String> = catalog
        .sources
        .values()
        .map(|s| format!("{}.{}", s.source_name, s.name))
        .collect();
    let candidates = catalog
        .nodes
        .values()
        .filter(|n| n.resource_type != ResourceType::Test)
        .map(|n| n.name.as_str())
        .chain(sources.iter().map(String::as_str));
    Err(Some((
        format!("reads '{name}', which is not a model, seed or source"),
        did_you_mean(
            name,
            candidates,
            "a feature view reads a model or seed by name, or a declared source as `source_name.table_name`",
        ),
    )))
}

/// Lines of one entry of a list: from its `name:` line up to the next
/// entry or top-level key (exclusive).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// Finds the lines of entries, keys and values in one properties file.
struct FileLines<'a> {
    lines: Vec<&'a str>,
    names: NameLines,
}

impl<'a> FileLines<'a> {
    fn new(decl: &Declared<'a>) -> FileLines<'a> {
        if decl.is_empty() {
            return FileLines {
                lines: Vec::new(),
                names: NameLines::default(),
            };
        }
        FileLines {
            lines: decl.text.lines().collect(),
            names: NameLines::new(decl.text),
        }
    }

    /// The 1-based line of the top-level `key:`, or 1.
    fn top_level_key(&self, key: &str) -> usize {
        self.lines
            .iter()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
            .map_or(1, |i| i + 1)
    }

    /// The next top-level key after line `after`, or one past the end.
    fn next_top_level(&self, after: usize) -> usize {
        self.lines
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, l)| {
                l.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && l.contains(':')
            })
            .map_or(self.lines.len() + 1, |(i, _)| i + 1)
    }

    /// The spans of the entries of the top-level list `key`, in order.
    fn entries<'n>(&self, key: &str, names: impl Iterator<Item = &'n str>) -> Vec<Span> {
        let mut cursor = self.top_level_key(key);
        let mut starts = Vec::new();
        for name in names {
            let mut line = self.names.find(name, cursor);
            if line == cursor && !self.is_name_line(line, name) {
                // A flow mapping (`- {name: x, ...}`).
                line = (cursor..=self.lines.len())
                    .find(|l| self.is_name_line(*l, name))
                    .unwrap_or(cursor);
            }
            starts.push(line);
            cursor = line + 1;
        }
        let mut spans = Vec::with_capacity(starts.len());
        for (i, start) in starts.iter().enumerate() {
            let section_end = self.next_top_level(*start);
            let end = starts
                .get(i + 1)
                .copied()
                .filter(|next| next > start)
                .map_or(section_end, |next| next.min(section_end));
            spans.push(Span { start: *start, end });
        }
        spans
    }

    /// Whether line `l` names `name` (`name: x`, or `{name: x, ...}`).
    fn is_name_line(&self, l: usize, name: &str) -> bool {
        self.lines.get(l.wrapping_sub(1)).is_some_and(|text| {
            text.match_indices("name").any(|(i, _)| {
                let rest = text[i + 4..].trim_start();
                rest.strip_prefix(':').is_some_and(|v| {
                    let v = v.trim_start().trim_start_matches(['"', '\'']);
                    v.starts_with(name)
                        && !v[name.len()..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                })
            })
        })
    }

    /// The line of `key:` within the entry, or the entry's first line.
    fn key_line(&self, span: Span, key: &str) -> usize {
        (span.start..span.end)
            .find(|l| {
                self.lines.get(l - 1).is_some_and(|text| {
                    let t = text.trim_start().trim_start_matches("- ").trim_start();
                    t.strip_prefix(key)
                        .is_some_and(|rest| rest.trim_start().starts_with(':'))
                })
            })
            .unwrap_or(span.start)
    }

    /// The line where `value` appears as a word under `key:` in the entry
    /// (the key's line for a flow list), or the key's line.
    fn value_line(&self, span: Span, key: &str, value: &str) -> usize {
        let from = self.key_line(span, key);
        (from..span.end)
            .find(|l| {
                self.lines
                    .get(l - 1)
                    .is_some_and(|text| contains_word(text, value))
            })
            .unwrap_or(from)
    }
}

/// `value` in `text`, not as part of a longer name.
fn contains_word(text: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(value).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + value.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert!(contains_word("features: [orders_30d, x]", "orders_30d"));
        assert!(!contains_word("features: [orders_30d_v2]", "orders_30d"));
        assert!(contains_word(
            "  - customer_stats:orders",
            "customer_stats:orders"
        ));
    }
}
