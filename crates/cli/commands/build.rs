//! `lake build`, `lake run`, `lake seed`, `lake ingest`, `lake test`,
//! `lake retry`.

use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use std::time::Instant;

use anyhow::anyhow;
use lake_compiler::{Compiled, FeatureView, Manifest, ResourceType};
use lake_engine::{
    AdapterResponse, LakeSession, NodeResult, RunEvent, RunOptions, RunResults, Runner,
    SessionOptions, Status,
};
use lake_features::OnlineRefresh;
use lake_storage::LakeRoot;

use crate::args::{ExecArgs, LogFormat, RetryArgs, RunArgs, SelectArgs};
use crate::{CmdResult, Failure};

/// Which nodes a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    Run,
    Seed,
    Ingest,
    Test,
}

impl Kind {
    /// Whether this command ingests the external sources it selects
    /// (`run` too: its models read them).
    fn ingests(self) -> bool {
        matches!(self, Kind::Build | Kind::Run | Kind::Ingest)
    }

    fn runs(self, t: ResourceType) -> bool {
        match self {
            Kind::Build => matches!(
                t,
                ResourceType::Model | ResourceType::Seed | ResourceType::Test
            ),
            Kind::Run => t == ResourceType::Model,
            Kind::Seed => t == ResourceType::Seed,
            Kind::Ingest => false,
            Kind::Test => t == ResourceType::Test,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Run => "run",
            Kind::Seed => "seed",
            Kind::Ingest => "ingest",
            Kind::Test => "test",
        }
    }
}

pub fn run(args: RunArgs, kind: Kind) -> CmdResult {
    let (compiled, selected) = super::compile_and_select(&args.project, &args.select)?;
    // `build` and `run` keep the online tables of feature views; `seed` and
    // `test` write no model.
    let online = match kind {
        Kind::Build | Kind::Run => Some(OnlineViews::new(
            &compiled.manifest,
            &selected,
            &args.select,
        )?),
        Kind::Seed | Kind::Ingest | Kind::Test => None,
    };
    let manifest = &compiled.manifest;
    let selected: BTreeSet<String> = selected
        .into_iter()
        .filter(|id| {
            manifest
                .nodes
                .get(id)
                .is_some_and(|n| kind.runs(n.resource_type))
                || (kind.ingests() && is_ingested_source(manifest, id))
        })
        .collect();
    let argv = serde_json::json!({"command": kind.name(), "select": args.select.select, "exclude": args.select.exclude});
    execute(
        compiled,
        &args.project.project_dir,
        &args.exec,
        selected,
        online,
        argv,
    )
}

pub fn retry(args: RetryArgs) -> CmdResult {
    let compiled = super::compile_project(&args.project)?;
    let target = args.project.project_dir.join(&compiled.project.target_path);
    let previous = RunResults::read(&target).map_err(|e| {
        Failure::User(anyhow!(
            "cannot read {}: {e}\n  hint: `lake retry` re-runs what failed in the last `lake build`, `run`, `seed` or `test`; run one first",
            target.join("run_results.json").display()
        ))
    })?;
    let selected: BTreeSet<String> = previous
        .results
        .iter()
        .filter(|r| r.status.needs_retry())
        .map(|r| r.unique_id.clone())
        .filter(|id| {
            compiled.manifest.nodes.contains_key(id) || is_ingested_source(&compiled.manifest, id)
        })
        .collect();
    // Online tables that failed or were skipped are refreshed again.
    let online = OnlineViews {
        selected: previous
            .results
            .iter()
            .filter(|r| r.status.needs_retry())
            .filter(|r| {
                compiled
                    .manifest
                    .feature_views
                    .values()
                    .any(|v| v.unique_id == r.unique_id)
            })
            .map(|r| r.unique_id.clone())
            .collect(),
        excluded: BTreeSet::new(),
    };
    if selected.is_empty() && online.selected.is_empty() {
        println!("Nothing to retry: the last run had no errors, failures or skipped nodes.");
        super::release(compiled);
        return Ok(());
    }
    let argv = serde_json::json!({"command": "retry"});
    execute(
        compiled,
        &args.project.project_dir,
        &args.exec,
        selected,
        Some(online),
        argv,
    )
}

/// Whether `id` is a source whose files `lake ingest` loads.
fn is_ingested_source(manifest: &Manifest, id: &str) -> bool {
    manifest.sources.get(id).is_some_and(|s| s.ingest.is_some())
}

/// Which feature views a run keeps the online table of (those with
/// `online: true`): the views the selection names (`lake build` without
/// `--select` names them all), and the views whose source runs, unless
/// `--exclude` leaves them out.
#[derive(Debug)]
struct OnlineViews {
    selected: BTreeSet<String>,
    excluded: BTreeSet<String>,
}

impl OnlineViews {
    /// From the unique ids `--select`/`--exclude` resolved to.
    fn new(
        manifest: &Manifest,
        selected: &BTreeSet<String>,
        select: &SelectArgs,
    ) -> Result<OnlineViews, Failure> {
        let views = || manifest.feature_views.values().map(|v| &v.unique_id);
        let excluded = if select.exclude.is_empty() {
            BTreeSet::new()
        } else {
            let kept = lake_compiler::select(manifest, &[], &select.exclude)?;
            views().filter(|id| !kept.contains(*id)).cloned().collect()
        };
        Ok(OnlineViews {
            selected: views()
                .filter(|id| selected.contains(*id))
                .cloned()
                .collect(),
            excluded,
        })
    }

    /// The views to refresh after running the nodes `run`, in manifest
    /// order.
    fn plan<'m>(&self, manifest: &'m Manifest, run: &BTreeSet<String>) -> Vec<&'m FeatureView> {
        manifest
            .feature_views
            .values()
            .filter(|v| v.online && !self.excluded.contains(&v.unique_id))
            .filter(|v| self.selected.contains(&v.unique_id) || run.contains(&v.source))
            .collect()
    }
}

/// Brings the online table of each view in `views` up to date, after the
/// nodes ran: a view whose source (or a test of it) did not succeed in
/// this run is skipped, as a model downstream of it would be (all are,
/// once `--fail-fast` stopped the run); a source that did not run must
/// exist. Reports each as a result.
async fn refresh_online(
    session: &LakeSession,
    manifest: &Manifest,
    views: &[&FeatureView],
    results: &RunResults,
    exec: &ExecArgs,
    run_id: &str,
    mut report: impl FnMut(NodeResult),
) {
    for view in views {
        let started = Instant::now();
        let relation = format!(
            "{}.{}",
            lake_features::ONLINE_ZONE,
            lake_features::online_table_name(view)
        );
        let mut result = NodeResult {
            unique_id: view.unique_id.clone(),
            status: Status::Skipped,
            execution_time: 0.0,
            message: String::new(),
            failures: None,
            adapter_response: AdapterResponse::default(),
            thread_id: "Thread-1".into(),
            relation_name: Some(relation),
        };
        let source_name = manifest.name_of(&view.source).unwrap_or(&view.source);
        let ran = results.results.iter().any(|r| r.unique_id == view.source);
        let failed_upstream = results.results.iter().any(|r| {
            !r.status.lets_children_run()
                && (r.unique_id == view.source
                    || manifest.nodes.get(&r.unique_id).is_some_and(|n| {
                        n.resource_type == ResourceType::Test
                            && n.depends_on.nodes.contains(&view.source)
                    }))
        });
        if exec.fail_fast && !results.succeeded() {
            result.message = "skipped: --fail-fast stopped the run".into();
        } else if failed_upstream {
            result.message = format!("skipped: upstream {source_name} did not succeed");
        } else if !ran
            && session
                .context()
                .table(view.source_relation.as_str())
                .await
                .is_err()
        {
            result.message = format!(
                "skipped: its source {} does not exist yet\n  hint: build it first, e.g. `lake build --select +feature_view:{}`",
                view.source_relation, view.name
            );
        } else {
            let refreshed = OnlineRefresh::new(session, view)
                .with_full_refresh(exec.full_refresh)
                .with_run_id(run_id)
                .await;
            match refreshed {
                Ok(outcome) => {
                    result.status = Status::Success;
                    result.message = if outcome.full {
                        format!("created online table {}", outcome.table)
                    } else {
                        format!("merged into online table {}", outcome.table)
                    };
                    result.adapter_response.rows_affected = Some(outcome.rows);
                    result.adapter_response.delta_version = Some(outcome.version);
                }
                Err(e) => {
                    result.status = Status::Error;
                    let location = format!("{}:{}", view.original_file_path, view.line);
                    let text = e.to_string();
                    result.message = if text.contains(&location) {
                        text
                    } else {
                        format!("feature view '{}' ({location}): {text}", view.name)
                    };
                }
            }
            result.execution_time = started.elapsed().as_secs_f64();
        }
        result.adapter_response.message = result.message.clone();
        report(result);
    }
}

/// The `--memory-limit` flag in bytes.
pub fn memory_limit(flag: Option<&str>) -> Result<Option<usize>, Failure> {
    flag.map(|text| {
        parse_size(text).ok_or_else(|| {
            Failure::User(anyhow!(
                "--memory-limit: '{text}' is not a size\n  hint: for example 4GiB, 512MiB or 1000000"
            ))
        })
    })
    .transpose()
}

/// `4GiB`, `512MiB`, `1000000` (bytes).
fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as usize)
}

/// The lake root in effect: `--lake-root`/`LAKE_ROOT`, the target's, the
/// project file's, or `.lake`.
pub fn lake_root(
    compiled: &Compiled,
    flag: Option<&str>,
    project_dir: &Path,
) -> Result<LakeRoot, Failure> {
    root_of_project(
        &compiled.project,
        &compiled.manifest.metadata.target_name,
        flag,
        project_dir,
    )
}

/// The lake root of `project` under `target_name` (see [`lake_root`]).
pub fn root_of_project(
    project: &lake_compiler::ProjectFile,
    target_name: &str,
    flag: Option<&str>,
    project_dir: &Path,
) -> Result<LakeRoot, Failure> {
    let target = project.targets.get(target_name);
    let root = flag
        .map(str::to_string)
        .or_else(|| target.and_then(|t| t.root.clone()))
        .or_else(|| project.lake.root.clone())
        .unwrap_or_else(|| ".lake".into());
    let mut options: HashMap<String, String> =
        project.lake.storage_options.clone().into_iter().collect();
    if let Some(t) = target {
        options.extend(t.storage_options.clone());
    }
    LakeRoot::open(&root, project_dir, options).map_err(|e| Failure::User(anyhow!("{e}")))
}

fn execute(
    mut compiled: Compiled,
    project_dir: &Path,
    exec: &ExecArgs,
    selected: BTreeSet<String>,
    online: Option<OnlineViews>,
    argv: serde_json::Value,
) -> CmdResult {
    let memory_limit = memory_limit(exec.memory_limit.as_deref())?;
    // Like `dbt build`, write the manifest and compiled SQL first, so a
    // failing model's SQL can be read at the path its error names.
    lake_compiler::write_artifacts(
        &mut compiled.manifest,
        project_dir,
        &compiled.project.target_path,
        None,
    )?;
    let root = lake_root(&compiled, exec.lake_root.as_deref(), project_dir)?;
    let threads = exec
        .threads
        // Nodes spend part of their time waiting on storage, so even a
        // small machine runs a few at once.
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(4)
                .max(4)
        })
        .max(1);
    let runtime = super::runtime()?;
    let target_dir = project_dir.join(&compiled.project.target_path);
    let format = exec.log_format;
    let options = RunOptions {
        threads,
        fail_fast: exec.fail_fast,
        full_refresh: exec.full_refresh,
        args: argv,
        ..RunOptions::default()
    };
    let run_id = options.run_id.clone();
    let session_options = SessionOptions {
        memory_limit,
        spill_dir: exec.spill_dir.clone(),
        target_partitions: None,
        url_tables: false,
    };
    let compiled = Arc::new(compiled);
    let root_url = root.url().to_string();
    let nodes = lake_engine::runnable(&compiled.manifest, &selected).len();
    let views = online
        .as_ref()
        .map(|o| o.plan(&compiled.manifest, &selected))
        .unwrap_or_default();
    let total = nodes + views.len();
    let results = runtime.block_on(async {
        let session = super::open_session(root, &session_options).await?;
        let runner = Runner::new(
            session.clone(),
            compiled.clone(),
            project_dir.to_path_buf(),
            options,
        );
        let printer = Arc::new(Printer::new(format));
        if format == LogFormat::Text {
            println!(
                "Running {nodes} nodes{} against {root_url} ...",
                and_online_tables(views.len())
            );
        }
        let started = Instant::now();
        let p = printer.clone();
        let mut results = runner
            .run(
                &selected,
                Arc::new(move |event| p.event(&with_total(event, total))),
            )
            .await;
        let mut refreshed = Vec::new();
        refresh_online(
            &session,
            &compiled.manifest,
            &views,
            &results,
            exec,
            &run_id,
            |result| {
                printer.event(&RunEvent::Finished {
                    index: nodes + refreshed.len() + 1,
                    total,
                    description: format!(
                        "online table {}",
                        result.relation_name.as_deref().unwrap_or_default()
                    ),
                    result: Box::new(result.clone()),
                });
                refreshed.push(result);
            },
        )
        .await;
        results.results.extend(refreshed);
        results.elapsed_time = started.elapsed().as_secs_f64();
        printer.clear_progress();
        Ok::<RunResults, Failure>(results)
    })?;
    results
        .write(&target_dir)
        .map_err(|e| Failure::Internal(anyhow!("writing run_results.json: {e}")))?;
    summarize(&results, &compiled, format)?;
    // The runtime's worker threads may still hold session state; exiting
    // does not need to wait for them.
    runtime.shutdown_background();
    if results.succeeded() {
        Ok(())
    } else {
        Err(Failure::User(anyhow!("{}", failure_summary(&results))))
    }
}

/// ` and 2 online tables`, or nothing.
fn and_online_tables(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " and 1 online table".into(),
        n => format!(" and {n} online tables"),
    }
}

/// A runner event counted against the run's total, online tables included.
fn with_total(mut event: RunEvent, total: usize) -> RunEvent {
    match &mut event {
        RunEvent::Started { total: t, .. } | RunEvent::Finished { total: t, .. } => *t = total,
    }
    event
}

fn failure_summary(results: &RunResults) -> String {
    let n = results.count(Status::Error) + results.count(Status::Fail);
    format!(
        "{n} node{} did not succeed; see above, or target/run_results.json",
        if n == 1 { "" } else { "s" }
    )
}

/// Prints events as they come.
struct Printer {
    format: LogFormat,
    progress: bool,
    state: Mutex<(usize, usize)>,
}

impl Printer {
    fn new(format: LogFormat) -> Printer {
        Printer {
            format,
            progress: format == LogFormat::Text && std::io::stderr().is_terminal(),
            state: Mutex::new((0, 0)),
        }
    }

    fn event(&self, event: &RunEvent) {
        let mut out = std::io::stdout().lock();
        match self.format {
            LogFormat::Json => {
                let line = match event {
                    RunEvent::Started {
                        index,
                        total,
                        unique_id,
                        description,
                    } => {
                        serde_json::json!({"event": "node_started", "index": index, "total": total, "unique_id": unique_id, "description": description})
                    }
                    RunEvent::Finished {
                        index,
                        total,
                        description,
                        result,
                    } => {
                        serde_json::json!({"event": "node_finished", "index": index, "total": total, "description": description, "result": result})
                    }
                };
                let _ = writeln!(out, "{line}");
            }
            LogFormat::Text => {
                self.clear_progress();
                match event {
                    RunEvent::Started {
                        index,
                        total,
                        description,
                        ..
                    } => {
                        let _ = writeln!(out, "{index} of {total} START {description}");
                    }
                    RunEvent::Finished {
                        index,
                        total,
                        description,
                        result,
                    } => {
                        let _ = writeln!(
                            out,
                            "{}",
                            finished_line(*index, *total, description, result)
                        );
                        let mut state = self.state.lock().expect("progress lock");
                        state.0 += 1;
                        state.1 = *total;
                    }
                }
                let _ = out.flush();
                self.draw_progress();
            }
        }
    }

    fn draw_progress(&self) {
        if !self.progress {
            return;
        }
        let (done, total) = *self.state.lock().expect("progress lock");
        if total == 0 {
            return;
        }
        let width = 30;
        let filled = done * width / total;
        eprint!(
            "\r[{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }

    fn clear_progress(&self) {
        if self.progress {
            eprint!("\r\x1b[K");
        }
    }
}

fn finished_line(
    index: usize,
    total: usize,
    description: &str,
    r: &lake_engine::NodeResult,
) -> String {
    let mut facts = vec![format!("{:.2}s", r.execution_time)];
    if let Some(rows) = r.adapter_response.rows_affected {
        facts.push(format!("{rows} rows"));
    }
    if let Some(v) = r.adapter_response.delta_version {
        facts.push(format!("v{v}"));
    }
    if r.adapter_response.drift.is_some() {
        // The measured statistics are the point of a drift test.
        facts.push(r.message.clone());
    }
    match r.status {
        Status::Success => format!("{index} of {total} OK {} [{}]", r.message, facts.join(", ")),
        Status::Pass => format!(
            "{index} of {total} PASS {description} [{}]",
            facts.join(", ")
        ),
        // An ingestion that quarantined files: what was loaded and moved.
        Status::Warn if r.adapter_response.ingest.is_some() => {
            format!(
                "{index} of {total} WARN {} [{}]",
                r.message,
                facts.join(", ")
            )
        }
        Status::Warn => format!(
            "{index} of {total} WARN {} {description} [{}]",
            r.failures.unwrap_or(0),
            facts.join(", ")
        ),
        Status::Fail => format!(
            "{index} of {total} FAIL {} {description} [{}]",
            r.failures.unwrap_or(0),
            facts.join(", ")
        ),
        Status::Skipped => format!("{index} of {total} SKIP {description}: {}", r.message),
        Status::Error => format!(
            "{index} of {total} ERROR {description} [{}]\n  {}",
            facts.join(", "),
            r.message.replace('\n', "\n  ")
        ),
    }
}

fn summarize(results: &RunResults, compiled: &Compiled, format: LogFormat) -> CmdResult {
    let mut out = std::io::stdout().lock();
    let counts: Vec<(Status, usize)> = [
        Status::Success,
        Status::Pass,
        Status::Warn,
        Status::Fail,
        Status::Error,
        Status::Skipped,
    ]
    .into_iter()
    .map(|s| (s, results.count(s)))
    .collect();
    match format {
        LogFormat::Json => {
            let by_status: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .map(|(s, n)| (s.as_str().to_string(), serde_json::json!(n)))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({"event": "run_finished", "elapsed_s": results.elapsed_time, "counts": by_status, "success": results.succeeded()})
            )?;
        }
        LogFormat::Text => {
            let parts: Vec<String> = counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| format!("{n} {}", s.as_str()))
                .collect();
            let online = results
                .results
                .iter()
                .filter(|r| r.unique_id.starts_with("feature_view."))
                .count();
            writeln!(
                out,
                "\nFinished {} nodes{} in {:.2}s: {}",
                results.results.len() - online,
                and_online_tables(online),
                results.elapsed_time,
                if parts.is_empty() {
                    "nothing to do".into()
                } else {
                    parts.join(", ")
                }
            )?;
            for r in results
                .results
                .iter()
                .filter(|r| matches!(r.status, Status::Error | Status::Fail))
            {
                let name = compiled
                    .manifest
                    .name_of(&r.unique_id)
                    .unwrap_or(&r.unique_id);
                writeln!(
                    out,
                    "  {} {name}: {}",
                    r.status.as_str().to_uppercase(),
                    r.message.lines().next().unwrap_or("")
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("512mb"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
    }
}
