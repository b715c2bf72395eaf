//! Integration tests of lake-storage: roots, views, the catalog, writes.

use std::sync::Arc;

use object_store::ObjectStoreExt;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use lake_storage::deltalake::delta_datafusion::planner::DeltaPlanner;
use lake_storage::{
    LakeCatalog, LakeRoot, SchemaChange, StorageError, TableMerge, TableWrite, ViewDefinition,
    WriteMode,
};

/// A session like the engine's: catalog `lake`, deltalake's planner.
async fn session(root: &Arc<LakeRoot>) -> (SessionContext, Arc<LakeCatalog>) {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("lake", "curated")
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_query_planner(DeltaPlanner::new())
        .build();
    let ctx = SessionContext::new_with_state(state);
    let catalog = LakeCatalog::new(root.clone());
    catalog.register(&ctx);
    catalog.refresh().await.unwrap();
    (ctx, catalog)
}

async fn rows(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

fn memory_root(name: &str) -> Arc<LakeRoot> {
    Arc::new(
        LakeRoot::open(
            &format!("memory:///{name}"),
            std::path::Path::new("/"),
            Default::default(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn write_read_append_merge_and_replace_on_a_memory_root() {
    let root = memory_root("t1");
    let (ctx, catalog) = session(&root).await;
    let plan = ctx
        .sql("select * from (values (1, 'a', 10), (2, 'b', 20)) as t(id, kind, amount)")
        .await
        .unwrap()
        .into_unoptimized_plan();
    let first = TableWrite::new(
        root.clone(),
        "curated",
        "facts",
        plan,
        Arc::new(ctx.state()),
    )
    .with_partition_by(vec!["kind".into()])
    .with_metadata("lake.node", serde_json::json!("model.t.facts"))
    .await
    .unwrap();
    assert_eq!(first.version, 0);
    assert_eq!(first.rows_written, Some(2));
    // A second open of the same memory root sees the table.
    let again = memory_root("t1");
    assert_eq!(again.list_tables("curated").await.unwrap(), ["facts"]);
    assert!(again.load_table("curated", "nope").await.unwrap().is_none());

    let more = ctx
        .sql("select 3 as id, 'a' as kind, 30 as amount")
        .await
        .unwrap()
        .into_unoptimized_plan();
    let appended = TableWrite::new(
        root.clone(),
        "curated",
        "facts",
        more,
        Arc::new(ctx.state()),
    )
    .with_mode(WriteMode::Append)
    .with_schema_change(SchemaChange::Keep)
    .await
    .unwrap();
    assert_eq!(appended.version, 1);
    catalog.note_written("curated", "facts");
    assert!(
        rows(&ctx, "select count(*) as n from facts")
            .await
            .contains("| 3 ")
    );

    let source = ctx
        .sql("select * from (values (2, 'b', 25), (4, 'c', 40)) as s(id, kind, amount)")
        .await
        .unwrap();
    let merged = TableMerge::new(
        root.clone(),
        "curated",
        "facts",
        source,
        vec!["id".into()],
        Arc::new(ctx.state()),
    )
    .await
    .unwrap();
    assert_eq!(merged.version, 2);
    assert_eq!(merged.rows_updated, Some(1));
    assert_eq!(merged.rows_written, Some(2));
    let table = rows(
        &ctx,
        "select id, amount from lake.curated.facts order by id",
    )
    .await;
    assert!(
        table.contains("| 2  | 25 ") && table.contains("| 4  | 40 "),
        "{table}"
    );

    // Replace the rows of kind 'a' only.
    let replacement = ctx
        .sql("select 9 as id, 'a' as kind, 90 as amount")
        .await
        .unwrap()
        .into_unoptimized_plan();
    TableWrite::new(
        root.clone(),
        "curated",
        "facts",
        replacement,
        Arc::new(ctx.state()),
    )
    .with_mode(WriteMode::ReplaceWhere(col("kind").eq(lit("a"))))
    .with_schema_change(SchemaChange::Keep)
    .await
    .unwrap();
    let table = rows(&ctx, "select id from facts order by id").await;
    assert!(
        table.contains("| 9 ") && !table.contains("| 1 ") && !table.contains("| 3 "),
        "{table}"
    );
    assert!(table.contains("| 2 ") && table.contains("| 4 "), "{table}");
    // Each write was one commit.
    let history_len = root
        .load_table("curated", "facts")
        .await
        .unwrap()
        .unwrap()
        .version();
    assert_eq!(history_len, Some(3));
}

#[tokio::test]
async fn views_are_stored_and_planned_through_the_catalog() {
    let root = memory_root("t2");
    let (ctx, catalog) = session(&root).await;
    let plan = ctx
        .sql("select 1 as id union all select 2")
        .await
        .unwrap()
        .into_unoptimized_plan();
    TableWrite::new(root.clone(), "raw", "base", plan, Arc::new(ctx.state()))
        .await
        .unwrap();
    let view = ViewDefinition {
        zone: "curated".into(),
        name: "doubled".into(),
        sql: "select id * 2 as id2 from raw.base".into(),
        written_by: Some("model.t.doubled".into()),
        written_at: "2026-11-21T00:00:00Z".into(),
    };
    root.views().put(&view).await.unwrap();
    assert_eq!(
        root.views().get("curated", "doubled").await.unwrap(),
        Some(view)
    );
    assert_eq!(root.views().list("curated").await.unwrap(), ["doubled"]);
    catalog.refresh().await.unwrap();
    assert!(
        catalog
            .names()
            .contains(&("curated".into(), "doubled".into()))
    );
    assert!(
        rows(&ctx, "select sum(id2) as s from doubled")
            .await
            .contains("| 6 ")
    );
    // Names fold to lower case in SQL; stored names may not.
    assert!(
        rows(&ctx, "select count(*) from DOUBLED")
            .await
            .contains("| 2 ")
    );
    assert!(root.views().remove("curated", "doubled").await.unwrap());
    assert!(!root.views().remove("curated", "doubled").await.unwrap());
    assert!(ctx.sql("select * from doubled").await.is_err());
}

#[tokio::test]
async fn a_corrupt_view_definition_is_an_error_naming_it() {
    let root = memory_root("t3");
    let store = root.object_store();
    store
        .put(
            &root.path(&["_lake", "views", "curated", "broken.json"]),
            "{not json".into(),
        )
        .await
        .unwrap();
    let err = root.views().get("curated", "broken").await.unwrap_err();
    assert!(matches!(err, StorageError::CorruptView { .. }), "{err}");
    assert!(err.to_string().contains("curated.broken"), "{err}");
}

#[test]
fn bad_names_zones_and_roots_are_rejected() {
    let root = memory_root("t4");
    assert!(matches!(
        root.table_url("gold", "x"),
        Err(StorageError::UnknownZone { .. })
    ));
    for bad in ["", "a/b", "../x", "_hidden", "a.b"] {
        assert!(
            matches!(
                root.table_url("raw", bad),
                Err(StorageError::InvalidName { .. })
            ),
            "{bad}"
        );
    }
    let err = LakeRoot::open(
        "gopher://x/y",
        std::path::Path::new("/"),
        Default::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unsupported scheme 'gopher://'"),
        "{err}"
    );
}

#[tokio::test]
async fn a_local_root_is_created_and_commits_land_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = Arc::new(LakeRoot::open("lake", dir.path(), Default::default()).unwrap());
    assert!(dir.path().join("lake").is_dir());
    let (ctx, _) = session(&root).await;
    let plan = ctx
        .sql("select 42 as answer")
        .await
        .unwrap()
        .into_unoptimized_plan();
    let outcome = TableWrite::new(
        root.clone(),
        "features",
        "answers",
        plan,
        Arc::new(ctx.state()),
    )
    .await
    .unwrap();
    assert_eq!(outcome.version, 0);
    let log = dir
        .path()
        .join("lake/features/answers/_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"lake.node\"") || text.contains("commitInfo"),
        "{text}"
    );
    assert_eq!(root.list_tables("features").await.unwrap(), ["answers"]);
    // A folder without a log is not a table.
    std::fs::create_dir_all(dir.path().join("lake/features/half_written")).unwrap();
    assert_eq!(root.list_tables("features").await.unwrap(), ["answers"]);
}

#[tokio::test]
async fn cached_providers_are_dropped_when_what_they_read_is_written() {
    let root = memory_root("t5");
    let (ctx, catalog) = session(&root).await;
    catalog.cache_providers(true);
    let write = |sql: &'static str| {
        let root = root.clone();
        let ctx = ctx.clone();
        async move {
            let plan = ctx.sql(sql).await.unwrap().into_unoptimized_plan();
            TableWrite::new(root, "raw", "numbers", plan, Arc::new(ctx.state()))
                .await
                .unwrap()
        }
    };
    write("select 1 as n").await;
    root.views()
        .put(&ViewDefinition {
            zone: "curated".into(),
            name: "total".into(),
            sql: "select sum(n) as s from raw.numbers".into(),
            written_by: None,
            written_at: "2026-11-21T00:00:00Z".into(),
        })
        .await
        .unwrap();
    catalog.note_written("curated", "total");
    assert!(rows(&ctx, "select s from total").await.contains("| 1 "));
    // Written behind the catalog's back: the cached snapshot still answers.
    write("select 1 as n union all select 2").await;
    assert!(
        rows(&ctx, "select s from total").await.contains("| 1 "),
        "the cache is in use"
    );
    // Once told, the table and the view reading it are read again.
    catalog.note_written("raw", "numbers");
    assert!(rows(&ctx, "select s from total").await.contains("| 3 "));
    assert!(
        rows(&ctx, "select count(*) as c from raw.numbers")
            .await
            .contains("| 2 ")
    );
    // Without the cache every query goes to storage.
    catalog.cache_providers(false);
    write("select 10 as n").await;
    assert!(rows(&ctx, "select s from total").await.contains("| 10 "));
}

#[tokio::test]
async fn without_the_build_cache_each_query_sees_other_writers_commits() {
    let root = memory_root("t6");
    let (ctx, catalog) = session(&root).await;
    catalog.cache_providers(false);
    // Another process: its own catalog and session over the same root.
    let (writer, _) = session(&root).await;
    let write = |sql: &'static str, mode: WriteMode| {
        let root = root.clone();
        let writer = writer.clone();
        async move {
            let plan = writer.sql(sql).await.unwrap().into_unoptimized_plan();
            TableWrite::new(root, "raw", "numbers", plan, Arc::new(writer.state()))
                .with_mode(mode)
                .with_schema_change(SchemaChange::Keep)
                .await
                .unwrap()
        }
    };
    write("select 1 as n", WriteMode::Overwrite).await;
    let count = "select count(*) as c from raw.numbers";
    assert!(rows(&ctx, count).await.contains("| 1 "));
    // Unchanged: the provider opened at version 0 answers again.
    assert!(rows(&ctx, count).await.contains("| 1 "));
    write("select 2 as n", WriteMode::Append).await;
    assert!(
        rows(&ctx, count).await.contains("| 2 "),
        "a new commit is seen"
    );
    // A view that takes the name replaces the table for readers.
    root.views()
        .put(&ViewDefinition {
            zone: "raw".into(),
            name: "numbers".into(),
            sql: "select 7 as n".into(),
            written_by: None,
            written_at: "2026-11-21T00:00:00Z".into(),
        })
        .await
        .unwrap();
    assert!(
        rows(&ctx, "select n from raw.numbers")
            .await
            .contains("| 7 ")
    );
}

#[tokio::test]
async fn plain_tables_are_parquet_scans_with_the_footers_statistics() {
    let root = memory_root("t7");
    let (ctx, _catalog) = session(&root).await;
    let plan = ctx
        .sql("select * from (values (3, 'c', 1.5), (9, 'z', 2.5), (5, NULL, NULL)) as t(k, s, x)")
        .await
        .unwrap()
        .into_unoptimized_plan();
    TableWrite::new(root.clone(), "raw", "keys", plan, Arc::new(ctx.state()))
        .await
        .unwrap();
    ctx.sql("set datafusion.explain.show_statistics = true")
        .await
        .unwrap();
    let explain = rows(&ctx, "explain select k, s, x from raw.keys").await;
    // No deltalake wrapper: the scan is DataFusion's Parquet scan of the
    // log's files, with what DataFusion reads from their footers.
    assert!(!explain.contains("DeltaScan"), "{explain}");
    assert!(
        explain.contains("DataSourceExec: file_groups={1 group: [[part-00000-"),
        "{explain}"
    );
    assert!(explain.contains("Rows=Exact(3)"), "{explain}");
    assert!(
        explain.contains("Min=Exact(Int64(3)) Max=Exact(Int64(9)) Null=Exact(0)"),
        "{explain}"
    );
    assert!(
        explain.contains("Min=Exact(Utf8View(\"c\")) Max=Exact(Utf8View(\"z\")) Null=Exact(1)"),
        "{explain}"
    );
    // Filters stay above the scan (which prunes with them).
    let explain = rows(&ctx, "explain select k from raw.keys where k > 4").await;
    assert!(explain.contains("FilterExec: k@0 > 4"), "{explain}");
    assert!(explain.contains("predicate=k@0 > 4"), "{explain}");
    assert_eq!(
        rows(&ctx, "select k, s from raw.keys where k > 4 order by k").await,
        rows(
            &ctx,
            "select * from (values (5, NULL), (9, 'z')) as t(k, s)"
        )
        .await
    );
}

#[tokio::test]
async fn partitioned_tables_keep_deltas_scan_with_the_logs_statistics() {
    let root = memory_root("t8");
    let (ctx, _catalog) = session(&root).await;
    let plan = ctx
        .sql("select * from (values (3, 'c', 1.5, 'p'), (9, 'z', 2.5, 'q'), (5, NULL, NULL, 'p')) as t(k, s, x, day)")
        .await
        .unwrap()
        .into_unoptimized_plan();
    TableWrite::new(root.clone(), "raw", "keys", plan, Arc::new(ctx.state()))
        .with_partition_by(vec!["day".into()])
        .await
        .unwrap();
    ctx.sql("set datafusion.explain.show_statistics = true")
        .await
        .unwrap();
    let explain = rows(&ctx, "explain select k, s, x, day from raw.keys").await;
    assert!(explain.contains("DeltaScan"), "{explain}");
    // Numbers get their bounds and null counts from the log; strings,
    // which Delta truncates, do not.
    assert!(
        explain.contains("Min=Inexact(Int64(3)) Max=Inexact(Int64(9)) Null=Inexact(0)"),
        "{explain}"
    );
    assert!(
        explain.contains("Min=Inexact(Float64(1.5)) Max=Inexact(Float64(2.5))"),
        "{explain}"
    );
    assert!(!explain.contains("Utf8(\"c\")"), "{explain}");
    assert_eq!(
        rows(
            &ctx,
            "select k, day from raw.keys where day = 'p' order by k"
        )
        .await,
        rows(
            &ctx,
            "select * from (values (3, 'p'), (5, 'p')) as t(k, day)"
        )
        .await
    );
}

/// Storage options as `LakeRoot::open` takes them.
#[cfg(feature = "s3")]
fn options(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(feature = "s3")]
#[test]
fn an_s3_root_opens_without_a_request_and_never_shows_its_secrets() {
    let root = LakeRoot::open(
        "s3://bucket/lake",
        std::path::Path::new("/"),
        options(&[
            ("aws_access_key_id", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalr-very-secret"),
            ("aws_session_token", "token-very-secret"),
            ("region", "eu-west-1"),
            ("endpoint", "http://127.0.0.1:1"),
            ("allow_http", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(root.url().as_str(), "s3://bucket/lake/");
    let shown = format!("{root:?}");
    for secret in ["AKIDEXAMPLE", "wJalr-very-secret", "token-very-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("eu-west-1") && shown.contains("AmazonS3(bucket)"),
        "{shown}"
    );

    let err = LakeRoot::open(
        "s3://AKIDEXAMPLE:secret-in-url@bucket/lake",
        std::path::Path::new("/"),
        Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("credentials in the URL"), "{err}");
    assert!(
        !err.contains("secret-in-url") && !err.contains("AKIDEXAMPLE"),
        "{err}"
    );

    let err = LakeRoot::open(
        "s3://bucket/lake",
        std::path::Path::new("/"),
        options(&[("endpoint", "http://127.0.0.1:1"), ("allow_http", "false")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("AWS_ALLOW_HTTP=true"), "{err}");
}

#[cfg(not(feature = "s3"))]
#[test]
fn an_s3_root_needs_the_s3_feature() {
    let err = LakeRoot::open(
        "s3://bucket/lake",
        std::path::Path::new("/"),
        Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("built without S3 support"), "{err}");
}
