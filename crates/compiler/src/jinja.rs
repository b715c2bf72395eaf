//! Rendering with minijinja: dbt's Jinja context (`ref`, `source`, `var`,
//! `env_var`, `config`, `this`, `target`, `is_incremental`, `log`,
//! `return`, `exceptions`, `adapter`, project macros and `{% test %}`
//! blocks).
//!
//! A template is rendered once. `ref()` cannot know the final relation name
//! of its target yet (a `config(zone=...)` in the target's own file decides
//! it), so it prints a sentinel that [`resolve_sentinels`] replaces once all
//! configs are known; that also lets ephemeral models become CTEs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error as JinjaError, ErrorKind, State, UndefinedBehavior, Value};
use serde_json::Value as Json;

use crate::config::ConfigMap;
use crate::error::{CompileError, Location, RefKind, suggest};

/// Opens a `ref()` sentinel in rendered SQL.
pub const SENTINEL_OPEN: char = '\u{E000}';
/// Closes a `ref()` sentinel.
pub const SENTINEL_CLOSE: char = '\u{E001}';

/// Prefix given to project macros inside their templates; the public name
/// is a global that calls through, so `return()` works.
const MACRO_PREFIX: &str = "lakemacro__";

/// Fuel for one render: enough for any real model, small enough that a
/// runaway loop stops in well under a second.
const FUEL: u64 = 20_000_000;
const RECURSION_LIMIT: usize = 200;

/// What `ref()` may point at, known before any template renders.
#[derive(Debug, Clone)]
pub struct RefTarget {
    /// The zone from the project file and properties YAML (a `config()` in
    /// the target's file may still move it).
    pub zone: String,
}

/// Everything templates can see that does not change per node.
#[derive(Debug, Default)]
pub struct Registry {
    pub project_name: String,
    pub target_name: String,
    pub refs: HashMap<String, RefTarget>,
    /// `(source, table)` -> relation name.
    pub sources: HashMap<(String, String), String>,
    pub vars: IndexMap<String, Json>,
    pub docs: BTreeMap<String, String>,
    /// Macro name -> index of the macro file defining it.
    pub macros: BTreeMap<String, usize>,
    /// Macro file template names, in index order.
    pub macro_files: Vec<String>,
}

/// A macro file after the rewrite that makes its macros callable globally.
#[derive(Debug, Clone)]
pub struct MacroFile {
    pub path: String,
    pub source: String,
    pub names: Vec<String>,
}

/// Rewrites a macro file: `{% macro x %}` -> `{% macro lakemacro__x %}`,
/// `{% test t %}` -> `{% macro lakemacro__test_t %}`, and drops
/// `{% materialization %}` blocks (lake has its own), keeping line numbers.
pub fn prepare_macro_file(path: &str, text: &str) -> MacroFile {
    static RES: std::sync::OnceLock<[regex::Regex; 4]> = std::sync::OnceLock::new();
    let [materialization, macro_open, test_open, test_close] = RES.get_or_init(|| {
        [
            regex::Regex::new(
                r"(?s)\{%-?\s*materialization\b.*?\{%-?\s*endmaterialization\s*-?%\}",
            )
            .unwrap(),
            regex::Regex::new(r"\{%(-?)\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)").unwrap(),
            regex::Regex::new(r"\{%(-?)\s*test\s+([A-Za-z_][A-Za-z0-9_]*)").unwrap(),
            regex::Regex::new(r"\{%(-?)\s*endtest\s*(-?)%\}").unwrap(),
        ]
    });
    let text = materialization.replace_all(text, |c: &regex::Captures<'_>| {
        "\n".repeat(c[0].matches('\n').count())
    });
    let mut names = Vec::new();
    for c in macro_open.captures_iter(&text) {
        names.push(c[2].to_string());
    }
    for c in test_open.captures_iter(&text) {
        names.push(format!("test_{}", &c[2]));
    }
    let text = macro_open.replace_all(&text, format!("{{%$1 macro {MACRO_PREFIX}$2").as_str());
    let text = test_open.replace_all(&text, format!("{{%$1 macro {MACRO_PREFIX}test_$2").as_str());
    let text = test_close.replace_all(&text, "{%$1 endmacro $2%}");
    MacroFile {
        path: path.to_string(),
        source: text.into_owned(),
        names,
    }
}

/// What a render reports besides its output.
#[derive(Debug, Default)]
pub struct Capture {
    pub refs: Vec<String>,
    pub sources: Vec<[String; 2]>,
    pub config: ConfigMap,
    pub uses_is_incremental: bool,
    pub logs: Vec<String>,
    pub macros_called: BTreeSet<String>,
    /// One slot per macro call in progress, for `return()`.
    return_slots: Vec<Option<Value>>,
    /// The imported macro modules of this render.
    modules: Vec<Value>,
}

/// Errors raised by context functions; they travel inside a minijinja error
/// (which adds the line) and become structured [`CompileError`]s.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown {kind} '{name}'")]
    UnknownRef {
        kind: RefKind,
        name: String,
        suggestions: Vec<String>,
    },
    #[error("required var '{0}' is not set")]
    MissingVar(String),
    #[error("env var '{0}' is not set")]
    MissingEnvVar(String),
    #[error("{0}")]
    Raised(String),
}

fn call_error(e: CallError) -> JinjaError {
    JinjaError::new(ErrorKind::InvalidOperation, e.to_string()).with_source(e)
}

/// A relation as templates see it: renders as a sentinel (for `ref`) or a
/// final name (for `source` and `this`), with dbt's attributes.
#[derive(Debug)]
pub struct Relation {
    pub rendered: String,
    pub identifier: String,
    pub zone: String,
}

impl Relation {
    fn for_ref(name: &str, zone: &str) -> Relation {
        Relation {
            rendered: format!("{SENTINEL_OPEN}{name}{SENTINEL_CLOSE}"),
            identifier: name.to_string(),
            zone: zone.to_string(),
        }
    }

    pub fn resolved(zone: &str, identifier: &str) -> Relation {
        Relation {
            rendered: format!("{zone}.{identifier}"),
            identifier: identifier.to_string(),
            zone: zone.to_string(),
        }
    }
}

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "identifier" | "name" | "table" => Value::from(self.identifier.clone()),
            "schema" | "zone" => Value::from(self.zone.clone()),
            "database" => Value::from("lake"),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, JinjaError> {
        match method {
            // `this.include(database=False)` and friends: lake relations
            // have no database part to drop.
            "include" | "incorporate" | "quote" => Ok(Value::from_dyn_object(self.clone())),
            "render" => Ok(Value::from(self.rendered.clone())),
            _ => Err(JinjaError::new(
                ErrorKind::UnknownMethod,
                format!("relations have no method '{method}'"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

/// `config`: callable (`config(materialized='table')`) and readable
/// (`config.get('unique_key')`).
#[derive(Debug)]
struct ConfigFn;

impl Object for ConfigFn {
    fn call(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, JinjaError> {
        let mut new = ConfigMap::new();
        for arg in args {
            let json = serde_json::to_value(arg).map_err(|e| {
                JinjaError::new(ErrorKind::InvalidOperation, format!("config(): {e}"))
            })?;
            if let Json::Object(map) = json {
                new.extend(map);
            } else if !arg.is_undefined() && !arg.is_none() {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    "config() takes keyword arguments or one mapping",
                ));
            }
        }
        let capture = state.get_or_insert_extension(Capture::default());
        crate::config::merge(&mut capture.config, &new);
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JinjaError> {
        let (key, default) = match args {
            [key] => (key, None),
            [key, default] => (key, Some(default.clone())),
            _ => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("config.{method}() takes a key and an optional default"),
                ));
            }
        };
        let key = key.as_str().unwrap_or_default().replace('-', "_");
        let from_call = state
            .get_extension::<Capture>()
            .and_then(|c| c.config.get(&key).cloned());
        let value = from_call.map(|v| to_value(&v)).or_else(|| {
            state
                .lookup("__lake_config")
                .and_then(|c| c.get_attr(&key).ok())
                .filter(|v| !v.is_undefined() && !v.is_none())
        });
        match (method, value, default) {
            ("get", Some(v), _) | ("require", Some(v), _) => Ok(v),
            ("get", None, Some(d)) => Ok(d),
            ("get", None, None) => Ok(Value::from(())),
            ("require", None, _) => Err(call_error(CallError::Raised(format!(
                "config '{key}' is required but not set"
            )))),
            _ => Err(JinjaError::new(
                ErrorKind::UnknownMethod,
                format!("config has no method '{method}'"),
            )),
        }
    }
}

/// A project macro as a global: calls into the imported module and turns a
/// `return(value)` inside it into the call's result.
#[derive(Debug)]
struct MacroCaller {
    name: String,
    module: usize,
}

impl Object for MacroCaller {
    fn call(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, JinjaError> {
        let capture = state.get_or_insert_extension(Capture::default());
        let module = capture.modules.get(self.module).cloned().ok_or_else(|| {
            JinjaError::new(
                ErrorKind::InvalidOperation,
                format!("macro '{}' is not available here", self.name),
            )
        })?;
        capture.macros_called.insert(self.name.clone());
        capture.return_slots.push(None);
        let mac = module.get_attr(&format!("{MACRO_PREFIX}{}", self.name))?;
        let output = mac.call(state, args);
        let returned = state
            .get_extension_mut::<Capture>()
            .and_then(|c| c.return_slots.pop())
            .flatten();
        let output = output?;
        Ok(returned.unwrap_or(output))
    }
}

/// `exceptions.raise_compiler_error(msg)` and `exceptions.warn(msg)`.
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JinjaError> {
        let message = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "raise_compiler_error" | "raise_not_implemented" => {
                Err(call_error(CallError::Raised(message)))
            }
            "warn" => {
                state
                    .get_or_insert_extension(Capture::default())
                    .logs
                    .push(format!("warning: {message}"));
                Ok(Value::from(""))
            }
            _ => Err(JinjaError::new(
                ErrorKind::UnknownMethod,
                format!("exceptions has no method '{method}'"),
            )),
        }
    }
}

/// The parts of dbt's `adapter` that make sense without a database
/// connection: `quote` and `dispatch`.
#[derive(Debug)]
struct Adapter {
    registry: Arc<Registry>,
}

impl Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JinjaError> {
        match method {
            "quote" => Ok(Value::from(format!(
                "\"{}\"",
                args.first()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
                    .replace('"', "\"\"")
            ))),
            "dispatch" => {
                let name = args.first().and_then(|v| v.as_str()).unwrap_or_default();
                for candidate in [
                    format!("lake__{name}"),
                    format!("default__{name}"),
                    name.to_string(),
                ] {
                    if let Some(&module) = self.registry.macros.get(&candidate) {
                        return Ok(Value::from_object(MacroCaller {
                            name: candidate,
                            module,
                        }));
                    }
                }
                Err(call_error(CallError::Raised(format!(
                    "adapter.dispatch: no macro named 'lake__{name}', 'default__{name}' or '{name}'"
                ))))
            }
            _ => Err(JinjaError::new(
                ErrorKind::UnknownMethod,
                format!(
                    "lake's adapter has no method '{method}' (lake renders without a database connection)"
                ),
            )),
        }
    }
}

/// The Jinja environment of one project.
pub struct Renderer {
    env: Environment<'static>,
    registry: Arc<Registry>,
    prelude: String,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// Builds the environment; macro files that do not parse are errors.
    pub fn new(
        registry: Registry,
        macro_files: &[MacroFile],
    ) -> Result<Renderer, Vec<CompileError>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default syntax with kept newlines is valid"),
        );
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        let mut errors = Vec::new();
        for file in macro_files {
            if let Err(e) = env.add_template_owned(file.path.clone(), file.source.clone()) {
                errors.push(to_compile_error(&e, &file.path, &file.path));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let registry = Arc::new(registry);
        install_globals(&mut env, &registry);
        let mut prelude = String::new();
        if !registry.macro_files.is_empty() {
            let mut names = Vec::new();
            for (i, file) in registry.macro_files.iter().enumerate() {
                prelude.push_str(&format!("{{% import {file:?} as __lake_m{i} %}}"));
                names.push(format!("__lake_m{i}"));
            }
            prelude.push_str(&format!("{{{{ __lake_bind({}) }}}}", names.join(", ")));
        }
        Ok(Renderer {
            env,
            registry,
            prelude,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders `source` (the template of `file`) with `ctx`. The prelude that
    /// imports the project's macros shares the template's first line, so
    /// line numbers in errors are the file's own.
    pub fn render(
        &self,
        file: &str,
        source: &str,
        ctx: Value,
    ) -> Result<(String, Capture), JinjaError> {
        let full;
        let text = if self.prelude.is_empty() {
            source
        } else {
            full = format!("{}{source}", self.prelude);
            &full
        };
        let template = self.env.template_from_named_str(file, text)?;
        let mut captured = template.render_captured(ctx)?;
        let capture = captured
            .with_state_mut(|s| s.get_extension_mut::<Capture>().map(std::mem::take))
            .unwrap_or_default();
        Ok((captured.into_output(), capture))
    }

    /// Renders a description that may use `{{ doc('name') }}`.
    pub fn render_description(&self, file: &str, text: &str) -> Result<String, JinjaError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        self.env.render_named_str(file, text, Value::from(()))
    }
}

fn install_globals(env: &mut Environment<'static>, registry: &Arc<Registry>) {
    let r = registry.clone();
    env.add_function(
        "ref",
        move |state: &mut State<'_, '_>, args: Rest<Value>| {
            let positional: Vec<&Value> = args.iter().filter(|a| !a.is_kwargs()).collect();
            let name = match positional.as_slice() {
                [name] | [_, name] => name.as_str().map(str::to_string),
                _ => None,
            }
            .ok_or_else(|| {
                JinjaError::new(
                    ErrorKind::InvalidOperation,
                    "ref() takes a model name, or a package and a model name",
                )
            })?;
            let Some(target) = r.refs.get(&name) else {
                return Err(call_error(CallError::UnknownRef {
                    kind: RefKind::Model,
                    suggestions: suggest(&name, r.refs.keys().map(String::as_str)),
                    name,
                }));
            };
            let relation = Relation::for_ref(&name, &target.zone);
            state
                .get_or_insert_extension(Capture::default())
                .refs
                .push(name);
            Ok(Value::from_object(relation))
        },
    );

    let r = registry.clone();
    env.add_function(
        "source",
        move |state: &mut State<'_, '_>, source: String, table: String| {
            let Some(relation) = r.sources.get(&(source.clone(), table.clone())) else {
                let known: Vec<String> =
                    r.sources.keys().map(|(s, t)| format!("{s}.{t}")).collect();
                let wanted = format!("{source}.{table}");
                return Err(call_error(CallError::UnknownRef {
                    kind: RefKind::Source,
                    suggestions: suggest(&wanted, known.iter().map(String::as_str)),
                    name: wanted,
                }));
            };
            let (zone, identifier) = relation.split_once('.').unwrap_or(("raw", relation));
            state
                .get_or_insert_extension(Capture::default())
                .sources
                .push([source, table]);
            Ok(Value::from_object(Relation::resolved(zone, identifier)))
        },
    );

    let r = registry.clone();
    env.add_function("var", move |name: String, default: Option<Value>| {
        match r.vars.get(&name) {
            Some(v) => Ok(to_value(v)),
            None => default.ok_or_else(|| call_error(CallError::MissingVar(name))),
        }
    });

    env.add_function("env_var", |name: String, default: Option<Value>| {
        if name.starts_with("LAKE_SECRET_") || name.starts_with("DBT_ENV_SECRET_") {
            return Err(call_error(CallError::Raised(format!(
                "secret env var '{name}' cannot be used in a model: it would be written to compiled SQL and the manifest"
            ))));
        }
        match std::env::var(&name) {
            Ok(v) => Ok(Value::from(v)),
            Err(_) => default.ok_or_else(|| call_error(CallError::MissingEnvVar(name))),
        }
    });

    env.add_global("config", Value::from_object(ConfigFn));

    env.add_function("is_incremental", |state: &mut State<'_, '_>| {
        state
            .get_or_insert_extension(Capture::default())
            .uses_is_incremental = true;
        state
            .lookup("__lake_is_incremental")
            .is_some_and(|v| v.is_true())
    });

    env.add_function(
        "log",
        |state: &mut State<'_, '_>, msg: Value, _kwargs: Kwargs| {
            state
                .get_or_insert_extension(Capture::default())
                .logs
                .push(msg.to_string());
            Value::from("")
        },
    );

    env.add_function("return", |state: &mut State<'_, '_>, value: Value| {
        let capture = state.get_or_insert_extension(Capture::default());
        match capture.return_slots.last_mut() {
            // The first return() of a macro call wins, as it ends the
            // macro in dbt.
            Some(slot) if slot.is_none() => *slot = Some(value),
            Some(_) => {}
            None => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    "return() can only be used inside a macro",
                ));
            }
        }
        Ok(Value::from(""))
    });

    env.add_function(
        "__lake_bind",
        |state: &mut State<'_, '_>, modules: Rest<Value>| {
            state.get_or_insert_extension(Capture::default()).modules = modules.0;
            Value::from("")
        },
    );

    let r = registry.clone();
    env.add_function("doc", move |name: String| {
        r.docs
            .get(&name)
            .cloned()
            .ok_or_else(|| call_error(CallError::Raised(format!("unknown docs block '{name}'"))))
    });

    for (name, &module) in &registry.macros {
        env.add_global(
            name.clone(),
            Value::from_object(MacroCaller {
                name: name.clone(),
                module,
            }),
        );
    }
    env.add_global("exceptions", Value::from_object(Exceptions));
    env.add_global(
        "adapter",
        Value::from_object(Adapter {
            registry: registry.clone(),
        }),
    );
    env.add_global(
        "target",
        to_value(serde_json::json!({
            "name": registry.target_name,
            "type": "lake",
            "schema": "curated",
            "database": "lake",
            "profile_name": registry.project_name,
            "threads": 1,
        })),
    );
    env.add_global("project_name", Value::from(registry.project_name.clone()));
    env.add_global("execute", Value::from(true));
}

/// Turns a render error into a [`CompileError`] with the file and line.
/// `node` names what was being rendered, for errors inside macros.
pub fn to_compile_error(err: &JinjaError, file: &str, node: &str) -> CompileError {
    let location = Location::new(err.name().unwrap_or(file), err.line().unwrap_or(0));
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(call) = s.downcast_ref::<CallError>() {
            return match call {
                CallError::UnknownRef {
                    kind,
                    name,
                    suggestions,
                } => CompileError::UnknownRef {
                    location,
                    model: node.to_string(),
                    kind: *kind,
                    name: name.clone(),
                    suggestions: suggestions.clone(),
                },
                CallError::MissingVar(name) => CompileError::MissingVar {
                    location,
                    name: name.clone(),
                },
                CallError::MissingEnvVar(name) => CompileError::MissingEnvVar {
                    location,
                    name: name.clone(),
                },
                CallError::Raised(message) => CompileError::Raised {
                    location,
                    message: message.clone(),
                },
            };
        }
        source = s.source();
    }
    let mut message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if location.file != file {
        message.push_str(&format!(" (while rendering {node})"));
    }
    CompileError::Jinja { location, message }
}

/// Replaces `ref()` sentinels in `sql` using `resolve(name)`.
pub fn resolve_sentinels(sql: &str, mut resolve: impl FnMut(&str) -> String) -> String {
    if !sql.contains(SENTINEL_OPEN) {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(SENTINEL_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + SENTINEL_OPEN.len_utf8()..];
        match after.find(SENTINEL_CLOSE) {
            Some(end) => {
                out.push_str(&resolve(&after[..end]));
                rest = &after[end + SENTINEL_CLOSE.len_utf8()..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A template value from any serializable Rust value.
pub fn to_value<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}
