//! Node selection with dbt's grammar: `name`, `+name`, `name+`, `2+name`,
//! `name+3`, `@name`, `tag:x`, `path:dir`, `config.materialized:table`,
//! `resource_type:model`, `source:s.t`, `fqn:`, `test_type:`, `test_name:`,
//! `*` wildcards; space-separated unions, comma intersections, `--exclude`.
//! Tests follow the nodes they test (dbt's "eager" indirect selection).
//! Feature views are selected by `feature_view:name`, `feature_service:name`
//! (the views it uses), `entity:name` (the views keyed by it), `tag:`,
//! `path:`, `file:`, `package:` and `resource_type:feature_view` (never by a
//! bare name); `+feature_view:x` adds the model, seed or source it reads and
//! its ancestors, and `model+` the feature views that read the model.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::Value as Json;

use crate::error::CompileError;
use crate::manifest::{Manifest, ResourceType};

/// Resolves `--select` and `--exclude` to unique ids (nodes, sources and
/// feature views). An empty `select` selects everything.
pub fn select(
    manifest: &Manifest,
    select: &[String],
    exclude: &[String],
) -> Result<BTreeSet<String>, CompileError> {
    let mut chosen = if select.iter().all(|s| s.trim().is_empty()) {
        all_ids(manifest)
    } else {
        with_tests(manifest, resolve(manifest, select)?)
    };
    if !exclude.is_empty() {
        let excluded = with_tests(manifest, resolve(manifest, exclude)?);
        chosen.retain(|id| !excluded.contains(id));
    }
    Ok(chosen)
}

fn all_ids(manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .nodes
        .keys()
        .chain(manifest.sources.keys())
        .cloned()
        .chain(manifest.feature_views.values().map(|v| v.unique_id.clone()))
        .collect()
}

/// Adds every test with a selected parent.
fn with_tests(manifest: &Manifest, mut ids: BTreeSet<String>) -> BTreeSet<String> {
    let tests: Vec<String> = manifest
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Test)
        .filter(|n| n.depends_on.nodes.iter().any(|p| ids.contains(p)))
        .map(|n| n.unique_id.clone())
        .collect();
    ids.extend(tests);
    ids
}

fn resolve(manifest: &Manifest, args: &[String]) -> Result<BTreeSet<String>, CompileError> {
    let mut union = BTreeSet::new();
    for arg in args {
        for spec in arg.split_whitespace() {
            let mut intersection: Option<BTreeSet<String>> = None;
            for atom in spec.split(',').filter(|a| !a.is_empty()) {
                let ids = resolve_atom(manifest, atom)?;
                intersection = Some(match intersection {
                    None => ids,
                    Some(prev) => prev.intersection(&ids).cloned().collect(),
                });
            }
            union.extend(intersection.unwrap_or_default());
        }
    }
    Ok(union)
}

/// One atom: graph operators around a method and value.
#[derive(Debug, PartialEq)]
struct Atom<'a> {
    at: bool,
    parents: Option<Option<usize>>,
    children: Option<Option<usize>>,
    method: Option<&'a str>,
    value: &'a str,
}

fn parse_atom(atom: &str) -> Result<Atom<'_>, CompileError> {
    let invalid = |message: &str| CompileError::InvalidSelector {
        selector: atom.to_string(),
        message: message.to_string(),
    };
    let mut rest = atom;
    let at = rest.starts_with('@');
    if at {
        rest = &rest[1..];
    }
    let mut parents = None;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if rest[digits..].starts_with('+') {
        let depth = if digits > 0 {
            Some(rest[..digits].parse().map_err(|_| invalid("bad depth"))?)
        } else {
            None
        };
        parents = Some(depth);
        rest = &rest[digits + 1..];
    }
    let mut children = None;
    if let Some(plus) = rest.rfind('+') {
        let tail = &rest[plus + 1..];
        if tail.bytes().all(|b| b.is_ascii_digit()) {
            children = Some(if tail.is_empty() {
                None
            } else {
                Some(tail.parse().map_err(|_| invalid("bad depth"))?)
            });
            rest = &rest[..plus];
        }
    }
    if at && (parents.is_some() || children.is_some()) {
        return Err(invalid("'@' cannot be combined with '+'"));
    }
    let (method, value) = match rest.split_once(':') {
        Some((m, v)) => (Some(m), v),
        None => (None, rest),
    };
    if value.is_empty() {
        return Err(invalid("nothing to select"));
    }
    Ok(Atom {
        at,
        parents,
        children,
        method,
        value,
    })
}

fn resolve_atom(manifest: &Manifest, atom: &str) -> Result<BTreeSet<String>, CompileError> {
    let parsed = parse_atom(atom)?;
    let base = match_method(manifest, parsed.method, parsed.value).map_err(|message| {
        CompileError::InvalidSelector {
            selector: atom.to_string(),
            message,
        }
    })?;
    let mut result = base.clone();
    if parsed.at {
        let descendants = walk(manifest, &base, Direction::Children, None);
        let ancestors = walk(manifest, &descendants, Direction::Parents, None);
        result.extend(descendants);
        result.extend(ancestors);
    }
    if let Some(depth) = parsed.parents {
        result.extend(walk(manifest, &base, Direction::Parents, depth));
    }
    if let Some(depth) = parsed.children {
        result.extend(walk(manifest, &base, Direction::Children, depth));
    }
    Ok(result)
}

#[derive(Clone, Copy)]
enum Direction {
    Parents,
    Children,
}

/// Every node reachable from `start` within `depth` steps (unbounded when
/// `None`), `start` excluded unless reached again.
fn walk(
    manifest: &Manifest,
    start: &BTreeSet<String>,
    direction: Direction,
    depth: Option<usize>,
) -> BTreeSet<String> {
    let map = match direction {
        Direction::Parents => &manifest.parent_map,
        Direction::Children => &manifest.child_map,
    };
    // Feature views sit outside the DAG, each below the one thing it reads.
    let mut views: HashMap<&str, Vec<&str>> = HashMap::new();
    for v in manifest.feature_views.values() {
        match direction {
            Direction::Parents => views
                .entry(v.unique_id.as_str())
                .or_default()
                .push(v.source.as_str()),
            Direction::Children => views
                .entry(v.source.as_str())
                .or_default()
                .push(v.unique_id.as_str()),
        }
    }
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<(&str, usize)> = start.iter().map(|s| (s.as_str(), 0)).collect();
    while let Some((id, d)) = queue.pop_front() {
        if depth.is_some_and(|max| d >= max) {
            continue;
        }
        let nexts = map
            .get(id)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(views.get(id).into_iter().flatten().copied());
        for next in nexts {
            // Tests are leaves that selection adds on its own.
            if manifest
                .nodes
                .get(next)
                .is_some_and(|n| n.resource_type == ResourceType::Test)
            {
                continue;
            }
            if seen.insert(next.to_string()) {
                queue.push_back((next, d + 1));
            }
        }
    }
    seen
}

/// `*` matches any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut pos = first.len();
    let end = text.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match text[pos..end].find(part) {
            Some(i) => pos += i + part.len(),
            None => return false,
        }
    }
    true
}

/// dbt's fqn matching: the leaf name, or a dotted prefix of the fqn.
fn fqn_match(fqn: &[String], selector: &str) -> bool {
    if fqn
        .last()
        .is_some_and(|leaf| wildcard_match(selector, leaf))
    {
        return true;
    }
    let parts: Vec<&str> = selector.split('.').collect();
    if parts.len() < 2 || parts.len() > fqn.len() {
        return false;
    }
    parts
        .iter()
        .zip(fqn)
        .all(|(p, f)| *p == "*" || wildcard_match(p, f))
}

fn path_match(path: &str, selector: &str) -> bool {
    let selector = selector.trim_start_matches("./").trim_end_matches('/');
    path == selector || path.starts_with(&format!("{selector}/")) || wildcard_match(selector, path)
}

fn match_method(
    manifest: &Manifest,
    method: Option<&str>,
    value: &str,
) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let method = method.unwrap_or(if value.contains('/') || value.ends_with(".sql") {
        "path"
    } else {
        "fqn"
    });
    for node in manifest.nodes.values() {
        let hit = match method {
            "fqn" => fqn_match(&node.fqn, value),
            "tag" => node.tags.iter().any(|t| wildcard_match(value, t)),
            "path" | "file" => {
                path_match(&node.original_file_path, value)
                    || (method == "file"
                        && node
                            .original_file_path
                            .rsplit('/')
                            .next()
                            .is_some_and(|f| wildcard_match(value, f)))
            }
            "resource_type" => match ResourceType::parse(value) {
                Some(t) => t == node.resource_type,
                None if value == FEATURE_VIEW => false,
                None => {
                    return Err(format!(
                        "unknown resource type '{value}'; lake knows model, seed, test, source, feature_view"
                    ));
                }
            },
            "package" => node.package_name == value,
            "test_type" => {
                node.resource_type == ResourceType::Test
                    && match value {
                        "generic" => node.test_metadata.is_some(),
                        "singular" => node.test_metadata.is_none(),
                        "data" | "unit" => false,
                        _ => {
                            return Err(format!(
                                "unknown test_type '{value}'; use generic or singular"
                            ));
                        }
                    }
            }
            "test_name" => node
                .test_metadata
                .as_ref()
                .is_some_and(|t| wildcard_match(value, &t.name)),
            "source" | FEATURE_VIEW | "feature_service" | "entity" => false,
            m if m.starts_with("config.") => {
                let key = &m["config.".len()..];
                config_match(node.config.get(key).as_ref(), value)
            }
            other => {
                return Err(format!(
                    "unknown selector method '{other}'; lake knows fqn, tag, path, file, config.<key>, resource_type, source, feature_view, feature_service, entity, package, test_type, test_name"
                ));
            }
        };
        if hit {
            out.insert(node.unique_id.clone());
        }
    }
    for source in manifest.sources.values() {
        let hit = match method {
            "source" => {
                let mut parts = value.splitn(2, '.');
                let s = parts.next().unwrap_or_default();
                let t = parts.next();
                wildcard_match(s, &source.source_name)
                    && t.is_none_or(|t| wildcard_match(t, &source.name))
            }
            "resource_type" => value == "source",
            "tag" => source.tags.iter().any(|t| wildcard_match(value, t)),
            "path" | "file" => path_match(&source.original_file_path, value),
            "fqn" => fqn_match(&source.fqn, value),
            "package" => source.package_name == value,
            _ => false,
        };
        if hit {
            out.insert(source.unique_id.clone());
        }
    }
    for view in manifest.feature_views.values() {
        let hit = match method {
            FEATURE_VIEW => wildcard_match(value, &view.name),
            "feature_service" => manifest.feature_services.values().any(|s| {
                wildcard_match(value, &s.name) && s.features.iter().any(|f| f.view == view.name)
            }),
            "entity" => view.entities.iter().any(|e| wildcard_match(value, e)),
            "resource_type" => value == FEATURE_VIEW,
            "tag" => view.tags.iter().any(|t| wildcard_match(value, t)),
            "path" => path_match(&view.original_file_path, value),
            "file" => {
                path_match(&view.original_file_path, value)
                    || view
                        .original_file_path
                        .rsplit('/')
                        .next()
                        .is_some_and(|f| wildcard_match(value, f))
            }
            "package" => manifest.metadata.project_name == value,
            _ => false,
        };
        if hit {
            out.insert(view.unique_id.clone());
        }
    }
    Ok(out)
}

/// The selector method and resource type of feature views.
const FEATURE_VIEW: &str = "feature_view";

fn config_match(config: Option<&Json>, value: &str) -> bool {
    match config {
        None => false,
        Some(Json::String(s)) => wildcard_match(value, s),
        Some(Json::Array(items)) => items.iter().any(|i| config_match(Some(i), value)),
        Some(Json::Bool(b)) => value.eq_ignore_ascii_case(&b.to_string()),
        Some(Json::Number(n)) => value.parse::<f64>().ok() == n.as_f64(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_operators() {
        let a = parse_atom("2+orders+").unwrap();
        assert_eq!(a.parents, Some(Some(2)));
        assert_eq!(a.children, Some(None));
        assert_eq!(a.value, "orders");
        let a = parse_atom("@tag:nightly").unwrap();
        assert!(a.at);
        assert_eq!((a.method, a.value), (Some("tag"), "nightly"));
        let a = parse_atom("config.materialized:incremental+1").unwrap();
        assert_eq!(a.method, Some("config.materialized"));
        assert_eq!(a.children, Some(Some(1)));
        assert!(parse_atom("@+x").is_err());
        assert!(parse_atom("tag:").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("stg_*", "stg_orders"));
        assert!(wildcard_match("*_orders", "stg_orders"));
        assert!(wildcard_match("s*g*s", "stg_orders"));
        assert!(!wildcard_match("stg_*", "orders"));
        assert!(!wildcard_match("a*a", "a"));
    }
}
