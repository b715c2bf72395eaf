//! Runs the selected nodes of a compiled project in DAG order, `threads` at
//! a time. Selected external sources are ingested first, before what reads
//! them. A node that fails (or an `error` test that fails) skips
//! everything downstream; the rest of the DAG goes on, unless `fail_fast`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lake_compiler::{Compiled, Manifest, Node, ResourceType};
use tokio::task::JoinSet;

use crate::ingest::Ingest;
use crate::materialize::{Materializer, NodeOutcome};
use crate::results::{AdapterResponse, NodeResult, RunMetadata, RunResults, Status};
use crate::session::LakeSession;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub threads: usize,
    pub fail_fast: bool,
    pub full_refresh: bool,
    /// Recorded in every commit and in run_results.json.
    pub run_id: String,
    /// The command line, for run_results.json's `args`.
    pub args: serde_json::Value,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 4,
            fail_fast: false,
            full_refresh: false,
            run_id: new_run_id(),
            args: serde_json::Value::Null,
        }
    }
}

/// A run id: time-ordered and unique enough for one lake.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id() ^ now.timestamp_subsec_nanos()
    )
}

/// The nodes of `selected` that a run runs, in order: external sources to
/// ingest first, then the nodes in DAG order, without ephemeral models
/// (they are inlined).
pub fn runnable(manifest: &Manifest, selected: &BTreeSet<String>) -> Vec<String> {
    let sources = manifest
        .sources
        .values()
        .filter(|s| s.ingest.is_some() && selected.contains(&s.unique_id))
        .map(|s| s.unique_id.clone());
    let nodes = manifest
        .topological_order()
        .into_iter()
        .filter(|id| selected.contains(*id))
        .filter(|id| {
            manifest.nodes.get(*id).is_some_and(|n| {
                n.resource_type != ResourceType::Source
                    && !(n.resource_type == ResourceType::Model
                        && n.config.materialized == "ephemeral")
            })
        })
        .map(str::to_string);
    sources.chain(nodes).collect()
}

/// What the runner tells its caller as it goes.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        index: usize,
        total: usize,
        unique_id: String,
        description: String,
    },
    Finished {
        index: usize,
        total: usize,
        description: String,
        result: Box<NodeResult>,
    },
}

/// A short description: "table model curated.orders".
pub fn describe(node: &Node) -> String {
    match node.resource_type {
        ResourceType::Seed => format!(
            "seed file {}",
            node.relation_name.as_deref().unwrap_or(&node.name)
        ),
        ResourceType::Test => format!("test {}", node.name),
        ResourceType::Model => format!(
            "{} model {}",
            node.config.materialized,
            node.relation_name.as_deref().unwrap_or(&node.name)
        ),
        ResourceType::Source => format!("source {}", node.name),
    }
}

struct Shared {
    session: LakeSession,
    compiled: Arc<Compiled>,
    project_dir: PathBuf,
    options: RunOptions,
}

/// Runs nodes of one compiled project against one lake.
pub struct Runner {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    pub fn new(
        session: LakeSession,
        compiled: Arc<Compiled>,
        project_dir: PathBuf,
        options: RunOptions,
    ) -> Runner {
        Runner {
            shared: Arc::new(Shared {
                session,
                compiled,
                project_dir,
                options,
            }),
        }
    }

    /// How the run describes `id` (a node, or a source it ingests).
    fn describe_id(&self, id: &str) -> String {
        let manifest = &self.shared.compiled.manifest;
        match (manifest.nodes.get(id), manifest.sources.get(id)) {
            (Some(node), _) => describe(node),
            (None, Some(source)) => format!("ingest source {}", source.relation_name),
            (None, None) => id.to_string(),
        }
    }

    /// What each node waits for: its parents in the run (looking through
    /// ephemeral models), and, as in `dbt build`, the tests of those
    /// parents, so a failing test stops what is downstream of the data it
    /// tested.
    fn dependencies(&self, run: &[String]) -> HashMap<String, Vec<String>> {
        let manifest = &self.shared.compiled.manifest;
        let in_run: HashMap<&str, usize> = run
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut tests_of: HashMap<&str, Vec<&str>> = HashMap::new();
        for id in run {
            let Some(node) = manifest.nodes.get(id) else {
                continue;
            };
            if node.resource_type == ResourceType::Test {
                for parent in &node.depends_on.nodes {
                    tests_of
                        .entry(parent.as_str())
                        .or_default()
                        .push(id.as_str());
                }
            }
        }
        let mut deps = HashMap::new();
        for (position, id) in run.iter().enumerate() {
            let Some(node) = manifest.nodes.get(id) else {
                // A source to ingest waits for nothing.
                deps.insert(id.clone(), Vec::new());
                continue;
            };
            let mut wait: BTreeSet<String> = BTreeSet::new();
            let mut stack: Vec<&str> = node.depends_on.nodes.iter().map(String::as_str).collect();
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            while let Some(parent) = stack.pop() {
                if !seen.insert(parent) {
                    continue;
                }
                if in_run.contains_key(parent) {
                    wait.insert(parent.to_string());
                    if node.resource_type != ResourceType::Test {
                        for test in tests_of.get(parent).into_iter().flatten() {
                            // Only tests whose inputs all come before this node,
                            // so waiting cannot form a cycle.
                            let test_node = &manifest.nodes[*test];
                            let earlier = test_node
                                .depends_on
                                .nodes
                                .iter()
                                .all(|p| in_run.get(p.as_str()).is_none_or(|&i| i < position));
                            if earlier && in_run[*test] != position {
                                wait.insert(test.to_string());
                            }
                        }
                    }
                } else if let Some(p) = manifest.nodes.get(parent)
                    && p.config.materialized == "ephemeral"
                {
                    stack.extend(p.depends_on.nodes.iter().map(String::as_str));
                }
            }
            deps.insert(id.clone(), wait.into_iter().collect());
        }
        deps
    }

    /// SQL that does not even parse fails the run before anything is
    /// written.
    fn preflight(&self, run: &[String]) -> BTreeMap<String, String> {
        let state = self.shared.session.context().state();
        let mut errors = BTreeMap::new();
        for id in run {
            let Some(node) = self.shared.compiled.manifest.nodes.get(id) else {
                continue;
            };
            if node.resource_type == ResourceType::Seed {
                continue;
            }
            if let Err(e) =
                state.sql_to_statement(&node.compiled_code, &datafusion::config::Dialect::default())
            {
                errors.insert(
                    id.clone(),
                    format!("{}: SQL syntax error: {e}", node.original_file_path),
                );
            }
        }
        errors
    }

    /// Runs `selected` and reports each node through `on_event`.
    pub async fn run(
        &self,
        selected: &BTreeSet<String>,
        on_event: Arc<dyn Fn(RunEvent) + Send + Sync>,
    ) -> RunResults {
        let started = Instant::now();
        // This run writes the tables it reads next: providers can be kept
        // between its queries, dropped as each write lands.
        self.shared.session.catalog().cache_providers(true);
        let run = runnable(&self.shared.compiled.manifest, selected);
        let total = run.len();
        let deps = self.dependencies(&run);
        let mut results: BTreeMap<String, NodeResult> = BTreeMap::new();
        let syntax = self.preflight(&run);
        let mut index = 0;
        if !syntax.is_empty() {
            for id in &run {
                let (status, message) = match syntax.get(id) {
                    Some(m) => (Status::Error, m.clone()),
                    None => (
                        Status::Skipped,
                        "skipped: SQL syntax errors elsewhere in the project; nothing ran".into(),
                    ),
                };
                index += 1;
                let result = skipped_result(id, status, message);
                on_event(RunEvent::Finished {
                    index,
                    total,
                    description: self.describe_id(id),
                    result: Box::new(result.clone()),
                });
                results.insert(id.clone(), result);
            }
            return self.finish(run, results, started);
        }

        let threads = self.shared.options.threads.max(1);
        let mut pending: Vec<String> = run.clone();
        let mut running: JoinSet<(String, usize, NodeResult)> = JoinSet::new();
        let mut stopping = false;
        loop {
            // Start what is ready, skip what cannot run.
            let mut i = 0;
            while i < pending.len() {
                let id = &pending[i];
                let waits = &deps[id];
                let blocked = waits
                    .iter()
                    .find(|d| {
                        results
                            .get(*d)
                            .is_some_and(|r| !r.status.lets_children_run())
                    })
                    .cloned();
                if stopping || blocked.is_some() {
                    let message = match &blocked {
                        Some(up) => format!(
                            "skipped: upstream {} did not succeed",
                            self.shared.compiled.manifest.name_of(up).unwrap_or(up)
                        ),
                        None => "skipped: --fail-fast stopped the run".into(),
                    };
                    index += 1;
                    let result = skipped_result(id, Status::Skipped, message);
                    on_event(RunEvent::Finished {
                        index,
                        total,
                        description: self.describe_id(id),
                        result: Box::new(result.clone()),
                    });
                    results.insert(id.clone(), result);
                    pending.remove(i);
                    continue;
                }
                let ready = waits.iter().all(|d| results.contains_key(d));
                if ready && running.len() < threads {
                    index += 1;
                    let id = pending.remove(i);
                    on_event(RunEvent::Started {
                        index,
                        total,
                        unique_id: id.clone(),
                        description: self.describe_id(&id),
                    });
                    let shared = self.shared.clone();
                    let slot = running.len();
                    running.spawn(async move {
                        let result = run_node(&shared, &id, slot).await;
                        (id, index, result)
                    });
                    continue;
                }
                i += 1;
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (id, node_index, result) = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panic inside a node is lake's bug; report it on the
                    // node rather than losing the run.
                    let id = pending.first().cloned().unwrap_or_default();
                    (
                        id.clone(),
                        index,
                        skipped_result(&id, Status::Error, format!("internal error: {e}")),
                    )
                }
            };
            if self.shared.options.fail_fast && !result.status.lets_children_run() {
                stopping = true;
                running.abort_all();
            }
            on_event(RunEvent::Finished {
                index: node_index,
                total,
                description: self.describe_id(&id),
                result: Box::new(result.clone()),
            });
            results.insert(id, result);
        }
        // Nodes cancelled by --fail-fast.
        for id in &run {
            if !results.contains_key(id) {
                results.insert(
                    id.clone(),
                    skipped_result(
                        id,
                        Status::Skipped,
                        "skipped: --fail-fast stopped the run".into(),
                    ),
                );
            }
        }
        self.finish(run, results, started)
    }

    fn finish(
        &self,
        run: Vec<String>,
        mut results: BTreeMap<String, NodeResult>,
        started: Instant,
    ) -> RunResults {
        RunResults {
            metadata: RunMetadata {
                lake_version: env!("CARGO_PKG_VERSION").to_string(),
                generated_at: chrono::Utc::now().to_rfc3339(),
                invocation_id: self.shared.options.run_id.clone(),
            },
            results: run.iter().filter_map(|id| results.remove(id)).collect(),
            elapsed_time: started.elapsed().as_secs_f64(),
            args: self.shared.options.args.clone(),
        }
    }
}

fn skipped_result(id: &str, status: Status, message: String) -> NodeResult {
    NodeResult {
        unique_id: id.to_string(),
        status,
        execution_time: 0.0,
        message,
        failures: None,
        adapter_response: AdapterResponse::default(),
        thread_id: String::new(),
        relation_name: None,
    }
}

async fn run_node(shared: &Shared, id: &str, slot: usize) -> NodeResult {
    let Some(node) = shared.compiled.manifest.nodes.get(id) else {
        return ingest_source(shared, id, slot).await;
    };
    let started = Instant::now();
    let materializer = Materializer {
        session: &shared.session,
        compiled: &shared.compiled,
        project_dir: &shared.project_dir,
        full_refresh: shared.options.full_refresh,
        run_id: &shared.options.run_id,
    };
    let outcome: Result<NodeOutcome, _> = materializer.run(node).await;
    let execution_time = started.elapsed().as_secs_f64();
    let (status, message, outcome) = match outcome {
        Ok(o) => (o.status.unwrap_or(Status::Success), o.message.clone(), o),
        Err(e) => (Status::Error, e.to_string(), NodeOutcome::default()),
    };
    NodeResult {
        unique_id: id.to_string(),
        status,
        execution_time,
        message: message.clone(),
        failures: outcome.failures,
        adapter_response: AdapterResponse {
            message,
            rows_affected: outcome.rows_affected,
            delta_version: outcome.delta_version,
            drift: outcome
                .drift
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok()),
            ingest: None,
        },
        thread_id: format!("Thread-{}", slot + 1),
        relation_name: node.relation_name.clone(),
    }
}

/// Ingests the external source `id`: a success lists the files loaded; a
/// file that stopped it is an error naming the file, after the files
/// before it; quarantined files make a warning.
async fn ingest_source(shared: &Shared, id: &str, slot: usize) -> NodeResult {
    let started = Instant::now();
    let source = &shared.compiled.manifest.sources[id];
    let mut result = skipped_result(id, Status::Success, String::new());
    result.thread_id = format!("Thread-{}", slot + 1);
    result.relation_name = Some(source.relation_name.clone());
    let ingest = match Ingest::new(&shared.session, source, &shared.project_dir) {
        Ok(ingest) => ingest.with_run_id(&shared.options.run_id),
        Err(e) => {
            result.status = Status::Error;
            result.message = e.to_string();
            result.adapter_response.message = result.message.clone();
            return result;
        }
    };
    match ingest.await {
        Ok(outcome) => {
            result.status = if outcome.failed.is_some() {
                Status::Error
            } else if !outcome.quarantined.is_empty() {
                Status::Warn
            } else {
                Status::Success
            };
            result.message = match &outcome.failed {
                Some(_) => format!("{}: {}", source.original_file_path, outcome.summary()),
                None => outcome.summary(),
            };
            result.adapter_response.rows_affected = Some(outcome.rows());
            result.adapter_response.delta_version = outcome.files.last().map(|f| f.version);
            result.adapter_response.ingest = Some(crate::ingest::outcome_json(&outcome));
        }
        Err(e) => {
            result.status = Status::Error;
            result.message = e.to_string();
        }
    }
    result.adapter_response.message = result.message.clone();
    result.execution_time = started.elapsed().as_secs_f64();
    result
}
