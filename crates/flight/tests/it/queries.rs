//! Statement queries, time travel, stateless tickets, prepared statements,
//! refused statements, error codes, streaming, cancellation, limits.

use std::sync::Arc;

use arrow_flight::Ticket;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, TicketStatementQuery};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use lake_flight::{FlightServer, Outcome};
use prost::Message;
use tonic::Code;

use crate::support::{
    Lake, TestServer, code, eventually, fetch, open_session, query, rows, sql, status, text, ticket,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_round_trip_and_log_line() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;
    // Without auth the handshake accepts anyone and hands out no token.
    client.handshake("anyone", "anything").await.unwrap();
    assert!(client.token().is_none());
    let batches = query(
        &mut client,
        "select id, customer from curated.orders order by id",
    )
    .await
    .unwrap();
    assert_eq!(
        text(&batches),
        "+----+----------+\n\
         | id | customer |\n\
         +----+----------+\n\
         | 1  | alice    |\n\
         | 2  | bob      |\n\
         | 3  | carol    |\n\
         +----+----------+"
    );
    // One bare name is in curated; views work.
    let batches = query(&mut client, "select count(*) as n from big_orders")
        .await
        .unwrap();
    assert!(text(&batches).contains("| 2 |"), "{}", text(&batches));

    drop(client);
    eventually("the DoGet lines are written", || {
        server
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.command == "DoGet(statement)")
            .count()
            == 2
    })
    .await;
    let records = server.records.lock().unwrap().clone();
    let get = records
        .iter()
        .find(|r| r.command == "DoGet(statement)")
        .unwrap();
    assert_eq!(get.principal, "local");
    assert_eq!(get.rows, 3);
    assert!(get.bytes > 0);
    assert_eq!(get.outcome, Outcome::Ok);
    assert!(
        records
            .iter()
            .any(|r| r.command == "GetFlightInfo(statement)")
    );
    assert!(
        get.to_string()
            .starts_with("principal=local command=DoGet(statement) rows=3 bytes=")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_and_stateless_tickets() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;
    let count = "select count(*) as n from curated.orders";
    let info = client.execute(count.to_string(), None).await.unwrap();
    let issued = ticket(&info);
    let big = "select count(*) as n from curated.big_orders";
    let through_view = ticket(&client.execute(big.to_string(), None).await.unwrap());

    // A new commit after the tickets were issued, and the view redefined.
    sql(
        &lake.session,
        "insert into curated.orders values (4, 'dave', 100.0)",
    )
    .await;
    lake.session
        .root()
        .views()
        .put(&lake_storage::ViewDefinition {
            zone: "curated".into(),
            name: "big_orders".into(),
            sql: "select * from curated.orders where amount > 1000".into(),
            written_by: None,
            written_at: "2026-01-02T00:00:00Z".into(),
        })
        .await
        .unwrap();
    let pinned: Vec<RecordBatch> = client
        .do_get(through_view)
        .await
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
        .await;
    assert!(
        text(&pinned).contains("| 2 |"),
        "the view as it was, over version 0: {}",
        text(&pinned)
    );
    let fresh = query(&mut client, big).await.unwrap();
    assert!(text(&fresh).contains("| 0 |"), "{}", text(&fresh));

    let now = query(&mut client, count).await.unwrap();
    assert!(text(&now).contains("| 4 |"), "{}", text(&now));
    let old = client.do_get(issued.clone()).await.unwrap();
    let old: Vec<RecordBatch> = old.map(|b| b.unwrap()).collect().await;
    assert!(
        text(&old).contains("| 3 |"),
        "the ticket pins version 0: {}",
        text(&old)
    );

    // Time travel in SQL.
    let v0 = query(
        &mut client,
        "select count(*) as n from curated.orders version as of 0",
    )
    .await
    .unwrap();
    assert!(text(&v0).contains("| 3 |"), "{}", text(&v0));
    let err = query(&mut client, "select * from curated.orders version as of 99")
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);

    // Another server process over the same lake answers the same ticket.
    let other = TestServer::start(FlightServer::new(open_session(lake.dir.path()).await)).await;
    let mut other_client = other.client().await;
    let again = other_client.do_get(issued).await.unwrap();
    let again: Vec<RecordBatch> = again.map(|b| b.unwrap()).collect().await;
    assert_eq!(text(&again), text(&old));

    // Tickets are checked: foreign bytes are refused, not INTERNAL.
    let forged = TicketStatementQuery {
        statement_handle: b"select * from raw.events".to_vec().into(),
    };
    let err = other_client
        .do_get(Ticket::new(forged.as_any().encode_to_vec()))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
    drop((client, other_client));
    other.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statement_with_a_parameter() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;
    let mut prepared = client
        .prepare(
            "select customer, amount from curated.orders where id = $1".into(),
            None,
        )
        .await
        .unwrap();
    let parameters = prepared.parameter_schema().unwrap().clone();
    assert_eq!(parameters.fields().len(), 1);
    assert_eq!(parameters.field(0).name(), "$1");
    assert_eq!(parameters.field(0).data_type(), &DataType::Int64);
    let dataset = prepared.dataset_schema().unwrap().clone();
    assert_eq!(dataset.field(0).name(), "customer");

    let bind = |id: i64| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![id]))],
        )
        .unwrap()
    };
    prepared.set_parameters(bind(2)).unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(rows(&batches), 1);
    assert!(text(&batches).contains("bob"), "{}", text(&batches));

    // Bound again: the new handle carries the new value.
    prepared.set_parameters(bind(3)).unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert!(text(&batches).contains("carol"), "{}", text(&batches));
    prepared.close().await.unwrap();

    // A client may also DoGet a prepared statement's handle directly.
    let handle = lake_flight::PreparedHandle {
        sql: "select count(*) as n from curated.orders".into(),
        params: Vec::new(),
    };
    let command = arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: handle.encode().into(),
    };
    let direct = client
        .do_get(Ticket::new(command.as_any().encode_to_vec()))
        .await
        .unwrap();
    let direct: Vec<RecordBatch> = direct.map(|b| b.unwrap()).collect().await;
    assert!(text(&direct).contains("| 3 |"), "{}", text(&direct));

    // JDBC's `?` placeholders are numbered in order.
    let mut marks = client
        .prepare(
            "select customer from curated.orders where id = ? or customer = ? order by customer"
                .into(),
            None,
        )
        .await
        .unwrap();
    let parameters = marks.parameter_schema().unwrap().clone();
    assert_eq!(parameters.fields().len(), 2, "{parameters:?}");
    assert_eq!(parameters.field(0).name(), "$1");
    assert_eq!(parameters.field(1).data_type(), &DataType::Utf8);
    marks
        .set_parameters(
            RecordBatch::try_from_iter([
                ("$1", Arc::new(Int64Array::from(vec![1])) as _),
                (
                    "$2",
                    Arc::new(datafusion::arrow::array::StringArray::from(vec!["carol"])) as _,
                ),
            ])
            .unwrap(),
        )
        .unwrap();
    let info = marks.execute().await.unwrap();
    let batches = fetch(&mut client, info).await.unwrap();
    assert_eq!(rows(&batches), 2, "{}", text(&batches));
    assert!(text(&batches).contains("alice") && text(&batches).contains("carol"));

    // Executing without binding says what is missing.
    let mut unbound = client
        .prepare("select * from curated.orders where id = $1".into(), None)
        .await
        .unwrap();
    let err = unbound.execute().await.unwrap_err();
    let err = status(err);
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("$1"), "{}", err.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_codes_and_writes_are_refused() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;

    let err = status(query(&mut client, "selec 1").await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = status(
        query(&mut client, "select * from curated.ordrs")
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("did you mean curated.orders?"),
        "{}",
        err.message()
    );
    let err = status(
        query(&mut client, "select * from orderz")
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let err = status(
        query(&mut client, "select custmer from curated.orders")
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("Did you mean"), "{}", err.message());

    let err = status(query(&mut client, "select 1/0").await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    for refused in [
        "create table curated.x as select 1 as a",
        "create view curated.v as select 1 as a",
        "drop table curated.orders",
        "create external table ext stored as parquet location '/tmp/nowhere'",
        "insert into curated.orders values (9, 'mallory', 0.0)",
        "delete from curated.orders",
        "update curated.orders set amount = 0",
        "copy (select 1 as a) to '/tmp/lake-flight-copy.parquet'",
        "set datafusion.execution.batch_size = 10",
        "explain create table curated.y as select 1 as a",
    ] {
        let err = status(query(&mut client, refused).await.unwrap_err());
        assert_eq!(err.code(), Code::PermissionDenied, "{refused}: {err:?}");
        assert!(
            err.message().contains("not allowed"),
            "{refused}: {}",
            err.message()
        );
    }
    // Files by path are not tables here.
    let err = status(
        query(&mut client, "select * from '/etc/hostname'")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err.code(), Code::NotFound | Code::InvalidArgument),
        "{err:?}"
    );
    let err = status(
        client
            .execute_update("delete from curated.orders".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nothing was written.
    let count = query(&mut client, "select count(*) as n from curated.orders")
        .await
        .unwrap();
    assert!(text(&count).contains("| 3 |"));
    assert!(!lake.session.root().has_table("curated", "x").await.unwrap());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_stream_in_small_messages() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;
    // About 50 MB of strings in batches of about 8 MB each: every batch has
    // to be split to stay under 4 MiB per message. From a Delta table, whose
    // scans give view-typed strings (served as plain Utf8, whose slices
    // carry only their own bytes).
    sql(
        &lake.session,
        "create table curated.pads as \
         select value, repeat('x', 1000) as pad from generate_series(1, 50000)",
    )
    .await;
    let info = client
        .execute("select * from curated.pads".into(), None)
        .await
        .unwrap();
    let served = info.clone().try_decode_schema().unwrap();
    assert_eq!(
        served.field_with_name("pad").unwrap().data_type(),
        &DataType::Utf8
    );
    let mut raw = client.inner_mut().clone();
    let mut messages = raw.do_get(ticket(&info)).await.unwrap().into_inner();
    let (mut count, mut largest, mut total) = (0usize, 0usize, 0usize);
    while let Some(message) = messages.next().await {
        let size = message.unwrap().encoded_len();
        count += 1;
        largest = largest.max(size);
        total += size;
    }
    assert!(total > 50_000_000, "{total}");
    assert!(count > 20, "{count} messages");
    assert!(largest < 4 << 20, "a message of {largest} bytes");

    // And through the record batch decoder: every row arrives.
    let batches = query(&mut client, "select value from generate_series(1, 2000000)")
        .await
        .unwrap();
    assert_eq!(rows(&batches), 2_000_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_query_and_the_limit_holds() {
    let lake = Lake::new().await;
    let server =
        TestServer::start(FlightServer::new(lake.session.clone()).with_max_concurrent_queries(1))
            .await;
    let mut client = server.client().await;
    // Far more rows than anyone would wait for: only a streaming server
    // answers at all.
    let endless = "select value from generate_series(1, 1000000000000)";
    let info = client.execute(endless.into(), None).await.unwrap();
    let mut stream = client.do_get(ticket(&info)).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    assert_eq!(server.metrics.running_queries(), 1);

    // The one slot is taken.
    let mut second = server.client().await;
    let info = second.execute("select 1".into(), None).await.unwrap();
    let err = second.do_get(ticket(&info)).await.unwrap_err();
    assert_eq!(code(err), Code::ResourceExhausted);

    // The client goes away: the query stops and frees its slot.
    drop(stream);
    drop(client);
    let metrics = server.metrics.clone();
    eventually("the dropped query stops", || metrics.running_queries() == 0).await;
    let records = server.records.clone();
    eventually("its log line says cancelled", || {
        records
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.command == "DoGet(statement)" && r.outcome == Outcome::Cancelled)
    })
    .await;
    let batches = fetch(&mut second, info).await.unwrap();
    assert_eq!(rows(&batches), 1);

    // A ticket handed to the raw Flight client works too (it is just bytes).
    let cmd = CommandStatementQuery {
        query: "select 2".into(),
        transaction_id: None,
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let info = second
        .inner_mut()
        .get_flight_info(descriptor)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rows(&fetch(&mut second, info).await.unwrap()), 1);
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_serve_without_auth_beyond_loopback() {
    let lake = Lake::new().await;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = FlightServer::new(lake.session.clone())
        .serve_with_listener(listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without authentication"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_is_answered_and_other_actions_are_unimplemented() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;
    let mut raw = client.inner_mut().clone();
    let results: Vec<arrow_flight::Result> = raw
        .do_action(arrow_flight::Action::new("CloseSession", ""))
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap())
        .collect()
        .await;
    // CloseSessionResult { status: CLOSED }.
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].body.as_ref(), [0x08, 0x01]);
    let err = raw
        .do_action(arrow_flight::Action::new("Reboot", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("Reboot"), "{err:?}");
    server.stop().await;
}
