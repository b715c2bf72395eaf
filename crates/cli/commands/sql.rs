//! `lake sql` (the prompt and scripts) and `lake show` (a preview).

use std::borrow::Cow;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::anyhow;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::DataFrame;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lake_engine::sql::{is_blank, split_statements};
use lake_engine::{Executed, LakeSession, SessionOptions};
use lake_flight::{Connection, Login};
use lake_storage::{LakeRoot, ZONES};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::args::{LakeArgs, RowFormat, ShowArgs, SqlArgs};
use crate::{CmdResult, Failure};

/// Opens the lake the flags name (`lake sql`, `lake serve`).
pub fn open_root(args: &LakeArgs) -> Result<LakeRoot, Failure> {
    match lake_compiler::ProjectFile::load(&args.project_dir) {
        Ok(project) => {
            let target = project.resolve_target(args.target.as_deref())?;
            super::build::root_of_project(
                &project,
                &target,
                args.lake_root.as_deref(),
                &args.project_dir,
            )
        }
        Err(lake_compiler::CompileError::ProjectNotFound { .. }) => {
            let root = args.lake_root.clone().unwrap_or_else(|| ".lake".into());
            let cwd = std::env::current_dir()?;
            if args.lake_root.is_none() && !cwd.join(".lake").is_dir() {
                return Err(Failure::User(anyhow!(
                    "no project in {} and no lake to open\n  hint: run inside a project, or pass --project-dir DIR or --lake-root URL",
                    args.project_dir.display()
                )));
            }
            LakeRoot::open(&root, &cwd, Default::default())
                .map_err(|e| Failure::User(anyhow!("{e}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn session_options(args: &LakeArgs) -> Result<SessionOptions, Failure> {
    Ok(SessionOptions {
        memory_limit: super::build::memory_limit(args.memory_limit.as_deref())?,
        url_tables: true,
        ..SessionOptions::default()
    })
}

/// Where rows go, and how.
struct Printer {
    format: RowFormat,
    max_rows: usize,
}

impl Printer {
    /// Streams `rows` to stdout; the number of rows.
    async fn print(&self, rows: Rows, cancel: &mut Signal) -> Result<usize, StatementError> {
        let Rows {
            schema,
            batches: mut stream,
        } = rows;
        let run = async {
            let mut out = io::stdout().lock();
            let mut rows = 0usize;
            let mut kept: Vec<RecordBatch> = Vec::new();
            let mut kept_rows = 0usize;
            let mut first = true;
            if self.format == RowFormat::Json {
                out.write_all(b"[")?;
            }
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(StatementError::Failed)?;
                rows += batch.num_rows();
                match self.format {
                    RowFormat::Table => {
                        let room = if self.max_rows == 0 {
                            usize::MAX
                        } else {
                            self.max_rows.saturating_sub(kept_rows)
                        };
                        if room > 0 {
                            let take = batch.num_rows().min(room);
                            kept_rows += take;
                            kept.push(batch.slice(0, take));
                        }
                    }
                    RowFormat::Csv => {
                        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                            .with_header(first)
                            .build(&mut out);
                        writer.write(&batch).map_err(arrow_error)?;
                    }
                    RowFormat::Ndjson => {
                        let mut writer =
                            datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
                        writer.write(&batch).map_err(arrow_error)?;
                        writer.finish().map_err(arrow_error)?;
                    }
                    RowFormat::Json => {
                        let mut buffer = Vec::new();
                        {
                            let mut writer =
                                datafusion::arrow::json::LineDelimitedWriter::new(&mut buffer);
                            writer.write(&batch).map_err(arrow_error)?;
                            writer.finish().map_err(arrow_error)?;
                        }
                        for line in buffer.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            if !first {
                                out.write_all(b",")?;
                            }
                            out.write_all(b"\n")?;
                            out.write_all(line)?;
                            first = false;
                        }
                    }
                }
                if self.format != RowFormat::Json {
                    first = false;
                }
            }
            match self.format {
                RowFormat::Table => {
                    write_table(&mut out, &schema, &kept)?;
                    let shown = kept_rows;
                    if shown < rows {
                        writeln!(
                            out,
                            "({rows} rows, first {shown} shown; --max-rows or \\format csv for all)"
                        )?;
                    } else {
                        writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
                    }
                }
                RowFormat::Csv if rows == 0 => {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    writeln!(out, "{}", names.join(","))?;
                }
                RowFormat::Json => out.write_all(if rows == 0 { b"]\n" } else { b"\n]\n" })?,
                _ => {}
            }
            out.flush()?;
            Ok(rows)
        };
        tokio::select! {
            result = run => result,
            _ = cancel.recv() => Err(StatementError::Cancelled),
        }
    }
}

/// A result on its way: the schema, then batches (failures as the message
/// to print).
struct Rows {
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch, String>>,
}

impl Rows {
    /// Starts running `df`.
    async fn of(df: DataFrame) -> Result<Rows, StatementError> {
        let stream = df
            .execute_stream()
            .await
            .map_err(|e| StatementError::Failed(e.strip_backtrace()))?;
        Ok(Rows {
            schema: stream.schema(),
            batches: stream.map_err(|e| e.strip_backtrace()).boxed(),
        })
    }

    fn batch(batch: RecordBatch) -> Rows {
        Rows {
            schema: batch.schema(),
            batches: futures::stream::iter([Ok(batch)]).boxed(),
        }
    }
}

impl From<lake_flight::RemoteRows> for Rows {
    fn from(rows: lake_flight::RemoteRows) -> Rows {
        Rows {
            schema: rows.schema,
            batches: rows.batches.map_err(|e| e.to_string()).boxed(),
        }
    }
}

/// What a statement gave.
enum Outcome {
    Rows(Rows),
    Done(String),
    /// DDL (CREATE EXTERNAL TABLE, SET, ...) has run; nothing to show.
    Nothing,
}

/// Where statements run.
enum Backend {
    /// The lake itself, in this process.
    Local(LakeSession),
    /// A `lake serve` server (`--connect`).
    Remote(Connection),
}

impl Backend {
    async fn execute(&mut self, sql: &str) -> Result<Outcome, StatementError> {
        match self {
            Backend::Local(session) => match session.execute_sql(sql).await {
                Ok(Executed::Rows(df)) if df.schema().fields().is_empty() => Ok(Outcome::Nothing),
                Ok(Executed::Rows(df)) => Rows::of(df).await.map(Outcome::Rows),
                Ok(Executed::Done(message)) => Ok(Outcome::Done(message)),
                Err(e) => Err(StatementError::Failed(e.to_string())),
            },
            Backend::Remote(connection) => connection
                .query(sql.trim().trim_end_matches(';'))
                .await
                .map(|rows| Outcome::Rows(rows.into()))
                .map_err(|e| StatementError::Failed(e.to_string())),
        }
    }

    /// `(zone, name, "table" | "view")` of every readable relation.
    async fn relations(&mut self) -> Result<Vec<(String, String, &'static str)>, String> {
        let kind = |view: bool| if view { "view" } else { "table" };
        match self {
            Backend::Local(session) => {
                let root = session.root();
                let views = root.views();
                let mut rows = Vec::new();
                for zone in ZONES {
                    let tables = root.list_tables(zone).await.map_err(|e| e.to_string())?;
                    let view_names = views.list(zone).await.map_err(|e| e.to_string())?;
                    // A view hides a Delta table of the same name.
                    let kinds: std::collections::BTreeMap<String, bool> = tables
                        .into_iter()
                        .map(|t| (t, false))
                        .chain(view_names.into_iter().map(|v| (v, true)))
                        .collect();
                    rows.extend(
                        kinds
                            .into_iter()
                            .map(|(name, view)| (zone.to_string(), name, kind(view))),
                    );
                }
                Ok(rows)
            }
            Backend::Remote(connection) => Ok(connection
                .tables(None, None, false)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| (t.zone, t.name, kind(t.kind.eq_ignore_ascii_case("view"))))
                .collect()),
        }
    }
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> StatementError {
    match e {
        datafusion::arrow::error::ArrowError::IoError(_, io) => StatementError::Io(io),
        other => StatementError::Failed(other.to_string()),
    }
}

/// Aligned columns with a header and a rule, NULL shown as NULL.
fn write_table(
    out: &mut impl Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> io::Result<()> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect::<Vec<_>>()
            .join("|")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&names))?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    )?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

#[derive(Debug)]
enum StatementError {
    Failed(String),
    Cancelled,
    Io(io::Error),
}

impl std::fmt::Display for StatementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementError::Failed(message) => f.write_str(message),
            StatementError::Cancelled => f.write_str("cancelled"),
            StatementError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for StatementError {
    fn from(e: io::Error) -> Self {
        StatementError::Io(e)
    }
}

/// Table and column names for completion, refreshed after statements.
#[derive(Debug, Default)]
struct Names {
    words: Vec<String>,
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group by",
    "order by",
    "limit",
    "join",
    "left join",
    "on",
    "with",
    "as",
    "and",
    "or",
    "not",
    "count(*)",
    "distinct",
    "having",
    "insert into",
    "delete from",
    "create table",
    "describe history",
    "version as of",
    "timestamp as of",
];

struct SqlHelper {
    names: Arc<RwLock<Names>>,
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let word = before[start..].to_ascii_lowercase();
        if word.is_empty() {
            return Ok((pos, vec![]));
        }
        let names = self.names.read().map_err(|_| ReadlineError::Interrupted)?;
        let mut found: Vec<Pair> = names
            .words
            .iter()
            .map(String::as_str)
            .chain(KEYWORDS.iter().copied())
            .filter(|w| w.to_ascii_lowercase().starts_with(&word) && w.len() > word.len())
            .map(|w| Pair {
                display: w.to_string(),
                replacement: w.to_string(),
            })
            .collect();
        found.dedup_by(|a, b| a.replacement == b.replacement);
        Ok((start, found))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for SqlHelper {
    /// Enter inserts a new line until the statement ends with `;` (or is
    /// a backslash command).
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.trim_start().starts_with('\\') || is_blank(input) {
            return Ok(ValidationResult::Valid(None));
        }
        let (_, rest) = split_statements(input);
        Ok(if is_blank(&rest) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for SqlHelper {}

/// One `lake sql` session.
struct Shell {
    backend: Backend,
    printer: Printer,
    timing: bool,
    interrupt: Signal,
    names: Arc<RwLock<Names>>,
    failed: bool,
}

impl Shell {
    /// Runs the statements and backslash commands of `text`.
    async fn run_text(&mut self, text: &str) -> Result<bool, Failure> {
        let mut buffer = String::new();
        for line in text.lines() {
            if is_blank(&buffer) && line.trim_start().starts_with('\\') {
                buffer.clear();
                if !self.meta(line.trim()).await? {
                    return Ok(false);
                }
                continue;
            }
            buffer.push_str(line);
            buffer.push('\n');
            let (statements, rest) = split_statements(&buffer);
            for statement in statements {
                self.statement(&statement).await?;
            }
            buffer = rest;
            // `select 1; \timing off`: a command after the last statement.
            if buffer.trim_start().starts_with('\\') {
                let command = buffer.trim().to_string();
                buffer.clear();
                if !self.meta(&command).await? {
                    return Ok(false);
                }
            }
        }
        if !is_blank(&buffer) {
            self.statement(buffer.trim()).await?;
        }
        Ok(true)
    }

    async fn statement(&mut self, sql: &str) -> Result<(), Failure> {
        let started = Instant::now();
        let executed = tokio::select! {
            result = self.backend.execute(sql) => result,
            _ = self.interrupt.recv() => Err(StatementError::Cancelled),
        };
        let outcome = match executed {
            Ok(Outcome::Nothing) => Ok(()),
            Ok(Outcome::Rows(rows)) => self
                .printer
                .print(rows, &mut self.interrupt)
                .await
                .map(|_| ()),
            Ok(Outcome::Done(message)) => {
                let mut out = io::stdout().lock();
                writeln!(out, "{message}")
                    .and_then(|_| out.flush())
                    .map_err(StatementError::Io)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {}
            Err(StatementError::Io(e)) => return Err(Failure::Internal(e.into())),
            Err(StatementError::Cancelled) => {
                self.failed = true;
                eprintln!("cancelled");
            }
            Err(StatementError::Failed(message)) => {
                self.failed = true;
                eprintln!("error: {message}");
            }
        }
        if self.timing {
            eprintln!("time: {:.3} s", started.elapsed().as_secs_f64());
        }
        if starts_with_word(sql, &["create", "drop", "insert", "delete", "copy"]) {
            self.refresh_names().await;
        }
        Ok(())
    }

    /// A backslash command; false for `\q`.
    async fn meta(&mut self, line: &str) -> Result<bool, Failure> {
        let mut parts = line.split_whitespace();
        let command = parts.next().unwrap_or_default();
        let argument = parts.next();
        match (command, argument) {
            ("\\q" | "\\quit", _) => return Ok(false),
            ("\\d", None) => self.list(true).await?,
            ("\\dt", None) => self.list(false).await?,
            ("\\d" | "\\dt", Some(name)) => self.describe(name).await?,
            ("\\timing", arg) => {
                self.timing = match arg {
                    Some("on") => true,
                    Some("off") => false,
                    _ => !self.timing,
                };
                eprintln!("timing is {}", if self.timing { "on" } else { "off" });
            }
            ("\\format", Some(name)) => {
                match <RowFormat as clap::ValueEnum>::from_str(name, true) {
                    Ok(f) => self.printer.format = f,
                    Err(_) => {
                        self.failed = true;
                        eprintln!("error: \\format takes table, csv, json or ndjson");
                    }
                }
            }
            ("\\echo", _) => {
                let text = line.trim_start_matches("\\echo").trim();
                let mut out = io::stdout().lock();
                writeln!(out, "{text}")?;
                out.flush()?;
            }
            ("\\?" | "\\help", _) => println!("{HELP}"),
            _ => {
                self.failed = true;
                eprintln!("error: unknown command {line}\n  hint: \\? lists the commands");
            }
        }
        Ok(true)
    }

    async fn list(&mut self, views_too: bool) -> Result<(), Failure> {
        let mut rows = match self.backend.relations().await {
            Ok(rows) => rows,
            Err(e) => {
                self.failed = true;
                eprintln!("error: {e}");
                return Ok(());
            }
        };
        if !views_too {
            rows.retain(|(_, _, kind)| *kind == "table");
        }
        if rows.is_empty() {
            println!("(no tables yet: `lake build` writes them)");
            return Ok(());
        }
        let zones: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.2).collect();
        let listed = RecordBatch::try_from_iter([
            ("zone", Arc::new(StringArray::from(zones)) as ArrayRef),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
            ("kind", Arc::new(StringArray::from(kinds)) as ArrayRef),
        ])
        .map_err(|e| Failure::Internal(e.into()))?;
        self.print_listing(Rows::batch(listed)).await
    }

    /// Prints rows that are not a statement's (`\d`): a failure is the
    /// session's, not lake's.
    async fn print_listing(&mut self, rows: Rows) -> Result<(), Failure> {
        let printer = Printer {
            format: self.printer.format,
            max_rows: 0,
        };
        match printer.print(rows, &mut self.interrupt).await {
            Ok(_) => Ok(()),
            Err(StatementError::Io(e)) => Err(Failure::Internal(e.into())),
            Err(other) => {
                self.failed = true;
                eprintln!("error: {other}");
                Ok(())
            }
        }
    }

    async fn describe(&mut self, name: &str) -> Result<(), Failure> {
        let described = match &mut self.backend {
            Backend::Local(session) => match session.describe_relation(name).await {
                Ok((columns, facts)) => Rows::of(columns).await.map(|rows| (rows, facts)),
                Err(e) => Err(StatementError::Failed(e.to_string())),
            },
            Backend::Remote(connection) => describe_remote(connection, name).await,
        };
        let (columns, facts) = match described {
            Ok(found) => found,
            Err(e) => {
                self.failed = true;
                eprintln!("error: {e}");
                return Ok(());
            }
        };
        let table = Printer {
            format: RowFormat::Table,
            max_rows: 0,
        };
        if let Err(StatementError::Io(e)) = table.print(columns, &mut self.interrupt).await {
            return Err(Failure::Internal(e.into()));
        }
        let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = io::stdout().lock();
        for (key, value) in facts {
            writeln!(out, "{key:>width$}: {value}")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Table and column names for completion (up to 200 tables).
    async fn refresh_names(&mut self) {
        let mut words = Vec::new();
        match &mut self.backend {
            Backend::Local(session) => {
                let catalog = session.catalog();
                if catalog.refresh().await.is_err() {
                    return;
                }
                for (zone, name) in catalog.names().into_iter().take(200) {
                    if let Ok(df) = session.context().table(format!("{zone}.{name}")).await {
                        words.extend(df.schema().fields().iter().map(|f| f.name().clone()));
                    }
                    words.push(format!("{zone}.{name}"));
                }
            }
            Backend::Remote(connection) => {
                let Ok(tables) = connection.tables(None, None, true).await else {
                    return;
                };
                for table in tables.into_iter().take(200) {
                    if let Some(schema) = &table.schema {
                        words.extend(schema.fields().iter().map(|f| f.name().clone()));
                    }
                    words.push(format!("{}.{}", table.zone, table.name));
                }
            }
        }
        words.extend(ZONES.iter().map(|z| z.to_string()));
        words.sort();
        words.dedup();
        if let Ok(mut names) = self.names.write() {
            names.words = words;
        }
    }
}

/// `\d name` against a server: the columns it lists for `zone.name` (or
/// `name` in any zone it lets the caller read).
async fn describe_remote(
    connection: &mut Connection,
    name: &str,
) -> Result<(Rows, Vec<(String, String)>), StatementError> {
    let (zone, table) = match name.split_once('.') {
        Some((zone, table)) => (Some(zone), table),
        None => (None, name),
    };
    let found = connection
        .tables(zone, Some(table), true)
        .await
        .map_err(|e| StatementError::Failed(e.to_string()))?;
    let Some(found) = found.into_iter().next() else {
        return Err(StatementError::Failed(format!(
            "no table or view {name} on {} that you may read\n  hint: \\d lists them",
            connection.url()
        )));
    };
    let fields: Vec<_> = found
        .schema
        .as_ref()
        .map(|s| s.fields().iter().cloned().collect())
        .unwrap_or_default();
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let types: Vec<String> = fields.iter().map(|f| f.data_type().to_string()).collect();
    let nullable: Vec<&str> = fields
        .iter()
        .map(|f| if f.is_nullable() { "YES" } else { "NO" })
        .collect();
    let columns = RecordBatch::try_from_iter([
        (
            "column_name",
            Arc::new(StringArray::from(names)) as ArrayRef,
        ),
        ("data_type", Arc::new(StringArray::from(types)) as ArrayRef),
        (
            "is_nullable",
            Arc::new(StringArray::from(nullable)) as ArrayRef,
        ),
    ])
    .map_err(|e| StatementError::Failed(e.to_string()))?;
    let facts = vec![
        (
            "relation".to_owned(),
            format!("{}.{}", found.zone, found.name),
        ),
        ("kind".to_owned(), found.kind.to_ascii_lowercase()),
    ];
    Ok((Rows::batch(columns), facts))
}

const HELP: &str = "\
statements end with ;   (DataFusion SQL over every zone; time travel: FROM t VERSION AS OF 3)
\\d               tables and views by zone
\\d NAME          columns and Delta facts of zone.name
\\dt              tables only
\\timing [on|off] elapsed time per statement (on by default)
\\format FORMAT   table, csv, json or ndjson
\\echo TEXT       print TEXT
\\q               quit (or Ctrl-D); Ctrl-C cancels the running statement";

fn starts_with_word(sql: &str, words: &[&str]) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    words.contains(&first.as_str())
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("LAKE_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".lake_history")))
}

/// How `--user` logs in: the password from LAKE_PASSWORD or a prompt; an
/// API token from LAKE_TOKEN without `--user`.
fn login(args: &SqlArgs) -> Result<Login, Failure> {
    if let Some(user) = &args.user {
        let password = match std::env::var("LAKE_PASSWORD") {
            Ok(password) => password,
            Err(_) => rpassword::prompt_password(format!("password for {user}: ")).map_err(|e| {
                Failure::User(anyhow!(
                    "cannot read a password: {e}\n  hint: set LAKE_PASSWORD when there is no terminal"
                ))
            })?,
        };
        return Ok(Login::Password {
            user: user.clone(),
            password,
        });
    }
    Ok(match std::env::var("LAKE_TOKEN") {
        Ok(token) if !token.is_empty() => Login::Token(token),
        _ => Login::Anonymous,
    })
}

/// The lake in this process, or the server of `--connect`; and its name
/// for the banner.
async fn open_backend(args: &SqlArgs) -> Result<(Backend, String), Failure> {
    if let Some(url) = &args.connect {
        let ca = match &args.tls_ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Failure::User(anyhow!("cannot read --tls-ca {}: {e}", path.display()))
            })?),
            None => None,
        };
        let connection = Connection::connect(url, login(args)?, ca.as_deref())
            .await
            .map_err(|e| Failure::User(anyhow!("{e}")))?;
        return Ok((Backend::Remote(connection), url.clone()));
    }
    let root = open_root(&args.lake)?;
    let options = session_options(&args.lake)?;
    let root_url = root.url().to_string();
    let session = super::open_session(root, &options).await?;
    Ok((Backend::Local(session), root_url))
}

pub fn run(args: SqlArgs) -> CmdResult {
    let runtime = super::runtime()?;
    let interactive = args.command.is_empty() && args.file.is_none() && io::stdin().is_terminal();
    let (mut shell, root_url) = runtime.block_on(async {
        let (backend, root_url) = open_backend(&args).await?;
        // From here on Ctrl-C cancels a statement instead of ending lake.
        let interrupt = signal(SignalKind::interrupt())?;
        Ok::<_, Failure>((
            Shell {
                backend,
                printer: Printer {
                    format: args.print.format,
                    max_rows: args.print.max_rows,
                },
                timing: true,
                interrupt,
                names: Arc::default(),
                failed: false,
            },
            root_url,
        ))
    })?;
    if !interactive {
        let mut scripts: Vec<String> = args.command.clone();
        if let Some(file) = &args.file {
            scripts.push(
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::User(anyhow!("cannot read {}: {e}", file.display())))?,
            );
        }
        if args.command.is_empty() && args.file.is_none() {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text)?;
            scripts.push(text);
        }
        for script in scripts {
            if !runtime.block_on(shell.run_text(&script))? {
                break;
            }
        }
        return if shell.failed {
            Err(Failure::User(anyhow!("a statement failed (see above)")))
        } else {
            Ok(())
        };
    }

    runtime.block_on(shell.refresh_names());
    let mut editor: Editor<SqlHelper, rustyline::history::DefaultHistory> =
        Editor::new().map_err(|e| Failure::Internal(e.into()))?;
    editor.set_helper(Some(SqlHelper {
        names: shell.names.clone(),
    }));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "lake sql {} on {root_url}; \\? for help, \\q to quit",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match editor.readline("lake> ") {
            Ok(line) => {
                if is_blank(&line) {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if !runtime.block_on(shell.run_text(&line))? {
                    break;
                }
            }
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::Internal(e.into())),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

pub fn show(args: ShowArgs) -> CmdResult {
    let compiled = super::compile_project(&args.project)?;
    let sql = match (&args.select, &args.inline) {
        (Some(name), None) => {
            let node = compiled
                .manifest
                .nodes
                .values()
                .find(|n| &n.name == name && n.resource_type != lake_compiler::ResourceType::Test)
                .ok_or_else(|| {
                    let names: Vec<&str> = compiled
                        .manifest
                        .nodes
                        .values()
                        .map(|n| n.name.as_str())
                        .collect();
                    let hint = match lake_compiler::suggest(name, names).first() {
                        Some(s) => format!("did you mean {s}?"),
                        None => "`lake ls` lists the models and seeds".into(),
                    };
                    Failure::User(anyhow!("no model or seed named '{name}'\n  hint: {hint}"))
                })?;
            match node.resource_type {
                lake_compiler::ResourceType::Seed => {
                    format!(
                        "select * from {}",
                        node.relation_name.clone().unwrap_or_default()
                    )
                }
                _ => node.compiled_code.clone(),
            }
        }
        (None, Some(inline)) => compiled.render_inline(inline)?,
        _ => {
            return Err(Failure::User(anyhow!(
                "lake show needs --select MODEL or --inline SQL"
            )));
        }
    };
    let root = super::build::lake_root(
        &compiled,
        args.lake_root.as_deref(),
        &args.project.project_dir,
    )?;
    let runtime = super::runtime()?;
    let printer = Printer {
        format: args.format,
        max_rows: 0,
    };
    let limit = args.limit;
    let result = runtime.block_on(async {
        let session = super::open_session(root, &SessionOptions::default()).await?;
        let df = session
            .plan_query(sql.trim().trim_end_matches(';'))
            .await
            .and_then(|df| df.limit(0, Some(limit)))
            .map_err(|e| {
                Failure::User(anyhow!("{}\n  SQL: {}", e.strip_backtrace(), sql.trim()))
            })?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let printed = match Rows::of(df).await {
            Ok(rows) => printer.print(rows, &mut interrupt).await,
            Err(e) => Err(e),
        };
        printed.map_err(|e| match e {
            StatementError::Failed(m) => Failure::User(anyhow!("{m}")),
            StatementError::Cancelled => Failure::User(anyhow!("cancelled")),
            StatementError::Io(e) => Failure::Internal(e.into()),
        })
    });
    super::release(compiled);
    result.map(|_| ())
}
