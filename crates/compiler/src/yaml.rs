//! YAML parsing with errors that name the file and line.

use serde::de::DeserializeOwned;

use crate::error::{CompileError, Location};

/// Parses `text` (the contents of `file`) into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, CompileError> {
    serde_yaml::from_str(text).map_err(|e| CompileError::Yaml {
        location: Location::new(file, e.location().map(|l| l.line()).unwrap_or(0)),
        message: strip_location(&e.to_string()),
    })
}

/// serde_yaml appends " at line X column Y" to its messages; the location is
/// printed separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The 1-based line of the first `key: value` entry whose value is `value`
/// (also as a list item `- key: value`), or 0. Used to point errors about a
/// named YAML entry at its line, since serde does not keep spans.
pub fn find_entry_line(text: &str, key: &str, value: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && let Some(rest) = rest.trim_start().strip_prefix(':')
        {
            let v = rest.trim().trim_matches(|c| c == '"' || c == '\'');
            if v == value {
                return i + 1;
            }
        }
    }
    0
}

/// The 1-based line of the first `key:`, or 0.
pub fn find_key_line(text: &str, key: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with(':')
        {
            return i + 1;
        }
    }
    0
}

/// The 1-based line of the first occurrence of `needle` at or after line
/// `from` (1-based), or `from` when it does not occur.
pub fn find_text_line(text: &str, needle: &str, from: usize) -> usize {
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        if line.contains(needle) {
            return i + 1;
        }
    }
    from
}
