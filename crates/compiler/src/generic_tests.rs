//! Generic data tests declared in properties YAML: parsing the entries
//! (`- unique`, `- accepted_values: {values: [...]}`, dbt 1.10's
//! `arguments:`), naming them as dbt does, and the SQL of the built-in ones.
//! A test's SQL returns the failing rows.

use md5::{Digest, Md5};
use serde_json::{Map, Value as Json};

use crate::config::{ConfigMap, normalize_key};

/// Keys of a test entry that configure the test rather than parametrize it.
const CONFIG_KEYS: &[&str] = &[
    "severity",
    "tags",
    "enabled",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "store_failures",
    "store_failures_as",
    "meta",
    "alias",
    "schema",
    "database",
];

/// The generic tests lake compiles itself (a project macro named
/// `test_<name>` overrides them, as in dbt).
pub const BUILTIN: &[&str] = &[
    "unique",
    "not_null",
    "accepted_values",
    "relationships",
    "accepted_range",
    "expression_is_true",
    "row_count",
    "unique_combination_of_columns",
    "not_empty",
    "drift",
];

/// Which earlier version of a table a `drift` test compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftReference {
    /// The version before the current one.
    Previous,
    Version(u64),
    /// An RFC 3339 instant (or a date); the last commit at or before it.
    Timestamp(String),
}

/// The statistics a `drift` test computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMethod {
    /// PSI and, for numeric columns, KS.
    Auto,
    Psi,
    Ks,
}

/// The arguments of a `drift` test.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSpec {
    pub method: DriftMethod,
    /// Fail when the Population Stability Index is above this.
    pub psi_max: f64,
    /// Fail when the Kolmogorov-Smirnov statistic is above this.
    pub ks_max: f64,
    /// Quantile bins of the reference for a numeric column's PSI.
    pub bins: u32,
    pub reference: DriftReference,
}

impl DriftSpec {
    pub const DEFAULT_PSI_MAX: f64 = 0.2;
    pub const DEFAULT_KS_MAX: f64 = 0.1;
    pub const DEFAULT_BINS: u32 = 10;

    pub fn from_kwargs(kwargs: &Map<String, Json>) -> Result<DriftSpec, String> {
        const KNOWN: &[&str] = &[
            "column_name",
            "model",
            "method",
            "psi_max",
            "ks_max",
            "bins",
            "version",
            "timestamp",
        ];
        if let Some(unknown) = kwargs.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "test 'drift' has no argument '{unknown}'; it takes method, psi_max, ks_max, bins, version and timestamp"
            ));
        }
        let number = |name: &str, default: f64| -> Result<f64, String> {
            match number_arg(kwargs, &[name])? {
                None => Ok(default),
                Some(text) => match text.parse::<f64>() {
                    Ok(v) if v >= 0.0 => Ok(v),
                    _ => Err(format!("`{name}` of test 'drift' must be a number >= 0")),
                },
            }
        };
        let method = match kwargs.get("method").and_then(Json::as_str) {
            None => DriftMethod::Auto,
            Some("psi") => DriftMethod::Psi,
            Some("ks") => DriftMethod::Ks,
            Some(other) => {
                return Err(format!(
                    "`method` of test 'drift' is 'psi' or 'ks' (both when left out), not '{other}'"
                ));
            }
        };
        let bins = match kwargs.get("bins") {
            None | Some(Json::Null) => Self::DEFAULT_BINS,
            Some(v) => match v.as_u64() {
                Some(b) if (2..=1000).contains(&b) => b as u32,
                _ => {
                    return Err(format!(
                        "`bins` of test 'drift' must be a whole number from 2 to 1000, not {v}"
                    ));
                }
            },
        };
        let reference = match (kwargs.get("version"), kwargs.get("timestamp")) {
            (Some(_), Some(_)) => {
                return Err("test 'drift' takes `version` or `timestamp`, not both".into());
            }
            (Some(v), None) => match v.as_u64() {
                Some(n) => DriftReference::Version(n),
                None => {
                    return Err(format!(
                        "`version` of test 'drift' must be a Delta version number, not {v}"
                    ));
                }
            },
            (None, Some(t)) => match t.as_str() {
                Some(t) if !t.trim().is_empty() => DriftReference::Timestamp(t.trim().to_string()),
                _ => {
                    return Err(format!(
                        "`timestamp` of test 'drift' must be a string such as '2026-11-01T00:00:00Z', not {t}"
                    ));
                }
            },
            (None, None) => DriftReference::Previous,
        };
        Ok(DriftSpec {
            method,
            psi_max: number("psi_max", Self::DEFAULT_PSI_MAX)?,
            ks_max: number("ks_max", Self::DEFAULT_KS_MAX)?,
            bins,
            reference,
        })
    }
}

/// One test entry of a properties file.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// The test's name, without a package namespace (`dbt_utils.x` -> `x`).
    pub test_name: String,
    pub namespace: Option<String>,
    /// `name:` given by the user, replacing the generated one.
    pub custom_name: Option<String>,
    /// The test's arguments, as written (strings not yet rendered).
    pub kwargs: Map<String, Json>,
    pub config: ConfigMap,
}

/// Parses one entry of a `tests:`/`data_tests:` list.
pub fn parse_entry(entry: &Json) -> Result<TestSpec, String> {
    let (full_name, body) = match entry {
        Json::String(name) => (name.clone(), Map::new()),
        Json::Object(map) if map.len() == 1 => {
            let (name, body) = map.iter().next().expect("one entry");
            let body = match body {
                Json::Null => Map::new(),
                Json::Object(b) => b.clone(),
                other => {
                    return Err(format!(
                        "the arguments of test '{name}' must be a mapping, not {other}"
                    ));
                }
            };
            (name.clone(), body)
        }
        Json::Object(map) => {
            // `- name: x` + `test_name: unique` + arguments (dbt's long form).
            match map.get("test_name").and_then(Json::as_str) {
                Some(test_name) => {
                    let mut body = map.clone();
                    body.remove("test_name");
                    (test_name.to_string(), body)
                }
                None => {
                    return Err(format!(
                        "a test entry is a name (`- unique`) or a mapping with one key (`- accepted_values: {{...}}`); got keys {}",
                        map.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "a test entry must be a name or a mapping, not {other}"
            ));
        }
    };
    let (namespace, test_name) = match full_name.rsplit_once('.') {
        Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
        None => (None, full_name.clone()),
    };
    let mut kwargs = Map::new();
    let mut config = ConfigMap::new();
    let mut custom_name = None;
    for (key, value) in body {
        match key.as_str() {
            "config" => match value {
                Json::Object(c) => crate::config::merge(&mut config, &c),
                _ => return Err(format!("`config` of test '{full_name}' must be a mapping")),
            },
            "arguments" => match value {
                Json::Object(a) => kwargs.extend(a),
                _ => {
                    return Err(format!(
                        "`arguments` of test '{full_name}' must be a mapping"
                    ));
                }
            },
            "name" => custom_name = value.as_str().map(str::to_string),
            "description" => {}
            k if CONFIG_KEYS.contains(&normalize_key(k).as_str()) => {
                config.insert(normalize_key(k), value);
            }
            _ => {
                kwargs.insert(key, value);
            }
        }
    }
    Ok(TestSpec {
        test_name,
        namespace,
        custom_name,
        kwargs,
        config,
    })
}

/// dbt's test naming: `<test>_<model>_<args...>`, where the args are the
/// argument values in key order, cleaned to `[0-9a-zA-Z_]`. Returns the
/// full name and a short one (`<first 30 chars>_<md5>`) for names of 64
/// characters or more, which dbt uses for file names.
pub fn synthesize_name(
    test_name: &str,
    target_name: &str,
    args: &Map<String, Json>,
) -> (String, String) {
    let mut keys: Vec<&String> = args.keys().filter(|k| k.as_str() != "model").collect();
    keys.sort();
    let mut flat = Vec::new();
    for key in keys {
        match &args[key] {
            Json::Object(m) => flat.extend(m.values().map(json_str)),
            Json::Array(items) => flat.extend(items.iter().map(json_str)),
            other => flat.push(json_str(other)),
        }
    }
    let clean: Vec<String> = flat.iter().map(|a| clean_arg(a)).collect();
    let identifier = format!("{test_name}_{target_name}");
    let full = format!("{identifier}_{}", clean.join("__"));
    let short = if full.len() >= 64 {
        let prefix: String = identifier.chars().take(30).collect();
        format!("{prefix}_{}", md5_hex(&full))
    } else {
        full.clone()
    };
    (full, short)
}

/// Python's `str()` of a YAML value, as dbt applies it to test arguments.
fn json_str(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `re.sub("[^0-9a-zA-Z_]+", "_", arg)`
fn clean_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut in_run = false;
    for c in arg.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

pub fn md5_hex(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The relation a test reads: the model, filtered by the test's `where`.
pub fn test_relation(relation: &str, where_: Option<&str>) -> String {
    match where_ {
        Some(w) => format!("(select * from {relation} where {w}) dbt_subquery"),
        None => relation.to_string(),
    }
}

/// Quotes a SQL string literal.
pub fn sql_literal(value: &Json) -> String {
    match value {
        Json::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", json_str(other).replace('\'', "''")),
    }
}

/// The SQL of a built-in generic test. `model` is the tested relation
/// (already filtered by `where`); `kwargs` are rendered (a `to:` relation is
/// its final name). `Ok(None)` means "not a built-in".
pub fn builtin_sql(
    test_name: &str,
    model: &str,
    column: Option<&str>,
    kwargs: &Map<String, Json>,
) -> Result<Option<String>, String> {
    let need_column = || {
        column.ok_or_else(|| {
            format!("test '{test_name}' needs a column: declare it under `columns:`")
        })
    };
    let sql = match test_name {
        "not_null" => {
            let c = need_column()?;
            format!("select {c}\nfrom {model}\nwhere {c} is null\n")
        }
        "unique" => {
            let c = need_column()?;
            format!(
                "select\n    {c} as unique_field,\n    count(*) as n_records\nfrom {model}\nwhere {c} is not null\ngroup by {c}\nhaving count(*) > 1\n"
            )
        }
        "accepted_values" => {
            let c = need_column()?;
            let values = kwargs
                .get("values")
                .and_then(Json::as_array)
                .ok_or("test 'accepted_values' needs `values:`, a list")?;
            let quote = kwargs.get("quote").and_then(Json::as_bool).unwrap_or(true);
            let list: Vec<String> = values
                .iter()
                .map(|v| if quote { sql_literal(v) } else { json_str(v) })
                .collect();
            format!(
                "with all_values as (\n    select\n        {c} as value_field,\n        count(*) as n_records\n    from {model}\n    group by {c}\n)\nselect *\nfrom all_values\nwhere value_field not in (\n    {}\n)\n",
                list.join(", ")
            )
        }
        "relationships" => {
            let c = need_column()?;
            let to = kwargs
                .get("to")
                .and_then(Json::as_str)
                .ok_or("test 'relationships' needs `to:`, for example `to: ref('customers')`")?;
            let field = kwargs
                .get("field")
                .and_then(Json::as_str)
                .ok_or("test 'relationships' needs `field:`, the column in the parent")?;
            format!(
                "with child as (\n    select {c} as from_field\n    from {model}\n    where {c} is not null\n),\n\nparent as (\n    select {field} as to_field\n    from {to}\n)\n\nselect\n    from_field\nfrom child\nleft join parent\n    on child.from_field = parent.to_field\nwhere parent.to_field is null\n"
            )
        }
        "accepted_range" => {
            let c = need_column()?;
            let min = number_arg(kwargs, &["min_value", "min"])?;
            let max = number_arg(kwargs, &["max_value", "max"])?;
            if min.is_none() && max.is_none() {
                return Err("test 'accepted_range' needs `min_value`, `max_value` or both".into());
            }
            let inclusive = kwargs
                .get("inclusive")
                .and_then(Json::as_bool)
                .unwrap_or(true);
            let eq = if inclusive { "=" } else { "" };
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("not {c} >{eq} {min}"));
            }
            if let Some(max) = max {
                outside.push(format!("not {c} <{eq} {max}"));
            }
            format!(
                "select *\nfrom {model}\nwhere {}\n",
                outside.join("\n   or ")
            )
        }
        "expression_is_true" => {
            let expression = kwargs
                .get("expression")
                .and_then(Json::as_str)
                .ok_or("test 'expression_is_true' needs `expression:`, for example `expression: \"amount >= 0\"`")?;
            match column {
                Some(c) => format!("select *\nfrom {model}\nwhere not ({c} {expression})\n"),
                None => format!("select *\nfrom {model}\nwhere not ({expression})\n"),
            }
        }
        "row_count" => {
            let min = number_arg(kwargs, &["min_value", "min"])?;
            let max = number_arg(kwargs, &["max_value", "max"])?;
            let mut bounds = Vec::new();
            if let Some(min) = min {
                bounds.push(format!("count(*) >= {min}"));
            }
            if let Some(max) = max {
                bounds.push(format!("count(*) <= {max}"));
            }
            if bounds.is_empty() {
                return Err("test 'row_count' needs `min_value`, `max_value` or both".into());
            }
            // One failing row when the count is out of bounds.
            format!(
                "select count(*) as row_count\nfrom {model}\nhaving not ({})\n",
                bounds.join(" and ")
            )
        }
        "unique_combination_of_columns" => {
            let columns: Vec<String> = kwargs
                .get("combination_of_columns")
                .and_then(Json::as_array)
                .map(|cs| cs.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
                .filter(|cs: &Vec<String>| !cs.is_empty())
                .ok_or("test 'unique_combination_of_columns' needs `combination_of_columns:`, a list of columns")?;
            let list = columns.join(", ");
            format!(
                "select {list}, count(*) as n_records\nfrom {model}\ngroup by {list}\nhaving count(*) > 1\n"
            )
        }
        "drift" => {
            let c = need_column()?;
            let spec = DriftSpec::from_kwargs(kwargs)?;
            let against = match &spec.reference {
                DriftReference::Previous => "the previous Delta version".to_string(),
                DriftReference::Version(v) => format!("Delta version {v}"),
                DriftReference::Timestamp(t) => format!("the Delta version as of {t}"),
            };
            // lake's engine computes the statistics over two versions of the
            // table; this query is the current side of the comparison.
            format!(
                "-- drift of {c}: this version against {against} (PSI, KS), computed by lake\nselect {c}\nfrom {model}\n"
            )
        }
        "not_empty" => format!(
            "select 1 as empty_table\nfrom (select count(*) as n from {model}) t\nwhere n = 0\n"
        ),
        _ => return Ok(None),
    };
    Ok(Some(sql))
}

/// A numeric argument under any of `names`, as SQL text.
fn number_arg(kwargs: &Map<String, Json>, names: &[&str]) -> Result<Option<String>, String> {
    for name in names {
        match kwargs.get(*name) {
            None | Some(Json::Null) => continue,
            Some(Json::Number(n)) => return Ok(Some(n.to_string())),
            Some(Json::String(s)) if s.trim().parse::<f64>().is_ok() => {
                return Ok(Some(s.trim().to_string()));
            }
            Some(other) => return Err(format!("`{name}` must be a number, not {other}")),
        }
    }
    Ok(None)
}

/// dbt renders string arguments that look like a call (`ref('x')`,
/// `var('y')`) as Jinja expressions.
pub fn looks_like_call(value: &str) -> bool {
    let v = value.trim();
    ["ref(", "source(", "var(", "env_var(", "doc("]
        .iter()
        .any(|p| v.starts_with(p))
        && v.ends_with(')')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_match_dbt() {
        let (full, short) = synthesize_name(
            "relationships",
            "orders",
            &args(
                json!({"column_name": "customer_id", "to": "ref('customers')", "field": "customer_id"}),
            ),
        );
        assert_eq!(
            full,
            "relationships_orders_customer_id__customer_id__ref_customers_"
        );
        assert_eq!(short, full);
        let (full, _) = synthesize_name(
            "unique",
            "customers",
            &args(json!({"column_name": "customer_id"})),
        );
        assert_eq!(full, "unique_customers_customer_id");
        let (full, short) = synthesize_name(
            "accepted_values",
            "stg_orders",
            &args(
                json!({"column_name": "status", "values": ["placed", "shipped", "completed", "return_pending", "returned"]}),
            ),
        );
        assert_eq!(
            full,
            "accepted_values_stg_orders_status__placed__shipped__completed__return_pending__returned"
        );
        assert!(short.starts_with("accepted_values_stg_orders_"));
        assert_eq!(short.len(), "accepted_values_stg_orders".len() + 1 + 32);
    }

    #[test]
    fn parses_all_entry_shapes() {
        let t = parse_entry(&json!("unique")).unwrap();
        assert_eq!(t.test_name, "unique");
        let t = parse_entry(&json!({"accepted_values": {"values": ["a"], "severity": "warn", "config": {"where": "x > 1"}}})).unwrap();
        assert_eq!(t.kwargs, args(json!({"values": ["a"]})));
        assert_eq!(
            t.config,
            args(json!({"severity": "warn", "where": "x > 1"}))
        );
        let t = parse_entry(&json!({"dbt_utils.expression_is_true": {"arguments": {"expression": "a > 0"}, "name": "positive"}})).unwrap();
        assert_eq!(t.namespace.as_deref(), Some("dbt_utils"));
        assert_eq!(t.custom_name.as_deref(), Some("positive"));
        assert_eq!(t.kwargs, args(json!({"expression": "a > 0"})));
        assert!(parse_entry(&json!(["x"])).is_err());
        assert!(parse_entry(&json!({"a": 1, "b": 2})).is_err());
    }

    #[test]
    fn extra_tests_sql() {
        let sql = builtin_sql(
            "accepted_range",
            "m",
            Some("a"),
            &args(json!({"min_value": 0, "max_value": 10, "inclusive": false})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(sql, "select *\nfrom m\nwhere not a > 0\n   or not a < 10\n");
        let sql = builtin_sql("row_count", "m", None, &args(json!({"min_value": 1})))
            .unwrap()
            .unwrap();
        assert!(sql.contains("having not (count(*) >= 1)"), "{sql}");
        let sql = builtin_sql(
            "unique_combination_of_columns",
            "m",
            None,
            &args(json!({"combination_of_columns": ["a", "b"]})),
        )
        .unwrap()
        .unwrap();
        assert!(sql.contains("group by a, b"), "{sql}");
        assert!(builtin_sql("accepted_range", "m", Some("a"), &Map::new()).is_err());
        assert!(
            builtin_sql(
                "accepted_range",
                "m",
                Some("a"),
                &args(json!({"min_value": "x"}))
            )
            .is_err()
        );
        assert!(builtin_sql("unique_combination_of_columns", "m", None, &Map::new()).is_err());
        let sql = builtin_sql(
            "expression_is_true",
            "m",
            Some("a"),
            &args(json!({"expression": ">= 0"})),
        )
        .unwrap()
        .unwrap();
        assert!(sql.contains("where not (a >= 0)"), "{sql}");
    }

    #[test]
    fn drift_arguments() {
        let spec = DriftSpec::from_kwargs(&args(json!({}))).unwrap();
        assert_eq!(spec.reference, DriftReference::Previous);
        assert_eq!((spec.psi_max, spec.ks_max, spec.bins), (0.2, 0.1, 10));
        let spec = DriftSpec::from_kwargs(&args(
            json!({"method": "ks", "version": 3, "ks_max": "0.05"}),
        ))
        .unwrap();
        assert_eq!(spec.method, DriftMethod::Ks);
        assert_eq!(spec.reference, DriftReference::Version(3));
        assert_eq!(spec.ks_max, 0.05);
        for (bad, needle) in [
            (json!({"method": "chi2"}), "'psi' or 'ks'"),
            (json!({"version": 1, "timestamp": "2026-01-01"}), "not both"),
            (json!({"version": -1}), "Delta version number"),
            (json!({"bins": 1}), "from 2 to 1000"),
            (json!({"psi_max": "high"}), "must be a number"),
            (json!({"psi": 0.1}), "no argument 'psi'"),
        ] {
            let err = DriftSpec::from_kwargs(&args(bad)).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let sql = builtin_sql(
            "drift",
            "curated.m",
            Some("x"),
            &args(json!({"version": 2})),
        )
        .unwrap()
        .unwrap();
        assert!(
            sql.contains("against Delta version 2") && sql.contains("select x\nfrom curated.m"),
            "{sql}"
        );
        assert!(builtin_sql("drift", "curated.m", None, &args(json!({}))).is_err());
    }

    #[test]
    fn builtin_sql_returns_failing_rows() {
        let sql = builtin_sql(
            "accepted_values",
            "curated.orders",
            Some("status"),
            &args(json!({"values": ["a", "it's"]})),
        )
        .unwrap()
        .unwrap();
        assert!(sql.contains("not in (\n    'a', 'it''s'\n)"), "{sql}");
        let sql = builtin_sql(
            "accepted_values",
            "m",
            Some("n"),
            &args(json!({"values": [1, 2], "quote": false})),
        )
        .unwrap()
        .unwrap();
        assert!(sql.contains("not in (\n    1, 2\n)"), "{sql}");
        assert!(builtin_sql("unique", "m", None, &Map::new()).is_err());
        assert!(
            builtin_sql("my_custom", "m", None, &Map::new())
                .unwrap()
                .is_none()
        );
    }
}
