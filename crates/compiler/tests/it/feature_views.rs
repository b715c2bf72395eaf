//! Entities, feature views and feature services: the manifest section,
//! ttl syntax, feature references, selection, and old manifests.

use lake_compiler::{CompileOptions, FeatureRef, Manifest, format_ttl, parse_ttl};

use super::{compile_fixture, temp_project};

fn fref(view: &str, feature: &str) -> FeatureRef {
    FeatureRef {
        view: view.into(),
        feature: feature.into(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn manifest_section_snapshot() {
    let c = compile_fixture("feature_store").unwrap();
    let m = &c.manifest;
    insta::assert_json_snapshot!(
        "feature_store_manifest_section",
        serde_json::json!({
            "entities": m.entities,
            "feature_views": m.feature_views,
            "feature_services": m.feature_services,
        })
    );
}

#[test]
fn feature_views_stay_out_of_the_dag() {
    let c = compile_fixture("feature_store").unwrap();
    let m = &c.manifest;
    assert_eq!(m.feature_views.len(), 3);
    for v in m.feature_views.values() {
        assert!(!m.parent_map.contains_key(&v.unique_id));
        assert!(!m.child_map.values().flatten().any(|c| *c == v.unique_id));
        assert!(!m.nodes.contains_key(&v.unique_id));
    }
    let stats = &m.feature_views["customer_stats"];
    assert_eq!(stats.source, "model.shop_features.customer_daily_stats");
    assert_eq!(stats.source_relation, "curated.customer_daily_stats");
    assert_eq!(stats.ttl_seconds, Some(30 * 86_400));
    let web = &m.feature_views["web_activity"];
    // The entities' join keys in order, without duplicates.
    assert_eq!(web.join_keys, ["session_id", "customer_id"]);
    assert_eq!(web.source, "source.shop_features.shop.web_events");
    assert_eq!(web.source_relation, "raw.shop__web_events");
    assert_eq!(web.ttl_seconds, Some(86_400 + 12 * 3_600));
    assert!(!web.online);
    let profile = &m.feature_views["customer_profile"];
    assert_eq!(profile.source, "seed.shop_features.customers");
    assert_eq!(profile.ttl_seconds, None, "ttl 0 is unbounded");
}

#[test]
fn ttl_syntax() {
    assert_eq!(parse_ttl("0"), Ok(0));
    assert_eq!(parse_ttl("90"), Ok(90));
    assert_eq!(parse_ttl("45s"), Ok(45));
    assert_eq!(parse_ttl("15m"), Ok(900));
    assert_eq!(parse_ttl("12h"), Ok(43_200));
    assert_eq!(parse_ttl("30d"), Ok(2_592_000));
    assert_eq!(parse_ttl("2w"), Ok(1_209_600));
    assert_eq!(parse_ttl("1d12h"), Ok(129_600));
    assert_eq!(parse_ttl("1h30m15s"), Ok(5_415));
    assert_eq!(parse_ttl(" 7d "), Ok(604_800));
    assert_eq!(parse_ttl("0d"), Ok(0));
    for bad in [
        "3x",
        "",
        "d",
        "1d12",
        "-5",
        "1.5h",
        "1 d",
        "30D",
        "h1",
        "99999999999999999999999w",
    ] {
        assert!(parse_ttl(bad).is_err(), "{bad:?} should not parse");
    }
    for (seconds, text) in [
        (0, "0s"),
        (90, "1m30s"),
        (129_600, "1d12h"),
        (1_209_600, "14d"),
        (3_601, "1h1s"),
    ] {
        assert_eq!(format_ttl(seconds), text);
        assert_eq!(parse_ttl(text), Ok(seconds));
    }
    assert_eq!(
        parse_ttl("3x").unwrap_err(),
        "unknown unit 'x' in '3x' (units: w, d, h, m, s)"
    );
}

#[test]
fn resolve_features_and_services() {
    let c = compile_fixture("feature_store").unwrap();
    let m = &c.manifest;
    assert_eq!(
        m.resolve_features(&strings(&[
            "web_activity",
            "customer_stats:avg_order_value",
            "web_activity:clicks"
        ]))
        .unwrap(),
        [
            fref("web_activity", "page_views"),
            fref("web_activity", "clicks"),
            fref("customer_stats", "avg_order_value"),
        ]
    );
    assert_eq!(
        m.resolve_features(&strings(&["customer_stat:orders_30d"]))
            .unwrap_err(),
        "unknown feature view 'customer_stat'; did you mean one of: customer_stats, customer_profile?"
    );
    assert_eq!(
        m.resolve_features(&strings(&["customer_stats:orders_3d"]))
            .unwrap_err(),
        "feature view 'customer_stats' has no feature 'orders_3d'; did you mean 'orders_30d'?"
    );
    assert!(
        m.resolve_features(&strings(&["customer_stats:"]))
            .unwrap_err()
            .starts_with("invalid feature reference")
    );
    assert_eq!(
        m.feature_service_refs("churn_v1").unwrap(),
        [
            fref("customer_stats", "orders_30d"),
            fref("web_activity", "page_views"),
            fref("web_activity", "clicks"),
        ]
    );
    // Whole views expand in declaration order; repeats drop out.
    assert_eq!(
        m.feature_service_refs("churn_v2").unwrap(),
        [
            fref("customer_stats", "orders_30d"),
            fref("customer_stats", "avg_order_value"),
            fref("customer_profile", "country"),
        ]
    );
    assert_eq!(
        m.feature_service_refs("churn_v3").unwrap_err(),
        "unknown feature service 'churn_v3'; did you mean one of: churn_v1, churn_v2?"
    );
    assert_eq!(fref("a", "b").to_string(), "a:b");
}

#[test]
fn selection_reaches_feature_views_only_when_asked() {
    let c = compile_fixture("feature_store").unwrap();
    let m = &c.manifest;
    let sel = |s: &str| {
        lake_compiler::select(m, &strings(&[s]), &[])
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sel("feature_view:customer_*"),
        [
            "feature_view.shop_features.customer_profile",
            "feature_view.shop_features.customer_stats"
        ]
    );
    assert_eq!(
        sel("resource_type:feature_view").len(),
        3,
        "{:?}",
        sel("resource_type:feature_view")
    );
    // A bare name selects nodes only.
    assert_eq!(
        sel("customer_daily_stats"),
        ["model.shop_features.customer_daily_stats"]
    );
    // Parents of a view: what it reads, and upward.
    assert_eq!(
        sel("+feature_view:customer_stats"),
        [
            "feature_view.shop_features.customer_stats",
            "model.shop_features.customer_daily_stats",
            "model.shop_features.stg_orders",
            "source.shop_features.shop.orders",
        ]
    );
    // Children of a model: the views that read it.
    assert_eq!(
        sel("stg_orders+"),
        [
            "feature_view.shop_features.customer_stats",
            "model.shop_features.customer_daily_stats",
            "model.shop_features.stg_orders",
        ]
    );
    assert_eq!(
        sel("tag:churn,resource_type:feature_view"),
        ["feature_view.shop_features.customer_stats"]
    );
    assert_eq!(sel("path:models/features.yml").len(), 3);
    // A service selects the views it uses; an entity the views keyed by it.
    assert_eq!(
        sel("feature_service:churn_v1"),
        [
            "feature_view.shop_features.customer_stats",
            "feature_view.shop_features.web_activity"
        ]
    );
    assert_eq!(
        sel("entity:session"),
        ["feature_view.shop_features.web_activity"]
    );
    // Everything, by default.
    let all = lake_compiler::select(m, &[], &[]).unwrap();
    assert!(all.contains("feature_view.shop_features.web_activity"));
    let err = lake_compiler::select(m, &strings(&["resource_type:feature_vew"]), &[]).unwrap_err();
    assert!(err.to_string().contains("feature_view"), "{err}");
}

#[test]
fn old_manifests_without_features_still_load() {
    let c = compile_fixture("feature_store").unwrap();
    let mut json = serde_json::to_value(&c.manifest).unwrap();
    let back: Manifest = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, c.manifest);
    for key in ["entities", "feature_views", "feature_services"] {
        json.as_object_mut().unwrap().remove(key);
    }
    let old: Manifest = serde_json::from_value(json).unwrap();
    assert!(old.feature_views.is_empty() && old.entities.is_empty());
    assert_eq!(old.nodes, c.manifest.nodes);
}

#[test]
fn columns_are_checked_only_when_the_source_declares_them() {
    let dir = temp_project(&[
        ("lake_project.yml", "name: p\n"),
        (
            "models/m.sql",
            "{{ config(materialized='table') }}\nselect 1 as id, current_date as ts, 2 as x\n",
        ),
        (
            "models/f.yml",
            "entities:\n  - {name: e, join_keys: [id]}\nfeature_views:\n  - name: v\n    entities: [e]\n    source: m\n    timestamp_field: ts\n    ttl: 90\n    features: [anything_goes]\n",
        ),
    ]);
    let c = lake_compiler::compile(dir.path(), &CompileOptions::default()).unwrap();
    let v = &c.manifest.feature_views["v"];
    assert_eq!(v.features[0].name, "anything_goes");
    assert_eq!(v.ttl_seconds, Some(90));
    assert!(v.online);
    assert_eq!(v.line, 4);
    assert_eq!(c.manifest.entities["e"].line, 2, "a flow mapping's line");
}
