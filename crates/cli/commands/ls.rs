//! `lake ls`

use std::io::Write;

use lake_compiler::ResourceType;

use crate::CmdResult;
use crate::args::{LsArgs, LsOutput};

pub fn run(args: LsArgs) -> CmdResult {
    let (compiled, selected) = super::compile_and_select(&args.project, &args.select)?;
    let manifest = &compiled.manifest;
    let types: Vec<ResourceType> = args
        .resource_type
        .iter()
        .map(|t| t.to_resource_type())
        .collect();
    let wanted = |t: ResourceType| types.is_empty() || types.contains(&t);
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
