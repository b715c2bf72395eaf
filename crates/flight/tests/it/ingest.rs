//! Bulk ingest into the raw zone.

use std::sync::Arc;

use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use lake_flight::FlightServer;
use tonic::Code;

use crate::support::{Client, Lake, TestServer, code, query, text};

fn upload(ids: &[i64], labels: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(labels.to_vec())),
        ],
    )
    .unwrap()
}

pub fn command(
    zone: Option<&str>,
    table: &str,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create as i32,
            if_exists: if_exists as i32,
        }),
        table: table.into(),
        schema: zone.map(Into::into),
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

pub async fn ingest(
    client: &mut Client,
    command: CommandStatementIngest,
    batches: Vec<RecordBatch>,
) -> Result<i64, arrow_flight::error::FlightError> {
    client
        .execute_ingest(command, futures::stream::iter(batches.into_iter().map(Ok)))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_creates_then_appends_to_a_raw_table() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;

    let written = ingest(
        &mut client,
        command(Some("raw"), "x", TableExistsOption::Fail),
        vec![upload(&[1, 2], &["a", "b"]), upload(&[3], &["c"])],
    )
    .await
    .unwrap();
    assert_eq!(written, 3);
    let delta = lake
        .session
        .root()
        .load_table("raw", "x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delta.version(), Some(0), "one commit");

    // Exists now: refused unless appending.
    let err = ingest(
        &mut client,
        command(Some("raw"), "x", TableExistsOption::Fail),
        vec![upload(&[4], &["d"])],
    )
    .await
    .unwrap_err();
    assert_eq!(code(err), Code::AlreadyExists);

    let written = ingest(
        &mut client,
        command(None, "x", TableExistsOption::Append),
        vec![upload(&[4, 5], &["d", "e"])],
    )
    .await
    .unwrap();
    assert_eq!(written, 2);
    let batches = query(
        &mut client,
        "select count(*) as n, max(label) as last from raw.x",
    )
    .await
    .unwrap();
    assert!(
        text(&batches).contains("| 5 | e    |"),
        "{}",
        text(&batches)
    );

    // Columns that do not match the table are refused with both lists.
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "other",
            DataType::Int64,
            false,
        )])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let err = crate::support::status(
        ingest(
            &mut client,
            command(None, "x", TableExistsOption::Append),
            vec![wrong],
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("label"), "{}", err.message());

    // Only the raw zone.
    let err = ingest(
        &mut client,
        command(Some("curated"), "y", TableExistsOption::Fail),
        vec![upload(&[1], &["a"])],
    )
    .await
    .unwrap_err();
    assert_eq!(code(err), Code::PermissionDenied);
    server.stop().await;
}
