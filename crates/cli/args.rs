//! Every command and flag of `lake`, defined once: `--help`, the parser and
//! `docs/cli.md` (`lake generate-docs`) all come from here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// lake: a lakehouse query-and-transform SQL engine.
///
/// Compiles a folder of dbt-style Jinja SQL models into a DAG, runs it with
/// Apache DataFusion on Delta Lake tables, and serves the results over
/// Arrow Flight.
#[derive(Debug, Parser)]
#[command(name = "lake", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render every model and test and write target/manifest.json and
    /// target/compiled/<project>/...sql.
    ///
    /// Nothing is executed: compile checks the whole project (Jinja, refs,
    /// configs, tests, cycles) and reports every problem it finds at once.
    Compile(CompileArgs),
    /// List the project's nodes (models, seeds, tests, sources) and feature
    /// views.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Ingest new files of external sources, then run seeds, models and
    /// tests in DAG order, writing Delta tables.
    ///
    /// Sources with an `external: {location, format}` load the files not
    /// loaded yet into their raw table first (see `lake ingest`). Each
    /// model's tests run right after it; a model that fails, or an
    /// `error` test that fails, skips everything downstream while the rest
    /// of the DAG goes on. Then the online table of each feature view (in
    /// the `features` zone: the latest values per entity key) takes the
    /// source rows newer than it holds, for the views selected and those
    /// whose source ran (see docs/features.md). Results go to
    /// target/run_results.json.
    Build(RunArgs),
    /// Run models only (no seeds, no tests), after ingesting the new files
    /// of external sources, then refresh online tables as `lake build`
    /// does.
    Run(RunArgs),
    /// Load seeds (CSV files) into the raw zone.
    Seed(RunArgs),
    /// Load the files that landed under external sources' locations into
    /// their raw Delta tables, each file exactly once.
    ///
    /// A source table with `external: {location, format: csv|json|parquet,
    /// options, on_error}` in properties YAML is loaded into
    /// `raw.<source>__<table>` (what `source()` reads). Only files not
    /// loaded yet are read, in path order, up to 100 files per commit, with the
    /// file's path (`_source_file`) and the ingestion time (the source's
    /// `loaded_at_field`, or `_ingested_at`) on every row; a run killed half
    /// way and run again loads each file once. New columns are added; a
    /// type change fails the file with its name and the column. A file that
    /// cannot be read fails the run (the files before it stay loaded), or
    /// with `on_error: quarantine` is moved to `<location>/_quarantine/`.
    /// Without --select, every external source. See docs/ingest.md.
    Ingest(RunArgs),
    /// Run data tests only, against the tables already built.
    Test(RunArgs),
    /// Run again the nodes that errored, failed or were skipped in the last
    /// run (from target/run_results.json).
    Retry(RetryArgs),
    /// Commands about sources (`lake source freshness`).
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Commands about the feature store: entities, feature views and
    /// feature services declared in properties YAML (`lake features ls`).
    Features {
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Write a point-in-time-correct training set to a Parquet file: the
    /// spine's rows with the features of a feature service (or a list of
    /// features) as they stood at each row's event time.
    ///
    /// For each spine row and feature view: among the view's rows with the
    /// same join keys and `event_timestamp - ttl <= timestamp_field <=
    /// event_timestamp`, the latest (ties broken by the latest
    /// `created_timestamp_field`); no such row gives NULLs. Every spine row
    /// comes out exactly once, in spine order, with all its own columns
    /// (labels included), then one column per feature named
    /// `<view>__<feature>`. The file is written batch by batch under
    /// `<output>.tmp` and renamed when complete. See docs/features.md.
    TrainingSet(TrainingSetArgs),
    /// Query every zone of the lake with SQL: an interactive prompt, or the
    /// statements of -c, -f or stdin.
    ///
    /// DataFusion SQL over the Delta tables and views of every zone, plus
    /// time travel (`FROM curated.orders VERSION AS OF 3`, `TIMESTAMP AS OF
    /// '2026-11-01T00:00:00Z'`), `DESCRIBE HISTORY zone.name`, writes that
    /// are Delta commits (`CREATE TABLE zone.name AS SELECT ...`, `INSERT
    /// INTO`, `DELETE FROM`), files read in place (`SELECT * FROM
    /// 'data/x.parquet'`, `CREATE EXTERNAL TABLE`) and `COPY (...) TO
    /// 'file'`. At the prompt: `\d` lists tables and views, `\d name`
    /// describes one, `\dt` lists tables, `\timing`, `\format`, `\q`;
    /// Ctrl-C cancels the running statement. In scripts, the exit code is 1
    /// when a statement failed.
    Sql(SqlArgs),
    /// Preview a model's rows, or an inline query, without writing
    /// anything (like `dbt show`).
    Show(ShowArgs),
    /// Serve the lake over Arrow Flight SQL until SIGINT or SIGTERM, for
    /// ADBC, JDBC and pyarrow.flight clients.
    ///
    /// Statement queries, prepared statements with `$1` parameters, the
    /// metadata calls, and bulk ingest into the `raw` zone. With `--auth`,
    /// clients log in with a user name and password (or an API token) from
    /// the auth file, and their role decides which zones they read; columns
    /// tagged `pii` in the project's properties YAML come back masked for
    /// every role but `admin`. Without `--auth` every call is an admin and
    /// only a loopback address may be bound. DDL, DML, COPY and SET are
    /// refused. Prints one line when listening (with the bound port, so
    /// `--addr 127.0.0.1:0` picks a free one) and one line per request on
    /// stderr. See docs/flight.md.
    Serve(ServeArgs),
    /// Make credentials for the auth file of `lake serve`: password hashes
    /// and API tokens.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Create a new, working project in DIR: lake_project.yml, a seed, two
    /// models and a schema.yml with tests.
    Init(InitArgs),
    /// Print docs/cli.md, generated from these definitions.
    #[command(hide = true)]
    GenerateDocs,
}

/// Where the project is and how to render it; shared by every command that
/// reads a project.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// The project folder (holding lake_project.yml or dbt_project.yml).
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        env = "LAKE_PROJECT_DIR"
    )]
    pub project_dir: PathBuf,
    /// Variables for var(), as YAML or JSON: '{start_date: 2026-01-01}'.
    /// They override the project's `vars:`.
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
    /// The target (from `targets:` in the project file); `target.name` in
    /// Jinja. Default: the first target declared, or `default`.
    #[arg(long, short = 't', value_name = "NAME", env = "LAKE_TARGET")]
    pub target: Option<String>,
}

/// Which nodes to act on (dbt's selector syntax).
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Nodes to include: `name`, `+name` (and parents), `name+` (and
    /// children), `2+name`, `@name`, `tag:x`, `path:models/staging`,
    /// `config.materialized:incremental`, `resource_type:seed`,
    /// `source:s.t`, `feature_view:name`, `feature_service:name`;
    /// space-separated for union, comma for intersection.
    #[arg(long, short = 's', value_name = "SELECTOR", num_args = 1.., alias = "models", short_alias = 'm')]
    pub select: Vec<String>,
    /// Nodes to leave out, same syntax as --select.
    #[arg(long, value_name = "SELECTOR", num_args = 1..)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How to run nodes.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The lake root: a path (relative to the project) or a URL (file://,
    /// memory://). Overrides the target's and the project file's `root`.
    /// Default: <project>/.lake.
    #[arg(long, value_name = "URL", env = "LAKE_ROOT")]
    pub lake_root: Option<String>,
    /// How many nodes run at once (DAG-parallel). Default: the number of
    /// cores, at least 4.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Stop at the first failure; what has not run is skipped.
    #[arg(long, short = 'x')]
    pub fail_fast: bool,
    /// Rebuild incremental models from scratch (unless a model sets
    /// `full_refresh: false`).
    #[arg(long)]
    pub full_refresh: bool,
    /// Memory the queries may use before spilling to disk, such as 4GiB or
    /// 512MiB. Default: 3/4 of the machine's memory.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Where queries spill when they run out of memory. Default: the
    /// system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Output: `text` for people, `json` for one JSON object per event on
    /// stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// How old the newest row of each source table is, against its
    /// `freshness: {warn_after, error_after}`; writes target/sources.json.
    ///
    /// Sources need a `loaded_at_field` and a `freshness` block. The exit
    /// code is 1 when a source is past `error_after` or cannot be read.
    /// `LAKE_NOW` (RFC 3339) fixes the clock, for tests and replays.
    Freshness(FreshnessArgs),
}

#[derive(Debug, Args)]
pub struct FreshnessArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The lake root: a path (relative to the project) or a URL (file://,
    /// memory://). Default: the target's or the project file's `root`, or
    /// <project>/.lake.
    #[arg(long, value_name = "URL", env = "LAKE_ROOT")]
    pub lake_root: Option<String>,
    /// Output: `text` for people, `json` for one JSON object per source.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Only nodes of these types. Without it: models, seeds, tests,
    /// sources and feature views. Entities and feature services are listed
    /// only when asked for, and --select does not narrow them.
    #[arg(long, value_enum, value_name = "TYPE", num_args = 1.., value_delimiter = ',')]
    pub resource_type: Vec<ResourceTypeArg>,
    /// How to print each node: `selector` (dbt's dotted fqn), `name`,
    /// `path` (its file), or `json` (one object per line).
    #[arg(long, short = 'o', value_enum, default_value_t = LsOutput::Selector)]
    pub output: LsOutput,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to create (it must not exist, or be empty).
    pub dir: PathBuf,
    /// The project name; default: the folder's name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LsOutput {
    Selector,
    Name,
    Path,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResourceTypeArg {
    Model,
    Seed,
    Test,
    Source,
    #[value(name = "feature_view", alias = "feature-view")]
    FeatureView,
    Entity,
    #[value(name = "feature_service", alias = "feature-service")]
    FeatureService,
}

impl ResourceTypeArg {
    /// The node type; `None` for the feature store's kinds, which are not
    /// nodes.
    pub fn to_resource_type(self) -> Option<lake_compiler::ResourceType> {
        match self {
            ResourceTypeArg::Model => Some(lake_compiler::ResourceType::Model),
            ResourceTypeArg::Seed => Some(lake_compiler::ResourceType::Seed),
            ResourceTypeArg::Test => Some(lake_compiler::ResourceType::Test),
            ResourceTypeArg::Source => Some(lake_compiler::ResourceType::Source),
            ResourceTypeArg::FeatureView
            | ResourceTypeArg::Entity
            | ResourceTypeArg::FeatureService => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FeaturesCommand {
    /// List the entities, feature views (entities, source relation,
    /// timestamp field, ttl, features) and feature services of the project.
    Ls(FeaturesLsArgs),
}

#[derive(Debug, Args)]
pub struct FeaturesLsArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// `table` for people, or `json` for one object with `entities`,
    /// `feature_views` and `feature_services`.
    #[arg(long, short = 'o', value_enum, default_value_t = FeaturesOutput::Table)]
    pub output: FeaturesOutput,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["feature_service", "features"])))]
#[command(group(ArgGroup::new("spine").required(true).args(["spine_table", "spine_sql", "spine_file"])))]
pub struct TrainingSetArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Variables for var(), as YAML or JSON, when compiling the project.
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
    /// The feature service whose features to join (`lake features ls`
    /// lists them).
    #[arg(long, value_name = "NAME")]
    pub feature_service: Option<String>,
    /// The features to join, comma-separated: `view:feature`, or `view` for
    /// all of a view's features.
    #[arg(long, value_name = "VIEW:FEATURE", value_delimiter = ',', num_args = 1..)]
    pub features: Vec<String>,
    /// The spine: a table or view of the lake, as `zone.name`.
    #[arg(long, value_name = "TABLE")]
    pub spine_table: Option<String>,
    /// The spine: a read-only query over the lake.
    #[arg(long, value_name = "SQL")]
    pub spine_sql: Option<String>,
    /// The spine: a Parquet file.
    #[arg(long, value_name = "FILE")]
    pub spine_file: Option<PathBuf>,
    /// The Parquet file to write (replaced if it exists).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// The spine's event time column (a timestamp or a date).
    #[arg(long, value_name = "COLUMN", default_value = lake_features::DEFAULT_EVENT_TIMESTAMP)]
    pub event_timestamp_column: String,
    /// Name feature columns by the feature alone instead of
    /// `<view>__<feature>` (an error if two views share a feature name).
    #[arg(long)]
    pub plain_feature_names: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeaturesOutput {
    Table,
    Json,
}

/// How `lake sql` and `lake show` print rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowFormat {
    /// Aligned columns for people.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Run these statements and exit (repeatable; `;` separates
    /// statements).
    #[arg(long, short = 'c', value_name = "SQL")]
    pub command: Vec<String>,
    /// Run the statements of FILE and exit.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub print: PrintArgs,
    /// Run against a `lake serve` server instead of the local lake:
    /// grpc://host:port, or grpc+tls://host:port for TLS. Statements go
    /// through the server's Flight SQL (read-only, as the server's role
    /// allows); `\d` lists what the server lists.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
    /// The user to log in as with --connect; the password comes from
    /// LAKE_PASSWORD or a prompt. Without --user, LAKE_TOKEN (an API token
    /// from `lake auth new-token`) is sent when set.
    #[arg(long, value_name = "NAME", requires = "connect")]
    pub user: Option<String>,
    /// A PEM certificate to trust for grpc+tls:// besides the system's
    /// roots (for a server with a self-signed certificate).
    #[arg(long, value_name = "FILE", requires = "connect")]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The model or seed to preview: its SQL runs with a limit; nothing is
    /// written.
    #[arg(long, short = 's', value_name = "NAME", conflicts_with = "inline")]
    pub select: Option<String>,
    /// A query to preview, with Jinja: "select * from {{ ref('orders') }}".
    #[arg(long, value_name = "SQL")]
    pub inline: Option<String>,
    /// Rows to show.
    #[arg(long, default_value_t = 5)]
    pub limit: usize,
    /// The lake root: a path (relative to the project) or a URL. Default:
    /// the target's or the project file's `root`, or <project>/.lake.
    #[arg(long, value_name = "URL", env = "LAKE_ROOT")]
    pub lake_root: Option<String>,
    /// How to print the rows.
    #[arg(long, value_enum, default_value_t = RowFormat::Table)]
    pub format: RowFormat,
}

/// Which lake to open: the project's, or one named directly.
#[derive(Debug, Args)]
pub struct LakeArgs {
    /// The project folder whose lake to open.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        env = "LAKE_PROJECT_DIR"
    )]
    pub project_dir: PathBuf,
    /// The target whose `root` to use.
    #[arg(long, short = 't', value_name = "NAME", env = "LAKE_TARGET")]
    pub target: Option<String>,
    /// The lake root: a path or a URL (file://, memory://, s3://). Default: the
    /// target's or the project file's `root`, or <project>/.lake. Without
    /// a project, this or ./.lake.
    #[arg(long, value_name = "URL", env = "LAKE_ROOT")]
    pub lake_root: Option<String>,
    /// Memory queries may use before spilling, such as 4GiB.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Variables for var(), as YAML or JSON, when compiling the project to
    /// find its PII columns.
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
    /// The address to listen on: an IP address and a port (`localhost`
    /// means 127.0.0.1). Port 0 picks a free port; the listening line says
    /// which.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051", value_parser = parse_addr)]
    pub addr: SocketAddr,
    /// The auth file: principals with a role and a `password_hash` (from
    /// `lake auth hash-password`) or a `token_sha256` (from `lake auth
    /// new-token`). Edits are picked up while serving. Without it, every
    /// call is an admin and only loopback addresses may be bound.
    #[arg(long, value_name = "FILE", env = "LAKE_AUTH_FILE")]
    pub auth: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    /// Clients connect to grpc+tls://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Queries that may run at once; more are answered
    /// RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = lake_flight::DEFAULT_MAX_CONCURRENT_QUERIES, value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub max_concurrent_queries: usize,
}

/// `127.0.0.1:50051`, `[::1]:50051`, `0.0.0.0:50051`, `localhost:50051`.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let hint = "an IP address and a port, such as 127.0.0.1:50051, [::1]:50051 or 0.0.0.0:50051";
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| format!("'{port}' is not a port; expected {hint}"));
    }
    text.parse().map_err(|_| format!("expected {hint}"))
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Read a password (one line on stdin, or a prompt on a terminal) and
    /// print its argon2 hash for an auth file's `password_hash`.
    HashPassword,
    /// Print a new random API token and its SHA-256 for an auth file's
    /// `token_sha256`; give the token to the client, and keep only the hash
    /// in the file.
    NewToken,
}

/// How rows are printed.
#[derive(Debug, Args)]
pub struct PrintArgs {
    /// Output format (`\format` at the prompt).
    #[arg(long, value_enum, default_value_t = RowFormat::Table)]
    pub format: RowFormat,
    /// Rows printed per result in the table format (0: all).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub max_rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
