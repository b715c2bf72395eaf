//! End-to-end tests of the `lake` binary (one test binary for the root
//! package, as the build-time budget asks).

mod build;
mod cli;
mod features;
mod ingest;
mod interop;
mod lakeread;
mod quality;
mod remote;
mod s3;
mod serve;
mod slt;
mod sql;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, which is also the example project.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `lake` with `args`, run in `dir`.
pub fn lake(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(args)
        .current_dir(dir)
        .env_remove("LAKE_PROJECT_DIR")
        .env_remove("LAKE_TARGET")
        .output()
        .expect("run lake")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of the example project in a temporary folder, so tests never
/// write into the repository.
pub fn example_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_tree(
        &repo_root().join("lake_project.yml"),
        &dir.path().join("lake_project.yml"),
    );
    for sub in ["models", "seeds", "macros", "data-tests", "landing"] {
        copy_tree(&repo_root().join(sub), &dir.path().join(sub));
    }
    dir
}

pub fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// A project written from `(path, contents)` pairs.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}
