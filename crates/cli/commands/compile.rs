//! `lake compile`

use std::io::Write;
use std::time::Instant;

use lake_compiler::ResourceType;

use crate::CmdResult;
use crate::args::{CompileArgs, LogFormat};

pub fn run(args: CompileArgs) -> CmdResult {
    let start = Instant::now();
    let (mut compiled, selected) = super::compile_and_select(&args.project, &args.select)?;
    let narrowed = !args.select.select.is_empty() || !args.select.exclude.is_empty();
    let stats = lake_compiler::write_artifacts(
        &mut compiled.manifest,
        &args.project.project_dir,
        &compiled.project.target_path,
        narrowed.then_some(&selected),
    )?;
    let elapsed = start.elapsed();
    let count = |t: ResourceType| {
        compiled
            .manifest
            .nodes
            .values()
            .filter(|n| n.resource_type == t && selected.contains(&n.unique_id))
            .count()
    };
    let sources = compiled
        .manifest
        .sources
        .keys()
        .filter(|id| selected.contains(*id))
        .count();
    let (models, seeds, tests) = (
        count(ResourceType::Model),
        count(ResourceType::Seed),
        count(ResourceType::Test),
    );
    let manifest_path = format!("{}/manifest.json", compiled.project.target_path);
    let mut out = std::io::stdout().lock();
    match args.log_format {
        LogFormat::Json => {
            let line = serde_json::json!({
                "event": "compiled",
                "models": models,
                "seeds": seeds,
                "tests": tests,
                "sources": sources,
                "compiled_files": stats.compiled_files,
                "manifest": manifest_path,
                "elapsed_s": elapsed.as_secs_f64(),
            });
            writeln!(out, "{line}")?;
        }
        LogFormat::Text => {
            // One selected model: show its SQL, as `dbt compile -s x` does.
            let single: Vec<_> = compiled
                .manifest
                .nodes
                .values()
                .filter(|n| {
                    selected.contains(&n.unique_id) && n.resource_type != ResourceType::Test
                })
                .collect();
            if narrowed && single.len() == 1 && single[0].resource_type == ResourceType::Model {
                writeln!(
                    out,
                    "-- {}\n{}",
                    single[0].unique_id,
                    single[0].compiled_code.trim_end()
                )?;
            }
            writeln!(
                out,
                "Compiled {models} models, {seeds} seeds, {tests} tests, {sources} sources in {:.2}s -> {manifest_path}",
                elapsed.as_secs_f64()
            )?;
        }
    }
    super::release(compiled);
    Ok(())
}
