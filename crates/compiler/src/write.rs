//! Writing `target/manifest.json` and `target/compiled/<project>/...sql`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{CompileError, Location};
use crate::manifest::{Manifest, ResourceType};

/// What [`write_artifacts`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub compiled_files: usize,
    pub manifest_bytes: u64,
}

/// Writes the compiled SQL of the `selected` nodes (all when `None`) and the
/// manifest under `<project>/<target_path>/`. Sets each written node's
/// `compiled_path`.
pub fn write_artifacts(
    manifest: &mut Manifest,
    project_dir: &Path,
    target_path: &str,
    selected: Option<&BTreeSet<String>>,
) -> Result<WriteStats, CompileError> {
    let io_err = |path: &Path, e: std::io::Error| CompileError::Io {
        location: Location::new(path.display().to_string(), 0),
        message: e.to_string(),
    };
    let target = project_dir.join(target_path);
    let project = manifest.metadata.project_name.clone();
    let mut jobs: Vec<(String, &str)> = Vec::new();
    for node in manifest.nodes.values_mut() {
        if node.resource_type == ResourceType::Seed
            || selected.is_some_and(|s| !s.contains(&node.unique_id))
        {
            continue;
        }
        let rel = if node.test_metadata.is_some() {
            node.path.clone()
        } else {
            node.original_file_path.clone()
        };
        node.compiled_path = Some(format!("{target_path}/compiled/{project}/{rel}"));
    }
    for node in manifest.nodes.values() {
        if let Some(path) = &node.compiled_path
            && (selected.is_none_or(|s| s.contains(&node.unique_id)))
        {
            jobs.push((path.clone(), node.compiled_code.as_str()));
        }
    }
    let dirs: BTreeSet<std::path::PathBuf> = jobs
        .iter()
        .filter_map(|(p, _)| project_dir.join(p).parent().map(Path::to_path_buf))
        .collect();
    for dir in dirs.iter().chain(std::iter::once(&target)) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    jobs.par_iter().try_for_each(|(path, sql)| {
        let full = project_dir.join(path);
        std::fs::write(&full, sql).map_err(|e| io_err(&full, e))
    })?;
    let manifest_path = target.join("manifest.json");
    let tmp = target.join("manifest.json.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut writer, &*manifest)
        .map_err(|e| CompileError::Internal(format!("cannot serialize the manifest: {e}")))?;
    writer.flush().map_err(|e| io_err(&tmp, e))?;
    drop(writer);
    // Readers never see a half-written manifest.
    std::fs::rename(&tmp, &manifest_path).map_err(|e| io_err(&manifest_path, e))?;
    let manifest_bytes = std::fs::metadata(&manifest_path)
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(WriteStats {
        compiled_files: jobs.len(),
        manifest_bytes,
    })
}
