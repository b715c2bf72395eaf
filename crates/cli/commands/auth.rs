//! `lake auth hash-password` and `lake auth new-token`: credentials for the
//! auth file of `lake serve` (see `lake_auth`).

use std::io::{self, BufRead, IsTerminal};

use anyhow::anyhow;

use crate::{CmdResult, Failure};

/// Reads a password (a prompt on a terminal, else one line of stdin) and
/// prints its argon2 PHC hash, alone on stdout.
pub fn hash_password() -> CmdResult {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let password = if interactive {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            return Err(Failure::User(anyhow!(
                "the two passwords differ; nothing was hashed"
            )));
        }
        first
    } else {
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Err(Failure::User(anyhow!(
                "no password on stdin\n  hint: echo the password into `lake auth hash-password`, or run it in a terminal for a prompt"
            )));
        }
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    if password.is_empty() {
        return Err(Failure::User(anyhow!("the password is empty")));
    }
    let hash = lake_auth::hash_password(&password).map_err(|e| Failure::Internal(e.into()))?;
    println!("{hash}");
    if interactive {
        eprintln!(
            "hint: put it in the auth file as `password_hash: \"<the line above>\"` (quoted: it holds `$`)"
        );
    }
    Ok(())
}

/// Prints a new API token and its SHA-256, on labelled lines.
pub fn new_token() -> CmdResult {
    let (token, sha256) = lake_auth::new_api_token();
    println!("token: {token}");
    println!("token_sha256: {sha256}");
    eprintln!(
        "hint: put `token_sha256: \"{sha256}\"` in the auth file (never the token itself); \
         the client sends the token in the header `authorization: Bearer <token>`"
    );
    Ok(())
}
