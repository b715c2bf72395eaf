//! Integration tests of lake-compiler: snapshots over the fixture projects
//! in `tests/fixtures/` (good ones and broken ones), selection semantics,
//! config precedence and vars.

mod feature_views;
mod fixtures;
mod selection;
mod semantics;

use std::path::{Path, PathBuf};

use lake_compiler::{CompileErrors, CompileOptions, Compiled};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn compile_fixture(name: &str) -> Result<Compiled, CompileErrors> {
    lake_compiler::compile(&fixture(name), &CompileOptions::default())
}

pub fn compile_with(name: &str, options: CompileOptions) -> Result<Compiled, CompileErrors> {
    lake_compiler::compile(&fixture(name), &options)
}

/// A project written to a temporary folder from `(path, contents)` pairs.
pub fn temp_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}
