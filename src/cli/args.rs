//! Arguments every client command shares (where it works, how it prints), apart from the command
//! definitions (`structs`, `identity_structs`, `insights_structs`) that all use them.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Output {
    /// A readable table.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
}

/// Where a client command works: a data directory, or a server's extension API.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Work on this data directory (safe while a server runs on it).
    #[arg(long, env = "SECURESCORE_DATA_DIR", conflicts_with = "endpoint")]
    pub data_dir: Option<PathBuf>,
    /// Work on this PostgreSQL database instead of --data-dir (postgres://user@host:port/db).
    #[arg(long, env = "SECURESCORE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Work against this server instead, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "SECURESCORE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// CA certificate (PEM) to trust for --endpoint (the server's DATA_DIR/ca.pem).
    #[arg(long, env = "SECURESCORE_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token for --endpoint.
    #[arg(long, env = "SECURESCORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where a read command goes and how it prints.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// ARM endpoint: this server (default) or https://management.azure.com.
    #[arg(long, env = "SECURESCORE_ENDPOINT", default_value = "https://127.0.0.1:8443")]
    pub endpoint: String,
    /// CA certificate (PEM) to trust, e.g. DATA_DIR/ca.pem (default: ./securescore-data/ca.pem when it exists).
    #[arg(long, env = "SECURESCORE_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token (`securescore token`, or `az account get-access-token` for Azure).
    #[arg(long, env = "SECURESCORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Subscription id (required by subscription-level commands).
    #[arg(long, short = 's', env = "SECURESCORE_SUBSCRIPTION")]
    pub subscription: Option<uuid::Uuid>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

impl ReadArgs {
    pub fn target(&self) -> Target {
        let ca = self.ca.clone().or_else(|| {
            let default = PathBuf::from("./securescore-data/ca.pem");
            default.exists().then_some(default)
        });
        Target {
            data_dir: None,
            database_url: None,
            endpoint: Some(self.endpoint.clone()),
            ca,
            token: self.token.clone(),
        }
    }
}
