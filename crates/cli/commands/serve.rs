//! `lake serve`: the project's lake over Arrow Flight SQL (`lake-flight`),
//! with the auth file of `lake-auth`, the PII columns of the project's
//! properties YAML, and its feature views and services (training sets and
//! online features).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use lake_auth::Authenticator;
use lake_compiler::{ColumnInfo, Manifest, ResourceType};
use lake_engine::SessionOptions;
use lake_flight::{FlightServer, ServeError, is_loopback};
use serde_json::Value as Json;
use tokio::net::TcpListener;

use crate::args::{ProjectArgs, ServeArgs};
use crate::{CmdResult, Failure};

/// PII columns by `zone.table`, as the server takes them.
type PiiColumns = BTreeMap<String, Vec<String>>;

pub fn run(args: ServeArgs) -> CmdResult {
    let addr = args.addr;
    // Refuse before compiling and opening anything (the server checks too).
    if args.auth.is_none() && !is_loopback(addr.ip()) {
        return Err(Failure::User(anyhow!(
            "{}\n  hint: lake serve --auth auth.yml (see `lake auth hash-password`)",
            ServeError::InsecureBind { addr }
        )));
    }
    let authenticator = args
        .auth
        .as_deref()
        .map(|path| {
            Authenticator::load(path)
                .map(Arc::new)
                .map_err(|e| Failure::User(anyhow!("{e}")))
        })
        .transpose()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((read_certificate(cert)?, read_private_key(key)?)),
        _ => None,
    };
    let project = compile_served_project(&args)?;
    let root = super::sql::open_root(&args.lake)?;
    let options = SessionOptions {
        memory_limit: super::build::memory_limit(args.lake.memory_limit.as_deref())?,
        // Clients must not read the server's files by path.
        url_tables: false,
        ..SessionOptions::default()
    };
    let pii = match project.as_ref().map(pii_columns) {
        Some(pii) => {
            let listed: Vec<String> = pii
                .iter()
                .flat_map(|(table, columns)| columns.iter().map(move |c| format!("{table}.{c}")))
                .collect();
            if listed.is_empty() {
                eprintln!("lake serve: no column is tagged pii in the project");
            } else {
                eprintln!(
                    "lake serve: PII columns, masked for every role but admin: {}",
                    listed.join(", ")
                );
            }
            pii
        }
        None => {
            if authenticator.is_some() {
                eprintln!(
                    "warning: no project in {}, so no column is masked (PII columns come from the project's properties YAML)",
                    args.lake.project_dir.display()
                );
            }
            PiiColumns::new()
        }
    };

    let runtime = super::runtime()?;
    let auth_label = match &args.auth {
        Some(path) => path.display().to_string(),
        None => "none, loopback only".to_owned(),
    };
    let result = runtime.block_on(async {
        let session = super::open_session(root, &options).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::User(anyhow!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr()?;
        let mut server = FlightServer::new(session)
            .with_auth(authenticator)
            .with_max_concurrent_queries(args.max_concurrent_queries)
            .with_pii_columns(pii);
        if let Some(manifest) = project {
            // Training sets and online features of its feature views.
            if !manifest.feature_services.is_empty() {
                eprintln!(
                    "lake serve: feature services: {}",
                    manifest
                        .feature_services
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            server = server.with_project(Arc::new(manifest));
        }
        let tls_on = tls.is_some();
        if let Some((cert, key)) = tls {
            server = server.with_tls(cert, key);
        }
        // The first SIGINT/SIGTERM lets the calls in flight finish; a second
        // one stops at once. Both are watched from before the listening
        // line: a signal sent as soon as it is read must not kill the
        // process (the default action) or go unseen, nor a second signal
        // sent right after the first.
        let mut signals = StopSignals::new();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let graceful = async move {
            // (An error means `forced` was dropped: the server is going anyway.)
            let _ = first_rx.await;
            eprintln!("lake serve: stopping after the calls in flight (a second Ctrl-C or SIGTERM stops at once)");
        };
        let forced = async move {
            signals.recv().await;
            let _ = first_tx.send(());
            signals.recv().await;
        };
        let scheme = if tls_on { "grpc+tls" } else { "grpc" };
        println!(
            "lake serve: listening on {scheme}://{bound} (auth: {auth_label}), tls: {}",
            if tls_on { "on" } else { "off" }
        );
        tokio::select! {
            served = server.serve_with_listener(listener, graceful) => {
                served.map_err(serve_failure)?;
                eprintln!("lake serve: stopped");
            }
            () = forced => eprintln!("lake serve: stopped without waiting for the calls in flight"),
        }
        Ok::<(), Failure>(())
    });
    // Streams still held by clients must not keep the process alive.
    runtime.shutdown_background();
    result
}

/// SIGINT and SIGTERM, watched from creation on, so that none is missed
/// between two [`StopSignals::recv`]s (a listener made after a signal, as
/// each `lake_flight::shutdown_signal()` call makes one, does not see it).
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts watching; must run inside the runtime.
    fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next SIGINT or SIGTERM. A signal that cannot be watched never
    /// comes (rather than stopping the server at once).
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let StopSignals {
                interrupt,
                terminate,
            } = self;
            tokio::select! {
                () = next_signal(interrupt) => {}
                () = next_signal(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        lake_flight::shutdown_signal().await;
    }
}

#[cfg(unix)]
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await;
}

fn serve_failure(e: ServeError) -> Failure {
    match e {
        ServeError::InsecureBind { .. } | ServeError::Tls(_) | ServeError::Io(_) => {
            Failure::User(anyhow!("{e}"))
        }
        other => Failure::Internal(anyhow!("{other}")),
    }
}

/// The project at `--project-dir`, compiled (for its PII columns, feature
/// views and feature services), or `None` when there is no project (a lake
/// named by `--lake-root` alone). A project that does not compile is an
/// error: serving it would leave its PII unmasked.
fn compile_served_project(args: &ServeArgs) -> Result<Option<Manifest>, Failure> {
    match lake_compiler::ProjectFile::load(&args.lake.project_dir) {
        Err(lake_compiler::CompileError::ProjectNotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(_) => {
            let compiled = super::compile_project(&ProjectArgs {
                project_dir: args.lake.project_dir.clone(),
                vars: args.vars.clone(),
                target: args.lake.target.clone(),
            })?;
            Ok(Some(compiled.manifest))
        }
    }
}

/// Columns tagged PII (`meta: {pii: true}` or `tags: [pii]`, also under a
/// column's `config:`) of every model, seed and source, by the relation the
/// engine reads and writes (`zone.name`).
pub fn pii_columns(manifest: &Manifest) -> PiiColumns {
    let nodes = manifest
        .nodes
        .values()
        .filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed))
        .filter_map(|n| Some((n.relation_name.as_deref()?, &n.columns)));
    let sources = manifest
        .sources
        .values()
        .map(|s| (s.relation_name.as_str(), &s.columns));
    let mut pii = PiiColumns::new();
    for (relation, columns) in nodes.chain(sources) {
        let (zone, name) = lake_engine::split_relation(relation);
        let tagged: Vec<String> = columns
            .values()
            .filter(|c| is_pii(c))
            .map(|c| c.name.clone())
            .collect();
        if !tagged.is_empty() {
            pii.entry(format!("{zone}.{name}"))
                .or_default()
                .extend(tagged);
        }
    }
    pii
}

fn is_pii(column: &ColumnInfo) -> bool {
    let flagged = match column.meta.get("pii") {
        Some(Json::Bool(flag)) => *flag,
        Some(Json::String(flag)) => matches!(flag.to_ascii_lowercase().as_str(), "true" | "yes"),
        _ => false,
    };
    flagged || column.tags.iter().any(|t| t.eq_ignore_ascii_case("pii"))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::User(anyhow!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

/// The certificate chain, checked to be PEM (tonic only parses it when a
/// client connects).
fn read_certificate(path: &Path) -> Result<Vec<u8>, Failure> {
    let pem = read_file(path, "certificate")?;
    if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
        return Err(Failure::User(anyhow!(
            "{}: not a PEM certificate (no `-----BEGIN CERTIFICATE-----` block)\n  hint: --tls-cert takes the certificate chain, --tls-key its private key",
            path.display()
        )));
    }
    Ok(pem)
}

fn read_private_key(path: &Path) -> Result<Vec<u8>, Failure> {
    let pem = read_file(path, "private key")?;
    if contains(&pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Failure::User(anyhow!(
            "{}: an encrypted private key; lake serve needs it unencrypted\n  hint: openssl pkey -in {0} -out key.pem",
            path.display()
        )));
    }
    if !contains(&pem, b"PRIVATE KEY-----") {
        return Err(Failure::User(anyhow!(
            "{}: not a PEM private key (no `-----BEGIN ... PRIVATE KEY-----` block)\n  hint: --tls-cert takes the certificate chain, --tls-key its private key",
            path.display()
        )));
    }
    Ok(pem)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
