//! How a client command's answer reaches the terminal: a readable table, or the JSON for scripts
//! (`-o json`). One place, so that every command's tables look alike.

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;

use super::args::Output;

/// Print `json` as it is, or the table `table` builds from it.
pub fn print(output: Output, json: &Value, table: impl FnOnce() -> Table) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(json)?),
        Output::Table => println!("{}", table()),
    }
    Ok(())
}

/// An empty table with the project's look and these column headers.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    t
}

/// A JSON value as a table cell: strings without quotes, null as nothing.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
