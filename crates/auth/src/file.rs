//! The auth file: reading and validating it into principals with a credential.
//!
//! Walks a `serde_yaml::Value` by hand rather than deriving `Deserialize`, so
//! that every error names the principal and the field, and none quotes a value
//! that could be a secret (serde's "invalid type: string ..." would).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use argon2::{Algorithm, Params, PasswordHash, Version};
use serde_yaml::{Mapping, Value};
use sha2::{Digest as _, Sha256};

use crate::secret::API_TOKEN_PREFIX;
use crate::{AuthError, Role};

/// The fields a principal may have.
const FIELDS: [&str; 4] = ["name", "role", "password_hash", "token_sha256"];

/// One principal of the auth file.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) credential: Credential,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = match self.credential {
            Credential::Password(_) => "password_hash",
            Credential::Token(_) => "token_sha256",
        };
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("credential", &credential)
            .finish()
    }
}

/// A principal's one credential, as stored in the file.
#[derive(Clone)]
pub(crate) enum Credential {
    /// An argon2 PHC string, validated at load time.
    Password(String),
    /// The SHA-256 of an API token.
    Token([u8; 32]),
}

impl Credential {
    /// Identifies the credential without revealing it: sessions remember it so
    /// that a changed password or token hash revokes them.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        match self {
            Credential::Password(phc) => Sha256::new()
                .chain_update(b"password_hash:")
                .chain_update(phc.as_bytes())
                .finalize()
                .into(),
            Credential::Token(hash) => Sha256::new()
                .chain_update(b"token_sha256:")
                .chain_update(hash)
                .finalize()
                .into(),
        }
    }
}

/// Reads and validates the auth file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<Entry>, AuthError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_error(path, format!("cannot read the auth file: {e}")))?;
    parse(path, &text)
}

/// Validates the text of an auth file; `path` is only used in errors.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, AuthError> {
    let err = |message: String| file_error(path, message);
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        err(format!(
            "not valid YAML ({e}); expected a `principals:` list of \
             {{name, role, password_hash | token_sha256}}"
        ))
    })?;
    let top = match &doc {
        Value::Null => {
            return Err(err("the file is empty; expected a `principals:` list of \
                 {name, role, password_hash | token_sha256}"
                .to_owned()));
        }
        Value::Mapping(top) => top,
        _ => {
            return Err(err(
                "expected a mapping with one key, `principals:`, at the top \
                 of the file"
                    .to_owned(),
            ));
        }
    };
    for key in top.keys() {
        if key.as_str() != Some("principals") {
            return Err(err(format!(
                "unknown top-level key {}; the file has one key, `principals:`",
                describe_key(key)
            )));
        }
    }
    let items = match top.get("principals") {
        None => return Err(err("missing `principals:` list".to_owned())),
        // `principals:` with nothing under it: nobody may log in.
        Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            return Err(err(
                "`principals` must be a list (each item starting with `- name: ...`)".to_owned(),
            ));
        }
    };

    let mut entries = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let entry = parse_principal(index, item).map_err(err)?;
        if let Some(first) = seen.insert(entry.name.clone(), index) {
            return Err(err(format!(
                "principals[{index}] ({:?}), field `name`: duplicate name, already used by \
                 principals[{first}]; names must be unique",
                entry.name
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn file_error(path: &Path, message: String) -> AuthError {
    AuthError::File {
        path: path.to_path_buf(),
        message,
    }
}

/// A key for an error message: field names are not secrets, but cap the length.
fn describe_key(key: &Value) -> String {
    match key.as_str() {
        Some(key) if key.chars().count() <= 40 => format!("`{key}`"),
        Some(_) => "(a long key)".to_owned(),
        None => "(a key that is not a string)".to_owned(),
    }
}

/// Validates one item of `principals`; the error is the message without the file.
fn parse_principal(index: usize, item: &Value) -> Result<Entry, String> {
    let Some(map) = item.as_mapping() else {
        return Err(format!(
            "principals[{index}]: expected a mapping with `name`, `role` and one of \
             `password_hash` / `token_sha256`"
        ));
    };

    // The name first, so later messages can say which principal.
    let name = match map.get("name") {
        None => {
            return Err(format!(
                "principals[{index}] (no name), field `name`: missing; every principal \
                 needs a name (the user name of the Flight SQL handshake)"
            ));
        }
        Some(value) => {
            let name = value.as_str().ok_or_else(|| {
                format!(
                    "principals[{index}] (no name), field `name`: must be a string \
                     (quote it if it looks like a number or a boolean)"
                )
            })?;
            check_name(name).map_err(|problem| {
                format!("principals[{index}] ({name:?}), field `name`: {problem}")
            })?;
            name.to_owned()
        }
    };
    let at = |field: &str, message: String| {
        format!("principals[{index}] ({name:?}), field `{field}`: {message}")
    };

    check_keys(map).map_err(|(key, hint)| at(&key, hint))?;

    let role = match map.get("role") {
        None => {
            return Err(at(
                "role",
                "missing; one of reader, trainer, writer, admin".to_owned(),
            ));
        }
        Some(value) => value
            .as_str()
            .ok_or_else(|| {
                at(
                    "role",
                    "must be a string: one of reader, trainer, writer, admin".to_owned(),
                )
            })?
            .parse::<Role>()
            .map_err(|e| at("role", e.to_string()))?,
    };

    let credential = match (map.get("password_hash"), map.get("token_sha256")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "principals[{index}] ({name:?}), fields `password_hash` and `token_sha256`: \
                 both are set; a principal has exactly one credential, remove one of them"
            ));
        }
        (None, None) => {
            return Err(format!(
                "principals[{index}] ({name:?}), fields `password_hash` / `token_sha256`: \
                 neither is set; add a `password_hash` (from `lake auth hash-password`) or a \
                 `token_sha256` (from `lake auth new-token`)"
            ));
        }
        (Some(value), None) => {
            let phc = value.as_str().ok_or_else(|| {
                at(
                    "password_hash",
                    "must be a string (quote the hash printed by `lake auth hash-password`)"
                        .to_owned(),
                )
            })?;
            let phc = phc.trim();
            check_phc(phc).map_err(|problem| at("password_hash", problem))?;
            Credential::Password(phc.to_owned())
        }
        (None, Some(value)) => {
            let hex = value.as_str().ok_or_else(|| {
                at(
                    "token_sha256",
                    "must be a string (quote the hash printed by `lake auth new-token`)".to_owned(),
                )
            })?;
            Credential::Token(parse_sha256_hex(hex.trim()).map_err(|p| at("token_sha256", p))?)
        }
    };

    Ok(Entry {
        name,
        role,
        credential,
    })
}

/// A name must be usable as the user of `Basic user:password`.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.contains(':') {
        Err("contains `:`, which cannot appear in a Basic-auth user name")
    } else if name.chars().any(char::is_control) {
        Err("contains a control character")
    } else if name.trim() != name {
        Err("starts or ends with white space")
    } else {
        Ok(())
    }
}

/// Every key of a principal must be a known field; returns (field, hint).
fn check_keys(map: &Mapping) -> Result<(), (String, String)> {
    for key in map.keys() {
        let Some(key) = key.as_str() else {
            return Err((
                "?".to_owned(),
                "a key that is not a string; fields are name, role, password_hash, \
                 token_sha256"
                    .to_owned(),
            ));
        };
        if FIELDS.contains(&key) {
            continue;
        }
        let hint = match key {
            "password" | "pass" | "passwd" | "pwd" | "hash" | "password-hash" | "passwordhash" => {
                "unknown field; did you mean `password_hash`? Store the hash printed by \
                 `lake auth hash-password`, never the password itself"
            }
            "token" | "api_token" | "token_hash" | "sha256" | "token-sha256" | "token_sha" => {
                "unknown field; did you mean `token_sha256`? Store the hash printed by \
                 `lake auth new-token`, never the token itself"
            }
            "roles" | "rol" | "group" => "unknown field; did you mean `role`?",
            "user" | "username" | "user_name" | "principal" => {
                "unknown field; did you mean `name`?"
            }
            _ => "unknown field; fields are name, role, password_hash, token_sha256",
        };
        let shown = if key.chars().count() <= 40 {
            key.to_owned()
        } else {
            "(a long key)".to_owned()
        };
        return Err((shown, hint.to_owned()));
    }
    Ok(())
}

/// An argon2 PHC string whose parameters argon2 accepts.
fn check_phc(phc: &str) -> Result<(), String> {
    const HINT: &str = "paste the whole line printed by `lake auth hash-password`";
    let hash = PasswordHash::new(phc).map_err(|_| {
        format!(
            "not an argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`); {HINT}"
        )
    })?;
    let algorithm = hash.algorithm.as_str();
    if Algorithm::new(algorithm).is_err() {
        let shown = if algorithm.len() <= 20 {
            algorithm
        } else {
            "?"
        };
        return Err(format!(
            "a `{shown}` hash, not argon2 (argon2id, argon2i or argon2d); {HINT}"
        ));
    }
    if let Some(version) = hash.version {
        Version::try_from(version)
            .map_err(|_| format!("unsupported argon2 version {version}; {HINT}"))?;
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(format!("the hash has no salt or no output; {HINT}"));
    }
    Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters ({e}); {HINT}"))?;
    Ok(())
}

/// 64 hex characters (either case) into 32 bytes.
fn parse_sha256_hex(hex: &str) -> Result<[u8; 32], String> {
    const HINT: &str = "expected the 64 hex characters of a SHA-256 (the hash printed by \
                        `lake auth new-token`)";
    if hex.starts_with(API_TOKEN_PREFIX) {
        return Err(format!(
            "looks like an API token, not its hash; {HINT}, and give the token itself only \
             to the client"
        ));
    }
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("{} characters long; {HINT}", hex.chars().count()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = (hi * 16 + lo) as u8,
            _ => return Err(format!("not hexadecimal; {HINT}")),
        }
    }
    Ok(out)
}
