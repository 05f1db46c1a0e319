//! Arguments every client command shares (where it works, how it prints), apart from the command
//! definitions (`structs`, `identity_structs`) that all use them.

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
