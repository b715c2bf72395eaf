//! The SQL behaviour spec: every `tests/sql/*.slt` file runs with the
//! `sqllogictest` crate against a fresh lake (a temporary local root)
//! through the same statement path as `lake sql`.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use lake_engine::{Executed, LakeSession, SessionOptions};
use lake_storage::LakeRoot;
use sqllogictest::{DBOutput, DefaultColumnType};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

struct Lake {
    session: LakeSession,
    _dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Lake {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let executed = self
            .session
            .execute_sql(sql)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        let df = match executed {
            Executed::Done(_) => return Ok(DBOutput::StatementComplete(0)),
            Executed::Rows(df) => df,
        };
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                    DefaultColumnType::FloatingPoint
                }
                _ => DefaultColumnType::Text,
            })
            .collect();
        let batches = df
            .collect()
            .await
            .map_err(|e| SqlError(e.strip_backtrace()))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters: Vec<ArrayFormatter<'_>> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<_, _>>()
                .map_err(|e| SqlError(e.to_string()))?;
            for r in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| match f.value(r).to_string() {
                            s if s.is_empty() => "(empty)".to_string(),
                            s => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lake"
    }
}

async fn open_lake() -> Result<Lake, SqlError> {
    let dir = tempfile::tempdir().map_err(|e| SqlError(e.to_string()))?;
    let root = LakeRoot::open(
        dir.path().to_str().unwrap(),
        Path::new("/"),
        Default::default(),
    )
    .map_err(|e| SqlError(e.to_string()))?;
    let session = LakeSession::open(
        Arc::new(root),
        &SessionOptions {
            url_tables: true,
            ..SessionOptions::default()
        },
    )
    .await
    .map_err(|e| SqlError(e.to_string()))?;
    Ok(Lake { session, _dir: dir })
}

#[test]
fn sql_logic_tests() {
    let files: Vec<_> = std::fs::read_dir(super::repo_root().join("tests/sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for file in files {
        let mut runner = sqllogictest::Runner::new(open_lake);
        if let Err(e) = runtime.block_on(runner.run_file_async(&file)) {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
