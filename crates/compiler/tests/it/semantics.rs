//! Config precedence, vars, targets, ephemeral CTEs, incremental
//! re-rendering, macros, fuel.

use lake_compiler::{CompileError, CompileOptions};

use super::{compile_fixture, compile_with, temp_project};

#[test]
fn config_precedence_file_over_properties_over_project() {
    let c = compile_fixture("features").unwrap();
    let m = &c.manifest;
    // Project: marts/daily -> incremental; properties: table; config(): none
    // for materialized, so the properties win over the project...
    let daily = &m.nodes["model.features.daily_events"];
    assert_eq!(daily.config.materialized, "table");
    // ...and config() in the file wins over both.
    assert_eq!(daily.config.incremental_strategy.as_deref(), Some("merge"));
    assert_eq!(daily.config.on_schema_change, "append_new_columns");
    let zone = &m.nodes["model.features.features_zone"];
    assert_eq!(zone.config.zone, "features");
    assert_eq!(
        zone.relation_name.as_deref(),
        Some("features.features_zone")
    );
    // Tags accumulate from every level.
    let stg = &m.nodes["model.features.stg_events"];
    assert_eq!(stg.tags, ["nightly", "events"]);
    assert_eq!(stg.config.materialized, "view");
    // Project test config (+severity: warn), overridden per test.
    let sev = |name: &str| {
        m.nodes
            .values()
            .find(|n| n.name == name)
            .and_then(|n| n.config.severity.clone())
    };
    assert_eq!(sev("not_null_stg_events_id").as_deref(), Some("warn"));
    assert_eq!(sev("unique_stg_events_id").as_deref(), Some("error"));
    assert_eq!(sev("no_future_events").as_deref(), Some("error"));
}

#[test]
fn ref_to_a_model_moved_by_config_zone_follows_it() {
    let dir = temp_project(&[
        ("lake_project.yml", "name: p\n"),
        (
            "models/f.sql",
            "{{ config(zone='features') }}\nselect 1 as x\n",
        ),
        ("models/g.sql", "select * from {{ ref('f') }}\n"),
    ]);
    let c = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap();
    assert_eq!(
        c.manifest.nodes["model.p.g"].compiled_code,
        "select * from features.f\n"
    );
}

#[test]
fn cli_vars_override_project_vars() {
    let c = compile_with(
        "features",
        CompileOptions {
            vars: Some("{start_date: '2030-05-05', region: apac}".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let sql = &c.manifest.nodes["model.features.stg_events"].compiled_code;
    assert!(
        sql.contains("ts >= '2030-05-05' and region = 'apac'"),
        "{sql}"
    );
    let c = compile_fixture("features").unwrap();
    let sql = &c.manifest.nodes["model.features.stg_events"].compiled_code;
    assert!(
        sql.contains("ts >= '2026-01-01' and region = 'emea'"),
        "{sql}"
    );
    let bad = compile_with(
        "features",
        CompileOptions {
            vars: Some("[1, 2]".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(bad.errors()[0], CompileError::InvalidVars { .. }),
        "{bad}"
    );
}

#[test]
fn targets_pick_and_unknown_target_suggests() {
    let prod = compile_with(
        "features",
        CompileOptions {
            target: Some("prod".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(prod.manifest.metadata.target_name, "prod");
    assert_eq!(
        prod.manifest.metadata.lake_root.as_deref(),
        Some("memory://prod")
    );
    let sql = &prod.manifest.nodes["model.features.daily_events"].compiled_code;
    assert!(sql.contains("target: prod"), "{sql}");
    let dev = compile_fixture("features").unwrap();
    assert_eq!(dev.manifest.metadata.target_name, "dev");
    let err = compile_with(
        "features",
        CompileOptions {
            target: Some("prd".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    match &err.errors()[0] {
        CompileError::UnknownTarget { suggestions, .. } => assert_eq!(suggestions, &["prod"]),
        other => panic!("{other}"),
    }
}

#[test]
fn ephemeral_models_are_inlined_as_ctes_and_merge_with_with() {
    let c = compile_fixture("features").unwrap();
    let m = &c.manifest;
    assert!(
        m.nodes["model.features.stg_payments"]
            .relation_name
            .is_none()
    );
    let sql = &m.nodes["model.features.payments_by_method"].compiled_code;
    assert!(
        sql.starts_with("with __lake_cte__stg_payments as (\nselect id"),
        "{sql}"
    );
    assert!(
        sql.contains("),\n/* end lake ctes */\np as (select * from __lake_cte__stg_payments)"),
        "{sql}"
    );
    // Nested ephemerals come parents first, once each.
    let dir = temp_project(&[
        (
            "lake_project.yml",
            "name: p\nmodels: {+materialized: ephemeral}\n",
        ),
        ("models/a.sql", "select 1 as x\n"),
        ("models/b.sql", "select * from {{ ref('a') }}\n"),
        (
            "models/c.sql",
            "{{ config(materialized='table') }}\nselect * from {{ ref('b') }} join {{ ref('a') }} using (x)\n",
        ),
    ]);
    let c = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap();
    let sql = &c.manifest.nodes["model.p.c"].compiled_code;
    assert_eq!(
        sql,
        "with __lake_cte__a as (\nselect 1 as x\n),\n__lake_cte__b as (\nselect * from __lake_cte__a\n)\n/* end lake ctes */\n\nselect * from __lake_cte__b join __lake_cte__a using (x)\n"
    );
}

#[test]
fn is_incremental_renders_again_on_request() {
    let c = compile_fixture("features").unwrap();
    let id = "model.features.daily_events";
    assert!(c.manifest.nodes[id].uses_is_incremental);
    let first = c.render_node(id, false).unwrap();
    assert!(!first.contains("max(day)"), "{first}");
    let again = c.render_node(id, true).unwrap();
    assert!(
        again.contains("where ts > (select max(day) from curated.daily_events)"),
        "{again}"
    );
    assert!(again.contains("from curated.stg_events"), "{again}");
}

#[test]
fn macros_return_call_blocks_and_dispatch() {
    let c = compile_fixture("features").unwrap();
    let sql = &c.manifest.nodes["model.features.payments_by_method"].compiled_code;
    assert!(
        sql.contains("sum(case when method = 'card' then amount end) as card_amount,"),
        "{sql}"
    );
    assert!(sql.contains("as bank_amount\nfrom p"), "{sql}");
    assert!(sql.contains("/* pivot */ limit 10"), "{sql}");
    let stg = &c.manifest.nodes["model.features.stg_payments"].compiled_code;
    assert!(
        stg.contains("round(amount_cents / 100.0, 2) as amount"),
        "{stg}"
    );
    assert!(stg.contains("from raw.shop__payments"), "{stg}");
}

#[test]
fn runaway_templates_stop() {
    let err = compile_fixture("err_runaway").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("models/loop.sql:1"), "{text}");
}

#[test]
fn disabled_models_drop_out_and_refs_to_them_fail() {
    let c = compile_fixture("features").unwrap();
    assert!(!c.manifest.nodes.contains_key("model.features.disabled_one"));
    let dir = temp_project(&[
        ("lake_project.yml", "name: p\n"),
        (
            "models/off.sql",
            "{{ config(enabled=false) }}\nselect 1 as x\n",
        ),
        ("models/on.sql", "select *\nfrom {{ ref('off') }}\n"),
    ]);
    let err = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap_err();
    match &err.errors()[0] {
        CompileError::DisabledRef { location, name, .. } => {
            assert_eq!(name, "off");
            assert_eq!(
                (location.file.as_str(), location.line),
                ("models/on.sql", 2)
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn secret_env_vars_cannot_reach_compiled_sql() {
    let dir = temp_project(&[
        ("lake_project.yml", "name: p\n"),
        (
            "models/m.sql",
            "select '{{ env_var('LAKE_SECRET_TOKEN', 'x') }}' as t\n",
        ),
    ]);
    let err = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("secret env var 'LAKE_SECRET_TOKEN'"),
        "{err}"
    );
}

#[test]
fn manifest_round_trips_and_has_dbt_shape() {
    let c = compile_fixture("jaffle_shop").unwrap();
    let json = serde_json::to_value(&c.manifest).unwrap();
    let node = &json["nodes"]["model.jaffle_shop.customers"];
    for key in [
        "resource_type",
        "name",
        "original_file_path",
        "raw_code",
        "compiled_code",
        "depends_on",
        "config",
        "columns",
        "description",
    ] {
        assert!(node.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        node["depends_on"]["nodes"][0],
        "model.jaffle_shop.stg_customers"
    );
    let back: lake_compiler::Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, c.manifest);
    let test_ids: Vec<&String> = c
        .manifest
        .nodes
        .keys()
        .filter(|k| k.starts_with("test."))
        .collect();
    assert!(
        test_ids
            .iter()
            .all(|id| id.rsplit('.').next().unwrap().len() == 10)
    );
}

#[test]
fn column_meta_and_tags_come_from_the_column_and_its_config() {
    let dir = temp_project(&[
        ("lake_project.yml", "name: p\n"),
        ("models/m.sql", "select 1 as a, 2 as b, 3 as c\n"),
        ("seeds/s.csv", "email\nx@example.com\n"),
        (
            "models/schema.yml",
            "models:\n\
             \x20 - name: m\n\
             \x20   columns:\n\
             \x20     - name: a\n\
             \x20       meta: {pii: true}\n\
             \x20     - name: b\n\
             \x20       tags: [pii]\n\
             \x20       config: {meta: {owner: x}, tags: [pii, gdpr]}\n\
             \x20     - name: c\n\
             \x20       config: {meta: {pii: true}, tags: pii}\n\
             seeds:\n\
             \x20 - name: s\n\
             \x20   columns:\n\
             \x20     - name: email\n\
             \x20       config: {meta: {pii: true}}\n\
             sources:\n\
             \x20 - name: crm\n\
             \x20   tables:\n\
             \x20     - name: people\n\
             \x20       columns:\n\
             \x20         - name: phone\n\
             \x20           config: {tags: [pii]}\n",
        ),
    ]);
    let c = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap();
    let columns = &c.manifest.nodes["model.p.m"].columns;
    assert_eq!(columns["a"].meta["pii"], true);
    assert_eq!(columns["b"].tags, ["pii", "gdpr"]);
    assert_eq!(columns["b"].meta["owner"], "x");
    assert_eq!(columns["c"].meta["pii"], true);
    assert_eq!(columns["c"].tags, ["pii"]);
    assert_eq!(
        c.manifest.nodes["seed.p.s"].columns["email"].meta["pii"],
        true
    );
    assert_eq!(
        c.manifest.sources["source.p.crm.people"].columns["phone"].tags,
        ["pii"]
    );
}
