//! One module per command.

pub mod compile;
pub mod init;
pub mod ls;

use lake_compiler::{CompileOptions, Compiled};

use crate::Failure;
use crate::args::ProjectArgs;

/// Compiles the project the flags point at.
pub fn compile_project(args: &ProjectArgs) -> Result<Compiled, Failure> {
    let options = CompileOptions {
        target: args.target.clone(),
        vars: args.vars.clone(),
    };
    let compiled = lake_compiler::compile(&args.project_dir, &options)?;
    crate::output::print_warnings(&compiled.warnings);
    Ok(compiled)
}
