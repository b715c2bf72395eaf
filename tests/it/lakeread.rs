//! Reading a lake back in a test, through a fresh engine session (as
//! another process would).

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::util::display::array_value_to_string;
use lake_engine::{LakeSession, SessionOptions};
use lake_storage::LakeRoot;

/// The rows of `sql` over the lake at `root`, each value as text (NULL as
/// "NULL").
pub fn query(root: &Path, sql: &str) -> Vec<Vec<String>> {
    try_query(root, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn try_query(root: &Path, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let root = LakeRoot::open(root.to_str().unwrap(), Path::new("/"), Default::default())
            .map_err(|e| e.to_string())?;
        let session = LakeSession::open(Arc::new(root), &SessionOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let batches = session
            .context()
            .sql(sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for batch in batches {
            for r in 0..batch.num_rows() {
                rows.push(
                    (0..batch.num_columns())
                        .map(|c| {
                            let col = batch.column(c);
                            if col.is_null(r) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(col, r).unwrap()
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(rows)
    })
}

/// One value.
pub fn scalar(root: &Path, sql: &str) -> String {
    let rows = query(root, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}
