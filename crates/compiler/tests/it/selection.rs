//! Node selection over the jaffle_shop fixture.

use std::collections::BTreeSet;

use super::compile_fixture;

fn names(select: &[&str], exclude: &[&str]) -> Vec<String> {
    let compiled = compile_fixture("jaffle_shop").unwrap();
    let m = &compiled.manifest;
    let s: Vec<String> = select.iter().map(|s| s.to_string()).collect();
    let e: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let ids: BTreeSet<String> = lake_compiler::select(m, &s, &e).unwrap();
    let mut out: Vec<String> = ids
        .iter()
        .filter_map(|id| m.nodes.get(id))
        .filter(|n| n.resource_type != lake_compiler::ResourceType::Test)
        .map(|n| n.name.clone())
        .collect();
    out.sort();
    out
}

fn test_count(select: &[&str]) -> usize {
    let compiled = compile_fixture("jaffle_shop").unwrap();
    let s: Vec<String> = select.iter().map(|s| s.to_string()).collect();
    lake_compiler::select(&compiled.manifest, &s, &[])
        .unwrap()
        .iter()
        .filter(|id| id.starts_with("test."))
        .count()
}

#[test]
fn plain_name_and_graph_operators() {
    assert_eq!(names(&["orders"], &[]), ["orders"]);
    assert_eq!(
        names(&["+orders"], &[]),
        [
            "orders",
            "raw_orders",
            "raw_payments",
            "stg_orders",
            "stg_payments"
        ]
    );
    assert_eq!(
        names(&["1+orders"], &[]),
        ["orders", "stg_orders", "stg_payments"]
    );
    assert_eq!(
        names(&["stg_orders+"], &[]),
        ["customers", "orders", "stg_orders"]
    );
    assert_eq!(names(&["raw_orders+1"], &[]), ["raw_orders", "stg_orders"]);
    // @: the node, its descendants, and every ancestor of those.
    assert_eq!(
        names(&["@stg_customers"], &[]),
        [
            "customers",
            "raw_customers",
            "raw_orders",
            "raw_payments",
            "stg_customers",
            "stg_orders",
            "stg_payments"
        ]
    );
}

#[test]
fn methods_unions_intersections_and_exclude() {
    assert_eq!(
        names(&["path:models/staging"], &[]),
        ["stg_customers", "stg_orders", "stg_payments"]
    );
    assert_eq!(
        names(&["jaffle_shop.staging.*"], &[]),
        ["stg_customers", "stg_orders", "stg_payments"]
    );
    assert_eq!(
        names(&["config.materialized:table"], &[]),
        ["customers", "orders"]
    );
    assert_eq!(
        names(&["resource_type:seed"], &[]),
        ["raw_customers", "raw_orders", "raw_payments"]
    );
    assert_eq!(
        names(&["stg_*"], &[]),
        ["stg_customers", "stg_orders", "stg_payments"]
    );
    assert_eq!(names(&["orders customers"], &[]), ["customers", "orders"]);
    assert_eq!(
        names(&["orders", "customers"], &[]),
        ["customers", "orders"]
    );
    assert_eq!(
        names(&["+orders,path:models/staging"], &[]),
        ["stg_orders", "stg_payments"]
    );
    assert_eq!(
        names(&["+customers"], &["resource_type:seed", "stg_payments"]),
        ["customers", "stg_customers", "stg_orders"]
    );
    assert!(names(&["nothing_named_so"], &[]).is_empty());
}

#[test]
fn tests_follow_their_models() {
    // orders has 10 column tests; relationships also hangs off customers.
    assert_eq!(test_count(&["orders"]), 10);
    assert_eq!(test_count(&["customers"]), 3);
    assert_eq!(test_count(&["test_name:accepted_values"]), 3);
    assert_eq!(test_count(&["test_type:generic"]), 20);
    assert_eq!(test_count(&["test_type:singular"]), 0);
}

#[test]
fn bad_selectors_are_errors() {
    let compiled = compile_fixture("jaffle_shop").unwrap();
    for bad in ["bogus:x", "resource_type:table", "@+x", "tag:"] {
        let err = lake_compiler::select(&compiled.manifest, &[bad.to_string()], &[]).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
        assert!(err.hint().is_some());
    }
}
