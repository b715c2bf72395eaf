//! `lake training-set`: a point-in-time-correct training set from the
//! project's feature views (`lake-features`), streamed into a Parquet file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::anyhow;
use datafusion::arrow::array::{RecordBatch, RecordBatchReader};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use lake_engine::SessionOptions;
use lake_features::{FeatureError, FeatureSelection, Spine, TrainingSet};

use crate::args::{ProjectArgs, TrainingSetArgs};
use crate::{CmdResult, Failure};

pub fn run(args: TrainingSetArgs) -> CmdResult {
    let started = Instant::now();
    let compiled = super::compile_project(&ProjectArgs {
        project_dir: args.lake.project_dir.clone(),
        vars: args.vars.clone(),
        target: args.lake.target.clone(),
    })?;
    let selection = match &args.feature_service {
        Some(service) => FeatureSelection::Service(service.clone()),
        None => FeatureSelection::Features(args.features.clone()),
    };
    let spine = match (&args.spine_table, &args.spine_sql, &args.spine_file) {
        (Some(table), _, _) => Spine::Table(table.clone()),
        (_, Some(sql), _) => Spine::Sql(sql.clone()),
        (_, _, Some(file)) => read_spine_file(file)?,
        // clap requires one of the three.
        (None, None, None) => unreachable!("clap requires a spine"),
    };
    let set = TrainingSet::new(
        &compiled.manifest,
        &selection,
        spine,
        !args.plain_feature_names,
    )
    .map_err(|e| feature_failure(e, &args))?
    .with_event_timestamp(args.event_timestamp_column.clone());
    let root = super::build::lake_root(
        &compiled,
        args.lake.lake_root.as_deref(),
        &args.lake.project_dir,
    )?;
    let options = SessionOptions {
        memory_limit: super::build::memory_limit(args.lake.memory_limit.as_deref())?,
        ..SessionOptions::default()
    };
    let runtime = super::runtime()?;
    let result = runtime.block_on(async {
        let session = super::open_session(root, &options).await?;
        let stream = set
            .execute(session.context())
            .await
            .map_err(|e| feature_failure(e, &args))?;
        write_parquet(stream, &args.output).await
    });
    runtime.shutdown_background();
    let (rows, columns) = result?;
    eprintln!(
        "lake training-set: {rows} rows, {columns} columns written to {} in {:.2}s",
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    super::release(compiled);
    Ok(())
}

/// The rows of a Parquet file, as an uploaded spine.
fn read_spine_file(path: &Path) -> Result<Spine, Failure> {
    let cannot = |e: &dyn std::fmt::Display| {
        Failure::User(anyhow!("cannot read --spine-file {}: {e}", path.display()))
    };
    let file = File::open(path).map_err(|e| cannot(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| cannot(&e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<RecordBatch>, _>>()
        .map_err(|e| cannot(&e))?;
    Ok(Spine::Batches { schema, batches })
}

/// Streams `stream` into `output` through `<output>.tmp`, renamed when
/// every batch is written, so a failure leaves no partial file. Returns
/// the rows and columns written.
async fn write_parquet(
    mut stream: SendableRecordBatchStream,
    output: &Path,
) -> Result<(u64, usize), Failure> {
    let tmp = tmp_path(output);
    let file = File::create(&tmp)
        .map_err(|e| Failure::User(anyhow!("cannot create {}: {e}", tmp.display())))?;
    let schema = stream.schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut rows = 0u64;
    let written = async {
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|e| Failure::Internal(anyhow!("writing {}: {e}", tmp.display())))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(stream_failure)?;
            rows += batch.num_rows() as u64;
            writer
                .write(&batch)
                .map_err(|e| Failure::Internal(anyhow!("writing {}: {e}", tmp.display())))?;
        }
        writer
            .close()
            .map_err(|e| Failure::Internal(anyhow!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, output).map_err(|e| {
            Failure::User(anyhow!(
                "cannot move {} to {}: {e}",
                tmp.display(),
                output.display()
            ))
        })
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| (rows, schema.fields().len()))
}

/// `out.parquet` -> `out.parquet.tmp`.
fn tmp_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// A training-set error: the request's fault (exit 1) or lake's (exit 2).
fn feature_failure(e: FeatureError, args: &TrainingSetArgs) -> Failure {
    if !e.is_user_error() {
        return Failure::Internal(anyhow!("{e}"));
    }
    let hint = match &e {
        FeatureError::UnknownColumn { column, table, .. }
            if table == "the spine" && *column == args.event_timestamp_column =>
        {
            "\n  hint: the spine needs an event time column; name it with --event-timestamp-column"
        }
        _ => "",
    };
    Failure::User(anyhow!("{e}{hint}"))
}

/// An error of the running join: a feature error inside it keeps its kind.
fn stream_failure(e: DataFusionError) -> Failure {
    let user = match e.find_root() {
        DataFusionError::External(inner) => inner
            .downcast_ref::<FeatureError>()
            .is_some_and(FeatureError::is_user_error),
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => true,
        _ => false,
    };
    let message = anyhow!("{}", e.strip_backtrace());
    if user {
        Failure::User(message)
    } else {
        Failure::Internal(message)
    }
}
