//! Where a command that works without a server finds its store: a data directory (`--data-dir`),
//! opened only when it already holds a database so a mistyped path never creates an empty one, or
//! a PostgreSQL database (`--database-url`, which wins over `--data-dir`). The one place that
//! turns those flags into a [`StoreConfig`].

use anyhow::{bail, Result};
use std::path::Path;

use super::args::Target;
use crate::store::{Store, StoreConfig};

/// A store on a data directory or database, for commands that work without a server.
pub async fn open_data_dir(target: &Target) -> Result<Store> {
    Store::open(&client_store(target)?).await
}

/// The store a client command's [`Target`] names.
pub fn client_store(target: &Target) -> Result<StoreConfig> {
    if let Some(url) = &target.database_url {
        return database(url);
    }
    let Some(dir) = &target.data_dir else {
        bail!("say where to work: --data-dir DIR (a data directory), --database-url URL (PostgreSQL) or --endpoint URL (a running server)");
    };
    existing_data_dir(dir)
}

/// `--database-url` when given, else the data directory (which must hold a database already).
pub fn existing_store(data_dir: &Path, database_url: Option<&str>) -> Result<StoreConfig> {
    match database_url {
        Some(url) => database(url),
        None => existing_data_dir(data_dir),
    }
}

/// A PostgreSQL URL, checked for its scheme so that a mistake is named at once.
pub fn database(url: &str) -> Result<StoreConfig> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--database-url must be a PostgreSQL URL (postgres://user@host:port/database)");
    }
    Ok(StoreConfig::Postgres { url: url.to_owned() })
}

/// The store of a data directory that already holds a database (never create one by mistake).
pub fn existing_data_dir(dir: &Path) -> Result<StoreConfig> {
    if !dir.join("securescore.db").exists() {
        bail!("{} holds no securescore database; start `securescore serve --data-dir {}` once, or check the path", dir.display(), dir.display());
    }
    Ok(StoreConfig::Sqlite { data_dir: dir.to_path_buf() })
}
