//! Authentication on every RPC, roles, PII masking.

use std::sync::Arc;

use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, TableExistsOption};
use arrow_flight::{Action, Criteria, Empty, Ticket};
use lake_auth::{Authenticator, hash_password, new_api_token};
use lake_flight::FlightServer;
use tonic::Code;

use crate::ingest::{command, ingest};
use crate::support::{Client, Lake, TestServer, code, fetch, query, status, text, ticket};

struct Tokens {
    admin: String,
    reader: String,
    writer: String,
}

/// An auth file: alice (reader, password), and API tokens for an admin, a
/// reader and a writer.
fn authenticator(dir: &std::path::Path) -> (Arc<Authenticator>, Tokens) {
    let (admin, admin_hash) = new_api_token();
    let (reader, reader_hash) = new_api_token();
    let (writer, writer_hash) = new_api_token();
    let password_hash = hash_password("correct horse").unwrap();
    let yaml = format!(
        "principals:\n\
         \x20 - name: alice\n    role: reader\n    password_hash: \"{password_hash}\"\n\
         \x20 - name: root\n    role: admin\n    token_sha256: \"{admin_hash}\"\n\
         \x20 - name: analyst\n    role: reader\n    token_sha256: \"{reader_hash}\"\n\
         \x20 - name: loader\n    role: writer\n    token_sha256: \"{writer_hash}\"\n"
    );
    let path = dir.join("auth.yml");
    std::fs::write(&path, yaml).unwrap();
    let authenticator = Authenticator::load(&path).unwrap();
    (
        Arc::new(authenticator),
        Tokens {
            admin,
            reader,
            writer,
        },
    )
}

async fn start(lake: &Lake) -> (TestServer, Tokens) {
    let (authenticator, tokens) = authenticator(lake.dir.path());
    let server = TestServer::start(
        FlightServer::new(lake.session.clone())
            .with_auth(Some(authenticator))
            .with_pii_columns([("curated.customers", ["email", "age"])]),
    )
    .await;
    (server, tokens)
}

async fn client_with(server: &TestServer, token: &str) -> Client {
    let mut client = server.client().await;
    client.set_token(token.to_string());
    client
}

/// `message` with the client's bearer token, for the raw Flight client.
fn with_token<T>(token: &Option<String>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Every kind of call, each expected to fail with UNAUTHENTICATED.
async fn assert_every_rpc_denied(client: &mut Client, ticket: Ticket) {
    let mut failures = Vec::new();
    failures.push(status(
        client.execute("select 1".into(), None).await.unwrap_err(),
    ));
    failures.push(status(client.do_get(ticket).await.unwrap_err()));
    failures.push(status(
        client.prepare("select 1".into(), None).await.unwrap_err(),
    ));
    failures.push(status(client.get_catalogs().await.unwrap_err()));
    failures.push(status(
        client
            .get_tables(CommandGetTables::default())
            .await
            .unwrap_err(),
    ));
    failures.push(status(client.get_sql_info(vec![]).await.unwrap_err()));
    failures.push(status(
        ingest(
            client,
            command(None, "sneaky", TableExistsOption::Fail),
            vec![],
        )
        .await
        .unwrap_err(),
    ));
    let token = client.token().cloned();
    let mut raw = client.inner_mut().clone();
    failures.push(
        raw.list_actions(with_token(&token, Empty {}))
            .await
            .unwrap_err(),
    );
    failures.push(
        raw.list_flights(with_token(&token, Criteria::default()))
            .await
            .unwrap_err(),
    );
    failures.push(
        raw.do_action(with_token(
            &token,
            Action::new("ClosePreparedStatement", ""),
        ))
        .await
        .unwrap_err(),
    );
    for failure in failures {
        assert_eq!(failure.code(), Code::Unauthenticated, "{failure:?}");
        assert_eq!(failure.message(), "authentication failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_checks_credentials() {
    let lake = Lake::new().await;
    let (server, tokens) = start(&lake).await;
    let mut admin = client_with(&server, &tokens.admin).await;
    let info = admin.execute("select 1 as one".into(), None).await.unwrap();
    let valid_ticket = ticket(&info);

    // No credentials at all.
    let mut anonymous = server.client().await;
    assert_every_rpc_denied(&mut anonymous, valid_ticket.clone()).await;
    // A token nobody issued, and malformed headers.
    let mut forged = client_with(&server, "lake_not-a-real-token").await;
    assert_every_rpc_denied(&mut forged, valid_ticket.clone()).await;
    for header in [
        "Bearer",
        "Basic !!!",
        "Token abc",
        "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==",
    ] {
        let mut malformed = server.client().await;
        malformed.set_header("authorization", header);
        let err = status(
            malformed
                .execute("select 1".into(), None)
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code(), Code::Unauthenticated, "{header}: {err:?}");
        assert_eq!(err.message(), "authentication failed");
    }

    // The handshake: wrong password, unknown user, then the right one.
    let mut alice = server.client().await;
    // (arrow-flight's client turns handshake failures into text.)
    let wrong = alice
        .handshake("alice", "wrong")
        .await
        .unwrap_err()
        .to_string();
    let unknown = alice
        .handshake("mallory", "correct horse")
        .await
        .unwrap_err()
        .to_string();
    for err in [&wrong, &unknown] {
        assert!(err.contains("authentication failed"), "{err}");
        assert!(
            err.contains("valid authentication credentials"),
            "UNAUTHENTICATED: {err}"
        );
        assert!(!err.contains("mallory") && !err.contains("wrong"), "{err}");
    }
    assert_eq!(wrong, unknown, "one message for every failure");
    let payload = alice.handshake("alice", "correct horse").await.unwrap();
    let token = alice
        .token()
        .cloned()
        .expect("a bearer token in the header");
    assert_eq!(payload, token.as_bytes(), "and in the payload");
    let batches = query(&mut alice, "select count(*) as n from curated.orders")
        .await
        .unwrap();
    assert!(text(&batches).contains("| 3 |"));
    // Older clients send a BasicAuth message instead of a header.
    let basic = arrow_flight::BasicAuth {
        username: "alice".into(),
        password: "correct horse".into(),
    };
    let hello = arrow_flight::HandshakeRequest {
        protocol_version: 0,
        payload: prost::Message::encode_to_vec(&basic).into(),
    };
    let mut raw = server.client().await.into_inner();
    let response = raw.handshake(futures::stream::iter([hello])).await.unwrap();
    let header = response
        .metadata()
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(header.starts_with("Bearer "), "{header}");
    // The valid ticket works for the authenticated client.
    assert!(alice.do_get(valid_ticket).await.is_ok());
    let records = server.records.lock().unwrap().clone();
    assert!(
        records
            .iter()
            .any(|r| r.principal == "alice" && r.command == "DoGet(statement)")
    );
    assert!(
        records.iter().any(|r| r.principal == "-"
            && r.outcome == lake_flight::Outcome::Failed(Code::Unauthenticated))
    );
    drop((admin, anonymous, forged, alice));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_zones_and_pii_is_masked() {
    let lake = Lake::new().await;
    let (server, tokens) = start(&lake).await;
    let mut reader = client_with(&server, &tokens.reader).await;
    let mut admin = client_with(&server, &tokens.admin).await;
    let mut writer = client_with(&server, &tokens.writer).await;

    // A reader reads curated and features, not raw: directly, through a
    // view, in a subquery, or with a ticket issued to someone else.
    assert!(
        query(&mut reader, "select * from curated.orders")
            .await
            .is_ok()
    );
    assert!(
        query(&mut reader, "select * from features.customer_stats")
            .await
            .is_ok()
    );
    for sql in [
        "select * from raw.events",
        "select * from lake.raw.events",
        "select * from curated.raw_events",
        "select * from curated.orders where id in (select id from raw.events)",
    ] {
        let err = status(query(&mut reader, sql).await.unwrap_err());
        assert_eq!(err.code(), Code::PermissionDenied, "{sql}: {err:?}");
        assert!(err.message().contains("raw"), "{sql}: {}", err.message());
    }
    let err = status(
        reader
            .prepare("select * from raw.events".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::PermissionDenied);
    let admins = admin
        .execute("select * from raw.events".into(), None)
        .await
        .unwrap();
    assert_eq!(
        fetch(&mut admin, admins.clone()).await.unwrap()[0].num_rows(),
        2
    );
    let err = reader.do_get(ticket(&admins)).await.unwrap_err();
    assert_eq!(code(err), Code::PermissionDenied);
    // information_schema and listings show only readable zones.
    let listed = query(
        &mut reader,
        "select table_schema, table_name from information_schema.tables",
    )
    .await
    .unwrap();
    assert!(!text(&listed).contains("raw "), "{}", text(&listed));
    let info = reader
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .unwrap();
    let zones = text(&fetch(&mut reader, info).await.unwrap());
    assert!(zones.contains("curated") && zones.contains("features"));
    assert!(
        !zones.contains("raw") && !zones.contains("audit"),
        "{zones}"
    );
    let info = reader
        .get_tables(CommandGetTables::default())
        .await
        .unwrap();
    let tables = text(&fetch(&mut reader, info).await.unwrap());
    assert!(
        tables.contains("orders") && !tables.contains("| raw "),
        "{tables}"
    );

    // PII: masked for the reader, with the same column types.
    let masked = query(
        &mut reader,
        "select name, email, age from curated.customers order by name",
    )
    .await
    .unwrap();
    let shown = text(&masked);
    assert!(
        shown.contains("***") && !shown.contains("alice@example.com"),
        "{shown}"
    );
    assert!(masked[0].column(2).is_null(0), "age is NULL for the reader");
    let plain = query(
        &mut admin,
        "select name, email, age from curated.customers order by name",
    )
    .await
    .unwrap();
    assert!(text(&plain).contains("alice@example.com"));
    assert_eq!(
        masked[0].schema().field(2).data_type(),
        plain[0].schema().field(2).data_type()
    );
    // Through a view, and in an older version, too.
    for sql in [
        "select email from curated.customer_emails",
        "select email from curated.customers version as of 0",
    ] {
        let shown = text(&query(&mut reader, sql).await.unwrap());
        assert!(
            shown.contains("***") && !shown.contains("@example.com"),
            "{sql}: {shown}"
        );
    }
    let shown = text(
        &query(&mut admin, "select email from curated.customer_emails")
            .await
            .unwrap(),
    );
    assert!(shown.contains("bob@example.com"), "{shown}");
    // Filtering on a masked column reveals nothing.
    let probe = query(
        &mut reader,
        "select count(*) as n from curated.customers where email like 'alice%'",
    )
    .await
    .unwrap();
    assert!(text(&probe).contains("| 0 |"), "{}", text(&probe));

    // Bulk ingest: writers yes, readers no.
    let batch = datafusion::arrow::array::RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 2])) as _,
    )])
    .unwrap();
    let err = ingest(
        &mut reader,
        command(None, "from_reader", TableExistsOption::Fail),
        vec![batch.clone()],
    )
    .await
    .unwrap_err();
    assert_eq!(code(err), Code::PermissionDenied);
    assert!(
        !lake
            .session
            .root()
            .has_table("raw", "from_reader")
            .await
            .unwrap()
    );
    let written = ingest(
        &mut writer,
        command(None, "from_writer", TableExistsOption::Fail),
        vec![batch],
    )
    .await
    .unwrap();
    assert_eq!(written, 2);
    // A writer reads like a reader.
    let err = query(&mut writer, "select * from raw.from_writer")
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::PermissionDenied);
    drop((reader, admin, writer));
    server.stop().await;
}
