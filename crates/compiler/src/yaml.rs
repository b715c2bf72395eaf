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

/// The lines of every `name: value` entry of a YAML file, built in one pass
/// so that pointing errors at entries stays linear in the file size.
#[derive(Debug, Default)]
pub struct NameLines {
    lines: std::collections::HashMap<String, Vec<usize>>,
}

impl NameLines {
    pub fn new(text: &str) -> NameLines {
        let mut lines: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            if let Some(rest) = t.strip_prefix("name")
                && let Some(rest) = rest.trim_start().strip_prefix(':')
            {
                let value = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                lines.entry(value.to_string()).or_default().push(i + 1);
            }
        }
        NameLines { lines }
    }

    /// The first line at or after `from` with `name: value`, else `from`.
    pub fn find(&self, value: &str, from: usize) -> usize {
        self.lines
            .get(value)
            .and_then(|ls| ls.iter().find(|l| **l >= from).copied())
            .unwrap_or(from)
    }
}
