//! The data directory of a client command (`--data-dir`): opened only when it already holds a
//! database, so a mistyped path never creates an empty one.

use anyhow::{bail, Result};

use super::args::Target;
use crate::store::{Store, StoreConfig};

/// A store on a data directory, for commands that work without a server.
pub async fn open_data_dir(target: &Target) -> Result<Store> {
    let Some(dir) = &target.data_dir else {
        bail!("say where to work: --data-dir DIR (a data directory) or --endpoint URL (a running server)");
    };
    Store::open(&existing_data_dir(dir)?).await
}

/// The store of a data directory that already holds a database (never create one by mistake).
pub fn existing_data_dir(dir: &std::path::Path) -> Result<StoreConfig> {
    if !dir.join("securescore.db").exists() {
        bail!("{} holds no securescore database; start `securescore serve --data-dir {}` once, or check the path", dir.display(), dir.display());
    }
    Ok(StoreConfig::Sqlite { data_dir: dir.to_path_buf() })
}
