//! lake's own commands over Flight: training sets (JSON and protobuf
//! forms, tickets that pin Delta versions, several endpoints, uploaded
//! spines), online features, the list of feature services, roles and
//! errors.

use std::sync::Arc;

use arrow_flight::{FlightClient, FlightDescriptor, FlightInfo, Ticket};
use datafusion::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use futures::TryStreamExt;
use lake_auth::{Authenticator, new_api_token};
use lake_compiler::{CompileOptions, Manifest, compile};
use lake_features::OnlineRefresh;
use lake_flight::{Command, FlightServer, TrainingSetRequest, command, command_as_any};
use tonic::Code;
use tonic::transport::Endpoint;

use crate::support::{TestServer, open_session, sql, status};

/// A project with one feature view over `curated.stats` (ttl 2 days) and a
/// service; a lake with the stats and a spine (in `curated`, which trainers
/// may read).
struct FeatureLake {
    _project: tempfile::TempDir,
    lake: tempfile::TempDir,
    session: lake_engine::LakeSession,
    manifest: Arc<Manifest>,
}

const PROJECT_YAML: &str = "name: shop\nversion: '1'\n";

const FEATURES_YAML: &str = r#"
version: 2
sources:
  - name: shop
    config: {zone: curated}
    tables:
      - {name: stats, identifier: stats}
      - {name: spine, identifier: spine}
entities:
  - name: customer
    join_keys: [customer_id]
feature_views:
  - name: stats
    entities: [customer]
    source: shop.stats
    timestamp_field: event_ts
    created_timestamp_field: created_ts
    ttl: 2d
    features: [orders, spend]
feature_services:
  - name: churn
    features: [stats:orders, stats:spend]
"#;

impl FeatureLake {
    async fn new() -> FeatureLake {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("lake_project.yml"), PROJECT_YAML).unwrap();
        std::fs::create_dir(project.path().join("models")).unwrap();
        std::fs::write(project.path().join("models/features.yml"), FEATURES_YAML).unwrap();
        let manifest = compile(project.path(), &CompileOptions::default())
            .unwrap()
            .manifest;
        let lake = tempfile::tempdir().unwrap();
        let session = open_session(lake.path()).await;
        // Customer 1: orders 5 on day 1 (created twice: the later wins),
        // 7 on day 3. Customer 2: 9 on day 1 only.
        sql(
            &session,
            "create table curated.stats as select customer_id, to_timestamp_micros(event_ts) as event_ts, \
             to_timestamp_micros(created_ts) as created_ts, orders, spend from (values \
             (1, 86400000000, 86400000000, 4, 1.0), \
             (1, 86400000000, 86401000000, 5, 2.0), \
             (1, 259200000000, 259200000000, 7, 3.0), \
             (2, 86400000000, 86400000000, 9, 4.0)) \
             as t(customer_id, event_ts, created_ts, orders, spend)",
        )
        .await;
        // Spine: day 2 for 1 (orders 5), day 4 for 1 (7), day 4 for 2
        // (beyond the ttl: NULL), day 0 for 1 (before anything: NULL),
        // customer 3 (no features).
        sql(
            &session,
            "create table curated.spine as select customer_id, to_timestamp_micros(ts) as event_timestamp, label from (values \
             (1, 172800000000, 0), (1, 345600000000, 1), (2, 345600000000, 0), (1, 0, 1), (3, 172800000000, 0)) \
             as t(customer_id, ts, label)",
        )
        .await;
        session.catalog().refresh().await.unwrap();
        FeatureLake {
            _project: project,
            lake,
            session,
            manifest: Arc::new(manifest),
        }
    }

    fn server(&self) -> FlightServer {
        FlightServer::new(self.session.clone()).with_project(self.manifest.clone())
    }
}

async fn flight_client(server: &TestServer) -> FlightClient {
    let channel = Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightClient::new(channel)
}

async fn info(client: &mut FlightClient, command: &str) -> Result<FlightInfo, tonic::Status> {
    client
        .get_flight_info(FlightDescriptor::new_cmd(command.to_string()))
        .await
        .map_err(status)
}

async fn fetch_all(client: &mut FlightClient, info: &FlightInfo) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().unwrap();
        let stream = client.do_get(ticket).await.unwrap();
        out.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    out
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<i64>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).unwrap().as_primitive::<Int64Type>();
            (0..c.len())
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

const TRAINING_SET: &str =
    r#"{"training_set": {"feature_service": "churn", "spine": {"table": "curated.spine"}}}"#;

#[tokio::test]
async fn training_sets_follow_the_rule_and_tickets_pin_versions() {
    let lake = FeatureLake::new().await;
    let server = TestServer::start(lake.server()).await;
    let mut client = flight_client(&server).await;

    let first = info(&mut client, TRAINING_SET).await.unwrap();
    let schema = first.clone().try_decode_schema().unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "event_timestamp",
            "label",
            "stats__orders",
            "stats__spend"
        ]
    );
    assert_eq!(first.total_records, 5);
    let batches = fetch_all(&mut client, &first).await;
    assert_eq!(
        column(&batches, "label"),
        [Some(0), Some(1), Some(0), Some(1), Some(0)]
    );
    assert_eq!(
        column(&batches, "stats__orders"),
        [Some(5), Some(7), None, None, None]
    );

    // New data lands: a later row for customer 2 on day 4.
    sql(
        &lake.session,
        "insert into curated.stats select 2, to_timestamp_micros(345600000000) as e, \
         to_timestamp_micros(345600000000) as c, 11, 5.0",
    )
    .await;
    let again = fetch_all(&mut client, &first).await;
    assert_eq!(again, batches, "the same ticket returns the same rows");
    let fresh = info(&mut client, TRAINING_SET).await.unwrap();
    let now = fetch_all(&mut client, &fresh).await;
    assert_eq!(
        column(&now, "stats__orders"),
        [Some(5), Some(7), Some(11), None, None]
    );

    // The protobuf form, plain names and a query as the spine.
    let request = Command {
        kind: Some(command::Kind::TrainingSet(TrainingSetRequest {
            features: vec!["stats:orders".into()],
            spine: Some(lake_flight::SpineSource {
                kind: Some(lake_flight::spine_source::Kind::Sql(
                    "select * from curated.spine where label = 1".into(),
                )),
            }),
            full_feature_names: Some(false),
            ..Default::default()
        })),
    };
    let proto = client
        .get_flight_info(FlightDescriptor::new_cmd(command_as_any(&request)))
        .await
        .unwrap();
    let rows = fetch_all(&mut client, &proto).await;
    assert_eq!(column(&rows, "orders"), [Some(7), None]);
    server.stop().await;
}

#[tokio::test]
async fn large_spines_come_in_several_endpoints_in_order() {
    let lake = FeatureLake::new().await;
    let server = TestServer::start(lake.server().with_spine_rows_per_endpoint(2)).await;
    let mut client = flight_client(&server).await;
    let info = info(&mut client, TRAINING_SET).await.unwrap();
    assert_eq!(info.endpoint.len(), 3);
    let batches = fetch_all(&mut client, &info).await;
    assert_eq!(
        column(&batches, "label"),
        [Some(0), Some(1), Some(0), Some(1), Some(0)]
    );
    assert_eq!(
        column(&batches, "stats__orders"),
        [Some(5), Some(7), None, None, None]
    );
    server.stop().await;
}

#[tokio::test]
async fn uploaded_spines_by_do_exchange() {
    let lake = FeatureLake::new().await;
    let server = TestServer::start(lake.server()).await;
    let mut client = flight_client(&server).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let spine = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![2, 1, 1])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    86_400_000_000,
                    86_400_000_000,
                    300_000_000_000,
                ])
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let descriptor = FlightDescriptor::new_cmd(
        r#"{"training_set": {"features": ["stats"], "full_feature_names": false}}"#,
    );
    let data = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::iter([Ok(spine)]));
    let out: Vec<RecordBatch> = client
        .do_exchange(data)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(column(&out, "orders"), [Some(9), Some(5), Some(7)]);
    assert_eq!(column(&out, "customer_id"), [Some(2), Some(1), Some(1)]);
    server.stop().await;
}

#[tokio::test]
async fn online_features_and_feature_services() {
    let lake = FeatureLake::new().await;
    let view = &lake.manifest.feature_views["stats"];
    let outcome = OnlineRefresh::new(&lake.session, view).await.unwrap();
    assert_eq!(outcome.rows, 2);
    let server = TestServer::start(lake.server()).await;
    let mut client = flight_client(&server).await;
    let lookup = r#"{"online_features": {"feature_service": "churn", "entities": {"customer_id": [2, 3, 1]}}}"#;
    let batches: Vec<RecordBatch> = client
        .do_get(Ticket::new(lookup))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(column(&batches, "customer_id"), [Some(2), Some(3), Some(1)]);
    assert_eq!(column(&batches, "stats__orders"), [Some(9), None, Some(7)]);

    // A newer row merged by the next build is seen without a restart.
    sql(
        &lake.session,
        "insert into curated.stats select 2, to_timestamp_micros(345600000000) as e, \
         to_timestamp_micros(345600000000) as c, 11, 5.0",
    )
    .await;
    let outcome = OnlineRefresh::new(&lake.session, view).await.unwrap();
    assert!(!outcome.full);
    assert_eq!(outcome.rows, 1, "only the newer rows are merged");
    let lookup_2 = r#"{"online_features": {"features": ["stats:orders"], "full_feature_names": false, "entities": {"customer_id": [2]}}}"#;
    let mut seen = None;
    for _ in 0..50 {
        let batches: Vec<RecordBatch> = client
            .do_get(Ticket::new(lookup_2))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        seen = column(&batches, "orders").first().copied().flatten();
        if seen == Some(11) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, Some(11));

    let services: Vec<RecordBatch> = client
        .do_get(Ticket::new(r#"{"feature_services": {}}"#))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let names = services[0].column(0).as_string::<i32>();
    assert_eq!(names.value(0), "churn");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_and_roles() {
    let lake = FeatureLake::new().await;
    let (reader, reader_hash) = new_api_token();
    let (trainer, trainer_hash) = new_api_token();
    let path = lake.lake.path().join("auth.yml");
    std::fs::write(
        &path,
        format!(
            "principals:\n  - name: analyst\n    role: reader\n    token_sha256: \"{reader_hash}\"\n  - name: ml\n    role: trainer\n    token_sha256: \"{trainer_hash}\"\n"
        ),
    )
    .unwrap();
    let auth = Arc::new(Authenticator::load(&path).unwrap());
    let server = TestServer::start(lake.server().with_auth(Some(auth))).await;

    let mut as_reader = flight_client(&server).await;
    as_reader
        .add_header("authorization", &format!("Bearer {reader}"))
        .unwrap();
    let denied = info(&mut as_reader, TRAINING_SET).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied}");

    let mut as_trainer = flight_client(&server).await;
    as_trainer
        .add_header("authorization", &format!("Bearer {trainer}"))
        .unwrap();
    let ok = info(&mut as_trainer, TRAINING_SET).await.unwrap();
    assert_eq!(fetch_all(&mut as_trainer, &ok).await.len(), 1);

    for (command, wanted) in [
        (
            r#"{"training_set": {"feature_service": "chrun", "spine": {"table": "curated.spine"}}}"#,
            "did you mean 'churn'",
        ),
        (
            r#"{"training_set": {"feature_service": "churn"}}"#,
            "no spine",
        ),
        (r#"{"trainingset": {}}"#, "trainingset"),
        (
            r#"{"training_set": {"feature_service": "churn", "spine": {"sql": "select 1 as customer_id"}}}"#,
            "event_timestamp",
        ),
        (
            r#"{"training_set": {"features": ["stats:ordres"], "spine": {"table": "curated.spine"}}}"#,
            "orders",
        ),
    ] {
        let e = info(&mut as_trainer, command).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{command}: {e}");
        assert!(e.message().contains(wanted), "{command}: {}", e.message());
    }
    server.stop().await;
}
