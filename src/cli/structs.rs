//! Command-line definitions. These names are a contract: tests, docs and users rely on them.

pub use super::args::{Output, Target};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::server::AuthMode;

#[derive(Debug, Parser)]
#[command(
    name = "securescore",
    version,
    about = "An Azure-compatible Defender for Cloud secure score service that computes scores from assessments."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (ARM secure score and assessments API, extension API, operations endpoints).
    Serve(ServeArgs),
    /// Manage subscriptions, on a data directory or against a running server.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Import assessments from an NDJSON file (one assessment per line; see the README).
    Import(ImportArgs),
    /// Manage management groups (the hierarchy above subscriptions), on a data directory or
    /// against a running server.
    #[command(subcommand, name = "management-groups")]
    ManagementGroups(ManagementGroupsCommand),
    /// Manage the built-in authority's principals (service principals and users).
    #[command(subcommand)]
    Principals(super::identity_structs::PrincipalsCommand),
    /// Manage Azure role assignments (Owner, Contributor, Reader, Security Admin, ...) at /, a management group or /subscriptions/{id}.
    #[command(subcommand)]
    Roles(super::identity_structs::RolesCommand),
    /// Print an access token signed with a data directory's key (the last line of stdout), for curl.
    Token(super::identity_structs::TokenArgs),
    /// Manage the built-in authority's signing keys (list, rotate).
    #[command(subcommand)]
    Keys(super::identity_structs::KeysCommand),
    /// Secure scores of a subscription, from any ARM endpoint (this server or Azure).
    #[command(subcommand)]
    Scores(ScoresCommand),
    /// Secure score controls of a subscription, sorted by potential score increase.
    Controls(ControlsArgs),
    /// Secure score control definitions (tenant level, or as seen by a subscription).
    Definitions(ReadArgs),
    /// Assessments at a scope (subscription, resource group or resource).
    Assessments(AssessmentsArgs),
    /// The secure score history of a subscription (extension API).
    History(HistoryArgs),
    /// One score over several subscriptions (extension API).
    Aggregate(AggregateArgs),
    /// What to fix first: the controls that can still gain points, best first (extension API).
    Improvements(super::insights_structs::ImprovementsArgs),
    /// What changed: assessment status transitions with the score before and after (extension API).
    Changes(super::insights_structs::ChangesArgs),
    /// Exemptions: assessments that count as not applicable while in force (extension API).
    #[command(subcommand)]
    Exemptions(super::insights_structs::ExemptionsCommand),
    /// Check the database: integrity, and the maintained counters, tallies and last score of every subscription against its assessments. Exits 1 on any problem.
    Verify(VerifyArgs),
    /// Copy an embedded store (a data directory) into a PostgreSQL database, with its identity, signing keys and local CA; checks the row counts at the end.
    Migrate(MigrateArgs),
}

pub use super::args::ReadArgs;

#[derive(Debug, Subcommand)]
pub enum ScoresCommand {
    /// List the secure scores of a subscription.
    List(ReadArgs),
    /// Show one secure score.
    Show {
        /// Secure score name.
        #[arg(default_value = "ascScore")]
        name: String,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Args)]
pub struct ControlsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only the controls of this secure score.
    #[arg(long)]
    pub score: Option<String>,
}

#[derive(Debug, Args)]
pub struct AssessmentsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Scope: /subscriptions/{id}[/resourceGroups/{rg}[/providers/...]] (default: the subscription).
    #[arg(long)]
    pub scope: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Start (RFC 3339); default 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// `day` for the score at the end of each day instead of every change.
    #[arg(long)]
    pub interval: Option<String>,
}

#[derive(Debug, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Comma-separated subscription ids (default: all).
    #[arg(long)]
    pub subscriptions: Option<String>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory of the embedded SQLite store (also holds the local CA and keys).
    #[arg(long, env = "SECURESCORE_DATA_DIR", default_value = "./securescore-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Use port 0 for any free port.
    #[arg(long, env = "SECURESCORE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Data directory: SQLite database (WAL), generated CA and server certificate.
    #[arg(long, env = "SECURESCORE_DATA_DIR", default_value = "./securescore-data")]
    pub data_dir: PathBuf,
    /// Keep the data in memory only (lost on exit). TLS material still lives in --data-dir.
    #[arg(long)]
    pub memory: bool,
    /// PostgreSQL URL for scale-out (postgres://...): any number of servers share the database.
    #[arg(long, env = "SECURESCORE_DATABASE_URL", conflicts_with = "memory")]
    pub database_url: Option<String>,
    /// Seed the demo subscription 20ff7fc3-e762-44dd-bd96-b71116dcdc23 with the official example data.
    #[arg(long)]
    pub demo: bool,
    /// Serve this certificate chain (PEM) instead of one from the generated local CA.
    #[arg(long, requires = "tls_key", conflicts_with = "insecure_http")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert", conflicts_with = "insecure_http")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP. Azure's clients refuse it; meant for curl, benchmarks and proxies.
    #[arg(long)]
    pub insecure_http: bool,
    /// strict: every ARM request needs a valid token; any: accept any well-formed bearer token.
    #[arg(long, value_enum, env = "SECURESCORE_AUTH", default_value = "strict")]
    pub auth: AuthMode,
    /// Also accept tokens of this external authority: its issuer URL (e.g. https://login.microsoftonline.com/TENANT/v2.0) or OpenID configuration URL. Repeatable.
    #[arg(long = "trust-issuer", value_name = "URL")]
    pub trust_issuer: Vec<String>,
    /// The URL clients reach this server at, e.g. https://scores.example.com (servers behind one load balancer share it). Token issuers, the OpenID configuration, sign-in redirects and nextLinks use it, never the request's Host. Default: the listen address with the scheme.
    #[arg(long, env = "SECURESCORE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<crate::arm::PublicUrl>,
    /// Days status transitions (`/securescore/v1/subscriptions/{id}/changes`) are kept; 0 keeps
    /// them for ever.
    #[arg(long, env = "SECURESCORE_CHANGES_RETENTION_DAYS", default_value_t = 90)]
    pub changes_retention_days: u32,
    /// Items per page of every list response (nextLink paging).
    #[arg(long, env = "SECURESCORE_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub page_size: u32,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Turn request throttling off (benchmarks, load tests).
    #[arg(long)]
    pub no_throttle: bool,
    /// Read budget per principal and subscription: BUCKET:REFILL_PER_SECOND (ARM: 250:25).
    #[arg(long, default_value = "250:25")]
    pub throttle_reads: crate::arm::throttle::Budget,
    /// Write budget per principal and subscription: BUCKET:REFILL_PER_SECOND (ARM: 200:10).
    #[arg(long, default_value = "200:10")]
    pub throttle_writes: crate::arm::throttle::Budget,
    /// Most client connections open at once. At the cap, a new connection closes the one idle the longest; it waits only while every connection has a request in flight.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a complete request head (counted from when the server starts waiting for it, so on HTTP/1.1 it also bounds keep-alive idling). Stops slow-header (slowloris) clients.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,
    /// Seconds a client has to complete the TLS handshake before the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout: u64,
    /// Seconds a connection may stay open with no request in flight before the server closes it.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Milliseconds a write waits for the database's write lock (held by another writer, e.g. the CLI on the same data directory) before it is answered 503 with Retry-After.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 10_000)]
    pub store_busy_timeout_ms: u64,
    /// Seconds between the full snapshots of automations with a `…Snapshot` event source (one is also taken when such an automation is created). Default: weekly, like Defender.
    #[arg(long, value_name = "SECONDS", default_value_t = 7 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub export_snapshot_interval: u64,
    /// Milliseconds before the first retry of a failed export delivery; each further failure doubles the wait, up to --export-retry-max.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub export_retry_initial: u64,
    /// Longest wait, in seconds, between two attempts of an export delivery (retries never stop: a delivery stays until it succeeds or its automation is deleted).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub export_retry_max: u64,
    /// Size in bytes above which an export file (Workspace and EventHub actions, under DATA_DIR/exports) is rotated.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub export_max_file_bytes: u64,
    /// Log format on stderr.
    #[arg(long, value_enum, env = "SECURESCORE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Create (or rename) a subscription.
    Add {
        /// Subscription id (a GUID).
        #[arg(long)]
        id: uuid::Uuid,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Tenant (a GUID); default: the data directory's default tenant.
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List subscriptions.
    List {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a subscription and all its data (assessments, scores, history).
    Remove {
        /// Subscription id (a GUID).
        #[arg(long)]
        id: uuid::Uuid,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// NDJSON file of assessments ('-' for standard input): one per line, as the import endpoint
    /// takes them or as Azure lists them; or one JSON array (`az security assessment list -o json`).
    pub file: PathBuf,
    #[command(flatten)]
    pub target: Target,
    /// Lines per transaction at most (fewer when writes are slow, so other writers get their turn).
    #[arg(long, default_value_t = crate::ingest::DEFAULT_BATCH_SIZE as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::ingest::MAX_BATCH_SIZE as u64))]
    pub batch_size: u64,
    /// With --data-dir on which no server runs: commit batches of --batch-size back to back,
    /// without the pauses that give other writers their turns (each batch is still durable)
    #[arg(long, conflicts_with = "endpoint")]
    pub exclusive: bool,
    /// Reject longer lines (with --data-dir; a server applies its own limit, also 1 MiB).
    #[arg(long, default_value_t = crate::ingest::DEFAULT_MAX_LINE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_bytes: u64,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data directory to copy (it is only read).
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: PathBuf,
    /// The PostgreSQL database to copy into: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Replace the target's content even when it already holds subscriptions, assessments or
    /// principals (without it, a non-empty target is refused and left untouched).
    #[arg(long)]
    pub force: bool,
    /// Output format of the row counts.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Rewrite what differs (tallies, counters; a history point when the last one is wrong) in one transaction, and say what changed. Safe while a server runs.
    #[arg(long)]
    pub repair: bool,
    /// Data directory of the embedded SQLite store.
    #[arg(long, env = "SECURESCORE_DATA_DIR", default_value = "./securescore-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://...); takes the place of --data-dir.
    // No `conflicts_with`: clap counts SECURESCORE_DATA_DIR from the environment as given.
    #[arg(long, env = "SECURESCORE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Output format of the report.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum ManagementGroupsCommand {
    /// List the management groups (the tenant root group first) with their parents and the
    /// subscriptions placed directly in them.
    List {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Create or replace a management group.
    Create {
        /// Group id (1 to 90 letters, digits, '-', '_', '(', ')', '.').
        #[arg(long)]
        name: String,
        /// Display name (default: the id).
        #[arg(long)]
        display_name: Option<String>,
        /// Parent group id (default: the tenant root group).
        #[arg(long)]
        parent: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a management group that has no children.
    Delete {
        /// Group id.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Move a subscription into a management group.
    AddSubscription {
        /// Group id.
        #[arg(long)]
        group: String,
        /// Subscription id (a GUID).
        #[arg(long)]
        subscription: uuid::Uuid,
        #[command(flatten)]
        target: Target,
    },
    /// Take a subscription out of a management group (back below the tenant root group).
    RemoveSubscription {
        /// Group id.
        #[arg(long)]
        group: String,
        /// Subscription id (a GUID).
        #[arg(long)]
        subscription: uuid::Uuid,
        #[command(flatten)]
        target: Target,
    },
}
