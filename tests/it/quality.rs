//! Data tests end to end: each test type passes on good data and fails on
//! bad data with the right count; store_failures keeps the failing rows.

use super::lakeread::query;
use super::{lake, project, stderr, stdout};

const TESTS: &str = "
    data_tests:
      - row_count: {min_value: 1, max_value: 3}
      - dbt_utils.unique_combination_of_columns: {combination_of_columns: [id, grp]}
      - dbt_utils.expression_is_true: {expression: 'price >= 0'}
      - not_empty
    columns:
      - name: price
        data_tests:
          - dbt_utils.accepted_range:
              min_value: 0
              max_value: 100
              config: {store_failures: true}
";

#[test]
fn every_test_type_passes_on_good_data_and_counts_bad_rows() {
    let schema = format!(
        "version: 2\nseeds:\n  - name: good{TESTS}  - name: bad{TESTS}  - name: empty\n    data_tests: [not_empty]\n"
    );
    let dir = project(&[
        ("lake_project.yml", "name: q\n"),
        ("seeds/good.csv", "id,grp,price\n1,a,10\n2,a,20\n3,b,30\n"),
        // Out of range: -5 and 200 (NULL is not); a repeated (1, a); four
        // rows; one negative price.
        (
            "seeds/bad.csv",
            "id,grp,price\n1,a,10\n1,a,-5\n2,b,200\n3,b,\n",
        ),
        ("seeds/empty.csv", "id,grp,price\n"),
        ("seeds/schema.yml", &schema),
    ]);
    let out = lake(dir.path(), &["build"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failing tests fail the run: {}",
        stdout(&out)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("target/manifest.json")).unwrap())
            .unwrap();
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("target/run_results.json")).unwrap())
            .unwrap();
    let outcome = |test: &str, seed: &str| -> (String, u64) {
        let id = manifest["nodes"]
            .as_object()
            .unwrap()
            .values()
            .find(|n| {
                n["test_metadata"]["name"] == test && n["attached_node"] == format!("seed.q.{seed}")
            })
            .unwrap_or_else(|| panic!("no {test} on {seed}"))["unique_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"] == id)
            .unwrap();
        (
            r["status"].as_str().unwrap().to_string(),
            r["failures"].as_u64().unwrap(),
        )
    };
    for test in [
        "row_count",
        "unique_combination_of_columns",
        "expression_is_true",
        "not_empty",
        "accepted_range",
    ] {
        assert_eq!(
            outcome(test, "good"),
            ("pass".to_string(), 0),
            "{test} on good data"
        );
    }
    assert_eq!(outcome("accepted_range", "bad"), ("fail".to_string(), 2));
    assert_eq!(
        outcome("expression_is_true", "bad"),
        ("fail".to_string(), 1)
    );
    assert_eq!(outcome("row_count", "bad"), ("fail".to_string(), 1));
    assert_eq!(
        outcome("unique_combination_of_columns", "bad"),
        ("fail".to_string(), 1)
    );
    assert_eq!(outcome("not_empty", "bad"), ("pass".to_string(), 0));
    assert_eq!(outcome("not_empty", "empty"), ("fail".to_string(), 1));
    // dbt's names for package tests.
    assert!(
        stdout(&out).contains("dbt_utils_accepted_range_bad_price__100__0"),
        "{}",
        stdout(&out)
    );
    // The failing rows, replaced each run.
    let root = dir.path().join(".lake");
    assert_eq!(
        query(
            &root,
            "select cast(price as bigint) from audit.dbt_utils_accepted_range_bad_price__100__0 order by 1"
        ),
        [["-5"], ["200"]]
    );
    assert_eq!(
        query(
            &root,
            "select count(*) from audit.dbt_utils_accepted_range_good_price__100__0"
        ),
        [["0"]]
    );
    std::fs::write(dir.path().join("seeds/bad.csv"), "id,grp,price\n1,a,500\n").unwrap();
    let _ = lake(dir.path(), &["build", "-s", "bad"]);
    assert_eq!(
        query(
            &root,
            "select cast(price as bigint) from audit.dbt_utils_accepted_range_bad_price__100__0"
        ),
        [["500"]]
    );
}

#[test]
fn source_freshness_with_a_fixed_clock() {
    // The seeds stand in for loaded sources; identifiers point at them.
    let dir = project(&[
        ("lake_project.yml", "name: f\n"),
        (
            "seeds/events.csv",
            "id,loaded_at\n1,2026-11-20 06:00:00\n2,2026-11-21 06:00:00\n",
        ),
        ("seeds/orders.csv", "id,loaded_at\n1,2026-11-19 12:00:00\n"),
        (
            "seeds/payments.csv",
            "id,loaded_at\n1,2026-11-21 11:30:00\n",
        ),
        (
            "models/sources.yml",
            "version: 2
sources:
  - name: shop
    loaded_at_field: loaded_at
    freshness:
      warn_after: {count: 4, period: hour}
      error_after: {count: 1, period: day}
    tables:
      - name: events
        identifier: events
      - name: orders
        identifier: orders
      - name: payments
        identifier: payments
      - name: refunds
        identifier: refunds
      - name: unchecked
        identifier: events
        freshness: null
",
        ),
    ]);
    assert!(lake(dir.path(), &["seed"]).status.success());
    let run = |now: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lake"))
            .args(["source", "freshness"])
            .current_dir(dir.path())
            .env("LAKE_NOW", now)
            .env_remove("LAKE_ROOT")
            .output()
            .unwrap()
    };
    let out = run("2026-11-21T12:00:00Z");
    // refunds has no table: a runtime error, so the command fails.
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("WARN freshness of shop.events [newest 2026-11-21T06:00:00, 6.0 h ago]"),
        "{text}"
    );
    assert!(
        text.contains("ERROR STALE freshness of shop.orders"),
        "{text}"
    );
    assert!(text.contains("PASS freshness of shop.payments"), "{text}");
    assert!(text.contains("ERROR freshness of shop.refunds"), "{text}");
    assert!(
        !text.contains("unchecked"),
        "freshness: null opts out: {text}"
    );
    let sources: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("target/sources.json")).unwrap())
            .unwrap();
    let by_id = |id: &str| {
        sources["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"] == id)
            .cloned()
            .unwrap()
    };
    let events = by_id("source.f.shop.events");
    assert_eq!(events["status"], "warn");
    assert_eq!(events["max_loaded_at_time_ago_in_s"], 21600.0);
    assert_eq!(events["criteria"]["error_after"]["period"], "day");
    assert_eq!(by_id("source.f.shop.orders")["status"], "error");
    assert_eq!(by_id("source.f.shop.refunds")["status"], "runtime error");
    // Earlier in the day, and only the readable ones: everything passes.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lake"))
        .args([
            "source",
            "freshness",
            "-s",
            "source:shop.events",
            "source:shop.payments",
        ])
        .current_dir(dir.path())
        .env("LAKE_NOW", "2026-11-21T11:45:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("PASS").count(), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("WARN freshness of shop.events"),
        "{}",
        stdout(&out)
    );
}

const CONTRACT: &str = "version: 2
models:
  - name: orders
    config:
      contract: {enforced: true}
    constraints:
      - type: primary_key
        columns: [order_id]
    columns:
      - name: order_id
        data_type: bigint
      - name: customer_id
        data_type: bigint
        constraints:
          - type: not_null
      - name: amount
        data_type: double
        constraints:
          - type: check
            expression: amount >= 0
            name: non_negative
      - name: note
        data_type: varchar
        constraints:
          - type: foreign_key
";

fn delta_commits(root: &std::path::Path, table: &str) -> usize {
    std::fs::read_dir(root.join(table).join("_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count()
}

/// A table and an incremental model under the same contract: good rows are
/// written in the contract's column order; each kind of violation fails the
/// model with counts and leaves the previous version.
#[test]
fn contracts_block_bad_rows_and_keep_the_previous_version() {
    for materialized in ["table", "incremental"] {
        let config = if materialized == "incremental" {
            "{{ config(materialized='incremental', unique_key='order_id') }}\n"
        } else {
            "{{ config(materialized='table') }}\n"
        };
        let model = |rows: &str| {
            format!(
                "{config}select * from (values {rows}) as t(order_id, note, amount, customer_id)"
            )
        };
        let good = "(1, 'a', 10.0, 7), (2, 'b', 0.0, 8)";
        let dir = project(&[
            ("lake_project.yml", "name: c\n"),
            ("models/orders.sql", &model(good)),
            ("models/schema.yml", CONTRACT),
        ]);
        let root = dir.path().join(".lake");
        let out = lake(dir.path(), &["build"]);
        assert!(out.status.success(), "{materialized}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("not enforced, as in most warehouses: foreign_key(note)"),
            "{}",
            stdout(&out)
        );
        // Contract order, not the SQL's.
        assert_eq!(
            query(&root, "select * from curated.orders order by order_id"),
            [["1", "7", "10.0", "a"], ["2", "8", "0.0", "b"]]
        );
        let commits = delta_commits(&root, "curated/orders");

        for (rows, needle) in [
            (
                "(3, 'c', -1.0, 7), (4, 'd', -2.0, 8), (5, 'e', 1.0, 9)",
                "check 'non_negative' (amount >= 0) (2 rows)",
            ),
            (
                "(3, 'c', 1.0, cast(null as bigint)), (4, 'd', 2.0, 8)",
                "not_null(customer_id): column 'customer_id' is NULL (1 row)",
            ),
            (
                "(cast(null as bigint), 'c', 1.0, 7)",
                "primary_key(order_id): column 'order_id' is NULL (1 row)",
            ),
            (
                "(3, 'c', 1.0, 7), (3, 'd', 2.0, 8), (4, 'e', 1.0, 7), (4, 'f', 1.0, 7)",
                "unique(order_id): 2 values appear more than once",
            ),
        ] {
            std::fs::write(dir.path().join("models/orders.sql"), model(rows)).unwrap();
            let out = lake(dir.path(), &["build"]);
            let text = format!("{}{}", stdout(&out), stderr(&out));
            assert_eq!(out.status.code(), Some(1), "{materialized} {rows}: {text}");
            assert!(
                text.contains("the contract of curated.orders is violated, so nothing was written"),
                "{text}"
            );
            assert!(
                text.contains(needle),
                "{materialized}: expected {needle:?} in {text}"
            );
            assert_eq!(
                delta_commits(&root, "curated/orders"),
                commits,
                "{materialized}: {text}"
            );
            assert_eq!(
                query(&root, "select count(*) from curated.orders"),
                [["2"]],
                "{materialized}: the previous version stays"
            );
        }

        // Shape: a missing column, an extra one and a wrong type are all
        // reported at once, before any data is read.
        std::fs::write(
            dir.path().join("models/orders.sql"),
            format!("{config}select 1 as order_id, 'x' as customer_id, 1.0 as amount, 2 as extra"),
        )
        .unwrap();
        let out = lake(dir.path(), &["build"]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{text}");
        for needle in [
            "column 'customer_id': the SQL returns Utf8 but the contract says bigint (Int64)",
            "column 'note' is in the contract but the SQL does not return it",
            "column 'extra' is returned by the SQL but missing from the contract",
        ] {
            assert!(text.contains(needle), "expected {needle:?} in {text}");
        }
        assert_eq!(delta_commits(&root, "curated/orders"), commits);
    }
}

#[test]
fn a_contract_with_an_unknown_type_or_bad_check_says_which() {
    let schema = "version: 2
models:
  - name: m
    config:
      contract: {enforced: true}
    columns:
      - name: id
        data_type: bigintt
        constraints:
          - type: check
            expression: id + 1
";
    let dir = project(&[
        ("lake_project.yml", "name: c\n"),
        (
            "models/m.sql",
            "{{ config(materialized='table') }}\nselect 1 as id",
        ),
        ("models/schema.yml", schema),
    ]);
    let out = lake(dir.path(), &["build"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("column 'id': data_type 'bigintt' is not a type lake knows"),
        "{text}"
    );
    std::fs::write(
        dir.path().join("models/schema.yml"),
        schema.replace("bigintt", "bigint"),
    )
    .unwrap();
    let out = lake(dir.path(), &["build"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("check(id + 1): "), "{text}");
    assert!(text.contains("not boolean"), "{text}");
}

/// PSI over shares with empty ones floored, as lake defines it.
fn psi(current: &[f64], reference: &[f64]) -> f64 {
    current
        .iter()
        .zip(reference)
        .map(|(c, r)| {
            let (c, r) = (c.max(lake_engine::PSI_FLOOR), r.max(lake_engine::PSI_FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Shares of `values` per bin, bins cut at the upper edges of `bins` equal
/// groups of the sorted reference (SQL's ntile), the last edge dropped.
fn binned_shares(values: &[f64], reference: &[f64], bins: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (n, mut edges, mut end) = (sorted.len(), Vec::new(), 0);
    for b in 0..bins {
        end += n / bins + usize::from(b < n % bins);
        edges.push(sorted[end - 1]);
    }
    edges.pop();
    edges.dedup();
    let shares = |xs: &[f64]| {
        let mut counts = vec![0.0; edges.len() + 1];
        for x in xs {
            counts[edges.iter().position(|e| x <= e).unwrap_or(edges.len())] += 1.0;
        }
        counts
            .iter()
            .map(|c| c / xs.len() as f64)
            .collect::<Vec<_>>()
    };
    (shares(values), shares(reference))
}

fn ks(current: &[f64], reference: &[f64]) -> f64 {
    let cdf = |xs: &[f64], x: f64| xs.iter().filter(|v| **v <= x).count() as f64 / xs.len() as f64;
    current
        .iter()
        .chain(reference)
        .map(|x| (cdf(current, *x) - cdf(reference, *x)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn drift_measures_psi_and_ks_against_an_earlier_version() {
    let schema = "version: 2
seeds:
  - name: m
    columns:
      - name: x
        data_tests:
          - drift
          - drift:
              name: x_drift_loose
              psi_max: 100
              ks_max: 1
              bins: 4
              version: 0
          - drift:
              name: x_drift_as_of
              timestamp: '2999-01-01T00:00:00Z'
              psi_max: 100
              ks_max: 1
      - name: cat
        data_tests:
          - drift:
              psi_max: 0.5
";
    let reference: Vec<f64> = (0..1000).map(f64::from).collect();
    let current: Vec<f64> = (0..800).map(|i| f64::from(i) * 1.2 + 200.0).collect();
    let cats_reference: Vec<&str> = (0..1000)
        .map(|i| match i % 10 {
            0..5 => "a",
            5..8 => "b",
            _ => "c",
        })
        .collect();
    let cats_current: Vec<&str> = (0..800)
        .map(|i| match i % 10 {
            0..4 => "a",
            4..6 => "b",
            6..8 => "c",
            8 => "d",
            _ => "",
        })
        .collect();
    let csv = |xs: &[f64], cats: &[&str]| {
        let mut text = String::from("x,cat\n");
        for (x, c) in xs.iter().zip(cats) {
            text.push_str(&format!("{x:.1},{c}\n"));
        }
        text
    };
    let dir = project(&[
        ("lake_project.yml", "name: d\n"),
        ("seeds/m.csv", &csv(&reference, &cats_reference)),
        ("seeds/schema.yml", schema),
    ]);
    let results = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap())
            .unwrap()
    };
    let drift_of = |results: &serde_json::Value, name_part: &str| -> serde_json::Value {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"].as_str().unwrap().contains(name_part))
            .unwrap_or_else(|| panic!("no {name_part} in {results}"))
            .clone()
    };

    // The first version has nothing to compare with.
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no earlier version of the table than v0"),
        "{}",
        stdout(&out)
    );

    std::fs::write(dir.path().join("seeds/m.csv"), csv(&current, &cats_current)).unwrap();
    let out = lake(dir.path(), &["build"]);
    assert_eq!(out.status.code(), Some(1), "x drifted: {}", stdout(&out));
    let r = results(dir.path());

    let x = drift_of(&r, "test.d.drift_m_x.");
    assert_eq!(x["status"], "fail", "{x}");
    let (c, rf) = binned_shares(&current, &reference, 10);
    let expected_psi = psi(&c, &rf);
    let expected_ks = ks(&current, &reference);
    let measured = &x["adapter_response"]["drift"];
    assert_eq!(measured["current_version"], 1);
    assert_eq!(measured["reference_version"], 0);
    assert!(
        (measured["psi"].as_f64().unwrap() - expected_psi).abs() < 1e-9,
        "{measured} vs {expected_psi}"
    );
    assert!(
        (measured["ks"].as_f64().unwrap() - expected_ks).abs() < 1e-9,
        "{measured} vs {expected_ks}"
    );
    assert!(
        expected_psi > 0.2 && expected_ks > 0.1,
        "the data drifts: {expected_psi} {expected_ks}"
    );
    assert_eq!(x["failures"], 2, "both statistics over their maximum");
    assert!(
        stdout(&out).contains(&format!("psi {expected_psi:.4} (max 0.2)")),
        "{}",
        stdout(&out)
    );

    let loose = drift_of(&r, "x_drift_loose");
    assert_eq!(loose["status"], "pass", "{loose}");
    let (c, rf) = binned_shares(&current, &reference, 4);
    let measured = &loose["adapter_response"]["drift"];
    assert!(
        (measured["psi"].as_f64().unwrap() - psi(&c, &rf)).abs() < 1e-9,
        "{measured}"
    );

    // A point in time after the last commit picks the current version.
    let as_of = drift_of(&r, "x_drift_as_of");
    assert_eq!(
        as_of["adapter_response"]["drift"]["reference_version"], 1,
        "{as_of}"
    );
    assert_eq!(
        as_of["adapter_response"]["drift"]["psi"].as_f64(),
        Some(0.0),
        "{as_of}"
    );

    // Categories, with NULL (empty in the CSV) as a category and a new one.
    let cat = drift_of(&r, "test.d.drift_m_cat_");
    let share = |cats: &[&str], v: &str| {
        cats.iter().filter(|c| **c == v).count() as f64 / cats.len() as f64
    };
    let values = ["a", "b", "c", "d", ""];
    let expected = psi(
        &values.map(|v| share(&cats_current, v)),
        &values.map(|v| share(&cats_reference, v)),
    );
    let measured = &cat["adapter_response"]["drift"];
    assert!(
        (measured["psi"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{measured} vs {expected}"
    );
    assert!(measured["ks"].is_null(), "no KS for text: {measured}");
    assert_eq!(cat["status"], if expected > 0.5 { "fail" } else { "pass" });

    // The same data again: nothing moved.
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let x = drift_of(&results(dir.path()), "test.d.drift_m_x.");
    assert_eq!(
        x["adapter_response"]["drift"]["psi"].as_f64(),
        Some(0.0),
        "{x}"
    );
    assert_eq!(
        x["adapter_response"]["drift"]["ks"].as_f64(),
        Some(0.0),
        "{x}"
    );
}
