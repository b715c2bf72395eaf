//! One module per command.

pub mod auth;
pub mod build;
pub mod compile;
pub mod features;
pub mod freshness;
pub mod init;
pub mod ls;
pub mod serve;
pub mod sql;
pub mod training_set;

use std::collections::BTreeSet;

use lake_compiler::{CompileOptions, Compiled};

use crate::Failure;
use crate::args::{ProjectArgs, SelectArgs};

/// Ends a command that holds a compiled project: the process exits next, so
/// freeing every node one by one (a large share of a big project's compile
/// time) is skipped.
pub fn release(compiled: Compiled) {
    std::mem::forget(compiled);
}

/// Compiles the project the flags point at.
pub fn compile_project(args: &ProjectArgs) -> Result<Compiled, Failure> {
    let options = CompileOptions {
        target: args.target.clone(),
        vars: args.vars.clone(),
    };
    let compiled = lake_compiler::compile(&args.project_dir, &options)?;
    crate::output::print_warnings(&compiled.warnings);
    if std::env::var_os("LAKE_TIMINGS").is_some() {
        for (phase, took) in &compiled.timings {
            eprintln!("timing: {phase:<20} {:>8.1} ms", took.as_secs_f64() * 1e3);
        }
    }
    Ok(compiled)
}

/// Compiles the project and resolves `--select`/`--exclude` on it.
pub fn compile_and_select(
    project: &ProjectArgs,
    select: &SelectArgs,
) -> Result<(Compiled, BTreeSet<String>), Failure> {
    let compiled = compile_project(project)?;
    let selected = lake_compiler::select(&compiled.manifest, &select.select, &select.exclude)?;
    Ok((compiled, selected))
}

/// The async runtime of the commands that touch the lake.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Internal(e.into()))
}

/// Opens the lake's session. A store that cannot be reached or read (a
/// missing bucket, refused credentials) is the user's to fix, not a bug:
/// exit 1 with the store's message.
pub async fn open_session(
    root: lake_storage::LakeRoot,
    options: &lake_engine::SessionOptions,
) -> Result<lake_engine::LakeSession, Failure> {
    let root_url = lake_storage::stores::shown(root.url());
    lake_engine::LakeSession::open(std::sync::Arc::new(root), options)
        .await
        .map_err(|e| {
            let error = anyhow::anyhow!("opening the lake at {root_url}: {e}");
            match e {
                lake_engine::EngineError::Storage(_) => Failure::User(error),
                _ => Failure::Internal(error),
            }
        })
}
