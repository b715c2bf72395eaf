//! The point-in-time join against a brute-force reference of the rule, on
//! random data: ties on the timestamp and on the created timestamp, ttl
//! edges, NULL keys and times, keys without features, duplicate spine rows,
//! several views with different ttls, composite and string keys, time
//! units and zones that differ between the spine and the views, and views
//! read in several partitions.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use lake_features::{FeatureError, PointInTimeJoin, ViewJoin};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct SpineRow {
    k1: Option<i64>,
    k2: Option<&'static str>,
    /// Seconds.
    event: Option<i64>,
}

#[derive(Debug, Clone)]
struct FeatureRow {
    k1: Option<i64>,
    k2: Option<&'static str>,
    ts: Option<i64>,
    created: Option<i64>,
}

#[derive(Debug, Clone)]
struct View {
    composite: bool,
    ttl: Option<i64>,
    with_created: bool,
    rows: Vec<FeatureRow>,
    partitions: usize,
}

fn key1() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 8 => (0i64..4).prop_map(Some)]
}

fn key2() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![1 => Just(None), 8 => prop::sample::select(vec!["a", "b"]).prop_map(Some)]
}

fn time() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 10 => (0i64..12).prop_map(Some)]
}

fn spine_row() -> impl Strategy<Value = SpineRow> {
    (key1(), key2(), time()).prop_map(|(k1, k2, event)| SpineRow { k1, k2, event })
}

fn feature_row() -> impl Strategy<Value = FeatureRow> {
    (
        key1(),
        key2(),
        time(),
        prop_oneof![1 => Just(None), 6 => (0i64..3).prop_map(Some)],
    )
        .prop_map(|(k1, k2, ts, created)| FeatureRow {
            k1,
            k2,
            ts,
            created,
        })
}

fn view() -> impl Strategy<Value = View> {
    (
        any::<bool>(),
        prop_oneof![Just(None), (0i64..6).prop_map(Some)],
        any::<bool>(),
        prop::collection::vec(feature_row(), 0..40),
        1usize..4,
    )
        .prop_map(|(composite, ttl, with_created, rows, partitions)| View {
            composite,
            ttl,
            with_created,
            rows,
            partitions,
        })
}

const SECOND_MS: i64 = 1_000;
const SECOND_US: i64 = 1_000_000;

fn spine_batches(rows: &[SpineRow], batch_rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
    // Milliseconds in a zone on the spine, microseconds without one in the
    // views: the same instants either way.
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Int64, true),
        Field::new("k2", DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            true,
        ),
        Field::new("label", DataType::Int64, false),
    ]));
    let batches = rows
        .chunks(batch_rows.max(1))
        .enumerate()
        .map(|(c, chunk)| {
            let offset = c * batch_rows.max(1);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter(chunk.iter().map(|r| r.k1))),
                    Arc::new(StringArray::from_iter(chunk.iter().map(|r| r.k2))),
                    Arc::new(
                        TimestampMillisecondArray::from_iter(
                            chunk.iter().map(|r| r.event.map(|s| s * SECOND_MS)),
                        )
                        .with_timezone("+02:00"),
                    ),
                    Arc::new(Int64Array::from_iter_values(
                        (offset..offset + chunk.len()).map(|i| i as i64),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    (schema, batches)
}

fn view_schema(with_created: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("k1", DataType::Int32, true),
        Field::new("k2", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("id", DataType::Int64, false),
    ];
    if with_created {
        fields.push(Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

fn view_stream(schema: &SchemaRef, rows: &[(usize, &FeatureRow)]) -> SendableRecordBatchStream {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(datafusion::arrow::array::Int32Array::from_iter(
            rows.iter().map(|(_, r)| r.k1.map(|k| k as i32)),
        )),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, r)| r.k2))),
        Arc::new(TimestampMicrosecondArray::from_iter(
            rows.iter().map(|(_, r)| r.ts.map(|s| s * SECOND_US)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(i, _)| *i as i64),
        )),
    ];
    if schema.fields().len() == 5 {
        columns.push(Arc::new(
            TimestampMicrosecondArray::from_iter(
                rows.iter().map(|(_, r)| r.created.map(|s| s * SECOND_US)),
            )
            .with_timezone("UTC"),
        ));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    // Two batches per partition, to cross batch boundaries too.
    let half = batch.num_rows() / 2;
    let batches = vec![
        Ok(batch.slice(0, half)),
        Ok(batch.slice(half, batch.num_rows() - half)),
    ];
    Box::pin(RecordBatchStreamAdapter::new(
        schema.clone(),
        futures::stream::iter(batches),
    ))
}

fn view_join(i: usize, view: &View) -> ViewJoin {
    let schema = view_schema(view.with_created);
    let indexed: Vec<(usize, &FeatureRow)> = view.rows.iter().enumerate().collect();
    let per = indexed.len().div_ceil(view.partitions).max(1);
    let mut partitions: Vec<SendableRecordBatchStream> = indexed
        .chunks(per)
        .map(|chunk| view_stream(&schema, chunk))
        .collect();
    if partitions.is_empty() {
        partitions.push(view_stream(&schema, &[]));
    }
    ViewJoin {
        name: format!("v{i}"),
        join_keys: if view.composite {
            vec!["k1".into(), "k2".into()]
        } else {
            vec!["k1".into()]
        },
        timestamp_field: "ts".into(),
        created_timestamp_field: view.with_created.then(|| "created".into()),
        ttl: view.ttl.map(|s| Duration::from_secs(s as u64)),
        features: vec![("id".into(), format!("v{i}__id"))],
        source_schema: schema,
        partitions,
    }
}

/// The rule, row by row: the ids of every row that may win (all those tied
/// at the best (timestamp, created)); empty when nothing matches.
fn reference(spine: &SpineRow, view: &View) -> Vec<i64> {
    let (Some(k1), Some(event)) = (spine.k1, spine.event) else {
        return Vec::new();
    };
    if view.composite && spine.k2.is_none() {
        return Vec::new();
    }
    let candidates: Vec<(usize, &FeatureRow)> = view
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.k1 == Some(k1) && (!view.composite || r.k2 == spine.k2))
        .filter(|(_, r)| match r.ts {
            Some(ts) => ts <= event && view.ttl.is_none_or(|ttl| ttl == 0 || ts >= event - ttl),
            None => false,
        })
        .collect();
    let rank = |r: &FeatureRow| {
        (
            r.ts,
            if view.with_created {
                r.created.map_or(i64::MIN, |c| c)
            } else {
                0
            },
        )
    };
    let Some(best) = candidates.iter().map(|(_, r)| rank(r)).max() else {
        return Vec::new();
    };
    candidates
        .iter()
        .filter(|(_, r)| rank(r) == best)
        .map(|(i, _)| *i as i64)
        .collect()
}

async fn run(spine: &[SpineRow], views: &[View], batch_rows: usize) -> Vec<RecordBatch> {
    let (schema, batches) = spine_batches(spine, batch_rows);
    let mut join = PointInTimeJoin::new(schema, batches, "event_timestamp");
    for (i, view) in views.iter().enumerate() {
        join = join.with_view(view_join(i, view));
    }
    let stream = join.execute().await.unwrap();
    stream.try_collect().await.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_reference(
        spine in prop::collection::vec(spine_row(), 0..30),
        views in prop::collection::vec(view(), 1..4),
        batch_rows in 1usize..8,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = runtime.block_on(run(&spine, &views, batch_rows));
        let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
        prop_assert_eq!(rows, spine.len());
        let mut r = 0;
        for batch in &out {
            let labels = batch.column(3).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                // Every spine row once, in spine order, with its own columns.
                prop_assert_eq!(labels.value(row), r as i64);
                for (v, view) in views.iter().enumerate() {
                    let ids = batch.column(4 + v).as_primitive::<Int64Type>();
                    let allowed = reference(&spine[r], view);
                    if allowed.is_empty() {
                        prop_assert!(ids.is_null(row), "spine row {} view {}: got {:?}, want NULL", r, v, ids.value(row));
                    } else {
                        prop_assert!(ids.is_valid(row), "spine row {} view {}: got NULL, want one of {:?}", r, v, allowed);
                        prop_assert!(allowed.contains(&ids.value(row)), "spine row {} view {}: got {}, want one of {:?}", r, v, ids.value(row), allowed);
                    }
                }
                r += 1;
            }
        }
    }
}

fn ts(seconds: i64) -> Option<i64> {
    Some(seconds)
}

#[tokio::test]
async fn ttl_bounds_are_inclusive_and_ties_go_to_the_latest_created() {
    let spine = vec![SpineRow {
        k1: Some(1),
        k2: Some("a"),
        event: ts(10),
    }];
    let row = |t: i64, c: i64| FeatureRow {
        k1: Some(1),
        k2: Some("a"),
        ts: ts(t),
        created: Some(c),
    };
    // Exactly at event - ttl: in. Exactly at the event: in.
    let at_edge = View {
        composite: false,
        ttl: Some(4),
        with_created: true,
        rows: vec![row(6, 0)],
        partitions: 1,
    };
    let past_edge = View {
        composite: false,
        ttl: Some(4),
        with_created: true,
        rows: vec![row(5, 0)],
        partitions: 1,
    };
    let at_event = View {
        composite: false,
        ttl: Some(4),
        with_created: true,
        rows: vec![row(10, 0), row(11, 9)],
        partitions: 1,
    };
    let tie = View {
        composite: true,
        ttl: None,
        with_created: true,
        rows: vec![row(7, 2), row(7, 5), row(7, 1), row(3, 9)],
        partitions: 2,
    };
    let out = run(&spine, &[at_edge, past_edge, at_event, tie], 4).await;
    let value = |c: usize| {
        let a = out[0].column(c).as_primitive::<Int64Type>();
        a.is_valid(0).then(|| a.value(0))
    };
    assert_eq!(value(4), Some(0));
    assert_eq!(value(5), None);
    assert_eq!(value(6), Some(0));
    assert_eq!(value(7), Some(1));
}

#[tokio::test]
async fn names_unknown_columns_and_clashing_outputs() {
    let spine = vec![SpineRow {
        k1: Some(1),
        k2: None,
        event: ts(1),
    }];
    let (schema, batches) = spine_batches(&spine, 1);
    let view = View {
        composite: false,
        ttl: None,
        with_created: false,
        rows: vec![],
        partitions: 1,
    };
    let mut bad = view_join(0, &view);
    bad.timestamp_field = "tss".into();
    let err = PointInTimeJoin::new(schema.clone(), batches.clone(), "event_timestamp")
        .with_view(bad)
        .execute()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FeatureError::UnknownColumn { .. }), "{err}");
    assert!(err.to_string().contains("did you mean 'ts'"), "{err}");

    let mut clash = view_join(0, &view);
    clash.features = vec![("id".into(), "label".into())];
    let err = PointInTimeJoin::new(schema.clone(), batches.clone(), "event_timestamp")
        .with_view(clash)
        .execute()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FeatureError::DuplicateColumn { .. }), "{err}");

    let mut not_time = view_join(0, &view);
    not_time.timestamp_field = "id".into();
    let err = PointInTimeJoin::new(schema, batches, "event_timestamp")
        .with_view(not_time)
        .execute()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FeatureError::NotATime { .. }), "{err}");
}
