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
use futures::StreamExt;
use lake_engine::sql::{is_blank, split_statements};
use lake_engine::{Executed, LakeSession, SessionOptions};
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

/// Opens the lake the flags name.
fn open_root(args: &LakeArgs) -> Result<LakeRoot, Failure> {
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
    /// Streams the rows of `df` to stdout; the number of rows.
    async fn print(&self, df: DataFrame, cancel: &mut Signal) -> Result<usize, StatementError> {
        let run = async {
            let mut stream = df
                .execute_stream()
                .await
                .map_err(|e| StatementError::Failed(e.strip_backtrace()))?;
            let schema = stream.schema();
            let mut out = io::stdout().lock();
            let mut rows = 0usize;
            let mut kept: Vec<RecordBatch> = Vec::new();
            let mut kept_rows = 0usize;
            let mut first = true;
            if self.format == RowFormat::Json {
                out.write_all(b"[")?;
            }
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| StatementError::Failed(e.strip_backtrace()))?;
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
    session: LakeSession,
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
            result = self.session.execute_sql(sql) => result.map_err(|e| StatementError::Failed(e.to_string())),
            _ = self.interrupt.recv() => Err(StatementError::Cancelled),
        };
        let outcome = match executed {
            // DDL (CREATE EXTERNAL TABLE, SET, ...) has run; nothing to show.
            Ok(Executed::Rows(df)) if df.schema().fields().is_empty() => Ok(()),
            Ok(Executed::Rows(df)) => self
                .printer
                .print(df, &mut self.interrupt)
                .await
                .map(|_| ()),
            Ok(Executed::Done(message)) => {
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
        let root = self.session.root();
        let views = root.views();
        let mut rows: Vec<(&str, String, &str)> = Vec::new();
        for zone in ZONES {
            let listed = match root.list_tables(zone).await {
                Ok(tables) => views.list(zone).await.map(|v| (tables, v)),
                Err(e) => Err(e),
            };
            let (tables, view_names) = match listed {
                Ok(found) => found,
                Err(e) => {
                    self.failed = true;
                    eprintln!("error: {e}");
                    return Ok(());
                }
            };
            // A view hides a Delta table of the same name.
            let mut kinds: std::collections::BTreeMap<String, &str> =
                tables.into_iter().map(|t| (t, "table")).collect();
            if views_too {
                kinds.extend(view_names.into_iter().map(|v| (v, "view")));
            } else {
                kinds.retain(|name, _| !view_names.contains(name));
            }
            rows.extend(kinds.into_iter().map(|(name, kind)| (zone, name, kind)));
        }
        if rows.is_empty() {
            println!("(no tables yet: `lake build` writes them)");
            return Ok(());
        }
        let zones: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.2).collect();
        let listed = RecordBatch::try_from_iter([
            ("zone", Arc::new(StringArray::from(zones)) as ArrayRef),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
            ("kind", Arc::new(StringArray::from(kinds)) as ArrayRef),
        ])
        .and_then(|batch| {
            self.session
                .context()
                .read_batch(batch)
                .map_err(|e| datafusion::arrow::error::ArrowError::ExternalError(Box::new(e)))
        });
        let outcome = match listed {
            Ok(df) => self
                .printer
                .print(df, &mut self.interrupt)
                .await
                .map(|_| ()),
            Err(e) => Err(StatementError::Failed(e.to_string())),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(StatementError::Io(e)) => Err(Failure::Internal(e.into())),
            Err(other) => {
                self.failed = true;
                eprintln!("error: {other:?}");
                Ok(())
            }
        }
    }

    async fn describe(&mut self, name: &str) -> Result<(), Failure> {
        match self.session.describe_relation(name).await {
            Ok((columns, facts)) => {
                if let Err(StatementError::Io(e)) = self
                    .printer_for_description()
                    .print(columns, &mut self.interrupt)
                    .await
                {
                    return Err(Failure::Internal(e.into()));
                }
                let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                let mut out = io::stdout().lock();
                for (key, value) in facts {
                    writeln!(out, "{key:>width$}: {value}")?;
                }
                out.flush()?;
            }
            Err(e) => {
                self.failed = true;
                eprintln!("error: {e}");
            }
        }
        Ok(())
    }

    fn printer_for_description(&self) -> Printer {
        Printer {
            format: RowFormat::Table,
            max_rows: 0,
        }
    }

    /// Table and column names for completion (up to 200 tables).
    async fn refresh_names(&self) {
        let catalog = self.session.catalog();
        if catalog.refresh().await.is_err() {
            return;
        }
        let mut words = Vec::new();
        for (zone, name) in catalog.names().into_iter().take(200) {
            if let Ok(df) = self.session.context().table(format!("{zone}.{name}")).await {
                words.extend(df.schema().fields().iter().map(|f| f.name().clone()));
            }
            words.push(format!("{zone}.{name}"));
        }
        words.extend(ZONES.iter().map(|z| z.to_string()));
        words.sort();
        words.dedup();
        if let Ok(mut names) = self.names.write() {
            names.words = words;
        }
    }
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

pub fn run(args: SqlArgs) -> CmdResult {
    let root = open_root(&args.lake)?;
    let options = session_options(&args.lake)?;
    let runtime = super::runtime()?;
    let root_url = root.url().to_string();
    let interactive = args.command.is_empty() && args.file.is_none() && io::stdin().is_terminal();
    let mut shell = runtime.block_on(async {
        let session = LakeSession::open(Arc::new(root), &options)
            .await
            .map_err(|e| Failure::Internal(anyhow!("opening the lake at {root_url}: {e}")))?;
        // From here on Ctrl-C cancels a statement instead of ending lake.
        let interrupt = signal(SignalKind::interrupt())?;
        Ok::<_, Failure>(Shell {
            session,
            printer: Printer {
                format: args.print.format,
                max_rows: args.print.max_rows,
            },
            timing: true,
            interrupt,
            names: Arc::default(),
            failed: false,
        })
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
        let session = LakeSession::open(Arc::new(root), &SessionOptions::default())
            .await
            .map_err(|e| Failure::Internal(anyhow!("opening the lake: {e}")))?;
        let df = session
            .plan_query(sql.trim().trim_end_matches(';'))
            .await
            .and_then(|df| df.limit(0, Some(limit)))
            .map_err(|e| {
                Failure::User(anyhow!("{}\n  SQL: {}", e.strip_backtrace(), sql.trim()))
            })?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        printer
            .print(df, &mut interrupt)
            .await
            .map_err(|e| match e {
                StatementError::Failed(m) => Failure::User(anyhow!("{m}")),
                StatementError::Cancelled => Failure::User(anyhow!("cancelled")),
                StatementError::Io(e) => Failure::Internal(e.into()),
            })
    });
    super::release(compiled);
    result.map(|_| ())
}
