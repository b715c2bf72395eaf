//! Sources with an `external:` location: files landing in a folder (local or
//! object storage) that `lake ingest` loads into the source's raw Delta
//! table. This module validates the `external:` mapping of a source table
//! into an [`ExternalFiles`]; the engine does the loading.
//!
//! ```yaml
//! sources:
//!   - name: landing
//!     tables:
//!       - name: events
//!         loaded_at_field: ingested_at
//!         external:
//!           location: landing/events/      # relative to the project, or a URL
//!           format: csv                    # csv | json | parquet
//!           options: {delimiter: ";"}
//!           on_error: quarantine           # or fail (the default)
//! ```
//!
//! dbt-external-tables spells the format `file_format`; both are accepted.
//! An `external:` without `location` is left to the tools that wrote it and
//! ingests nothing.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{CompileError, Location, suggest};

/// The file formats lake ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    /// Newline-delimited JSON: one object per line.
    Json,
    Parquet,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
        }
    }

    /// The options each format takes, with what they mean.
    fn options(self) -> &'static [&'static str] {
        match self {
            FileFormat::Csv => &["delimiter", "header", "quote", "escape", "compression"],
            FileFormat::Json => &["compression"],
            FileFormat::Parquet => &[],
        }
    }
}

/// What happens to a file lake cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails naming the file (and line); files before it stay
    /// ingested.
    #[default]
    Fail,
    /// The file is moved under `<location>/_quarantine/` and reported; the
    /// other files are ingested.
    Quarantine,
}

/// A validated `external:` mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalFiles {
    /// As written: a path relative to the project directory, an absolute
    /// path, or a URL (`s3://bucket/landing/events/`).
    pub location: String,
    pub format: FileFormat,
    /// Format options, validated: strings, booleans and numbers.
    #[serde(default)]
    pub options: IndexMap<String, Json>,
    #[serde(default)]
    pub on_error: OnError,
}

impl ExternalFiles {
    /// A string option, if set.
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Json::as_str)
    }
}

const KEYS: &[&str] = &["location", "format", "file_format", "options", "on_error"];

/// Validates a source table's `external:` value. `Ok(None)` when there is
/// nothing for lake to ingest (no `location`).
pub fn parse_external(
    external: &Json,
    file: &str,
    line: usize,
) -> Result<Option<ExternalFiles>, CompileError> {
    let invalid = |message: String, hint: Option<String>| CompileError::InvalidProperty {
        location: Location::new(file, line),
        message,
        hint,
    };
    let Some(map) = external.as_object() else {
        return Err(invalid(
            "external must be a mapping".into(),
            Some("for example: external: {location: landing/events/, format: csv}".into()),
        ));
    };
    let Some(location) = map.get("location") else {
        return Ok(None);
    };
    let Some(location) = location.as_str().filter(|l| !l.trim().is_empty()) else {
        return Err(invalid(
            "external.location must be a non-empty string".into(),
            Some("a folder relative to the project, an absolute path or a URL such as s3://bucket/landing/events/".into()),
        ));
    };
    for key in map.keys() {
        if !KEYS.contains(&key.as_str()) {
            let hint = suggest(key, KEYS.iter().copied())
                .first()
                .map(|s| format!("did you mean '{s}'?"));
            return Err(invalid(
                format!("external has an unknown key '{key}'"),
                hint,
            ));
        }
    }
    let format_value = map.get("format").or_else(|| map.get("file_format"));
    let Some(format_name) = format_value.and_then(Json::as_str) else {
        return Err(invalid(
            "external needs a format: csv, json or parquet".into(),
            Some("add `format: csv` (or json, parquet) next to the location".into()),
        ));
    };
    let format = match format_name.to_ascii_lowercase().as_str() {
        "csv" => FileFormat::Csv,
        "json" | "ndjson" | "jsonl" => FileFormat::Json,
        "parquet" => FileFormat::Parquet,
        other => {
            let hint = suggest(other, ["csv", "json", "parquet"])
                .first()
                .map(|s| format!("did you mean '{s}'?"))
                .or_else(|| {
                    Some("lake ingests csv, json (one object per line) and parquet".into())
                });
            return Err(invalid(format!("unknown external format '{other}'"), hint));
        }
    };
    let mut options = IndexMap::new();
    match map.get("options") {
        None | Some(Json::Null) => {}
        Some(Json::Object(given)) => {
            for (key, value) in given {
                if !format.options().contains(&key.as_str()) {
                    let known = format.options();
                    let hint = suggest(key, known.iter().copied())
                        .first()
                        .map(|s| format!("did you mean '{s}'?"))
                        .unwrap_or_else(|| {
                            if known.is_empty() {
                                format!("{} takes no options", format.as_str())
                            } else {
                                format!("{} options: {}", format.as_str(), known.join(", "))
                            }
                        });
                    return Err(invalid(
                        format!(
                            "external.options: unknown {} option '{key}'",
                            format.as_str()
                        ),
                        Some(hint),
                    ));
                }
                check_option(key, value).map_err(|m| invalid(m, None))?;
                options.insert(key.clone(), value.clone());
            }
        }
        Some(_) => {
            return Err(invalid(
                "external.options must be a mapping".into(),
                Some("for example: options: {delimiter: \";\", header: true}".into()),
            ));
        }
    }
    let on_error = match map.get("on_error").map(|v| v.as_str()) {
        None => OnError::Fail,
        Some(Some("fail")) => OnError::Fail,
        Some(Some("quarantine")) => OnError::Quarantine,
        Some(other) => {
            return Err(invalid(
                format!(
                    "external.on_error must be 'fail' or 'quarantine', not {}",
                    other.map_or_else(|| "a non-string".to_string(), |s| format!("'{s}'"))
                ),
                None,
            ));
        }
    };
    Ok(Some(ExternalFiles {
        location: location.to_string(),
        format,
        options,
        on_error,
    }))
}

/// The value of one format option has the right shape.
fn check_option(key: &str, value: &Json) -> Result<(), String> {
    match key {
        "delimiter" | "quote" | "escape" => match value.as_str() {
            Some(s) if s.len() == 1 || s == "\\t" => Ok(()),
            _ => Err(format!(
                "external.options.{key} must be one (ASCII) character, such as \",\""
            )),
        },
        "header" => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "external.options.header must be true or false".to_string()),
        "compression" => match value.as_str() {
            Some("gzip" | "bzip2" | "xz" | "zstd" | "none" | "auto") => Ok(()),
            _ => Err(
                "external.options.compression must be one of auto (from the file extension), none, gzip, bzip2, xz, zstd"
                    .into(),
            ),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Json) -> Result<Option<ExternalFiles>, String> {
        parse_external(&value, "models/sources.yml", 7).map_err(|e| {
            let hint = match &e {
                CompileError::InvalidProperty { hint: Some(h), .. } => format!(" ({h})"),
                _ => String::new(),
            };
            format!("{e}{hint}")
        })
    }

    #[test]
    fn accepts_the_formats_and_options() {
        let e = parse(json!({"location": "landing/events/", "format": "CSV",
                             "options": {"delimiter": ";", "header": false}, "on_error": "quarantine"}))
        .unwrap()
        .unwrap();
        assert_eq!(e.format, FileFormat::Csv);
        assert_eq!(e.option_str("delimiter"), Some(";"));
        assert_eq!(e.on_error, OnError::Quarantine);
        let e = parse(json!({"location": "s3://b/x/", "file_format": "parquet"}))
            .unwrap()
            .unwrap();
        assert_eq!(e.format, FileFormat::Parquet);
        assert_eq!(e.on_error, OnError::Fail);
        assert_eq!(
            parse(json!({"location": "x", "format": "ndjson"}))
                .unwrap()
                .unwrap()
                .format,
            FileFormat::Json
        );
        // dbt-external-tables' own settings without a location: not ours.
        assert_eq!(parse(json!({"partitions": []})).unwrap(), None);
    }

    #[test]
    fn errors_name_the_file_line_and_a_hint() {
        let e = parse(json!({"location": "x", "format": "parquett"})).unwrap_err();
        assert!(
            e.contains("models/sources.yml:7") && e.contains("did you mean 'parquet'"),
            "{e}"
        );
        let e = parse(json!({"location": "x"})).unwrap_err();
        assert!(e.contains("needs a format"), "{e}");
        let e = parse(json!({"location": "x", "format": "csv", "options": {"delimeter": ";"}}))
            .unwrap_err();
        assert!(
            e.contains("'delimeter'") && e.contains("did you mean 'delimiter'"),
            "{e}"
        );
        let e = parse(json!({"location": "x", "format": "parquet", "options": {"header": true}}))
            .unwrap_err();
        assert!(e.contains("parquet takes no options"), "{e}");
        let e = parse(json!({"location": "x", "format": "csv", "on_eror": "fail"})).unwrap_err();
        assert!(e.contains("did you mean 'on_error'"), "{e}");
        let e = parse(json!({"location": "x", "format": "csv", "on_error": "skip"})).unwrap_err();
        assert!(e.contains("'fail' or 'quarantine'"), "{e}");
        let e = parse(json!({"location": "", "format": "csv"})).unwrap_err();
        assert!(e.contains("non-empty"), "{e}");
        let e = parse(json!({"location": "x", "format": "csv", "options": {"delimiter": ";;"}}))
            .unwrap_err();
        assert!(e.contains("one (ASCII) character"), "{e}");
    }
}
