//! The metadata commands: catalogs, db schemas, tables (with schemas),
//! table types, primary keys, SqlInfo, XDBC type info.

use arrow_flight::IpcMessage;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo,
};
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::Schema;
use lake_flight::FlightServer;

use crate::support::{Client, Lake, TestServer, fetch, rows, text};

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b
                .column_by_name(column)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..array.len())
                .map(move |i| array.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn tables(client: &mut Client, command: CommandGetTables) -> Vec<RecordBatch> {
    let info = client.get_tables(command).await.unwrap();
    fetch(client, info).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metadata_command() {
    let lake = Lake::new().await;
    let server = TestServer::start(FlightServer::new(lake.session.clone())).await;
    let mut client = server.client().await;

    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&catalogs, "catalog_name"), ["lake"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = fetch(&mut client, info).await.unwrap();
    assert_eq!(
        strings(&schemas, "db_schema_name"),
        ["audit", "curated", "features", "raw"]
    );
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("cur%".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        strings(&fetch(&mut client, info).await.unwrap(), "db_schema_name"),
        ["curated"]
    );

    let all = tables(
        &mut client,
        CommandGetTables {
            include_schema: true,
            ..Default::default()
        },
    )
    .await;
    let names: Vec<String> = strings(&all, "db_schema_name")
        .into_iter()
        .zip(strings(&all, "table_name"))
        .zip(strings(&all, "table_type"))
        .map(|((zone, name), kind)| format!("{zone}.{name} {kind}"))
        .collect();
    assert_eq!(
        names,
        [
            "curated.big_orders VIEW",
            "curated.customer_emails VIEW",
            "curated.customers TABLE",
            "curated.orders TABLE",
            "curated.raw_events VIEW",
            "features.customer_stats TABLE",
            "raw.events TABLE",
        ]
    );
    // The schema of each table, as Arrow IPC.
    let batch = &all[0];
    let schemas = batch
        .column_by_name("table_schema")
        .unwrap()
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    let orders = strings(&all, "table_name")
        .iter()
        .position(|n| n == "orders")
        .unwrap();
    let schema = Schema::try_from(IpcMessage(schemas.value(orders).to_vec().into())).unwrap();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(columns, ["id", "customer", "amount"]);

    let views = tables(
        &mut client,
        CommandGetTables {
            table_types: vec!["VIEW".into()],
            table_name_filter_pattern: Some("big%".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(strings(&views, "table_name"), ["big_orders"]);
    assert!(views[0].column_by_name("table_schema").is_none());

    let info = client.get_table_types().await.unwrap();
    let types = fetch(&mut client, info).await.unwrap();
    assert_eq!(strings(&types, "table_type"), ["TABLE", "VIEW"]);

    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("lake".into()),
            db_schema: Some("curated".into()),
            table: "orders".into(),
        })
        .await
        .unwrap();
    let keys = fetch(&mut client, info).await.unwrap();
    assert_eq!(rows(&keys), 0);
    assert!(keys.is_empty() || keys[0].schema().field_with_name("key_sequence").is_ok());

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerVersion,
            SqlInfo::FlightSqlServerArrowVersion,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::FlightSqlServerSql,
            SqlInfo::FlightSqlServerSubstrait,
            SqlInfo::FlightSqlServerTransaction,
            SqlInfo::FlightSqlServerBulkIngestion,
        ])
        .await
        .unwrap();
    let info = fetch(&mut client, info).await.unwrap();
    assert_eq!(rows(&info), 8);
    assert!(text(&info).contains("lake"), "{}", text(&info));
    // Everything, when nothing is asked for.
    let all_info = client.get_sql_info(vec![]).await.unwrap();
    assert!(rows(&fetch(&mut client, all_info).await.unwrap()) > 50);

    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let types = fetch(&mut client, info).await.unwrap();
    let names = strings(&types, "type_name");
    assert!(names.contains(&"BIGINT".to_string()) && names.contains(&"VARCHAR".to_string()));
    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo {
            data_type: Some(arrow_flight::sql::XdbcDataType::XdbcVarchar as i32),
        })
        .await
        .unwrap();
    assert_eq!(
        strings(&fetch(&mut client, info).await.unwrap(), "type_name"),
        ["VARCHAR"]
    );

    // SQL metadata goes through the same catalog.
    let tables = crate::support::query(&mut client, "show tables")
        .await
        .unwrap();
    assert!(
        text(&tables).contains("customer_stats"),
        "{}",
        text(&tables)
    );
    server.stop().await;
}
