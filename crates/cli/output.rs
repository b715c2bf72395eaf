//! Printing to a person (or a pipe).

use std::io::{self, Write};

/// True when the error chain ends in a closed pipe (`lake ls | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error; compile errors already carry "error:" prefixes and hints.
pub fn print_error(e: &anyhow::Error) {
    let text = format!("{e:#}");
    let mut stderr = io::stderr().lock();
    let _ = if text.starts_with("error:") {
        writeln!(stderr, "{text}")
    } else {
        writeln!(stderr, "error: {text}")
    };
}

/// Non-fatal findings, to stderr.
pub fn print_warnings(warnings: &[String]) {
    let mut stderr = io::stderr().lock();
    for w in warnings {
        let _ = writeln!(stderr, "warning: {w}");
    }
}
