//! The feature store end to end over the example project: `lake build`
//! keeping the online tables, `lake training-set` with hand-checked
//! point-in-time values, its errors, `lake features ls`, and `lake serve`
//! answering the JSON training-set and online-features commands.

use std::fs::File;
use std::path::Path;

use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchReader};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use tonic::transport::Endpoint;

use super::lakeread::{query, scalar};
use super::serve::{Served, built_example, column, runtime};
use super::{example_project, lake, stderr, stdout};

const ACTIVITY: &str = "feature_view.shop_ai.customer_activity";
const ORDERS: &str = "feature_view.shop_ai.customer_orders";

/// The columns of the `churn` training set over `raw.churn_labels`.
const CHURN_COLUMNS: [&str; 8] = [
    "customer_id",
    "event_timestamp",
    "churned",
    "customer_activity__events",
    "customer_activity__sessions",
    "customer_activity__checkouts",
    "customer_orders__orders_to_date",
    "customer_orders__revenue_to_date",
];

/// The `churn` training set over seeds/churn_labels.csv, one row per spine
/// row in the seed's order, worked out by hand from the seeds:
/// `customer_activity` is a day of seeds/web_events.csv per customer,
/// stamped with the day's last event and valid for 7 days;
/// `customer_orders` the running totals of seeds/orders.csv (valid orders:
/// a positive amount) stamped with each day's last order, valid forever.
const CHURN_ROWS: [[&str; 8]; 15] = [
    // Activity: 2026-11-09 05:19:06, one event. Orders: 7 up to
    // 2026-11-03 23:57 (8524+11618+983+17076+15367+9243+18370 cents).
    [
        "4",
        "2026-11-10T00:00:00",
        "false",
        "1",
        "1",
        "0",
        "7",
        "811.81",
    ],
    // Activity: 2026-10-18 05:46:33 (a checkout), 4.3 days before. Orders:
    // the first is 2026-11-06, later.
    [
        "5",
        "2026-10-22T12:00:00",
        "true",
        "1",
        "1",
        "1",
        "NULL",
        "NULL",
    ],
    // Activity: the latest before is 2026-10-18 03:34:14, 15 days before,
    // beyond the ttl of 7 days: NULLs. Orders: 2 by 2026-11-01 15:25.
    [
        "7",
        "2026-11-02T00:00:00",
        "false",
        "NULL",
        "NULL",
        "NULL",
        "2",
        "266.57",
    ],
    // Activity: 2026-10-18 02:42:58 plus exactly 7 days, both ends
    // inclusive: still valid...
    [
        "12",
        "2026-10-25T02:42:58",
        "true",
        "1",
        "1",
        "0",
        "NULL",
        "NULL",
    ],
    // ...and one second later, not.
    [
        "12",
        "2026-10-25T02:42:59",
        "true",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
    ],
    [
        "2",
        "2026-10-08T00:00:00",
        "false",
        "1",
        "1",
        "0",
        "1",
        "15.29",
    ],
    // Orders: exactly at the time of the day's last order (20:34), so 3
    // orders; no activity of customer 4 before November.
    [
        "4",
        "2026-09-24T20:34:00",
        "false",
        "NULL",
        "NULL",
        "NULL",
        "3",
        "211.25",
    ],
    // Activity 12 days before: beyond the ttl.
    [
        "5",
        "2026-10-30T12:00:00",
        "true",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
    ],
    // Exactly at an event's time: that day's row, with its checkout.
    [
        "7",
        "2026-10-11T03:47:34",
        "false",
        "1",
        "1",
        "1",
        "1",
        "50.93",
    ],
    // Customer 1 never ordered.
    [
        "1",
        "2026-11-15T00:00:00",
        "true",
        "1",
        "1",
        "0",
        "NULL",
        "NULL",
    ],
    // Customer 9's order of 0 cents is dropped in staging: 4 orders.
    [
        "9",
        "2026-11-05T00:00:00",
        "false",
        "NULL",
        "NULL",
        "NULL",
        "4",
        "449.35",
    ],
    [
        "14",
        "2026-11-14T00:00:00",
        "false",
        "1",
        "1",
        "0",
        "5",
        "972.76",
    ],
    [
        "16",
        "2026-11-21T00:00:00",
        "false",
        "1",
        "1",
        "1",
        "3",
        "191.81",
    ],
    [
        "20",
        "2026-10-15T00:00:00",
        "true",
        "NULL",
        "NULL",
        "NULL",
        "3",
        "591.41",
    ],
    // An unknown customer: every feature NULL.
    [
        "99",
        "2026-11-01T00:00:00",
        "false",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
    ],
];

fn run_results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap()).unwrap()
}

fn result_of<'a>(results: &'a serde_json::Value, unique_id: &str) -> &'a serde_json::Value {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unique_id"] == unique_id)
        .unwrap_or_else(|| panic!("no result for {unique_id}: {results:#}"))
}

fn value(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        "NULL".into()
    } else {
        array_value_to_string(array, row).unwrap()
    }
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            rows.push(batch.columns().iter().map(|c| value(c, r)).collect());
        }
    }
    rows
}

/// The column names and rows of a Parquet file, values as text.
fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    (names, rows_of(&batches))
}

fn expected_churn_rows() -> Vec<Vec<String>> {
    CHURN_ROWS
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect()
}

fn append(path: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(lines);
    std::fs::write(path, text).unwrap();
}

#[test]
fn features_build_keeps_online_tables_merging_only_newer_rows() {
    let dir = built_example();
    let root = dir.path().join(".lake");
    let results = run_results(dir.path());
    for (id, table, keys) in [
        (ACTIVITY, "features.customer_activity", 20),
        (ORDERS, "features.customer_orders", 19),
    ] {
        let r = result_of(&results, id);
        assert_eq!(r["status"], "success", "{r:#}");
        assert_eq!(r["relation_name"], table, "{r:#}");
        assert_eq!(r["adapter_response"]["delta_version"], 0, "{r:#}");
        assert_eq!(r["adapter_response"]["rows_affected"], keys, "{r:#}");
        // One row per key.
        assert_eq!(
            query(
                &root,
                &format!("select count(*), count(distinct customer_id) from {table}")
            ),
            [[keys.to_string(), keys.to_string()]]
        );
    }
    // Each key's row is its latest in the source.
    assert_eq!(
        scalar(
            &root,
            "select count(*) from features.customer_activity o join \
             (select customer_id, max(last_event_at) as m from curated.customer_activity_daily group by customer_id) s \
             on o.customer_id = s.customer_id and o.last_event_at = s.m"
        ),
        "20"
    );
    let activity = "select customer_id, last_event_at, events, sessions, checkouts \
                    from features.customer_activity where customer_id in (1, 3, 4, 12) order by customer_id";
    let orders = "select customer_id, last_order_at, orders_to_date, revenue_to_date \
                  from features.customer_orders where customer_id in (1, 4, 9) order by customer_id";
    assert_eq!(
        query(&root, activity),
        [
            ["1", "2026-11-14T18:24:30", "1", "1", "0"],
            ["3", "2026-11-03T07:59:16", "1", "1", "1"],
            // Two events that day.
            ["4", "2026-11-20T06:40:13", "2", "1", "0"],
            ["12", "2026-10-18T02:42:58", "1", "1", "0"],
        ]
    );
    // Customer 1 has no order; 9's order of 0 cents is dropped in staging.
    assert_eq!(
        query(&root, orders),
        [
            ["4", "2026-11-20T18:15:00", "9", "1112.27"],
            ["9", "2026-11-19T20:44:00", "5", "636.85"],
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("target/run_results.json")).unwrap();
    assert!(text.contains("\"feature_view.shop_ai.customer_activity\""));

    // New data lands, newer than everything merged: two web events of
    // customer 1 and one of customer 3 on Nov 22, and customer 1's first
    // order.
    append(
        &dir.path().join("seeds/web_events.csv"),
        "121,1,s01-1122,page_view,/,2026-11-22 09:00:00\n\
         122,1,s01-1122,checkout,/checkout,2026-11-22 10:00:00\n\
         123,3,s03-1122,page_view,/,2026-11-22 11:00:00\n",
    );
    append(
        &dir.path().join("seeds/orders.csv"),
        "61,1,2026-11-22 12:00:00,placed,5000,web\n",
    );
    let out = lake(dir.path(), &["build"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Running 39 nodes and 2 online tables")
            && text.contains("OK merged into online table features.customer_activity [")
            && text.contains("Finished 39 nodes and 2 online tables"),
        "{text}"
    );
    // Only the keys with newer rows are merged, in one commit each.
    let results = run_results(dir.path());
    for (id, merged) in [(ACTIVITY, 2), (ORDERS, 1)] {
        let r = result_of(&results, id);
        assert_eq!(r["status"], "success", "{r:#}");
        assert_eq!(r["adapter_response"]["delta_version"], 1, "{r:#}");
        assert_eq!(r["adapter_response"]["rows_affected"], merged, "{r:#}");
    }
    assert_eq!(
        query(&root, activity),
        [
            ["1", "2026-11-22T10:00:00", "2", "1", "1"],
            ["3", "2026-11-22T11:00:00", "1", "1", "0"],
            ["4", "2026-11-20T06:40:13", "2", "1", "0"],
            ["12", "2026-10-18T02:42:58", "1", "1", "0"],
        ]
    );
    assert_eq!(
        query(&root, orders),
        [
            ["1", "2026-11-22T12:00:00", "1", "50.0"],
            ["4", "2026-11-20T18:15:00", "9", "1112.27"],
            ["9", "2026-11-19T20:44:00", "5", "636.85"],
        ]
    );
    assert_eq!(
        scalar(&root, "select count(*) from features.customer_orders"),
        "20"
    );

    // `lake seed` and `lake test` leave the online tables alone; `--exclude`
    // leaves a view out.
    let out = lake(dir.path(), &["seed"]);
    assert!(!stdout(&out).contains("online"), "{}", stdout(&out));
    let out = lake(
        dir.path(),
        &["run", "--exclude", "feature_view:customer_orders"],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("online table features.customer_activity")
            && !text.contains("features.customer_orders"),
        "{text}"
    );
}

#[test]
fn features_a_failed_online_refresh_is_an_error_result_and_retry_runs_it_again() {
    let dir = example_project();
    // The seed declares no columns, so the compiler cannot tell that
    // `tier` is not one of them: the refresh finds out.
    let broken = "feature_views:\n  - name: customer_tier\n    entities: [customer]\n    source: customers\n    timestamp_field: signed_up_at\n    features: [tier]\n";
    std::fs::write(dir.path().join("models/tier.yml"), broken).unwrap();
    let out = lake(dir.path(), &["build"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("ERROR online table features.customer_tier")
            && text.contains("feature view 'customer_tier' (models/tier.yml:2)")
            && text.contains("tier"),
        "{text}"
    );
    // The other views were refreshed.
    assert!(
        text.contains("OK created online table features.customer_activity"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("1 node did not succeed"),
        "{}",
        stderr(&out)
    );
    let results = run_results(dir.path());
    let r = result_of(&results, "feature_view.shop_ai.customer_tier");
    assert_eq!(r["status"], "error", "{r:#}");
    assert_eq!(r["relation_name"], "features.customer_tier", "{r:#}");

    // Fixed, `lake retry` refreshes just that view.
    std::fs::write(
        dir.path().join("models/tier.yml"),
        broken.replace("[tier]", "[segment]"),
    )
    .unwrap();
    let out = lake(dir.path(), &["retry"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Running 0 nodes and 1 online table")
            && text.contains("OK created online table features.customer_tier"),
        "{text}"
    );
    assert_eq!(
        query(
            &dir.path().join(".lake"),
            "select segment from features.customer_tier where customer_id = 2"
        ),
        [["enterprise"]]
    );
}

#[test]
fn features_training_set_is_point_in_time_correct_in_spine_order() {
    let dir = built_example();
    let out_path = dir.path().join("churn.parquet");
    let out = lake(
        dir.path(),
        &[
            "training-set",
            "--feature-service",
            "churn",
            "--spine-table",
            "raw.churn_labels",
            "--output",
            out_path.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lake training-set: 15 rows, 8 columns written to"),
        "{}",
        stderr(&out)
    );
    let (names, rows) = read_parquet(&out_path);
    assert_eq!(names, CHURN_COLUMNS);
    let expected = expected_churn_rows();
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "spine row {}", i + 1);
    }
    assert_eq!(rows.len(), expected.len());
    assert!(!dir.path().join("churn.parquet.tmp").exists());

    // The same spine from a Parquet file, and as a query, gives the same
    // rows; plain feature names and a renamed event column work too.
    let spine = dir.path().join("spine.parquet");
    let out = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            &format!(
                "copy (select * from raw.churn_labels) to '{}' stored as parquet",
                spine.display()
            ),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let from_file = dir.path().join("from_file.parquet");
    let out = lake(
        dir.path(),
        &[
            "training-set",
            "--feature-service",
            "churn",
            "--spine-file",
            spine.to_str().unwrap(),
            "-o",
            from_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_parquet(&from_file).1, expected);
    let plain = dir.path().join("plain.parquet");
    let out = lake(
        dir.path(),
        &[
            "training-set",
            "--features",
            "customer_orders:orders_to_date,customer_activity:checkouts",
            "--spine-sql",
            "select customer_id, event_timestamp as ts from raw.churn_labels where customer_id in (7, 99)",
            "--event-timestamp-column",
            "ts",
            "--plain-feature-names",
            "-o",
            plain.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (names, rows) = read_parquet(&plain);
    assert_eq!(names, ["customer_id", "ts", "orders_to_date", "checkouts"]);
    assert_eq!(
        rows,
        [
            ["7", "2026-11-02T00:00:00", "2", "NULL"],
            ["7", "2026-10-11T03:47:34", "1", "1"],
            ["99", "2026-11-01T00:00:00", "NULL", "NULL"],
        ]
    );
}

#[test]
fn features_training_set_errors_exit_1_with_a_clear_message() {
    let dir = built_example();
    let output = dir.path().join("out.parquet");
    let run = |extra: &[&str]| {
        let mut args = vec!["training-set", "-o", output.to_str().unwrap()];
        args.extend_from_slice(extra);
        lake(dir.path(), &args)
    };
    let out = run(&[
        "--feature-service",
        "chrun",
        "--spine-table",
        "raw.churn_labels",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown feature service 'chrun'")
            && stderr(&out).contains("did you mean 'churn'"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "--feature-service",
        "churn",
        "--spine-sql",
        "select customer_id, event_timestamp as ts from raw.churn_labels",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no column 'event_timestamp' in the spine")
            && err.contains("--event-timestamp-column"),
        "{err}"
    );
    let out = run(&[
        "--features",
        "customer_orders:orders",
        "--spine-table",
        "raw.churn_labels",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("feature view 'customer_orders' has no feature 'orders'"),
        "{}",
        stderr(&out)
    );
    // Neither the file nor its temporary sibling is left behind.
    assert!(!output.exists());
    assert!(!dir.path().join("out.parquet.tmp").exists());
    // A spine is required.
    let out = run(&["--feature-service", "churn"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn features_ls_lists_the_example_feature_store() {
    let dir = example_project();
    let out = lake(dir.path(), &["features", "ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Compared with runs of spaces made one, as the columns' widths vary.
    let text: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "Entities (1)",
        "customer customer_id models/features.yml:6",
        "Feature views (2)",
        "customer_activity customer curated.customer_activity_daily last_event_at 7d yes events, sessions, add_to_carts, checkouts",
        "customer_orders customer curated.customer_orders_daily last_order_at - yes orders_to_date, revenue_to_date",
        "Feature services (1)",
        "churn customer_activity:events, customer_activity:sessions, customer_activity:checkouts, customer_orders:orders_to_date, customer_orders:revenue_to_date",
    ] {
        assert!(
            text.iter().any(|l| l == line),
            "{line:?} not in:\n{}",
            text.join("\n")
        );
    }
    let out = lake(dir.path(), &["features", "ls", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["feature_views"][0]["ttl_seconds"], 7 * 86_400);
    assert_eq!(
        json["feature_views"][1]["ttl_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(
        json["feature_services"][0]["features"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let out = lake(
        dir.path(),
        &["ls", "--resource-type", "feature_view", "-o", "name"],
    );
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["customer_activity", "customer_orders"]
    );
}

#[test]
fn features_serve_answers_training_sets_and_online_features() {
    let dir = built_example();
    let server = Served::start(dir.path(), &[]);
    let runtime = runtime();
    runtime.block_on(async {
        let channel = Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightClient::new(channel);
        let command = serde_json::json!({"training_set": {
            "feature_service": "churn",
            "spine": {"table": "raw.churn_labels"},
        }});
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd(command.to_string()))
            .await
            .unwrap();
        assert_eq!(info.total_records, 15);
        let mut batches = Vec::new();
        for endpoint in &info.endpoint {
            let ticket = endpoint.ticket.clone().unwrap();
            batches.extend(
                client
                    .do_get(ticket)
                    .await
                    .unwrap()
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap(),
            );
        }
        let names: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, CHURN_COLUMNS);
        assert_eq!(rows_of(&batches), expected_churn_rows());

        let lookup = serde_json::json!({"online_features": {
            "feature_service": "churn",
            "entities": {"customer_id": [4, 99, 16]},
        }});
        let batches: Vec<RecordBatch> = client
            .do_get(Ticket::new(lookup.to_string()))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(column(&batches, 0), ["4", "99", "16"]);
        // customer_activity__checkouts, customer_orders__orders_to_date.
        assert_eq!(column(&batches, 3), ["0", "NULL", "1"]);
        assert_eq!(column(&batches, 4), ["9", "NULL", "3"]);
    });
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("lake serve: feature services: churn"), "{log}");
}
