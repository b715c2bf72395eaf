//! Snapshot tests over `tests/fixtures/*`: a good project's snapshot is a
//! readable digest of its manifest; a broken one's is the error report a
//! user sees. `cargo insta review` updates them.

use std::fmt::Write;

use lake_compiler::{Manifest, ResourceType};

use super::{compile_fixture, fixture};

/// The parts of a manifest a reviewer should see change.
fn digest(manifest: &Manifest) -> String {
    let mut out = String::new();
    let mut ids: Vec<&String> = manifest.nodes.keys().collect();
    ids.sort();
    for id in ids {
        let n = &manifest.nodes[id];
        writeln!(out, "## {id}").unwrap();
        writeln!(
            out,
            "{} {} | materialized: {} | zone: {} | relation: {}",
            n.resource_type,
            n.original_file_path,
            n.config.materialized,
            n.config.zone,
            n.relation_name.as_deref().unwrap_or("-")
        )
        .unwrap();
        writeln!(out, "fqn: {}", n.fqn.join(".")).unwrap();
        if !n.depends_on.nodes.is_empty() {
            writeln!(out, "depends_on: {}", n.depends_on.nodes.join(", ")).unwrap();
        }
        if !n.depends_on.macros.is_empty() {
            writeln!(out, "macros: {}", n.depends_on.macros.join(", ")).unwrap();
        }
        if !n.tags.is_empty() {
            writeln!(out, "tags: {}", n.tags.join(", ")).unwrap();
        }
        let mut extra = serde_json::Map::new();
        for key in [
            "unique_key",
            "incremental_strategy",
            "partition_by",
            "alias",
            "severity",
            "where",
            "on_schema_change",
        ] {
            if let Some(v) = n.config.get(key)
                && !(key == "on_schema_change" && v == "ignore")
            {
                extra.insert(key.into(), v);
            }
        }
        if !extra.is_empty() {
            writeln!(out, "config: {}", serde_json::Value::Object(extra)).unwrap();
        }
        if n.uses_is_incremental {
            writeln!(out, "uses_is_incremental: true").unwrap();
        }
        if let Some(t) = &n.test_metadata {
            writeln!(
                out,
                "test: {} {} on {}",
                t.name,
                serde_json::Value::Object(t.kwargs.clone()),
                n.attached_node.as_deref().unwrap_or("-")
            )
            .unwrap();
        }
        if !n.description.is_empty() {
            writeln!(
                out,
                "description: {}",
                n.description.lines().next().unwrap_or("")
            )
            .unwrap();
        }
        if !n.columns.is_empty() {
            writeln!(
                out,
                "columns: {}",
                n.columns.keys().cloned().collect::<Vec<_>>().join(", ")
            )
            .unwrap();
        }
        if n.resource_type != ResourceType::Seed {
            writeln!(out, "```sql\n{}\n```", n.compiled_code.trim_end()).unwrap();
        }
        out.push('\n');
    }
    for (id, s) in &manifest.sources {
        writeln!(
            out,
            "## {id}\nsource {} | relation: {} | loaded_at_field: {:?}\n",
            s.original_file_path, s.relation_name, s.loaded_at_field
        )
        .unwrap();
    }
    feature_digest(manifest, &mut out);
    if !manifest.docs.is_empty() {
        writeln!(
            out,
            "docs: {}",
            manifest.docs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
        .unwrap();
    }
    out
}

/// Entities, feature views and feature services, one line each (nothing
/// when the project declares none).
fn feature_digest(manifest: &Manifest, out: &mut String) {
    for e in manifest.entities.values() {
        writeln!(
            out,
            "## entity {} ({}:{})\njoin_keys: {}",
            e.name,
            e.original_file_path,
            e.line,
            e.join_keys.join(", ")
        )
        .unwrap();
        if !e.description.is_empty() {
            writeln!(out, "description: {}", e.description).unwrap();
        }
        out.push('\n');
    }
    for v in manifest.feature_views.values() {
        writeln!(
            out,
            "## {} ({}:{})\nentities: {} | join_keys: {} | online: {}",
            v.unique_id,
            v.original_file_path,
            v.line,
            v.entities.join(", "),
            v.join_keys.join(", "),
            v.online
        )
        .unwrap();
        writeln!(
            out,
            "source: {} ({}) | timestamp: {} | created: {} | ttl_seconds: {}",
            v.source,
            v.source_relation,
            v.timestamp_field,
            v.created_timestamp_field.as_deref().unwrap_or("-"),
            v.ttl_seconds.map_or("-".to_string(), |t| t.to_string())
        )
        .unwrap();
        for f in &v.features {
            let line = format!(
                "feature: {} {} {}",
                f.name,
                f.dtype.as_deref().unwrap_or("-"),
                f.description
            );
            writeln!(out, "{}", line.trim_end()).unwrap();
        }
        if !v.tags.is_empty() {
            writeln!(out, "tags: {}", v.tags.join(", ")).unwrap();
        }
        if !v.description.is_empty() {
            writeln!(out, "description: {}", v.description).unwrap();
        }
        out.push('\n');
    }
    for s in manifest.feature_services.values() {
        let features: Vec<String> = s.features.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "## {} ({}:{})\nfeatures: {}",
            s.unique_id,
            s.original_file_path,
            s.line,
            features.join(", ")
        )
        .unwrap();
        if !s.tags.is_empty() {
            writeln!(out, "tags: {}", s.tags.join(", ")).unwrap();
        }
        if !s.description.is_empty() {
            writeln!(out, "description: {}", s.description).unwrap();
        }
        out.push('\n');
    }
}

fn snapshot_good(name: &str) {
    let compiled = compile_fixture(name).unwrap_or_else(|e| panic!("{name} should compile:\n{e}"));
    let mut text = digest(&compiled.manifest);
    for w in &compiled.warnings {
        writeln!(text, "warning: {w}").unwrap();
    }
    insta::assert_snapshot!(name, text);
}

fn snapshot_broken(name: &str) {
    let err = match compile_fixture(name) {
        Ok(_) => panic!("{name} should fail to compile"),
        Err(e) => e,
    };
    assert!(
        err.is_user_error(),
        "{name}: a broken project is a user error"
    );
    insta::assert_snapshot!(name, err.to_string());
}

#[test]
fn jaffle_shop() {
    snapshot_good("jaffle_shop");
}

#[test]
fn features() {
    snapshot_good("features");
}

#[test]
fn feature_store() {
    snapshot_good("feature_store");
}

#[test]
fn broken_projects() {
    let mut names: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("err_"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        snapshot_broken(&name);
    }
}

#[test]
fn every_error_names_a_file_or_the_cycle() {
    for name in [
        "err_unknown_ref",
        "err_jinja_syntax",
        "err_missing_var",
        "err_bad_yaml",
        "err_many",
        "err_contract",
        "err_feature_views",
        "err_feature_services",
    ] {
        let err = compile_fixture(name).err().unwrap();
        for e in err.errors() {
            let loc = e
                .location()
                .unwrap_or_else(|| panic!("{name}: {e} has no location"));
            assert!(loc.line > 0, "{name}: {e} has no line");
            assert!(
                fixture(name).join(&loc.file).is_file(),
                "{name}: {} is not a file",
                loc.file
            );
            assert!(e.hint().is_some(), "{name}: {e} has no hint");
        }
    }
}
