//! The compiler's errors: structured variants a caller can match, each able to
//! say where it happened (file and line) and what to try next.

use std::fmt;
use std::path::PathBuf;

/// A place in a project file: the path relative to the project root and a
/// 1-based line (0 when the line is unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl Location {
    pub fn new(file: impl Into<String>, line: usize) -> Self {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.file, self.line)
        } else {
            write!(f, "{}", self.file)
        }
    }
}

/// One problem found in a project.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CompileError {
    #[error("no lake_project.yml or dbt_project.yml in {}", dir.display())]
    ProjectNotFound { dir: PathBuf },

    #[error("{location}: cannot read: {message}")]
    Io { location: Location, message: String },

    #[error("{location}: invalid YAML: {message}")]
    Yaml { location: Location, message: String },

    #[error("{location}: {message}")]
    InvalidProperty {
        location: Location,
        message: String,
        hint: Option<String>,
    },

    #[error("{location}: Jinja error: {message}")]
    Jinja { location: Location, message: String },

    #[error("{location}: required var '{name}' is not set")]
    MissingVar { location: Location, name: String },

    #[error("{location}: env var '{name}' is not set")]
    MissingEnvVar { location: Location, name: String },

    #[error("{location}: {model} refers to unknown {kind} '{name}'")]
    UnknownRef {
        location: Location,
        model: String,
        /// `model` for `ref()`, `source` for `source()`.
        kind: RefKind,
        name: String,
        suggestions: Vec<String>,
    },

    #[error("{location}: {model} refers to disabled node '{name}'")]
    DisabledRef {
        location: Location,
        model: String,
        name: String,
    },

    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },

    #[error("two {resource_type}s are named '{name}': {} and {}", files[0], files[1])]
    DuplicateName {
        resource_type: String,
        name: String,
        files: [String; 2],
    },

    #[error("{location}: invalid config: {message}")]
    InvalidConfig { location: Location, message: String },

    #[error("{location}: compiler error: {message}")]
    Raised { location: Location, message: String },

    #[error("invalid selector '{selector}': {message}")]
    InvalidSelector { selector: String, message: String },

    #[error("invalid --vars: {message}")]
    InvalidVars { message: String },

    #[error("unknown target '{name}'")]
    UnknownTarget {
        name: String,
        suggestions: Vec<String>,
    },

    #[error("internal compiler error: {0}")]
    Internal(String),
}

/// Which kind of name a `ref()`-like call pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Model,
    Source,
}

impl fmt::Display for RefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefKind::Model => "model",
            RefKind::Source => "source",
        })
    }
}

impl CompileError {
    /// Where the problem is, when it is in one place.
    pub fn location(&self) -> Option<&Location> {
        match self {
            CompileError::Io { location, .. }
            | CompileError::Yaml { location, .. }
            | CompileError::InvalidProperty { location, .. }
            | CompileError::Jinja { location, .. }
            | CompileError::MissingVar { location, .. }
            | CompileError::MissingEnvVar { location, .. }
            | CompileError::UnknownRef { location, .. }
            | CompileError::DisabledRef { location, .. }
            | CompileError::InvalidConfig { location, .. }
            | CompileError::Raised { location, .. } => Some(location),
            CompileError::ProjectNotFound { .. }
            | CompileError::Cycle { .. }
            | CompileError::DuplicateName { .. }
            | CompileError::InvalidSelector { .. }
            | CompileError::InvalidVars { .. }
            | CompileError::UnknownTarget { .. }
            | CompileError::Internal(_) => None,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            CompileError::ProjectNotFound { .. } => Some(
                "run inside a project folder, pass --project-dir, or create one with `lake init DIR`"
                    .into(),
            ),
            CompileError::Io { .. } => Some("check that the file exists and is readable".into()),
            CompileError::Yaml { .. } => {
                Some("YAML is indentation-sensitive: check the indentation and quoting near that line".into())
            }
            CompileError::InvalidProperty { hint, .. } => hint.clone(),
            CompileError::Jinja { message, .. } if message.contains("recursion limit") || message.contains("fuel") => {
                Some("a macro calls itself without end, or a loop runs too long: lake stops a template after a fixed amount of work".into())
            }
            CompileError::Jinja { .. } => {
                Some("check the Jinja tags near that line: every {% if %}, {% for %}, {% macro %} needs its end tag".into())
            }
            CompileError::MissingVar { name, .. } => Some(format!(
                "define it under `vars:` in the project file, pass --vars '{{{name}: ...}}', or give var() a default"
            )),
            CompileError::MissingEnvVar { name, .. } => Some(format!(
                "export {name}=... before running, or give env_var() a default"
            )),
            CompileError::UnknownRef {
                suggestions, kind, ..
            } => Some(match suggestions.as_slice() {
                [] => format!("no {kind} has a similar name; check the spelling or the model paths"),
                [one] => format!("did you mean '{one}'?"),
                many => format!("did you mean one of: {}?", many.join(", ")),
            }),
            CompileError::DisabledRef { name, .. } => Some(format!(
                "enable '{name}' (config enabled: true) or remove the reference"
            )),
            CompileError::Cycle { .. } => {
                Some("a model cannot depend on itself, directly or through others; remove one ref() of the cycle".into())
            }
            CompileError::DuplicateName { .. } => {
                Some("names are global in a project: rename one of the files".into())
            }
            CompileError::InvalidConfig { .. } => {
                Some("configs are listed in docs/project-format.md; check the spelling of the value".into())
            }
            CompileError::Raised { .. } => None,
            CompileError::InvalidSelector { .. } => Some(
                "selectors look like `name`, `+name`, `name+`, `2+name`, `@name`, `tag:x`, `path:dir`, `config.materialized:table`, `resource_type:model`; join with ',' to intersect".into(),
            ),
            CompileError::InvalidVars { .. } => {
                Some("pass a YAML or JSON mapping, for example --vars '{start_date: 2026-01-01}'".into())
            }
            CompileError::UnknownTarget { suggestions, .. } => Some(match suggestions.first() {
                Some(s) => format!("did you mean '{s}'? targets are declared under `targets:` in the project file"),
                None => "targets are declared under `targets:` in the project file".into(),
            }),
            CompileError::Internal(_) => Some("this is a bug in lake; please report it".into()),
        }
    }

    /// True for problems in the project (exit code 1); false for lake's own
    /// failures (exit code 2).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, CompileError::Internal(_))
    }
}

/// Every problem found in one run, so a user fixes them all at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl CompileErrors {
    pub fn errors(&self) -> &[CompileError] {
        &self.0
    }

    pub fn is_user_error(&self) -> bool {
        self.0.iter().all(CompileError::is_user_error)
    }
}

impl From<CompileError> for CompileErrors {
    fn from(e: CompileError) -> Self {
        CompileErrors(vec![e])
    }
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
            if let Some(hint) = e.hint() {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        if n > 1 {
            write!(f, "\n{n} errors")?;
        }
        Ok(())
    }
}

/// Names among `candidates` close to `name`, best first (the "did you mean"
/// list).
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let other = c.to_ascii_lowercase();
            let close_edit =
                strsim::damerau_levenshtein(&lower, &other) <= (lower.len() / 3).max(1);
            let score = strsim::jaro_winkler(&lower, &other);
            (if close_edit { score.max(0.8) } else { score }, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}
