//! `securescore management-groups`: the hierarchy on a data directory (through the store) or on a
//! running server (through the ARM `Microsoft.Management` routes, api-version 2021-04-01).

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::args::{Output, Target};
use super::client::Client;
use super::data::open_data_dir;
use super::structs::ManagementGroupsCommand;
use crate::store::{Child, HierarchyError};

const API: &str = "api-version=2021-04-01";
const GROUPS: &str = "/providers/Microsoft.Management/managementGroups";
/// Who the store records as the writer of a change made on a data directory.
const CLI_WRITER: &str = "securescore-cli";

/// One group as the command prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupRow {
    name: String,
    display_name: String,
    /// `None` for the tenant root group.
    parent: Option<String>,
    /// Subscriptions placed directly in the group.
    subscriptions: Vec<Uuid>,
}

fn print(rows: &[GroupRow], output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Output::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).set_header([
                "Group",
                "Display name",
                "Parent",
                "Subscriptions",
            ]);
            for r in rows {
                let subs: Vec<String> = r.subscriptions.iter().map(Uuid::to_string).collect();
                t.add_row([
                    r.name.clone(),
                    r.display_name.clone(),
                    r.parent.clone().unwrap_or_else(|| "-".into()),
                    subs.join("\n"),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

fn refused(e: HierarchyError) -> anyhow::Error {
    anyhow::anyhow!("refused: {e}")
}

/// Every group of a data directory.
async fn rows_of_store(target: &Target) -> Result<Vec<GroupRow>> {
    let tree = open_data_dir(target).await?.hierarchy().await?;
    Ok(tree
        .all()
        .into_iter()
        .map(|g| GroupRow {
            subscriptions: tree
                .children(&g.name)
                .into_iter()
                .filter_map(|c| match c {
                    Child::Subscription(s) => Some(s),
                    Child::Group(_) => None,
                })
                .collect(),
            parent: g.parent.and_then(|p| tree.info(&p)).map(|p| p.name),
            name: g.name,
            display_name: g.display_name,
        })
        .collect())
}

/// The last segment of an ARM id.
fn last_segment(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// Every group of a server: the list, then the root group's descendants for parents and
/// subscriptions.
async fn rows_of_server(client: &Client) -> Result<Vec<GroupRow>> {
    let groups = client.get_all(&format!("{GROUPS}?{API}")).await?;
    let mut rows: Vec<GroupRow> = groups
        .iter()
        .map(|g| GroupRow {
            name: g["name"].as_str().unwrap_or_default().to_string(),
            display_name: g["properties"]["displayName"].as_str().unwrap_or_default().to_string(),
            parent: None,
            subscriptions: Vec::new(),
        })
        .collect();
    let Some(root) = rows.first().map(|r| r.name.clone()) else { return Ok(rows) };
    let below = client.get_all(&format!("{GROUPS}/{root}/descendants?{API}")).await?;
    for d in below {
        let parent = last_segment(d["properties"]["parent"]["id"].as_str().unwrap_or_default());
        let name = d["name"].as_str().unwrap_or_default();
        if d["type"] == "Microsoft.Management/managementGroups" {
            if let Some(r) = rows.iter_mut().find(|r| r.name.eq_ignore_ascii_case(name)) {
                r.parent = Some(parent);
            }
        } else if let (Ok(id), Some(r)) =
            (Uuid::parse_str(name), rows.iter_mut().find(|r| r.name.eq_ignore_ascii_case(&parent)))
        {
            r.subscriptions.push(id);
        }
    }
    Ok(rows)
}

pub async fn run(cmd: ManagementGroupsCommand) -> Result<()> {
    match cmd {
        ManagementGroupsCommand::List { target, output } => {
            let rows = match &target.endpoint {
                Some(endpoint) => rows_of_server(&Client::new(endpoint, &target)?).await?,
                None => rows_of_store(&target).await?,
            };
            print(&rows, output)
        }
        ManagementGroupsCommand::Create { name, display_name, parent, target, output } => {
            match &target.endpoint {
                Some(endpoint) => {
                    let client = Client::new(endpoint, &target)?;
                    let mut properties =
                        json!({"displayName": display_name.as_deref().unwrap_or(&name)});
                    if let Some(p) = &parent {
                        properties["details"] = json!({"parent": {"id": format!("{GROUPS}/{p}")}});
                    }
                    client
                        .put_json(
                            &format!("{GROUPS}/{name}?{API}"),
                            &json!({"properties": properties}),
                        )
                        .await?;
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    if !crate::store::valid_group_name(&name) {
                        bail!("'{name}' is not a management group id (1 to 90 letters, digits, '-', '_', '(', ')', '.')");
                    }
                    let display = display_name.as_deref().unwrap_or(&name);
                    store
                        .put_management_group(
                            &name,
                            Some(display),
                            Some(parent.as_deref()),
                            CLI_WRITER,
                        )
                        .await?
                        .map_err(refused)?;
                }
            }
            let rows = match &target.endpoint {
                Some(endpoint) => rows_of_server(&Client::new(endpoint, &target)?).await?,
                None => rows_of_store(&target).await?,
            };
            let row: Vec<GroupRow> =
                rows.into_iter().filter(|r| r.name.eq_ignore_ascii_case(&name)).collect();
            print(&row, output)
        }
        ManagementGroupsCommand::Delete { name, target } => {
            match &target.endpoint {
                Some(endpoint) => {
                    let client = Client::new(endpoint, &target)?;
                    let path = format!("{GROUPS}/{name}?{API}");
                    // Existence first: a successful DELETE answers 204, like a missing one does
                    // for other resources.
                    client
                        .get_json(&path)
                        .await
                        .with_context(|| format!("no management group '{name}'"))?;
                    client.delete(&path).await?;
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    if !store.delete_management_group(&name).await?.map_err(refused)? {
                        bail!("no management group '{name}' (nothing deleted)");
                    }
                }
            }
            println!("deleted management group {name}");
            Ok(())
        }
        ManagementGroupsCommand::AddSubscription { group, subscription, target } => {
            match &target.endpoint {
                Some(endpoint) => {
                    let client = Client::new(endpoint, &target)?;
                    client
                        .put_json(
                            &format!("{GROUPS}/{group}/subscriptions/{subscription}?{API}"),
                            &Value::Null,
                        )
                        .await?;
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    store.place_subscription(&group, subscription).await?.map_err(refused)?;
                }
            }
            println!("subscription {subscription} is now in management group {group}");
            Ok(())
        }
        ManagementGroupsCommand::RemoveSubscription { group, subscription, target } => {
            match &target.endpoint {
                Some(endpoint) => {
                    let client = Client::new(endpoint, &target)?;
                    let path = format!("{GROUPS}/{group}/subscriptions/{subscription}?{API}");
                    if !client.delete(&path).await? {
                        bail!("subscription {subscription} is not in management group {group}");
                    }
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    store.unplace_subscription(&group, subscription).await?.map_err(refused)?;
                }
            }
            println!("subscription {subscription} is back below the tenant root group");
            Ok(())
        }
    }
}
