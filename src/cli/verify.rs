//! `securescore verify [--repair]`: prints the store's verification report (`Store::verify`,
//! `Store::repair`) as a table or JSON and turns it into the exit status. The checks themselves
//! live in the store.

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

use super::data::existing_store;
use super::structs::{Output, VerifyArgs};
use crate::catalog;
use crate::store::{Counters, Mismatch, Store, VerifyReport};

pub async fn run(args: VerifyArgs) -> Result<()> {
    // As it is: a catalogue change is reported (or, with --repair, rebuilt), not adopted silently.
    let config = existing_store(&args.data_dir, args.database_url.as_deref())?;
    let store =
        Store::open_for_verify(&config).await.with_context(|| match &args.database_url {
            Some(_) => "cannot open the PostgreSQL database".to_owned(),
            None => format!(
                "cannot open the database in {} (if the file is damaged, restore a backup)",
                args.data_dir.display()
            ),
        })?;
    let report = if args.repair { store.repair().await? } else { store.verify().await? };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print_table(&report, args.repair),
    }
    if !report.integrity.is_empty() {
        bail!(
            "the database file is damaged ({} problem(s)); nothing was {}: restore a backup",
            report.integrity.len(),
            if args.repair { "repaired" } else { "compared" }
        );
    }
    if !args.repair && !report.mismatches.is_empty() {
        bail!(
            "{} mismatch(es) between the maintained state and the assessments; \
             `securescore verify --repair` rewrites them",
            report.mismatches.len()
        );
    }
    Ok(())
}

fn print_table(report: &VerifyReport, repair: bool) {
    if report.integrity.is_empty() {
        println!("Integrity check: ok");
    } else {
        println!("Integrity check: DAMAGED");
        for line in &report.integrity {
            println!("  {line}");
        }
        return;
    }
    match report.catalog.recorded.as_deref() {
        Some(v) if v == report.catalog.builtin => println!("Catalogue: {v}"),
        recorded => println!(
            "Catalogue: built in {}, counters computed with {}",
            report.catalog.builtin,
            recorded.unwrap_or("(none recorded)")
        ),
    }
    println!("Subscriptions checked: {}", report.subscriptions);
    if report.mismatches.is_empty() {
        println!(
            "{}",
            if repair { "Nothing to repair." } else { "Counters, tallies and history match." }
        );
        return;
    }
    let mut t = Table::new();
    // Resource ids are long: wrap to a terminal's width; in a pipe keep lines whole for grep.
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Subscription",
        "What",
        if repair { "Was" } else { "Stored" },
        if repair { "Now" } else { "Recomputed" },
    ]);
    for m in &report.mismatches {
        t.add_row(row(m));
    }
    if repair {
        println!("Repaired {} mismatch(es):", report.mismatches.len());
    } else {
        println!("{} mismatch(es):", report.mismatches.len());
    }
    println!("{t}");
    for sub in &report.history_points_added {
        println!("Appended a history point to subscription {sub}.");
    }
}

fn counters(c: &Option<Counters>) -> String {
    c.map_or_else(|| "(none)".to_owned(), |c| c.to_string())
}

fn control(name: &str) -> String {
    match catalog::builtin().control(name) {
        Some(def) => format!("control {name} ({})", def.display_name),
        None => format!("control {name} (not in the catalogue)"),
    }
}

fn row(m: &Mismatch) -> [String; 4] {
    match m {
        Mismatch::Catalog { recorded, builtin } => [
            "-".into(),
            "catalogue version".into(),
            recorded.clone().unwrap_or_else(|| "(none recorded)".into()),
            builtin.clone(),
        ],
        Mismatch::Counts { subscription, control: c, stored, recomputed } => [
            subscription.to_string(),
            format!("counters of {}", control(c)),
            counters(stored),
            counters(recomputed),
        ],
        Mismatch::Tallies { subscription, control: c, resources, resource, stored, recomputed } => {
            [
                subscription.to_string(),
                format!(
                    "tallies of {}: {resources} resource(s) differ, e.g. {resource}",
                    control(c)
                ),
                counters(stored),
                counters(recomputed),
            ]
        }
        Mismatch::ResourceGroupCounts {
            subscription,
            resource_group,
            control: c,
            stored,
            recomputed,
        } => [
            subscription.to_string(),
            format!("counters of resource group {resource_group}, {}", control(c)),
            counters(stored),
            counters(recomputed),
        ],
        Mismatch::History { subscription, stored, recomputed } => [
            subscription.to_string(),
            "history (last point)".into(),
            stored.map_or_else(|| "(no point)".into(), |s| s.to_string()),
            recomputed.to_string(),
        ],
    }
}
