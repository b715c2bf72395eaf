//! The `lake` binary: command-line parsing, the commands, and what a person
//! sees. Exit codes: 0 success, 1 a problem with the project or the input,
//! 2 a failure inside lake. A closed stdout (`lake ls | head`) is not an
//! error.

mod args;
mod commands;
mod docs;
mod output;

use std::process::ExitCode;

// Compiling builds and drops many small strings on every thread; mimalloc
// is markedly faster than glibc's allocator at that (as datafusion-cli
// also finds).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;

use crate::args::{Cli, Command};

/// Why a command failed, deciding the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad project or input: exit 1.
    User(anyhow::Error),
    /// A bug or an environment failure: exit 2.
    Internal(anyhow::Error),
}

impl From<lake_compiler::CompileErrors> for Failure {
    fn from(e: lake_compiler::CompileErrors) -> Self {
        if e.is_user_error() {
            Failure::User(anyhow::Error::new(e))
        } else {
            Failure::Internal(anyhow::Error::new(e))
        }
    }
}

impl From<lake_compiler::CompileError> for Failure {
    fn from(e: lake_compiler::CompileError) -> Self {
        lake_compiler::CompileErrors::from(e).into()
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Internal(e.into())
    }
}

pub type CmdResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not failures; a bad flag is the user's
        // (exit 1), not lake's (clap would say 2).
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Compile(args) => commands::compile::run(args),
        Command::Ls(args) => commands::ls::run(args),
        Command::Build(args) => commands::build::run(args, commands::build::Kind::Build),
        Command::Run(args) => commands::build::run(args, commands::build::Kind::Run),
        Command::Seed(args) => commands::build::run(args, commands::build::Kind::Seed),
        Command::Ingest(args) => commands::build::run(args, commands::build::Kind::Ingest),
        Command::Test(args) => commands::build::run(args, commands::build::Kind::Test),
        Command::Retry(args) => commands::build::retry(args),
        Command::Source {
            command: args::SourceCommand::Freshness(args),
        } => commands::freshness::run(args),
        Command::Features {
            command: args::FeaturesCommand::Ls(args),
        } => commands::features::ls(args),
        Command::TrainingSet(args) => commands::training_set::run(args),
        Command::Sql(args) => commands::sql::run(args),
        Command::Show(args) => commands::sql::show(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Auth {
            command: args::AuthCommand::HashPassword,
        } => commands::auth::hash_password(),
        Command::Auth {
            command: args::AuthCommand::NewToken,
        } => commands::auth::new_token(),
        Command::Init(args) => commands::init::run(args),
        Command::GenerateDocs => docs::print_cli_markdown(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User(e)) | Err(Failure::Internal(e)) if output::is_broken_pipe(&e) => {
            ExitCode::SUCCESS
        }
        Err(Failure::User(e)) => {
            output::print_error(&e);
            ExitCode::from(1)
        }
        Err(Failure::Internal(e)) => {
            output::print_error(&e);
            eprintln!("  this looks like a bug in lake; please report it with the command you ran");
            ExitCode::from(2)
        }
    }
}
