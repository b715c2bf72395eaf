//! Model contracts: `contract: {enforced: true}` with `columns:` that carry a
//! `data_type` and `constraints`, and model-level `constraints:`.
//!
//! The compiler validates the declarations (so a typo fails at compile time
//! with the file and line); the engine enforces them before a model's Delta
//! commit using [`Constraint`]s parsed here.

use serde_json::Value as Json;

use crate::manifest::Node;

/// What a constraint demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKind {
    NotNull,
    Unique,
    /// Not null and unique together.
    PrimaryKey,
    /// A SQL boolean expression every row satisfies (NULL passes, as in SQL).
    Check(String),
    /// Declared for documentation; like most warehouses, lake does not
    /// enforce it.
    ForeignKey,
    /// Platform-specific DDL that lake cannot interpret; not enforced.
    Custom,
}

/// One constraint of a model, with the columns it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    pub columns: Vec<String>,
    pub name: Option<String>,
}

impl Constraint {
    /// Whether lake checks it before writing.
    pub fn is_enforced(&self) -> bool {
        !matches!(
            self.kind,
            ConstraintKind::ForeignKey | ConstraintKind::Custom
        )
    }

    /// `not_null(customer_id)`, `check(amount >= 0)`, ... for messages.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            ConstraintKind::NotNull => "not_null",
            ConstraintKind::Unique => "unique",
            ConstraintKind::PrimaryKey => "primary_key",
            ConstraintKind::Check(_) => "check",
            ConstraintKind::ForeignKey => "foreign_key",
            ConstraintKind::Custom => "custom",
        };
        let inside = match &self.kind {
            ConstraintKind::Check(e) => e.clone(),
            _ => self.columns.join(", "),
        };
        match &self.name {
            Some(n) => format!("{what} '{n}' ({inside})"),
            None => format!("{what}({inside})"),
        }
    }

    /// Parses one `constraints:` entry; `column` is set for column-level
    /// entries, which cover that column unless they name others.
    pub fn parse(entry: &Json, column: Option<&str>) -> Result<Constraint, String> {
        let obj = entry
            .as_object()
            .ok_or_else(|| format!("a constraint is a mapping with a `type`, not {entry}"))?;
        let kind_name = obj
            .get("type")
            .and_then(Json::as_str)
            .ok_or("a constraint needs a `type` (not_null, unique, primary_key, check, foreign_key or custom)")?;
        let mut columns: Vec<String> = match obj.get("columns") {
            None | Some(Json::Null) => vec![],
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("constraint columns are names, not {i}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("constraint columns are names, not {other}")),
        };
        if columns.is_empty()
            && let Some(c) = column
        {
            columns.push(c.to_string());
        }
        let expression = obj.get("expression").and_then(Json::as_str).map(str::trim);
        let kind = match kind_name {
            "not_null" => ConstraintKind::NotNull,
            "unique" => ConstraintKind::Unique,
            "primary_key" => ConstraintKind::PrimaryKey,
            "check" => match expression {
                Some(e) if !e.is_empty() => ConstraintKind::Check(e.to_string()),
                _ => return Err("a check constraint needs an `expression`".into()),
            },
            "foreign_key" => ConstraintKind::ForeignKey,
            "custom" => ConstraintKind::Custom,
            other => {
                return Err(format!(
                    "unknown constraint type '{other}'; lake knows not_null, unique, primary_key, check, foreign_key and custom"
                ));
            }
        };
        let needs_columns = matches!(
            kind,
            ConstraintKind::NotNull | ConstraintKind::Unique | ConstraintKind::PrimaryKey
        );
        if needs_columns && columns.is_empty() {
            return Err(format!(
                "a model-level {kind_name} constraint needs `columns: [...]`"
            ));
        }
        Ok(Constraint {
            kind,
            columns,
            name: obj.get("name").and_then(Json::as_str).map(str::to_string),
        })
    }
}

/// Every constraint entry of a model, parsed: its columns' then its own.
fn parse_all(node: &Node) -> impl Iterator<Item = Result<Constraint, String>> + '_ {
    let of_columns = node.columns.values().flat_map(|column| {
        column.constraints.iter().map(|entry| {
            Constraint::parse(entry, Some(&column.name))
                .map_err(|e| format!("column '{}': {e}", column.name))
        })
    });
    of_columns.chain(
        node.constraints
            .iter()
            .map(|entry| Constraint::parse(entry, None)),
    )
}

/// Every constraint of a model, or the first problem with one.
pub fn constraints_of(node: &Node) -> Result<Vec<Constraint>, String> {
    parse_all(node).collect()
}

/// The problems with a model's contract declarations, for the compiler.
pub fn validate(node: &Node) -> Vec<String> {
    let mut problems: Vec<String> = parse_all(node).filter_map(Result::err).collect();
    if !node.config.contract.enforced {
        return problems;
    }
    if node.config.materialized == "ephemeral" {
        problems.push(
            "contracts are not supported on ephemeral models: there is no relation to check".into(),
        );
    }
    if node.columns.is_empty() {
        problems.push(
            "the contract is enforced but the model declares no `columns:` with a `data_type`"
                .into(),
        );
    }
    for column in node.columns.values() {
        if column
            .data_type
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
        {
            problems.push(format!(
                "the contract is enforced but column '{}' has no `data_type`",
                column.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_column_and_model_constraints() {
        let c = Constraint::parse(&json!({"type": "not_null"}), Some("id")).unwrap();
        assert_eq!(c.kind, ConstraintKind::NotNull);
        assert_eq!(c.columns, ["id"]);
        let c = Constraint::parse(
            &json!({"type": "check", "expression": "a > 0", "name": "pos"}),
            None,
        )
        .unwrap();
        assert_eq!(c.kind, ConstraintKind::Check("a > 0".into()));
        assert_eq!(c.describe(), "check 'pos' (a > 0)");
        let c = Constraint::parse(&json!({"type": "primary_key", "columns": ["a", "b"]}), None)
            .unwrap();
        assert_eq!(c.columns, ["a", "b"]);
        assert!(
            !Constraint::parse(&json!({"type": "foreign_key"}), Some("x"))
                .unwrap()
                .is_enforced()
        );
    }

    #[test]
    fn rejects_bad_constraints() {
        for (entry, needle) in [
            (
                json!({"type": "not_nul"}),
                "unknown constraint type 'not_nul'",
            ),
            (json!({"type": "check"}), "needs an `expression`"),
            (json!({"expression": "x"}), "needs a `type`"),
            (json!({"type": "unique"}), "needs `columns"),
            (json!("not_null"), "is a mapping"),
        ] {
            let err = Constraint::parse(&entry, None).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
