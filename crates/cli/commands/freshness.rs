//! `lake source freshness`

use std::io::Write;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use lake_engine::{FreshnessResults, FreshnessStatus, SessionOptions};

use crate::args::{FreshnessArgs, LogFormat};
use crate::{CmdResult, Failure};

/// Now, or `LAKE_NOW` when set.
fn now() -> Result<DateTime<Utc>, Failure> {
    match std::env::var("LAKE_NOW") {
        Ok(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Failure::User(anyhow!("LAKE_NOW='{text}' is not an RFC 3339 time: {e}"))),
        Err(_) => Ok(Utc::now()),
    }
}

pub fn run(args: FreshnessArgs) -> CmdResult {
    let (compiled, selected) = super::compile_and_select(&args.project, &args.select)?;
    let sources = lake_engine::checked_sources(
        compiled
            .manifest
            .sources
            .values()
            .filter(|s| selected.contains(&s.unique_id)),
    );
    let now = now()?;
    let root = super::build::lake_root(
        &compiled,
        args.lake_root.as_deref(),
        &args.project.project_dir,
    )?;
    let runtime = super::runtime()?;
    let started = std::time::Instant::now();
    let results = runtime.block_on(async {
        let session = super::open_session(root, &SessionOptions::default()).await?;
        let mut results = Vec::new();
        for source in &sources {
            results.push(lake_engine::check_source(&session, source, now).await);
        }
        Ok::<_, Failure>(results)
    })?;
    let results = FreshnessResults {
        metadata: serde_json::json!({
            "lake_version": env!("CARGO_PKG_VERSION"),
            "generated_at": Utc::now().to_rfc3339(),
        }),
        results,
        elapsed_time: started.elapsed().as_secs_f64(),
    };
    let target = args.project.project_dir.join(&compiled.project.target_path);
    results
        .write(&target)
        .map_err(|e| Failure::Internal(anyhow!("writing sources.json: {e}")))?;
    let mut out = std::io::stdout().lock();
    let total = results.results.len();
    if total == 0 && args.log_format == LogFormat::Text {
        writeln!(
            out,
            "No selected source has both a loaded_at_field and a freshness block."
        )?;
    }
    for (i, r) in results.results.iter().enumerate() {
        let source = &compiled.manifest.sources[&r.unique_id];
        let name = format!("{}.{}", source.source_name, source.name);
        match args.log_format {
            LogFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(r).map_err(|e| Failure::Internal(e.into()))?
            )?,
            LogFormat::Text => {
                let word = match r.status {
                    FreshnessStatus::Pass => "PASS",
                    FreshnessStatus::Warn => "WARN",
                    FreshnessStatus::Error => "ERROR STALE",
                    FreshnessStatus::RuntimeError => "ERROR",
                };
                let detail = match (&r.max_loaded_at, r.max_loaded_at_time_ago_in_s, &r.message) {
                    (Some(max), Some(age), _) => format!("newest {max}, {:.1} h ago", age / 3600.0),
                    (_, _, Some(m)) => m.clone(),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{} of {total} {word} freshness of {name} [{detail}]",
                    i + 1
                )?;
            }
        }
    }
    super::release(compiled);
    let bad = results
        .results
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                FreshnessStatus::Error | FreshnessStatus::RuntimeError
            )
        })
        .count();
    if bad > 0 {
        return Err(Failure::User(anyhow!(
            "{bad} source{} stale or unreadable; see target/sources.json",
            if bad == 1 { " is" } else { "s are" }
        )));
    }
    Ok(())
}
