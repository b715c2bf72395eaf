//! The Flight SQL metadata commands: catalogs (`lake`), db schemas (the
//! zones the principal may read), tables and views (with their Arrow
//! schemas on request, masked as the principal sees them), table types,
//! primary keys (none: Delta tables have no keys), SqlInfo (what JDBC and
//! ADBC ask first) and XDBC type info.

use std::sync::Arc;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTableTypes,
    CommandGetTables, Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, XdbcDataType, XdbcDatetimeSubcode,
};
use datafusion::arrow::array::{RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::context::SessionState;
use lake_auth::Principal;
use lake_engine::LakeSession;
use lake_storage::{CATALOG, ZONES};

use crate::error::ServeError;
use crate::pinned::{PiiColumns, Pins, request_context};

/// The table types lake has.
pub(crate) const TABLE: &str = "TABLE";
pub(crate) const VIEW: &str = "VIEW";

fn arrow_error(e: impl std::fmt::Display) -> ServeError {
    ServeError::Internal(format!("building a metadata answer: {e}"))
}

pub(crate) fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, ServeError> {
    let mut builder = query.into_builder();
    builder.append(CATALOG);
    builder.build().map_err(arrow_error)
}

pub(crate) fn db_schemas(
    query: CommandGetDbSchemas,
    principal: &Principal,
) -> Result<RecordBatch, ServeError> {
    let mut builder = query.into_builder();
    for zone in ZONES.iter().filter(|z| principal.role.can_read_zone(z)) {
        builder.append(CATALOG, zone);
    }
    builder.build().map_err(arrow_error)
}

pub(crate) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, ServeError> {
    let mut builder = query.into_builder();
    builder.append(TABLE);
    builder.append(VIEW);
    builder.build().map_err(arrow_error)
}

/// The tables and views of the zones `principal` may read, filtered as the
/// command asks; their schemas are those the principal would query (PII
/// columns masked).
pub(crate) async fn tables(
    session: &LakeSession,
    principal: &Principal,
    pii: &Arc<PiiColumns>,
    query: CommandGetTables,
) -> Result<RecordBatch, ServeError> {
    let include_schema = query.include_schema;
    let catalog_ok = query.catalog.as_deref().is_none_or(|c| c == CATALOG);
    let zone_pattern = query.db_schema_filter_pattern.clone();
    let name_pattern = query.table_name_filter_pattern.clone();
    let types = query.table_types.clone();
    let mut builder = query.into_builder();
    if !catalog_ok {
        return builder.build().map_err(arrow_error);
    }
    // Listing goes to storage: other processes may have written tables.
    let _ = session.catalog().refresh().await;
    let (_, catalog) = request_context(session, principal, pii, Pins::default());
    let root = session.root();
    let wanted_type = |t: &str| types.is_empty() || types.iter().any(|w| w.eq_ignore_ascii_case(t));
    for zone in ZONES.iter().filter(|z| principal.role.can_read_zone(z)) {
        if !zone_pattern.as_deref().is_none_or(|p| like(p, zone)) {
            continue;
        }
        let mut entries: Vec<(String, &str)> = Vec::new();
        if wanted_type(TABLE) {
            entries.extend(
                root.list_tables(zone)
                    .await?
                    .into_iter()
                    .map(|t| (t, TABLE)),
            );
        }
        if wanted_type(VIEW) {
            entries.extend(
                root.views()
                    .list(zone)
                    .await?
                    .into_iter()
                    .map(|v| (v, VIEW)),
            );
        }
        for (name, table_type) in entries {
            if !name_pattern.as_deref().is_none_or(|p| like(p, &name)) {
                continue;
            }
            let schema = if include_schema {
                // A view that no longer plans is still listed, without columns.
                match catalog.table(zone, &name).await {
                    Ok(Some(provider)) => Arc::new(crate::query::served_schema(&provider.schema())),
                    Ok(None) | Err(_) => Arc::new(Schema::empty()),
                }
            } else {
                Arc::new(Schema::empty())
            };
            builder
                .append(CATALOG, zone, &name, table_type, &schema)
                .map_err(arrow_error)?;
        }
    }
    builder.build().map_err(arrow_error)
}

/// The columns of a GetPrimaryKeys answer (Flight SQL's fixed schema).
pub(crate) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Delta tables have no primary keys: always empty, but refused for a
/// table in a zone the principal may not read.
pub(crate) fn primary_keys(
    query: &CommandGetPrimaryKeys,
    principal: &Principal,
) -> Result<RecordBatch, ServeError> {
    if let Some(zone) = query.db_schema.as_deref()
        && ZONES.contains(&zone)
        && !principal.role.can_read_zone(zone)
    {
        return Err(ServeError::ZoneDenied {
            principal: principal.name.clone(),
            role: principal.role.to_string(),
            zone: zone.to_string(),
        });
    }
    let schema = primary_keys_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| new_empty_array(f.data_type()))
        .collect();
    RecordBatch::try_new(schema, columns).map_err(arrow_error)
}

/// SQL `LIKE` with `%` and `_`, as the Flight SQL filter patterns use it;
/// a backslash makes the next character literal (the search string escape).
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    enum Token {
        Any,
        One,
        Literal(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            other => Token::Literal(other),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // matches[j]: the tokens so far match text[..j].
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Any => {
                let mut any = false;
                for j in 0..=text.len() {
                    any |= matches[j];
                    next[j] = any;
                }
            }
            Token::One | Token::Literal(_) => {
                for j in 1..=text.len() {
                    next[j] = matches[j - 1]
                        && match token {
                            Token::Literal(c) => *c == text[j - 1],
                            _ => true,
                        };
                }
            }
        }
        matches = next;
    }
    matches[text.len()]
}

/// What the server tells JDBC and ADBC about itself. `read_only` is true
/// for principals that may not bulk-ingest.
pub(crate) fn sql_info(read_only: bool, state: &SessionState) -> Result<SqlInfoData, ServeError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "lake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow columnar format version (IPC metadata V5).
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5.0");
    b.append(SqlInfo::FlightSqlServerReadOnly, read_only);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, !read_only);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);

    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // Unquoted names fold to lower case; quoted ones keep their case.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // ORDER BY ... ASC puts NULLs last.
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    let keywords: Vec<String> = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    b.append(SqlInfo::SqlKeywords, keywords);
    let functions = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter(|n| state.scalar_functions().contains_key(**n))
            .map(|n| n.to_string())
            .collect()
    };
    b.append(
        SqlInfo::SqlNumericFunctions,
        functions(&[
            "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "degrees", "exp",
            "floor", "ln", "log", "log10", "log2", "mod", "pi", "power", "radians", "random",
            "round", "signum", "sin", "sqrt", "tan", "trunc",
        ]),
    );
    b.append(
        SqlInfo::SqlStringFunctions,
        functions(&[
            "ascii",
            "btrim",
            "char_length",
            "concat",
            "concat_ws",
            "initcap",
            "left",
            "length",
            "lower",
            "lpad",
            "ltrim",
            "octet_length",
            "regexp_replace",
            "repeat",
            "replace",
            "reverse",
            "right",
            "rpad",
            "rtrim",
            "split_part",
            "starts_with",
            "strpos",
            "substr",
            "translate",
            "trim",
            "upper",
        ]),
    );
    b.append(
        SqlInfo::SqlDatetimeFunctions,
        functions(&[
            "current_date",
            "current_time",
            "date_bin",
            "date_part",
            "date_trunc",
            "from_unixtime",
            "make_date",
            "now",
            "to_char",
            "to_date",
            "to_timestamp",
        ]),
    );
    b.append(
        SqlInfo::SqlSystemFunctions,
        functions(&["arrow_typeof", "version"]),
    );
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bitmask of SqlSupportedGroupBy: GROUP BY columns not in the select list.
    b.append(SqlInfo::SqlSupportedGroupBy, 1i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // Bitmask of SupportedSqlGrammar: minimum and core.
    b.append(SqlInfo::SqlSupportedGrammar, 0b011i32);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Bitmask of SqlSupportedSubqueries: comparisons, EXISTS, IN.
    b.append(SqlInfo::SqlSupportedSubqueries, 0b0111i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // Bitmask of SqlSupportedUnions: UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        // 0: no limit, or not known.
        b.append(limit, 0i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
    // Bitmask of SqlSupportedResultSetType: forward only.
    b.append(SqlInfo::SqlSupportedResultSetTypes, 0b10i32);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build().map_err(arrow_error)
}

/// The SQL types DataFusion reads and writes, for GetXdbcTypeInfo.
pub(crate) fn xdbc_type_info() -> Result<XdbcTypeInfoData, ServeError> {
    struct Type {
        name: &'static str,
        xdbc: XdbcDataType,
        sql: XdbcDataType,
        size: Option<i32>,
        quote: Option<&'static str>,
        subcode: Option<XdbcDatetimeSubcode>,
        radix: Option<i32>,
        unsigned: Option<bool>,
    }
    let number = |name, xdbc, size, radix| Type {
        name,
        xdbc,
        sql: xdbc,
        size: Some(size),
        quote: None,
        subcode: None,
        radix: Some(radix),
        unsigned: Some(false),
    };
    let time = |name, xdbc, subcode| Type {
        name,
        xdbc,
        sql: XdbcDataType::XdbcDatetime,
        size: None,
        quote: Some("'"),
        subcode: Some(subcode),
        radix: None,
        unsigned: None,
    };
    let types = [
        number("BOOLEAN", XdbcDataType::XdbcBit, 1, 2),
        number("TINYINT", XdbcDataType::XdbcTinyint, 8, 2),
        number("SMALLINT", XdbcDataType::XdbcSmallint, 16, 2),
        number("INTEGER", XdbcDataType::XdbcInteger, 32, 2),
        number("BIGINT", XdbcDataType::XdbcBigint, 64, 2),
        number("REAL", XdbcDataType::XdbcReal, 24, 2),
        number("DOUBLE", XdbcDataType::XdbcDouble, 53, 2),
        number("DECIMAL", XdbcDataType::XdbcDecimal, 38, 10),
        Type {
            name: "VARCHAR",
            xdbc: XdbcDataType::XdbcVarchar,
            sql: XdbcDataType::XdbcVarchar,
            size: None,
            quote: Some("'"),
            subcode: None,
            radix: None,
            unsigned: None,
        },
        Type {
            name: "VARBINARY",
            xdbc: XdbcDataType::XdbcVarbinary,
            sql: XdbcDataType::XdbcVarbinary,
            size: None,
            quote: None,
            subcode: None,
            radix: None,
            unsigned: None,
        },
        time(
            "DATE",
            XdbcDataType::XdbcDate,
            XdbcDatetimeSubcode::XdbcSubcodeYear,
        ),
        time(
            "TIME",
            XdbcDataType::XdbcTime,
            XdbcDatetimeSubcode::XdbcSubcodeTime,
        ),
        time(
            "TIMESTAMP",
            XdbcDataType::XdbcTimestamp,
            XdbcDatetimeSubcode::XdbcSubcodeTimestamp,
        ),
    ];
    let mut builder = XdbcTypeInfoDataBuilder::new();
    for t in types {
        let decimal = t.xdbc == XdbcDataType::XdbcDecimal;
        builder.append(XdbcTypeInfo {
            type_name: t.name.into(),
            data_type: t.xdbc,
            column_size: t.size,
            literal_prefix: t.quote.map(Into::into),
            literal_suffix: t.quote.map(Into::into),
            create_params: decimal.then(|| vec!["precision".into(), "scale".into()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive: t.xdbc == XdbcDataType::XdbcVarchar,
            searchable: Searchable::Full,
            unsigned_attribute: t.unsigned,
            fixed_prec_scale: false,
            auto_increment: Some(false),
            local_type_name: Some(t.name.into()),
            minimum_scale: decimal.then_some(0),
            maximum_scale: decimal.then_some(38),
            sql_data_type: t.sql,
            datetime_subcode: t.subcode,
            num_prec_radix: t.radix,
            interval_precision: None,
        });
    }
    builder.build().map_err(arrow_error)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("%", ""));
        assert!(like("ord%", "orders"));
        assert!(like("o_ders", "orders"));
        assert!(like("%der%", "orders"));
        assert!(!like("ord", "orders"));
        assert!(!like("_", ""));
        assert!(like("orders", "orders"));
        assert!(like("customer\\_stats", "customer_stats"));
        assert!(!like("customer\\_stats", "customerXstats"));
        assert!(like("100\\%", "100%"));
    }
}
