//! `securescore migrate --from-data-dir DIR --to postgres://…`: move an embedded store into
//! PostgreSQL (`store::transfer` copies the tables), with a progress bar and the row counts of
//! both sides at the end. The data directory's signing keys and local CA move too, so tokens
//! issued before the move stay valid and clients keep trusting the same CA.

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::data::existing_data_dir;
use super::structs::{MigrateArgs, Output};
use crate::identity::keys::{KEYS_FILE, KEYS_META};
use crate::store::transfer::{Plan, TableCount};
use crate::store::{Store, StoreConfig, DB_FILE};
use crate::tls;

pub async fn run(args: MigrateArgs) -> Result<()> {
    let dir = existing_data_dir(&args.from_data_dir)?;
    let StoreConfig::Sqlite { data_dir } = &dir else { bail!("--from-data-dir names a directory") };
    let db_file = data_dir.join(DB_FILE);
    if !db_file.exists() {
        bail!("{} holds no database ({DB_FILE}): nothing to migrate", data_dir.display());
    }
    let target = super::data::database(&args.to)?;
    // Bring the source up to this version's schema (and catalogue), then create the target's.
    Store::open(&dir).await.context("cannot open the data directory's store")?;
    let store = Store::open(&target).await.context("cannot open the target database")?;

    let plan = Plan::new(&db_file, &args.to, args.force).await?;
    let bar = ProgressBar::new(plan.total_rows());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let counts = plan.run(|n| bar.set_position(n)).await?;
    bar.finish_and_clear();

    // What a data directory keeps in files, a shared database keeps in its meta rows.
    let mut moved = Vec::new();
    if let Ok(ring) = std::fs::read_to_string(data_dir.join(KEYS_FILE)) {
        store.set_meta_if_absent(KEYS_META, &ring).await?;
        moved.push("signing keys");
    }
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(data_dir.join(tls::CA_CERT_FILE)),
        std::fs::read_to_string(data_dir.join(tls::CA_KEY_FILE)),
    ) {
        let ca = serde_json::json!({ "certificate": cert, "privateKey": key }).to_string();
        store.set_meta_if_absent(crate::server::SHARED_CA_META, &ca).await?;
        moved.push("local CA");
    }

    let differ: Vec<&TableCount> = counts.iter().filter(|c| c.source != c.target).collect();
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tables": counts.iter().map(|c| serde_json::json!({
                    "table": c.table, "source": c.source, "target": c.target,
                })).collect::<Vec<_>>(),
                "moved": moved,
                "ok": differ.is_empty(),
            }))?
        ),
        Output::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header(["table", "rows in the data directory", "rows in PostgreSQL"]);
            for c in &counts {
                table.add_row([c.table.clone(), c.source.to_string(), c.target.to_string()]);
            }
            println!("{table}");
            if !moved.is_empty() {
                println!("Also moved: {}.", moved.join(", "));
            }
        }
    }
    if !differ.is_empty() {
        bail!(
            "the row counts differ in {} table(s) ({}): the copy is incomplete",
            differ.len(),
            differ.iter().map(|c| c.table.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if args.output == Output::Table {
        println!(
            "Every row arrived. Serve it with: securescore serve --database-url {}",
            redact(&args.to)
        );
    }
    Ok(())
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (auth, host) = rest.split_once('@')?;
        let user = auth.split(':').next()?;
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(s) => s,
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(super::redact("postgres://u:secret@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
