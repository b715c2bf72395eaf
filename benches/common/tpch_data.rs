//! TPC-H data for the benchmarks that read it (`tpch`, `flight`): tables
//! made by the `tpchgen` crates and loaded as Delta tables in the `raw`
//! zone of a lake under `target/tpch/sf<SF>` (kept between runs), and the
//! Parquet files behind them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use lake_engine::{LakeSession, SessionOptions};
use lake_storage::LakeRoot;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// Every TPC-H table.
pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// The scale factor: `LAKE_TPCH_SF`, default 1.
pub fn scale_factor() -> f64 {
    std::env::var("LAKE_TPCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// Where the data of scale factor `sf` lives: `LAKE_TPCH_DIR`, else
/// `target/tpch/sf<SF>`. The lake is its `lake` folder.
pub fn data_dir(sf: f64) -> PathBuf {
    std::env::var_os("LAKE_TPCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/tpch/sf{sf}"))
        })
}

/// Opens the lake under `dir` (`dir/lake`).
pub fn open_root(dir: &Path) -> Arc<LakeRoot> {
    let lake = dir.join("lake");
    Arc::new(LakeRoot::open(&lake.to_string_lossy(), dir, Default::default()).unwrap())
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>>;

fn generator(table: &str, sf: f64) -> Batches {
    match table {
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        other => unreachable!("not a TPC-H table: {other}"),
    }
}

/// Writes one generated table to a Parquet file.
fn generate(table: &str, sf: f64, path: &Path) {
    let mut batches = generator(table, sf).peekable();
    let first = batches
        .peek()
        .expect("every table has rows")
        .as_ref()
        .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, first.schema(), None).unwrap();
    for batch in batches {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.close().unwrap();
}

/// Makes the Delta tables `raw.<table>` of `tables` that the lake does not
/// have yet from generated Parquet files, through the SQL a person would
/// type in `lake sql`.
pub async fn load(root: &Arc<LakeRoot>, dir: &Path, sf: f64, tables: &[&str]) {
    let staging = dir.join("generated");
    std::fs::create_dir_all(&staging).unwrap();
    let options = SessionOptions {
        url_tables: true,
        ..SessionOptions::default()
    };
    let session = LakeSession::open(root.clone(), &options).await.unwrap();
    for &table in tables {
        if root.has_table("raw", table).await.unwrap() {
            continue;
        }
        let started = Instant::now();
        let file = staging.join(format!("{table}.parquet"));
        generate(table, sf, &file);
        let sql = format!(
            "CREATE TABLE raw.{table} AS SELECT * FROM '{}'",
            file.display()
        );
        session.execute_sql(&sql).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        eprintln!(
            "loaded raw.{table} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The Parquet files of each table's current Delta version.
pub async fn data_files(root: &LakeRoot, tables: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut files = BTreeMap::new();
    for &table in tables {
        let delta = root.load_table("raw", table).await.unwrap().unwrap();
        let uris: Vec<String> = delta
            .get_file_uris()
            .unwrap()
            .map(|u| u.trim_start_matches("file://").to_string())
            .collect();
        files.insert(table.to_string(), uris);
    }
    files
}
