//! Writing `target/manifest.json` and `target/compiled/<project>/...sql`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{CompileError, Location};
use crate::manifest::{Manifest, ResourceType};

/// What [`write_artifacts`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Compiled SQL files of the selected nodes.
    pub compiled_files: usize,
    /// How many of them changed and were written (the rest were already
    /// up to date on disk).
    pub written_files: usize,
    pub manifest_bytes: u64,
}

/// Records the content hash of every compiled file, so a compile only
/// rewrites the files whose SQL changed (writing tens of thousands of files
/// costs far more than rendering them).
const STAMPS: &str = ".lake-stamps";

fn content_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable within one lake version, which the
    // stamp file records.
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn read_stamps(path: &Path) -> HashMap<String, u64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(concat!("lake ", env!("CARGO_PKG_VERSION"))) {
        return HashMap::new();
    }
    lines
        .filter_map(|l| {
            let (hash, file) = l.split_once('\t')?;
            Some((file.to_string(), u64::from_str_radix(hash, 16).ok()?))
        })
        .collect()
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
    let compiled_root = target.join("compiled");
    let stamps_path = compiled_root.join(STAMPS);
    let mut stamps = read_stamps(&stamps_path);
    // One directory listing per folder tells which files still exist.
    let mut existing: HashSet<std::path::PathBuf> = HashSet::new();
    for dir in dirs.iter().chain([&target, &compiled_root]) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        if !stamps.is_empty() {
            for entry in std::fs::read_dir(dir)
                .map_err(|e| io_err(dir, e))?
                .flatten()
            {
                existing.insert(entry.path());
            }
        }
    }
    let hashed: Vec<(&String, &str, u64)> = jobs
        .par_iter()
        .map(|(path, sql)| (path, *sql, content_hash(sql)))
        .collect();
    let stale: Vec<&(&String, &str, u64)> = hashed
        .iter()
        .filter(|(path, _, hash)| {
            stamps.get(path.as_str()) != Some(hash)
                || !existing.contains(&project_dir.join(path.as_str()))
        })
        .collect();
    stale.par_iter().try_for_each(|(path, sql, _)| {
        let full = project_dir.join(path.as_str());
        std::fs::write(&full, sql).map_err(|e| io_err(&full, e))
    })?;
    let written_files = stale.len();
    for (path, _, hash) in &hashed {
        stamps.insert((*path).clone(), *hash);
    }
    let mut stamp_text = String::from(concat!("lake ", env!("CARGO_PKG_VERSION"), "\n"));
    let mut entries: Vec<(&String, &u64)> = stamps.iter().collect();
    entries.sort();
    for (file, hash) in entries {
        stamp_text.push_str(&format!("{hash:016x}\t{file}\n"));
    }
    let stamps_tmp = compiled_root.join(format!(".lake-stamps.{}.tmp", std::process::id()));
    std::fs::write(&stamps_tmp, stamp_text).map_err(|e| io_err(&stamps_tmp, e))?;
    std::fs::rename(&stamps_tmp, &stamps_path).map_err(|e| io_err(&stamps_path, e))?;
    let manifest_path = target.join("manifest.json");
    // Per-process temporary names: two runs on one project must not write
    // into each other's half-written files.
    let tmp = target.join(format!("manifest.json.{}.tmp", std::process::id()));
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
        written_files,
        manifest_bytes,
    })
}
