//! Planning a client's SQL for a principal: time travel rewritten to pinned
//! names, one statement, zones checked before anything is opened, planned
//! in the request's own catalog (roles, masks, pins), writes and settings
//! refused, parameters bound, and "did you mean" for unknown tables.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, Statement as PlanStatement, cast};
use datafusion::prelude::{Expr, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use lake_auth::Principal;
use lake_engine::{EngineError, LakeSession};
use lake_storage::{CATALOG, ZONES};

use crate::error::{NO_SUGGESTION, ServeError};
use crate::pinned::{PiiColumns, Pins, RequestCatalog, request_context};
use crate::ticket::BoundParams;

/// Why the serving session never writes.
const READ_ONLY: &str = "the server is read-only: it answers queries; tables are written by \
     `lake build` and by bulk ingest";

/// A statement planned for one request.
pub(crate) struct Planned {
    pub ctx: SessionContext,
    pub catalog: RequestCatalog,
    /// The SQL as planned (time travel rewritten to pinned names).
    pub sql: String,
    pub plan: LogicalPlan,
}

/// What to do with placeholders (`$1`).
pub(crate) enum Params<'a> {
    /// Leave them in the plan (creating a prepared statement).
    Unbound,
    /// Replace them with these values; a missing value is an error.
    Bind(&'a BoundParams),
}

/// Plans `sql` for `principal` over `session`'s lake at `pins`.
pub(crate) async fn plan(
    session: &LakeSession,
    principal: &Principal,
    pii: &Arc<PiiColumns>,
    sql: &str,
    pins: Pins,
    params: Params<'_>,
) -> Result<Planned, ServeError> {
    let sql = lake_engine::sql::rewrite_time_travel(&number_question_marks(sql)?)
        .map_err(engine_error)?;
    let (ctx, catalog) = request_context(session, principal, pii, pins);
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(&sql, &dialect)?;
    check_references(&state, &catalog, &statement)?;
    let plan = match state.statement_to_plan(statement).await {
        Ok(plan) => plan,
        Err(e) => return Err(with_suggestion(ServeError::from(e), session, &catalog).await),
    };
    refuse_writes(&plan)?;
    check_scans(&plan, &catalog)?;
    let plan = match params {
        Params::Unbound => plan,
        Params::Bind(values) => bind(plan, values)?,
    };
    let plan = without_view_types(plan)?;
    Ok(Planned {
        ctx,
        catalog,
        sql,
        plan,
    })
}

/// JDBC's and ODBC's `?` placeholders as `$1`, `$2`, ... in order of
/// appearance: DataFusion names every `?` alike, so they could not be bound
/// one by one.
fn number_question_marks(sql: &str) -> Result<String, ServeError> {
    if !sql.contains('?') {
        return Ok(sql.to_owned());
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| ServeError::BadQuery(format!("cannot read the statement: {e}")))?;
    if !tokens
        .iter()
        .any(|t| matches!(t, Token::Placeholder(p) if p == "?"))
    {
        return Ok(sql.to_owned());
    }
    let mut next = 0;
    Ok(tokens
        .into_iter()
        .map(|token| match token {
            Token::Placeholder(p) if p == "?" => {
                next += 1;
                format!("${next}")
            }
            other => other.to_string(),
        })
        .collect())
}

/// The type a column is served as: strings and binaries without
/// DataFusion's view types (which Delta scans produce). Flight's encoder
/// writes every data buffer of a view array into each slice of a batch, so
/// messages could pass gRPC's 4 MiB limit; and older clients (JDBC) do not
/// read view types.
pub(crate) fn served_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// `plan` with its view-typed output columns cast to [`served_type`].
fn without_view_types(plan: LogicalPlan) -> Result<LogicalPlan, ServeError> {
    let schema = plan.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|f| served_type(f.data_type()).is_some())
    {
        return Ok(plan);
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column((qualifier, field).into());
            match served_type(field.data_type()) {
                Some(to) => cast(column, to).alias_qualified(qualifier.cloned(), field.name()),
                None => column,
            }
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(columns)?.build()?)
}

/// A schema as [`served_type`] serves it (GetTables' table schemas).
pub(crate) fn served_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match served_type(f.data_type()) {
            Some(to) => f.as_ref().clone().with_data_type(to),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn engine_error(e: EngineError) -> ServeError {
    match e {
        EngineError::Query(message) => ServeError::BadQuery(message),
        other => ServeError::Internal(other.to_string()),
    }
}

/// Refuses a statement naming a zone the principal may not read, before
/// any table is opened.
fn check_references(
    state: &SessionState,
    catalog: &RequestCatalog,
    statement: &Statement,
) -> Result<(), ServeError> {
    let defaults = &state.config_options().catalog;
    for reference in state.resolve_table_references(statement)? {
        let resolved = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        let zone = resolved.schema.as_ref();
        if resolved.catalog.as_ref() == CATALOG && ZONES.contains(&zone) && !catalog.may_read(zone)
        {
            return Err(catalog.zone_denied(zone));
        }
    }
    Ok(())
}

/// Refuses DDL, DML, COPY and session statements (SET, transactions,
/// PREPARE), whatever the role.
fn refuse_writes(plan: &LogicalPlan) -> Result<(), ServeError> {
    let refused = |statement: String, reason: &str| ServeError::Refused {
        statement,
        reason: reason.to_string(),
    };
    match plan {
        LogicalPlan::Ddl(ddl) => {
            return Err(refused(
                format!("{} (DDL)", ddl_name(ddl.name())),
                READ_ONLY,
            ));
        }
        LogicalPlan::Dml(dml) => {
            let op = dml.op.to_string().to_ascii_uppercase();
            return Err(refused(format!("{op} (DML)"), READ_ONLY));
        }
        LogicalPlan::Copy(_) => {
            return Err(refused("COPY".into(), "the server does not write files"));
        }
        LogicalPlan::Statement(statement) => {
            let name = match statement {
                PlanStatement::SetVariable(_) => "SET".to_string(),
                PlanStatement::ResetVariable(_) => "RESET".to_string(),
                other => other.name().to_string(),
            };
            return Err(refused(
                name,
                "the serving session's settings are fixed and it has no transactions or \
                 server-side statements (use a prepared statement)",
            ));
        }
        _ => {}
    }
    // Anything nested (EXPLAIN of a write, say).
    lake_storage::read_only().verify_plan(plan).map_err(|e| {
        refused(
            "this statement".into(),
            &format!("{} ({READ_ONLY})", e.message()),
        )
    })
}

/// `CREATE EXTERNAL TABLE` for DataFusion's `CreateExternalTable`.
fn ddl_name(name: &str) -> String {
    // `CREATE TABLE ... AS` plans as an in-memory table.
    if name == "CreateMemoryTable" {
        return "CREATE TABLE".to_string();
    }
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

/// The zones of the plan's scans, views expanded: a second line of defence
/// behind the catalog, which refuses unreadable zones itself.
fn check_scans(plan: &LogicalPlan, catalog: &RequestCatalog) -> Result<(), ServeError> {
    let mut denied = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(zone) = scan.table_name.schema()
            && ZONES.contains(&zone)
            && !catalog.may_read(zone)
        {
            denied = Some(zone.to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match denied {
        Some(zone) => Err(catalog.zone_denied(&zone)),
        None => Ok(()),
    }
}

/// The placeholders of `plan` (`$1`, `$2` or `$name`), in order, with the
/// types DataFusion infers for them (`Null` when it cannot tell), as
/// [`served_type`]s.
pub(crate) fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, ServeError> {
    let fields = ordered_parameters(plan.get_parameter_types()?)
        .into_iter()
        .map(|(id, data_type)| {
            // Clients bind plain strings; `bind` casts them to what the plan wants.
            let data_type = data_type.unwrap_or(DataType::Null);
            let served = served_type(&data_type).unwrap_or(data_type);
            Field::new(id, served, true)
        })
        .collect::<Vec<_>>();
    Ok(Schema::new(fields))
}

/// Positional placeholders by number, then named ones by name.
fn ordered_parameters(types: HashMap<String, Option<DataType>>) -> Vec<(String, Option<DataType>)> {
    let mut params: Vec<(String, Option<DataType>)> = types.into_iter().collect();
    params.sort_by(|(a, _), (b, _)| {
        let number = |id: &str| id.trim_start_matches('$').parse::<usize>().ok();
        match (number(a), number(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
    params
}

/// Replaces the placeholders of `plan` with `params`, each cast to the type
/// the plan expects.
fn bind(plan: LogicalPlan, params: &BoundParams) -> Result<LogicalPlan, ServeError> {
    let wanted = ordered_parameters(plan.get_parameter_types()?);
    if wanted.is_empty() {
        if !params.is_empty() {
            return Err(ServeError::BadRequest(format!(
                "the statement has no parameters, but {} were bound",
                params.values.len()
            )));
        }
        return Ok(plan);
    }
    let names: Vec<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
    if params.is_empty() {
        return Err(ServeError::BadRequest(format!(
            "the statement has parameters ({}); bind their values first (DoPut with the \
             prepared statement's handle)",
            names.join(", ")
        )));
    }
    let cast = |id: &str, value: &ScalarValue, to: &Option<DataType>| match to {
        Some(to) if value.data_type() != *to && !to.is_null() => value.cast_to(to).map_err(|e| {
            ServeError::BadRequest(format!("parameter {id}: {value} is not a {to}: {e}"))
        }),
        _ => Ok(value.clone()),
    };
    let positional = wanted
        .iter()
        .all(|(id, _)| id.trim_start_matches('$').parse::<usize>().is_ok());
    let values = if positional {
        let types: HashMap<&str, &Option<DataType>> =
            wanted.iter().map(|(id, t)| (id.as_str(), t)).collect();
        let highest = wanted
            .iter()
            .filter_map(|(id, _)| id.trim_start_matches('$').parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        if params.values.len() != highest {
            return Err(ServeError::BadRequest(format!(
                "the statement has {highest} parameters, but {} values were bound",
                params.values.len()
            )));
        }
        let values = params
            .values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let id = format!("${}", i + 1);
                let to = types.get(id.as_str()).copied().unwrap_or(&None);
                cast(&id, value, to)
            })
            .collect::<Result<Vec<_>, _>>()?;
        ParamValues::from(values)
    } else {
        let mut values: Vec<(String, ScalarValue)> = Vec::new();
        for (id, to) in &wanted {
            let name = id.trim_start_matches('$');
            let position = params
                .names
                .iter()
                .position(|n| n.trim_start_matches('$') == name)
                .ok_or_else(|| ServeError::BadRequest(format!("no value was bound for {id}")))?;
            values.push((name.to_string(), cast(id, &params.values[position], to)?));
        }
        ParamValues::from(values)
    };
    Ok(plan.with_param_values(values)?)
}

/// Adds "did you mean" to an unknown table, among the tables the principal
/// may read.
async fn with_suggestion(
    error: ServeError,
    session: &LakeSession,
    catalog: &RequestCatalog,
) -> ServeError {
    let ServeError::TableNotFound { table, .. } = error else {
        return error;
    };
    let hint = match session
        .closest_table(&table, |zone| catalog.may_read(zone))
        .await
    {
        Some(s) => format!("did you mean {s}?"),
        None => NO_SUGGESTION.to_string(),
    };
    ServeError::TableNotFound { table, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ddl_in_sql_words() {
        assert_eq!(ddl_name("CreateExternalTable"), "CREATE EXTERNAL TABLE");
        assert_eq!(ddl_name("DropView"), "DROP VIEW");
        assert_eq!(ddl_name("CreateMemoryTable"), "CREATE TABLE");
    }

    #[test]
    fn orders_placeholders_by_number() {
        let types = HashMap::from([
            ("$10".to_string(), None),
            ("$2".to_string(), Some(DataType::Int64)),
            ("$1".to_string(), None),
        ]);
        let ids: Vec<String> = ordered_parameters(types)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["$1", "$2", "$10"]);
    }
}
