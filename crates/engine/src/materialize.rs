//! Materializations: how each kind of node becomes data. Every write is one
//! Delta commit; a failure leaves the previous version in place.

use std::path::Path;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, cast, ident, lit};
use datafusion::prelude::DataFrame;
use lake_compiler::{Compiled, Node, ResourceType};
use lake_storage::{SchemaChange, TableMerge, TableWrite, ViewDefinition, WriteMode};
use serde_json::json;

use crate::contract::ContractGuard;
use crate::error::{EngineError, Result};
use crate::results::Status;
use crate::session::LakeSession;

/// What running a node did.
#[derive(Debug, Clone, Default)]
pub struct NodeOutcome {
    pub status: Option<Status>,
    /// A short account for the console: "created table curated.x".
    pub message: String,
    pub rows_affected: Option<u64>,
    pub delta_version: Option<u64>,
    /// Tests: the failing rows.
    pub failures: Option<u64>,
    /// Drift tests: what was measured.
    pub drift: Option<crate::drift::DriftMeasure>,
}

/// Everything a materialization needs.
pub struct Materializer<'a> {
    pub session: &'a LakeSession,
    pub compiled: &'a Compiled,
    pub project_dir: &'a Path,
    pub full_refresh: bool,
    pub run_id: &'a str,
}

/// `zone.name` of a relation name.
pub fn split_relation(relation: &str) -> (&str, &str) {
    relation.split_once('.').unwrap_or(("curated", relation))
}

/// Types as a user sees them: what Delta stores, with string views as
/// strings; storage encodings do not count as a change.
pub(crate) fn normalized(dt: &DataType) -> DataType {
    match lake_storage::stored_type(dt) {
        DataType::Utf8View => DataType::Utf8,
        other => other,
    }
}

/// How the new rows' columns differ from the table's.
#[derive(Debug, Default)]
struct SchemaDiff {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<(String, DataType, DataType)>,
}

impl SchemaDiff {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("new: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("gone: {}", self.removed.join(", ")));
        }
        for (c, from, to) in &self.changed {
            parts.push(format!("{c}: {from} -> {to}"));
        }
        parts.join("; ")
    }
}

fn diff_schemas(new: &DataFrame, target: &DataFrame) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    let target_fields = target.schema().fields();
    for f in new.schema().fields() {
        match target_fields.iter().find(|t| t.name() == f.name()) {
            None => diff.added.push(f.name().clone()),
            Some(t) if normalized(t.data_type()) != normalized(f.data_type()) => {
                diff.changed.push((
                    f.name().clone(),
                    normalized(t.data_type()),
                    normalized(f.data_type()),
                ));
            }
            Some(_) => {}
        }
    }
    for t in target_fields {
        if new.schema().field_with_unqualified_name(t.name()).is_err() {
            diff.removed.push(t.name().clone());
        }
    }
    diff
}

impl Materializer<'_> {
    fn sql_error(&self, node: &Node, e: impl std::fmt::Display) -> EngineError {
        EngineError::Sql {
            file: node.original_file_path.clone(),
            compiled_path: node.compiled_path.clone().unwrap_or_else(|| {
                format!(
                    "target/compiled/{}/{}",
                    node.package_name, node.original_file_path
                )
            }),
            message: e.to_string(),
        }
    }

    fn config_error(&self, node: &Node, message: String) -> EngineError {
        EngineError::Config {
            file: node.original_file_path.clone(),
            message,
        }
    }

    /// Runs one node.
    pub async fn run(&self, node: &Node) -> Result<NodeOutcome> {
        match node.resource_type {
            ResourceType::Seed => self.seed(node).await,
            ResourceType::Test => self.test(node).await,
            ResourceType::Model => match node.config.materialized.as_str() {
                "view" => self.view(node).await,
                "table" => self.table(node, &node.compiled_code).await,
                "incremental" => self.incremental(node).await,
                "ephemeral" => Ok(NodeOutcome {
                    message: "ephemeral: inlined into its children".into(),
                    ..Default::default()
                }),
                other => {
                    Err(self.config_error(node, format!("lake cannot materialize '{other}' yet")))
                }
            },
            ResourceType::Source => Ok(NodeOutcome::default()),
        }
    }

    fn relation<'n>(&self, node: &'n Node) -> Result<(&'n str, &'n str)> {
        node.relation_name
            .as_deref()
            .map(split_relation)
            .ok_or_else(|| self.config_error(node, "this node has no relation to write".into()))
    }

    fn write(
        &self,
        node: &Node,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<TableWrite> {
        let (zone, name) = self.relation(node)?;
        Ok(TableWrite::new(
            self.session.root().clone(),
            zone,
            name,
            plan,
            self.session.state(),
        )
        .with_metadata("lake.node", json!(node.unique_id))
        .with_metadata("lake.run_id", json!(self.run_id)))
    }

    async fn finish_write(
        &self,
        node: &Node,
        verb: &str,
        write: TableWrite,
    ) -> Result<NodeOutcome> {
        let (zone, name) = self.relation(node)?;
        let outcome = write.await?;
        // A table replaces a view of the same name.
        self.session.root().views().remove(zone, name).await?;
        self.session.catalog().note_written(zone, name);
        Ok(NodeOutcome {
            message: format!("{verb} {zone}.{name}"),
            rows_affected: outcome.rows_written,
            delta_version: Some(outcome.version),
            ..Default::default()
        })
    }

    async fn seed(&self, node: &Node) -> Result<NodeOutcome> {
        let plan = crate::seed::seed_plan(self.project_dir, node).await?;
        let write = self
            .write(node, plan)?
            .with_mode(WriteMode::Overwrite)
            .with_schema_change(SchemaChange::Replace);
        self.finish_write(node, "loaded seed", write).await
    }

    async fn view(&self, node: &Node) -> Result<NodeOutcome> {
        let (zone, name) = self.relation(node)?;
        let sql = node.compiled_code.trim().trim_end_matches(';').to_string();
        // Planning now reports a broken view at build time, not at first use.
        let df = self
            .session
            .plan_query(&sql)
            .await
            .map_err(|e| self.sql_error(node, e))?;
        // A view's contract is its columns and types; constraints need data.
        ContractGuard::plan(self.session, node, df).await?;
        let shadowed = self.session.root().has_table(zone, name).await?;
        self.session
            .root()
            .views()
            .put(&ViewDefinition {
                zone: zone.to_string(),
                name: name.to_string(),
                sql,
                written_by: Some(node.unique_id.clone()),
                written_at: chrono::Utc::now().to_rfc3339(),
            })
            .await?;
        self.session.catalog().note_written(zone, name);
        let mut message = format!("created view {zone}.{name}");
        if shadowed {
            message.push_str(&format!(
                " (the Delta table of the same name stays on storage at {}, hidden by the view)",
                self.session.root().table_url(zone, name)?
            ));
        }
        Ok(NodeOutcome {
            message,
            ..Default::default()
        })
    }

    async fn table(&self, node: &Node, sql: &str) -> Result<NodeOutcome> {
        let df = self
            .session
            .plan_query(sql)
            .await
            .map_err(|e| self.sql_error(node, e))?;
        let (df, guard) = ContractGuard::plan(self.session, node, df).await?;
        if let Some(guard) = &guard {
            guard.check_unique().await?;
        }
        let write = self
            .write(node, df.into_unoptimized_plan())?
            .with_mode(WriteMode::Overwrite)
            .with_schema_change(SchemaChange::Replace)
            .with_partition_by(node.config.partition_by.clone());
        let result = self.finish_write(node, "created table", write).await;
        guarded_outcome(result, guard.as_ref()).await
    }

    async fn incremental(&self, node: &Node) -> Result<NodeOutcome> {
        let (zone, name) = self.relation(node)?;
        let full_refresh = node.config.full_refresh.unwrap_or(self.full_refresh);
        let exists = self.session.root().has_table(zone, name).await?;
        if !exists || full_refresh {
            let mut outcome = self.table(node, &node.compiled_code).await?;
            let verb = if exists {
                "rebuilt incremental"
            } else {
                "created incremental"
            };
            outcome.message = outcome.message.replacen("created table", verb, 1);
            return Ok(outcome);
        }
        let sql = self.compiled.render_node(&node.unique_id, true)?;
        let new = self
            .session
            .plan_query(&sql)
            .await
            .map_err(|e| self.sql_error(node, e))?;
        let (new, guard) = ContractGuard::plan(self.session, node, new).await?;
        if let Some(guard) = &guard {
            guard.check_unique().await?;
        }
        let result = self.write_increment(node, new).await;
        guarded_outcome(result, guard.as_ref()).await
    }

    /// Writes the new rows of an existing incremental model with its
    /// strategy and schema-change mode.
    async fn write_increment(&self, node: &Node, new: DataFrame) -> Result<NodeOutcome> {
        let (zone, name) = self.relation(node)?;
        let target = self
            .session
            .context()
            .table(format!("{zone}.{name}"))
            .await
            .map_err(|e| EngineError::datafusion(format!("reading {zone}.{name}"), e))?;
        let diff = diff_schemas(&new, &target);
        let mode = node.config.on_schema_change.as_str();
        let strategy = node.config.incremental_strategy.clone().unwrap_or_else(|| {
            if node.config.unique_key.is_some() {
                "merge".into()
            } else {
                "append".into()
            }
        });
        let keys = node
            .config
            .unique_key
            .as_ref()
            .map(|k| k.to_vec())
            .unwrap_or_default();
        if !diff.is_empty() && mode == "fail" {
            return Err(EngineError::SchemaChanged {
                file: node.original_file_path.clone(),
                relation: format!("{zone}.{name}"),
                changes: diff.describe(),
                mode: mode.into(),
            });
        }
        if !diff.is_empty() && mode == "sync_all_columns" {
            return self
                .sync_all_columns(node, new, target, &strategy, &keys, &diff)
                .await;
        }
        if mode == "ignore" && !diff.removed.is_empty() {
            return Err(EngineError::SchemaChanged {
                file: node.original_file_path.clone(),
                relation: format!("{zone}.{name}"),
                changes: diff.describe(),
                mode: mode.into(),
            });
        }
        let add_columns = mode == "append_new_columns" && !diff.added.is_empty();
        let new = self.conform(node, new, &target, add_columns)?;
        let schema_change = if add_columns {
            SchemaChange::AddColumns
        } else {
            SchemaChange::Keep
        };
        let verb = format!("{strategy} into");
        match strategy.as_str() {
            "append" => {
                let write = self
                    .write(node, new.into_unoptimized_plan())?
                    .with_mode(WriteMode::Append)
                    .with_schema_change(schema_change);
                self.finish_write(node, &verb, write).await
            }
            "merge" => {
                if keys.is_empty() {
                    return Err(self.config_error(
                        node,
                        "incremental_strategy 'merge' needs a unique_key".into(),
                    ));
                }
                let outcome = TableMerge::new(
                    self.session.root().clone(),
                    zone,
                    name,
                    new,
                    keys,
                    self.session.state(),
                )
                .with_add_columns(add_columns)
                .with_metadata("lake.node", json!(node.unique_id))
                .with_metadata("lake.run_id", json!(self.run_id))
                .await?;
                // Readers later in the run must see the merged rows.
                self.session.catalog().note_written(zone, name);
                Ok(NodeOutcome {
                    message: format!("merged into {zone}.{name}"),
                    rows_affected: outcome.rows_written,
                    delta_version: Some(outcome.version),
                    ..Default::default()
                })
            }
            "delete+insert" | "insert_overwrite" => {
                let columns = if strategy == "delete+insert" {
                    if keys.is_empty() {
                        return Err(self.config_error(
                            node,
                            "incremental_strategy 'delete+insert' needs a unique_key".into(),
                        ));
                    }
                    keys
                } else {
                    if node.config.partition_by.is_empty() {
                        return Err(self.config_error(
                            node,
                            "incremental_strategy 'insert_overwrite' needs partition_by".into(),
                        ));
                    }
                    node.config.partition_by.clone()
                };
                let Some(predicate) = self.values_predicate(node, &new, &columns).await? else {
                    return Ok(NodeOutcome {
                        message: format!("no new rows for {zone}.{name}"),
                        rows_affected: Some(0),
                        ..Default::default()
                    });
                };
                let write = self
                    .write(node, new.into_unoptimized_plan())?
                    .with_mode(WriteMode::ReplaceWhere(predicate))
                    .with_schema_change(schema_change);
                let verb = if strategy == "delete+insert" {
                    "replaced rows of"
                } else {
                    "replaced partitions of"
                };
                self.finish_write(node, verb, write).await
            }
            other => {
                Err(self.config_error(node, format!("unknown incremental_strategy '{other}'")))
            }
        }
    }

    /// The new rows in the table's column order and types: missing columns
    /// NULL, new ones dropped (or kept at the end with `add_columns`).
    fn conform(
        &self,
        node: &Node,
        new: DataFrame,
        target: &DataFrame,
        add_columns: bool,
    ) -> Result<DataFrame> {
        let mut exprs: Vec<Expr> = Vec::new();
        for t in target.schema().fields() {
            let expr = match new.schema().field_with_unqualified_name(t.name()) {
                Ok(f) if normalized(f.data_type()) == normalized(t.data_type()) => ident(t.name()),
                Ok(_) => cast(ident(t.name()), normalized(t.data_type())),
                Err(_) => cast(lit(ScalarValue::Null), normalized(t.data_type())),
            };
            exprs.push(expr.alias(t.name()));
        }
        if add_columns {
            for f in new.schema().fields() {
                if target
                    .schema()
                    .field_with_unqualified_name(f.name())
                    .is_err()
                {
                    exprs.push(ident(f.name()));
                }
            }
        }
        new.select(exprs).map_err(|e| self.sql_error(node, e))
    }

    /// `columns IN (the distinct values of the new rows)`, or `None` when
    /// there are no new rows.
    async fn values_predicate(
        &self,
        node: &Node,
        new: &DataFrame,
        columns: &[String],
    ) -> Result<Option<Expr>> {
        let distinct = new
            .clone()
            .select(columns.iter().map(ident).collect::<Vec<_>>())
            .and_then(|d| d.distinct())
            .map_err(|e| self.sql_error(node, e))?
            .collect()
            .await
            .map_err(|e| {
                EngineError::datafusion(format!("reading the new rows of {}", node.name), e)
            })?;
        let mut alternatives: Vec<Expr> = Vec::new();
        let mut single: Vec<Expr> = Vec::new();
        for batch in &distinct {
            for row in 0..batch.num_rows() {
                let mut conjuncts = Vec::new();
                for (i, c) in columns.iter().enumerate() {
                    let value = ScalarValue::try_from_array(batch.column(i), row)
                        .map_err(|e| EngineError::datafusion("reading key values", e))?;
                    if value.is_null() {
                        return Err(self.config_error(
                            node,
                            format!("column '{c}' is NULL in a new row; delete+insert and insert_overwrite need values to match on"),
                        ));
                    }
                    if columns.len() == 1 {
                        single.push(lit(value));
                    } else {
                        conjuncts.push(ident(c).eq(lit(value)));
                    }
                }
                if let Some(all) = conjuncts.into_iter().reduce(Expr::and) {
                    alternatives.push(all);
                }
            }
        }
        Ok(if columns.len() == 1 {
            (!single.is_empty()).then(|| ident(&columns[0]).in_list(single, false))
        } else {
            alternatives.into_iter().reduce(Expr::or)
        })
    }

    /// `on_schema_change: sync_all_columns` with a change: the table is
    /// rewritten in one commit with the new columns, keeping the old rows
    /// that the strategy does not replace.
    async fn sync_all_columns(
        &self,
        node: &Node,
        new: DataFrame,
        target: DataFrame,
        strategy: &str,
        keys: &[String],
        diff: &SchemaDiff,
    ) -> Result<NodeOutcome> {
        let df_err = |e| self.sql_error(node, e);
        // The old rows in the new shape.
        let mut exprs = Vec::new();
        for f in new.schema().fields() {
            let expr = match target.schema().field_with_unqualified_name(f.name()) {
                Ok(_) => cast(ident(f.name()), normalized(f.data_type())),
                Err(_) => cast(lit(ScalarValue::Null), normalized(f.data_type())),
            };
            exprs.push(expr.alias(f.name()));
        }
        let old = target.select(exprs).map_err(df_err)?;
        let match_on: Vec<String> = match strategy {
            "merge" | "delete+insert" => keys.to_vec(),
            "insert_overwrite" => node.config.partition_by.clone(),
            _ => vec![],
        };
        let kept = if match_on.is_empty() {
            old
        } else {
            let on: Vec<&str> = match_on.iter().map(String::as_str).collect();
            let new_keys = new
                .clone()
                .select(
                    match_on
                        .iter()
                        .map(|c| ident(c).alias(format!("__lake_new_{c}")))
                        .collect::<Vec<_>>(),
                )
                .map_err(df_err)?;
            let right: Vec<String> = match_on.iter().map(|c| format!("__lake_new_{c}")).collect();
            let right: Vec<&str> = right.iter().map(String::as_str).collect();
            old.join(
                new_keys,
                datafusion::common::JoinType::LeftAnti,
                &on,
                &right,
                None,
            )
            .map_err(df_err)?
        };
        let casted: Vec<Expr> = new
            .schema()
            .fields()
            .iter()
            .map(|f| cast(ident(f.name()), normalized(f.data_type())).alias(f.name()))
            .collect();
        let all = kept
            .union(new.select(casted).map_err(df_err)?)
            .map_err(df_err)?;
        let write = self
            .write(node, all.into_unoptimized_plan())?
            .with_mode(WriteMode::Overwrite)
            .with_schema_change(SchemaChange::Replace)
            .with_partition_by(node.config.partition_by.clone());
        let mut outcome = self.finish_write(node, "rewrote", write).await?;
        outcome.message = format!(
            "{} with synced columns ({})",
            outcome.message,
            diff.describe()
        );
        Ok(outcome)
    }

    async fn count(&self, node: &Node, sql: &str) -> Result<u64> {
        let df = self
            .session
            .plan_query(sql)
            .await
            .map_err(|e| self.sql_error(node, e))?;
        let batches = df
            .collect()
            .await
            .map_err(|e| EngineError::datafusion(format!("running {}", node.name), e))?;
        let batch = batches.first().filter(|b| b.num_rows() > 0);
        let value = batch
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok(value.max(0) as u64)
    }

    /// A data test: counts the rows its SQL returns, then applies
    /// `severity`, `warn_if` and `error_if`.
    async fn test(&self, node: &Node) -> Result<NodeOutcome> {
        let sql = node.compiled_code.trim().trim_end_matches(';');
        let limit = node
            .config
            .limit
            .map(|l| format!("\nlimit {l}"))
            .unwrap_or_default();
        let failing = format!("select * from (\n{sql}\n{limit}\n) as lake_test");
        let drift = match node.test_metadata.as_ref() {
            Some(meta) if meta.name == "drift" => Some(self.drift(node, &meta.kwargs).await?),
            _ => None,
        };
        let (failures, stored) = if let Some(d) = &drift {
            (d.exceeded(), None)
        } else if node.config.store_failures == Some(true) {
            let (failures, table) = self.store_failures(node, &failing).await?;
            (failures, Some(table))
        } else {
            let count = format!("select count(*) from (\n{sql}\n{limit}\n) as lake_test");
            (self.count(node, &count).await?, None)
        };
        let severity = node.config.severity.as_deref().unwrap_or("error");
        let error_if = node.config.error_if.as_deref().unwrap_or("!=0");
        let warn_if = node.config.warn_if.as_deref().unwrap_or("!=0");
        let needs_total = error_if.contains('%') || warn_if.contains('%');
        let total = if needs_total {
            Some(self.tested_rows(node).await?)
        } else {
            None
        };
        let hit = |threshold: &str| -> Result<bool> {
            Threshold::parse(threshold)
                .map(|t| t.holds(failures, total))
                .ok_or_else(|| {
                    self.config_error(
                        node,
                        format!(
                            "invalid threshold '{threshold}'; use for example '>10', '!=0' or '>5%'"
                        ),
                    )
                })
        };
        let status = if severity == "error" && hit(error_if)? {
            Status::Fail
        } else if hit(warn_if)? {
            Status::Warn
        } else {
            Status::Pass
        };
        let mut message = match &drift {
            Some(d) => d.describe(),
            None => format!("{failures} failing rows"),
        };
        if let Some(table) = stored {
            message.push_str(&format!(" (stored in {table})"));
        }
        Ok(NodeOutcome {
            status: Some(status),
            message,
            failures: Some(failures),
            drift,
            ..Default::default()
        })
    }

    /// A `drift` test: the statistics of its column between two versions
    /// of the tested table.
    async fn drift(
        &self,
        node: &Node,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<crate::drift::DriftMeasure> {
        let spec = lake_compiler::generic_tests::DriftSpec::from_kwargs(kwargs)
            .map_err(|e| self.config_error(node, e))?;
        let column = node
            .column_name
            .as_deref()
            .ok_or_else(|| self.config_error(node, "test 'drift' needs a column".into()))?;
        let relation = self.tested_relation(node)?;
        let (zone, name) = split_relation(&relation);
        crate::drift::measure(
            self.session,
            zone,
            name,
            column,
            node.config.where_.as_deref(),
            &spec,
            &node.original_file_path,
        )
        .await
    }

    /// `store_failures`: the failing rows replace the table
    /// `audit.<test name>` (dbt's short name when the name is long), and
    /// their number is the failure count.
    async fn store_failures(&self, node: &Node, failing: &str) -> Result<(u64, String)> {
        let name = if node.name.len() >= 64 {
            node.path
                .rsplit('/')
                .next()
                .unwrap_or(&node.name)
                .trim_end_matches(".sql")
                .to_string()
        } else {
            node.name.clone()
        };
        lake_storage::check_name(&name)
            .map_err(|e| self.config_error(node, format!("store_failures: {e}")))?;
        let df = self
            .session
            .plan_query(failing)
            .await
            .map_err(|e| self.sql_error(node, e))?;
        let outcome = TableWrite::new(
            self.session.root().clone(),
            "audit",
            &name,
            df.into_unoptimized_plan(),
            self.session.state(),
        )
        .with_mode(WriteMode::Overwrite)
        .with_schema_change(SchemaChange::Replace)
        .with_metadata("lake.node", json!(node.unique_id))
        .with_metadata("lake.run_id", json!(self.run_id))
        .await?;
        self.session.catalog().note_written("audit", &name);
        let table = format!("audit.{name}");
        let failures = match outcome.rows_written {
            Some(n) => n,
            None => {
                self.count(node, &format!("select count(*) from {table}"))
                    .await?
            }
        };
        Ok((failures, table))
    }

    /// Rows of the tested relation (for percentage thresholds).
    async fn tested_rows(&self, node: &Node) -> Result<u64> {
        let relation = self.tested_relation(node)?;
        let filter = node
            .config
            .where_
            .as_deref()
            .map(|w| format!(" where {w}"))
            .unwrap_or_default();
        self.count(node, &format!("select count(*) from {relation}{filter}"))
            .await
    }

    /// The relation a generic test is attached to.
    fn tested_relation(&self, node: &Node) -> Result<String> {
        node.attached_node
            .as_deref()
            .and_then(|id| {
                self.compiled
                    .manifest
                    .nodes
                    .get(id)
                    .and_then(|n| n.relation_name.clone())
                    .or_else(|| {
                        self.compiled
                            .manifest
                            .sources
                            .get(id)
                            .map(|s| s.relation_name.clone())
                    })
            })
            .ok_or_else(|| {
                self.config_error(
                    node,
                    "this test needs to be attached to a model, seed or source".into(),
                )
            })
    }
}

/// A write's outcome under a contract: a violation found while streaming
/// becomes a contract error with counts; unenforced constraints are noted.
async fn guarded_outcome(
    result: Result<NodeOutcome>,
    guard: Option<&ContractGuard>,
) -> Result<NodeOutcome> {
    let Some(guard) = guard else {
        return result;
    };
    match result {
        Ok(mut outcome) => {
            if !guard.unenforced().is_empty() {
                outcome.message.push_str(&format!(
                    " (not enforced, as in most warehouses: {})",
                    guard.unenforced().join(", ")
                ));
            }
            Ok(outcome)
        }
        Err(e) => Err(guard.explain(e).await),
    }
}

/// `warn_if` / `error_if`: a comparison with a count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Threshold {
    op: &'static str,
    value: f64,
    percent: bool,
}

impl Threshold {
    fn parse(text: &str) -> Option<Threshold> {
        let t = text.trim();
        let op = ["!=", ">=", "<=", "==", "<>", ">", "<", "="]
            .into_iter()
            .find(|op| t.starts_with(op))?;
        let rest = t[op.len()..].trim();
        let (number, percent) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (rest, false),
        };
        Some(Threshold {
            op,
            value: number.parse().ok()?,
            percent,
        })
    }

    fn holds(&self, failures: u64, total: Option<u64>) -> bool {
        let measured = if self.percent {
            match total {
                Some(0) | None => 0.0,
                Some(t) => failures as f64 * 100.0 / t as f64,
            }
        } else {
            failures as f64
        };
        match self.op {
            "!=" | "<>" => measured != self.value,
            ">=" => measured >= self.value,
            "<=" => measured <= self.value,
            ">" => measured > self.value,
            "<" => measured < self.value,
            _ => measured == self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t = Threshold::parse(">10").unwrap();
        assert!(t.holds(11, None) && !t.holds(10, None));
        let t = Threshold::parse("!=0").unwrap();
        assert!(t.holds(1, None) && !t.holds(0, None));
        let t = Threshold::parse("> 5%").unwrap();
        assert!(t.holds(6, Some(100)) && !t.holds(5, Some(100)));
        assert!(Threshold::parse("ten").is_none());
        assert!(Threshold::parse(">x").is_none());
    }
}
