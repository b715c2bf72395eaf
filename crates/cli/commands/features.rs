//! `lake features ...`: the feature store declared in properties YAML
//! (entities, feature views, feature services).

use std::io::Write;

use lake_compiler::Manifest;

use crate::CmdResult;
use crate::args::{FeaturesLsArgs, FeaturesOutput};

/// `lake features ls`: entities, feature views and feature services, as
/// tables or as one JSON object.
pub fn ls(args: FeaturesLsArgs) -> CmdResult {
    let compiled = super::compile_project(&args.project)?;
    let manifest = &compiled.manifest;
    let text = match args.output {
        FeaturesOutput::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({
                "entities": manifest.entities.values().collect::<Vec<_>>(),
                "feature_views": manifest.feature_views.values().collect::<Vec<_>>(),
                "feature_services": manifest.feature_services.values().collect::<Vec<_>>(),
            }))
            .map_err(|e| crate::Failure::Internal(e.into()))?;
            text.push('\n');
            text
        }
        FeaturesOutput::Table => tables(manifest),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    super::release(compiled);
    Ok(())
}

/// The three lists as aligned tables, one after the other.
fn tables(manifest: &Manifest) -> String {
    if manifest.entities.is_empty()
        && manifest.feature_views.is_empty()
        && manifest.feature_services.is_empty()
    {
        return "No entities, feature views or feature services in this project.\n  \
                hint: declare them under `entities:`, `feature_views:` and `feature_services:` \
                in a properties YAML file; see docs/project-format.md\n"
            .to_string();
    }
    let mut out = String::new();
    let entities: Vec<Vec<String>> = manifest
        .entities
        .values()
        .map(|e| {
            vec![
                e.name.clone(),
                e.join_keys.join(", "),
                format!("{}:{}", e.original_file_path, e.line),
            ]
        })
        .collect();
    section(
        &mut out,
        "Entities",
        &["name", "join keys", "file"],
        &entities,
    );
    let views: Vec<Vec<String>> = manifest
        .feature_views
        .values()
        .map(|v| {
            let mut timestamp = v.timestamp_field.clone();
            if let Some(created) = &v.created_timestamp_field {
                timestamp.push_str(&format!(" ({created})"));
            }
            vec![
                v.name.clone(),
                v.entities.join(", "),
                v.source_relation.clone(),
                timestamp,
                v.ttl_seconds
                    .map_or_else(|| "-".to_string(), lake_compiler::format_ttl),
                if v.online { "yes" } else { "no" }.to_string(),
                v.features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    section(
        &mut out,
        "Feature views",
        &[
            "name",
            "entities",
            "source",
            "timestamp (created)",
            "ttl",
            "online",
            "features",
        ],
        &views,
    );
    let services: Vec<Vec<String>> = manifest
        .feature_services
        .values()
        .map(|s| {
            vec![
                s.name.clone(),
                s.features
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    section(
        &mut out,
        "Feature services",
        &["name", "features"],
        &services,
    );
    out
}

/// `Title (n)` and an aligned table, or `Title: none`.
fn section(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    if !out.is_empty() {
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str(&format!("{title}: none\n"));
        return;
    }
    out.push_str(&format!("{title} ({})\n", rows.len()));
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from("  ");
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
