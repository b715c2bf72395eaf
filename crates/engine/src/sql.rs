//! SQL typed by people (`lake sql`, `lake show`) over a lake session:
//! statement splitting, Delta time travel (`VERSION AS OF`, `TIMESTAMP AS
//! OF`), `DESCRIBE HISTORY`, writes to Delta tables (`CREATE TABLE ... AS`,
//! `CREATE TABLE` with columns, `INSERT`, `UPDATE`, `DELETE`), and errors that
//! suggest the closest table or column name.
//!
//! Time travel is a rewrite of the statement's text: `orders VERSION AS OF
//! 3` becomes the table `"orders@v3"`, which the `lake` catalog opens at
//! that version. The rewritten SQL is plain DataFusion SQL and names every
//! version it reads.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::TableReference;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, FromTable, ObjectName, ObjectNamePart, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use futures::TryStreamExt;
use lake_storage::{
    SchemaChange, TableDelete, TableUpdate, TableVersion, TableWrite, WriteMode, ZONES,
};
use serde_json::json;

use crate::error::{EngineError, Result};
use crate::session::LakeSession;

/// The result of one statement.
#[derive(Debug)]
pub enum Executed {
    /// Rows to show (run them with `execute_stream`).
    Rows(DataFrame),
    /// A write or a command; what it did.
    Done(String),
}

fn query_error(message: impl Into<String>) -> EngineError {
    EngineError::Query(message.into())
}

/// Splits `text` into complete statements (each without its `;`) and the
/// unfinished rest. Quotes, `--` and `/* */` comments are respected.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut start = 0;
    let mut i = 0;
    let mut current = String::new();
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            '\'' | '"' | '`' => {
                let quote = c;
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            '-' if bytes.get(i + 1) == Some(&'-') => {
                while i < bytes.len() && bytes[i] != '\n' {
                    i += 1;
                }
            }
            '/' if bytes.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                    i += 1;
                }
                i += 1;
            }
            ';' => {
                current.extend(&bytes[start..i]);
                if !is_blank(&current) {
                    statements.push(current.trim().to_string());
                }
                current.clear();
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let rest: String = bytes[start.min(bytes.len())..].iter().collect();
    (statements, rest)
}

/// Whether `sql` holds nothing but whitespace and comments.
pub fn is_blank(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map_or("", |(_, after)| after)
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map_or("", |(_, after)| after)
                .trim_start();
        } else {
            return false;
        }
    }
}

/// Rewrites `name VERSION AS OF n` and `name TIMESTAMP AS OF '...'` into
/// pinned table names (`"name@v3"`).
pub fn rewrite_time_travel(sql: &str) -> Result<String> {
    if !sql.to_ascii_uppercase().contains(" AS OF") {
        return Ok(sql.to_string());
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| query_error(format!("cannot read the statement: {e}")))?;
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let significant = |from: usize| -> Vec<usize> {
        (from..tokens.len())
            .filter(|j| !matches!(tokens[*j], Token::Whitespace(_)))
            .take(4)
            .collect()
    };
    while i < tokens.len() {
        let kind = match &tokens[i] {
            Token::Word(w) if w.keyword == Keyword::VERSION => Some(Keyword::VERSION),
            Token::Word(w) if w.keyword == Keyword::TIMESTAMP => Some(Keyword::TIMESTAMP),
            _ => None,
        };
        let next = significant(i + 1);
        let is_as_of = kind.is_some()
            && next.len() >= 3
            && matches!(&tokens[next[0]], Token::Word(w) if w.keyword == Keyword::AS)
            && matches!(&tokens[next[1]], Token::Word(w) if w.keyword == Keyword::OF);
        if !is_as_of {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // `TIMESTAMP AS OF TIMESTAMP '...'` is the same as without the
        // second keyword.
        let mut value_at = next[2];
        if matches!(&tokens[value_at], Token::Word(w) if w.keyword == Keyword::TIMESTAMP) {
            value_at = *next.get(3).unwrap_or(&value_at);
        }
        let version = match (kind, &tokens[value_at]) {
            (Some(Keyword::VERSION), Token::Number(n, _)) => {
                TableVersion::Version(n.parse().map_err(|_| {
                    query_error(format!("VERSION AS OF takes a version number, not {n}"))
                })?)
            }
            (Some(Keyword::VERSION), other) => {
                return Err(query_error(format!(
                    "VERSION AS OF takes a version number such as 3, not {other}"
                )));
            }
            (_, Token::SingleQuotedString(s)) => TableVersion::AsOf(parse_instant(s)?),
            (_, other) => {
                return Err(query_error(format!(
                    "TIMESTAMP AS OF takes a string such as '2026-11-01T00:00:00Z', not {other}"
                )));
            }
        };
        while matches!(out.last(), Some(Token::Whitespace(_))) {
            out.pop();
        }
        match out.pop() {
            Some(Token::Word(w)) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => {
                out.push(Token::Word(Word {
                    value: version.pinned_name(&w.value),
                    quote_style: Some('"'),
                    keyword: Keyword::NoKeyword,
                }));
            }
            _ => {
                return Err(query_error(
                    "VERSION AS OF and TIMESTAMP AS OF follow a table name: `FROM curated.orders VERSION AS OF 3`",
                ));
            }
        }
        i = value_at + 1;
    }
    Ok(out.iter().map(ToString::to_string).collect())
}

/// An RFC 3339 instant, `YYYY-MM-DD HH:MM:SS` (UTC) or a date.
pub fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(query_error(format!(
        "'{text}' is not a point in time; write '2026-11-01T00:00:00Z', '2026-11-01 12:00:00' (UTC) or '2026-11-01'"
    )))
}

/// `zone.name` of a SQL object name (one part: the `default_zone`).
fn zone_and_name(name: &ObjectName, default_zone: &str) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) if id.quote_style.is_some() => id.value.clone(),
            ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
            other => other.to_string(),
        })
        .collect();
    let (zone, table) = match parts.as_slice() {
        [table] => (default_zone.to_string(), table.clone()),
        [zone, table] => (zone.clone(), table.clone()),
        [catalog, zone, table] if catalog == lake_storage::CATALOG => (zone.clone(), table.clone()),
        _ => {
            return Err(query_error(format!(
                "'{name}' is not a lake table name; write zone.name, for example curated.orders"
            )));
        }
    };
    if !ZONES.contains(&zone.as_str()) {
        return Err(query_error(format!(
            "unknown zone '{zone}'; zones are {}",
            ZONES.join(", ")
        )));
    }
    lake_storage::check_name(&table).map_err(|e| query_error(e.to_string()))?;
    Ok((zone, table))
}

impl LakeSession {
    /// The zone of one-part names: `curated`, or what `SET
    /// datafusion.catalog.default_schema` made it.
    fn default_zone(&self) -> String {
        self.context()
            .state()
            .config_options()
            .catalog
            .default_schema
            .clone()
    }

    /// [`zone_and_name`] of `zone.name` as typed after `\\d` or `DESCRIBE
    /// HISTORY`.
    fn zone_and_name_of(&self, text: &str) -> Result<(String, String)> {
        let parts: Vec<datafusion::sql::sqlparser::ast::Ident> = text
            .split('.')
            .map(datafusion::sql::sqlparser::ast::Ident::new)
            .collect();
        zone_and_name(&ObjectName::from(parts), &self.default_zone())
    }

    /// Runs one statement (no trailing `;` needed). Writes are Delta
    /// commits; queries come back as a DataFrame to stream.
    pub async fn execute_sql(&self, statement: &str) -> Result<Executed> {
        let result = self.execute_inner(statement).await;
        match result {
            Err(e) => Err(self.with_suggestions(e).await),
            ok => ok,
        }
    }

    async fn execute_inner(&self, statement: &str) -> Result<Executed> {
        let trimmed = statement.trim().trim_end_matches(';').trim();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if words.len() == 3
            && matches!(words[0].to_ascii_lowercase().as_str(), "describe" | "desc")
            && words[1].eq_ignore_ascii_case("history")
        {
            return self.describe_history(words[2]).await;
        }
        let sql = rewrite_time_travel(trimmed)?;
        let mut parsed = DFParserBuilder::new(sql.as_str())
            .build()
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| query_error(e.strip_backtrace()))?;
        if parsed.len() != 1 {
            return Err(query_error(format!(
                "expected one statement, found {}",
                parsed.len()
            )));
        }
        let parsed = parsed.pop_front().expect("one statement");
        if let DfStatement::Statement(inner) = &parsed {
            match inner.as_ref() {
                Statement::CreateTable(create) if !create.external => {
                    let (zone, name) = zone_and_name(&create.name, &self.default_zone())?;
                    let query = match &create.query {
                        Some(q) => q.to_string(),
                        None if !create.columns.is_empty() => {
                            let columns: Vec<String> = create
                                .columns
                                .iter()
                                .map(|c| format!("cast(null as {}) as {}", c.data_type, c.name))
                                .collect();
                            format!("select {} where false", columns.join(", "))
                        }
                        None => {
                            return Err(query_error("CREATE TABLE needs columns or AS SELECT ..."));
                        }
                    };
                    return self
                        .create_table(
                            &zone,
                            &name,
                            &query,
                            create.or_replace,
                            create.if_not_exists,
                        )
                        .await;
                }
                Statement::Delete(delete) => return self.delete(delete, trimmed).await,
                Statement::Update(update) => return self.update(update, trimmed).await,
                _ => {}
            }
        }
        let plan = self
            .context()
            .state()
            .statement_to_plan(parsed)
            .await
            .map_err(|e| EngineError::datafusion("planning", e))?;
        if let LogicalPlan::Dml(dml) = &plan
            && let WriteOp::Insert(op) = dml.op
            && let Some((zone, name)) = self.delta_target(&dml.table_name).await?
        {
            return self.insert(&zone, &name, op, &dml.input, trimmed).await;
        }
        let df = self
            .context()
            .execute_logical_plan(plan)
            .await
            .map_err(|e| EngineError::datafusion("running", e))?;
        Ok(Executed::Rows(df))
    }

    async fn create_table(
        &self,
        zone: &str,
        name: &str,
        query: &str,
        or_replace: bool,
        if_not_exists: bool,
    ) -> Result<Executed> {
        let exists = self.root().has_table(zone, name).await?
            || self.root().views().get(zone, name).await?.is_some();
        if exists && if_not_exists {
            return Ok(Executed::Done(format!(
                "{zone}.{name} exists; nothing done"
            )));
        }
        if exists && !or_replace {
            return Err(query_error(format!(
                "{zone}.{name} exists; use CREATE OR REPLACE TABLE to overwrite it"
            )));
        }
        let df = self
            .plan_query(query)
            .await
            .map_err(|e| EngineError::datafusion("planning", e))?;
        let outcome = TableWrite::new(
            self.root().clone(),
            zone,
            name,
            df.into_unoptimized_plan(),
            self.state(),
        )
        .with_mode(WriteMode::Overwrite)
        .with_schema_change(SchemaChange::Replace)
        .with_metadata("lake.statement", json!(query))
        .await?;
        self.root().views().remove(zone, name).await?;
        self.catalog().note_written(zone, name);
        Ok(Executed::Done(format!(
            "created {zone}.{name}: {} rows (version {})",
            outcome.rows_written.unwrap_or(0),
            outcome.version
        )))
    }

    async fn delete(
        &self,
        delete: &datafusion::sql::sqlparser::ast::Delete,
        statement: &str,
    ) -> Result<Executed> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [table] = tables.as_slice() else {
            return Err(query_error("DELETE works on one table at a time"));
        };
        if !table.joins.is_empty() || delete.using.is_some() {
            return Err(query_error("DELETE with joins or USING is not supported"));
        }
        let TableFactor::Table { name, .. } = &table.relation else {
            return Err(query_error("DELETE FROM takes a table name"));
        };
        let (zone, name) = self.writable_table(name, "DELETE").await?;
        let mut op = TableDelete::new(self.root().clone(), &zone, &name, self.state())
            .with_metadata("lake.statement", json!(statement));
        if let Some(predicate) = &delete.selection {
            op = op.with_predicate(predicate.to_string());
        }
        let outcome = op.await?;
        self.catalog().note_written(&zone, &name);
        Ok(Executed::Done(format!(
            "deleted {} rows from {zone}.{name} (version {})",
            outcome
                .rows_deleted
                .map_or_else(|| "the matching".to_string(), |n| n.to_string()),
            outcome.version
        )))
    }

    /// `zone.name` of a Delta table that a DELETE or UPDATE changes.
    async fn writable_table(&self, name: &ObjectName, verb: &str) -> Result<(String, String)> {
        let (zone, name) = zone_and_name(name, &self.default_zone())?;
        if self.root().views().get(&zone, &name).await?.is_some() {
            return Err(query_error(format!(
                "{zone}.{name} is a view; {verb} works on Delta tables"
            )));
        }
        Ok((zone, name))
    }

    async fn update(
        &self,
        update: &datafusion::sql::sqlparser::ast::Update,
        statement: &str,
    ) -> Result<Executed> {
        if !update.table.joins.is_empty() || update.from.is_some() {
            return Err(query_error(
                "UPDATE with joins or FROM is not supported; use a MERGE in a model",
            ));
        }
        if update.returning.is_some() || update.limit.is_some() || !update.order_by.is_empty() {
            return Err(query_error(
                "UPDATE takes SET and WHERE only (no RETURNING, ORDER BY or LIMIT)",
            ));
        }
        let TableFactor::Table { name, .. } = &update.table.relation else {
            return Err(query_error("UPDATE takes a table name"));
        };
        let (zone, name) = self.writable_table(name, "UPDATE").await?;
        let mut op = TableUpdate::new(self.root().clone(), &zone, &name, self.state())
            .with_metadata("lake.statement", json!(statement));
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(column) = &assignment.target else {
                return Err(query_error(format!(
                    "UPDATE sets one column at a time: {assignment}"
                )));
            };
            let column = match column.0.last() {
                Some(ObjectNamePart::Identifier(id)) if id.quote_style.is_some() => {
                    id.value.clone()
                }
                Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
                _ => return Err(query_error(format!("not a column: {column}"))),
            };
            op = op.with_assignment(column, assignment.value.to_string());
        }
        if let Some(predicate) = &update.selection {
            op = op.with_predicate(predicate.to_string());
        }
        let outcome = op.await?;
        self.catalog().note_written(&zone, &name);
        Ok(Executed::Done(format!(
            "updated {} rows in {zone}.{name} (version {})",
            outcome.rows_updated.unwrap_or(0),
            outcome.version
        )))
    }

    /// `zone.name` when an INSERT's target is a Delta table of the lake
    /// (not a view or a session's external table).
    async fn delta_target(&self, table: &TableReference) -> Result<Option<(String, String)>> {
        let state = self.context().state();
        let catalog = &state.config_options().catalog;
        let resolved = table
            .clone()
            .resolve(&catalog.default_catalog, &catalog.default_schema);
        if resolved.catalog.as_ref() != lake_storage::CATALOG
            || !ZONES.contains(&resolved.schema.as_ref())
            || !self
                .root()
                .has_table(&resolved.schema, &resolved.table)
                .await?
        {
            return Ok(None);
        }
        Ok(Some((
            resolved.schema.to_string(),
            resolved.table.to_string(),
        )))
    }

    /// INSERT into a Delta table: DataFusion planned the rows (columns in
    /// the table's order, cast, NULL for those not listed); they are
    /// appended (or replace the table's rows for INSERT OVERWRITE) in one
    /// commit that records the statement.
    async fn insert(
        &self,
        zone: &str,
        name: &str,
        op: InsertOp,
        rows: &LogicalPlan,
        statement: &str,
    ) -> Result<Executed> {
        let mode = match op {
            InsertOp::Append => WriteMode::Append,
            InsertOp::Overwrite | InsertOp::Replace => WriteMode::Overwrite,
        };
        let outcome = TableWrite::new(self.root().clone(), zone, name, rows.clone(), self.state())
            .with_mode(mode)
            .with_schema_change(SchemaChange::Keep)
            .with_metadata("lake.statement", json!(statement))
            .await?;
        self.catalog().note_written(zone, name);
        Ok(Executed::Done(format!(
            "inserted {} rows into {zone}.{name} (version {})",
            outcome.rows_written.unwrap_or(0),
            outcome.version
        )))
    }

    /// `DESCRIBE HISTORY zone.name`: one row per commit, newest first.
    async fn describe_history(&self, table: &str) -> Result<Executed> {
        let (zone, name) = self.zone_and_name_of(table)?;
        let Some(delta) = self.root().load_table(&zone, &name).await? else {
            return Err(query_error(format!(
                "{zone}.{name} is not a Delta table (a view, or not built yet)"
            )));
        };
        let latest = delta.version().unwrap_or(0);
        let commits: Vec<_> = delta.history(None).try_collect().await.map_err(|e| {
            EngineError::from(lake_storage::StorageError::delta(
                format!("{zone}.{name}"),
                e,
            ))
        })?;
        let mut versions = Vec::new();
        let mut timestamps = Vec::new();
        let mut operations = Vec::new();
        let mut parameters = Vec::new();
        let mut rows = Vec::new();
        let mut writers = Vec::new();
        let snapshot = delta.snapshot().ok();
        for (i, commit) in commits.iter().enumerate() {
            let version = latest.saturating_sub(i as u64);
            versions.push(version);
            // The version's time as time travel resolves it (the log
            // file's), which can be a little after commitInfo's.
            timestamps.push(
                snapshot
                    .and_then(|s| s.version_timestamp(version))
                    .or(commit.timestamp),
            );
            operations.push(commit.operation.clone());
            parameters.push(
                commit
                    .operation_parameters
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap_or_default()),
            );
            rows.push(rows_written(&commit.info));
            writers.push(
                commit
                    .info
                    .get("lake.node")
                    .or_else(|| commit.info.get("lake.statement"))
                    .and_then(|v| v.as_str().map(str::to_string)),
            );
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::UInt64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("operation", DataType::Utf8, true),
            Field::new("parameters", DataType::Utf8, true),
            Field::new("rows_written", DataType::UInt64, true),
            Field::new("written_by", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(versions)),
            Arc::new(TimestampMillisecondArray::from(timestamps).with_timezone("UTC")),
            Arc::new(StringArray::from(operations)),
            Arc::new(StringArray::from(parameters)),
            Arc::new(UInt64Array::from(rows)),
            Arc::new(StringArray::from(writers)),
        ];
        let batch = RecordBatch::try_new(schema, columns)
            .map_err(|e| EngineError::datafusion("describing history", e.into()))?;
        let df = self
            .context()
            .read_batch(batch)
            .map_err(|e| EngineError::datafusion("describing history", e))?;
        Ok(Executed::Rows(df))
    }

    /// `\\d zone.name`: the columns (as rows to print) and, for a Delta
    /// table, facts about its current version.
    pub async fn describe_relation(
        &self,
        name: &str,
    ) -> Result<(DataFrame, Vec<(String, String)>)> {
        let (zone, table) = self.zone_and_name_of(name)?;
        let df = match self.context().table(format!("{zone}.{table}")).await {
            Ok(df) => df,
            Err(e) => {
                return Err(self
                    .with_suggestions(EngineError::datafusion("describing", e))
                    .await);
            }
        };
        let schema = df.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        let nullable: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| if f.is_nullable() { "YES" } else { "NO" })
            .collect();
        let columns = RecordBatch::try_from_iter(vec![
            ("column", Arc::new(StringArray::from(names)) as ArrayRef),
            ("type", Arc::new(StringArray::from(types)) as ArrayRef),
            (
                "nullable",
                Arc::new(StringArray::from(nullable)) as ArrayRef,
            ),
        ])
        .map_err(|e| EngineError::datafusion("describing", e.into()))?;
        let columns = self
            .context()
            .read_batch(columns)
            .map_err(|e| EngineError::datafusion("describing", e))?;
        let mut facts = Vec::new();
        if let Some(view) = self.root().views().get(&zone, &table).await? {
            facts.push(("kind".into(), "view".into()));
            facts.push(("definition".into(), view.sql.clone()));
            if let Some(by) = view.written_by {
                facts.push(("written by".into(), by));
            }
            return Ok((columns, facts));
        }
        let Some(delta) = self.root().load_table(&zone, &table).await? else {
            facts.push(("kind".into(), "external table (this session only)".into()));
            return Ok((columns, facts));
        };
        let label = format!("{zone}.{table}");
        let snapshot = delta
            .snapshot()
            .map_err(|e| EngineError::from(lake_storage::StorageError::delta(&label, e)))?;
        let (mut files, mut bytes, mut rows, mut rows_known) = (0u64, 0u64, 0u64, true);
        for file in snapshot.log_data().iter() {
            files += 1;
            bytes += file.size().max(0) as u64;
            let records = file
                .stats()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|s| s.get("numRecords").and_then(serde_json::Value::as_u64));
            match records {
                Some(n) => rows += n,
                None => rows_known = false,
            }
        }
        let partitions = snapshot.metadata().partition_columns().join(", ");
        let last_commit = delta
            .history(Some(1))
            .try_collect::<Vec<_>>()
            .await
            .ok()
            .and_then(|c| c.first().and_then(|c| c.timestamp))
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        facts.push(("kind".into(), "Delta table".into()));
        facts.push((
            "location".into(),
            self.root().table_url(&zone, &table)?.to_string(),
        ));
        facts.push(("version".into(), delta.version().unwrap_or(0).to_string()));
        facts.push(("files".into(), files.to_string()));
        facts.push((
            "rows".into(),
            if rows_known {
                rows.to_string()
            } else {
                format!("{rows} (some files have no statistics)")
            },
        ));
        facts.push(("size".into(), human_bytes(bytes)));
        facts.push((
            "partitioned by".into(),
            if partitions.is_empty() {
                "(none)".into()
            } else {
                partitions
            },
        ));
        facts.push(("last commit".into(), last_commit));
        Ok((columns, facts))
    }

    /// Adds "did you mean" to errors about unknown tables and columns.
    async fn with_suggestions(&self, error: EngineError) -> EngineError {
        let text = error.to_string();
        if let Some(missing) = between(&text, "table '", "' not found") {
            let short = missing.trim_start_matches("lake.");
            let hint = match self.closest_table(short, |_| true).await {
                Some(s) => format!("did you mean {s}?"),
                None => "`\\d` lists the tables and views of every zone".to_string(),
            };
            return query_error(format!("table {short} not found; {hint}"));
        }
        error
    }

    /// The existing `zone.name` closest to `missing` (`zone.name` or a bare
    /// name) among the zones `readable` accepts: the same name in another
    /// zone first, then close spellings of the whole, then of the name.
    pub async fn closest_table(
        &self,
        missing: &str,
        readable: impl Fn(&str) -> bool,
    ) -> Option<String> {
        // Other processes may have written tables since the catalog was read.
        let _ = self.catalog().refresh().await;
        let candidates: Vec<String> = self
            .catalog()
            .names()
            .into_iter()
            .filter(|(zone, _)| readable(zone))
            .map(|(zone, name)| format!("{zone}.{name}"))
            .collect();
        let bare = missing.rsplit('.').next().unwrap_or(missing);
        if let Some(same) = candidates
            .iter()
            .find(|c| c.rsplit('.').next() == Some(bare) && c.as_str() != missing)
        {
            return Some(same.clone());
        }
        if let Some(close) = lake_compiler::suggest(missing, candidates.iter().map(String::as_str))
            .into_iter()
            .next()
        {
            return Some(close);
        }
        let bare_names: Vec<&str> = candidates
            .iter()
            .map(|c| c.rsplit('.').next().unwrap_or(c))
            .collect();
        let close = lake_compiler::suggest(bare, bare_names.iter().copied())
            .into_iter()
            .next()?;
        candidates
            .into_iter()
            .find(|c| c.ends_with(&format!(".{close}")))
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Rows a commit wrote, from its operation metrics.
fn rows_written(info: &std::collections::HashMap<String, serde_json::Value>) -> Option<u64> {
    let metrics = info.get("operationMetrics")?;
    let get = |k: &str| metrics.get(k).and_then(serde_json::Value::as_u64);
    get("num_added_rows")
        .or_else(|| {
            let inserted = get("num_target_rows_inserted")?;
            Some(inserted + get("num_target_rows_updated").unwrap_or(0))
        })
        .or_else(|| get("num_output_rows"))
        .or_else(|| get("num_copied_rows").map(|_| 0))
}

/// `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_quotes_and_comments() {
        let (done, rest) = split_statements("select ';' as a; -- x;\nselect 2; /* ; */ sel");
        assert_eq!(done, ["select ';' as a", "-- x;\nselect 2"]);
        assert_eq!(rest, " /* ; */ sel");
        assert!(is_blank(" -- only\n /* c */ "));
        assert!(!is_blank("-- c\nselect 1"));
    }

    #[test]
    fn rewrites_time_travel() {
        assert_eq!(
            rewrite_time_travel("select * from curated.orders VERSION AS OF 3 where x = 1")
                .unwrap(),
            "select * from curated.\"orders@v3\" where x = 1"
        );
        assert_eq!(
            rewrite_time_travel("select * from o timestamp as of '2026-11-01T00:00:00Z' t")
                .unwrap(),
            "select * from \"o@2026-11-01T00:00:00Z\" t"
        );
        assert_eq!(
            rewrite_time_travel("select * from o TIMESTAMP AS OF TIMESTAMP '2026-11-01 10:00:00'")
                .unwrap(),
            "select * from \"o@2026-11-01T10:00:00Z\""
        );
        assert!(rewrite_time_travel("select * from o version as of 'x'").is_err());
        assert!(rewrite_time_travel("select * from o timestamp as of 'yesterday'").is_err());
        // Untouched when there is no time travel.
        assert_eq!(
            rewrite_time_travel("select 'as of'").unwrap(),
            "select 'as of'"
        );
    }
}
