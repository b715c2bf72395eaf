//! `lake ls`

use std::io::Write;

use lake_compiler::ResourceType;

use crate::CmdResult;
use crate::args::{LsArgs, LsOutput, ResourceTypeArg};

pub fn run(args: LsArgs) -> CmdResult {
    let (compiled, selected) = super::compile_and_select(&args.project, &args.select)?;
    let manifest = &compiled.manifest;
    let types: Vec<ResourceType> = args
        .resource_type
        .iter()
        .filter_map(|t| t.to_resource_type())
        .collect();
    let asked = |t: ResourceTypeArg| args.resource_type.contains(&t);
    let wanted = |t: ResourceType| args.resource_type.is_empty() || types.contains(&t);
    let mut lines: Vec<String> = Vec::new();
    for node in manifest.nodes.values() {
        if !selected.contains(&node.unique_id) || !wanted(node.resource_type) {
            continue;
        }
        let line = match args.output {
            LsOutput::Selector => node.fqn.join("."),
            LsOutput::Name => node.name.clone(),
            LsOutput::Path => node.original_file_path.clone(),
            LsOutput::Json => serde_json::json!({
                "unique_id": node.unique_id,
                "name": node.name,
                "resource_type": node.resource_type,
                "original_file_path": node.original_file_path,
                "relation_name": node.relation_name,
                "config": {"materialized": node.config.materialized, "zone": node.config.zone},
                "tags": node.tags,
                "depends_on": node.depends_on.nodes,
            })
            .to_string(),
        };
        lines.push(line);
    }
    for source in manifest.sources.values() {
        if !selected.contains(&source.unique_id) || !wanted(ResourceType::Source) {
            continue;
        }
        let line = match args.output {
            LsOutput::Selector => format!(
                "source:{}.{}.{}",
                source.package_name, source.source_name, source.name
            ),
            LsOutput::Name => format!("{}.{}", source.source_name, source.name),
            LsOutput::Path => source.original_file_path.clone(),
            LsOutput::Json => serde_json::json!({
                "unique_id": source.unique_id,
                "name": source.name,
                "source_name": source.source_name,
                "resource_type": "source",
                "original_file_path": source.original_file_path,
                "relation_name": source.relation_name,
                "tags": source.tags,
            })
            .to_string(),
        };
        lines.push(line);
    }
    // Feature views: listed by default, selected like nodes
    // (`feature_view:name`).
    if args.resource_type.is_empty() || asked(ResourceTypeArg::FeatureView) {
        for view in manifest.feature_views.values() {
            if !selected.contains(&view.unique_id) {
                continue;
            }
            lines.push(match args.output {
                LsOutput::Selector => format!("feature_view:{}", view.name),
                LsOutput::Name => view.name.clone(),
                LsOutput::Path => view.original_file_path.clone(),
                LsOutput::Json => serde_json::json!({
                    "unique_id": view.unique_id,
                    "name": view.name,
                    "resource_type": "feature_view",
                    "entities": view.entities,
                    "join_keys": view.join_keys,
                    "source": view.source,
                    "source_relation": view.source_relation,
                    "timestamp_field": view.timestamp_field,
                    "created_timestamp_field": view.created_timestamp_field,
                    "ttl_seconds": view.ttl_seconds,
                    "features": view.features,
                    "online": view.online,
                    "tags": view.tags,
                    "original_file_path": view.original_file_path,
                })
                .to_string(),
            });
        }
    }
    // Entities and feature services: only when asked for; not selectable.
    if asked(ResourceTypeArg::Entity) {
        for entity in manifest.entities.values() {
            lines.push(match args.output {
                LsOutput::Selector => format!("entity:{}", entity.name),
                LsOutput::Name => entity.name.clone(),
                LsOutput::Path => entity.original_file_path.clone(),
                LsOutput::Json => serde_json::json!({
                    "name": entity.name,
                    "resource_type": "entity",
                    "join_keys": entity.join_keys,
                    "description": entity.description,
                    "original_file_path": entity.original_file_path,
                })
                .to_string(),
            });
        }
    }
    if asked(ResourceTypeArg::FeatureService) {
        for service in manifest.feature_services.values() {
            lines.push(match args.output {
                LsOutput::Selector => format!("feature_service:{}", service.name),
                LsOutput::Name => service.name.clone(),
                LsOutput::Path => service.original_file_path.clone(),
                LsOutput::Json => serde_json::json!({
                    "unique_id": service.unique_id,
                    "name": service.name,
                    "resource_type": "feature_service",
                    "features": service.features.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "tags": service.tags,
                    "original_file_path": service.original_file_path,
                })
                .to_string(),
            });
        }
    }
    if args.output != LsOutput::Json {
        lines.sort();
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    super::release(compiled);
    Ok(())
}
