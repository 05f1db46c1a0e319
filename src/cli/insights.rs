//! Execution of `securescore improvements`, `changes` and `exemptions` (definitions:
//! `cli::insights_structs`): clients of the extension API that print tables, or JSON with
//! `-o json`.

use anyhow::Result;
use comfy_table::Table;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::client::Client;
use super::insights_structs::{
    ChangeOrder, ChangesArgs, ExemptionCategory, ExemptionsCommand, ImprovementsArgs,
};
use super::show::{print, table, text};
use super::structs::{Output, ReadArgs};

const PREFIX: &str = "/securescore/v1";

fn enc(v: &str) -> String {
    utf8_percent_encode(v, NON_ALPHANUMERIC).to_string()
}

fn subscription(read: &ReadArgs) -> Result<uuid::Uuid> {
    read.subscription.ok_or_else(|| {
        anyhow::anyhow!("say which subscription: --subscription GUID (or SECURESCORE_SUBSCRIPTION)")
    })
}

fn client(read: &ReadArgs) -> Result<Client> {
    Client::new(&read.endpoint, &read.target())
}

/// `securescore improvements`: the controls worth fixing, best first.
pub async fn improvements(args: ImprovementsArgs) -> Result<()> {
    let read = &args.read;
    let sub = subscription(read)?;
    let query = args.scope.as_deref().map(|s| format!("?scope={}", enc(s))).unwrap_or_default();
    let items =
        client(read)?.get_all(&format!("{PREFIX}/subscriptions/{sub}/improvements{query}")).await?;
    print(read.output, &Value::Array(items.clone()), || {
        let mut t = table(&["Points", "%", "Control", "Unhealthy", "Top recommendation"]);
        for i in &items {
            let top = &i["recommendations"][0];
            t.add_row([
                text(&i["potentialScoreIncrease"]["points"]),
                format!("{}%", text(&i["potentialScoreIncrease"]["percentage"])),
                text(&i["displayName"]),
                text(&i["unhealthyResourceCount"]),
                if top.is_null() { String::new() } else { text(&top["displayName"]) },
            ]);
        }
        t
    })
}

fn score(v: &Value) -> String {
    format!("{}/{}", text(&v["current"]), text(&v["max"]))
}

/// `securescore changes`: status transitions with the score before and after.
pub async fn changes(args: ChangesArgs) -> Result<()> {
    let read = &args.read;
    let sub = subscription(read)?;
    let mut query = vec![format!(
        "$orderby={}",
        enc(match args.order {
            ChangeOrder::Desc => "at desc",
            ChangeOrder::Asc => "at asc",
        })
    )];
    for (k, v) in [("from", &args.from), ("to", &args.to)] {
        if let Some(v) = v {
            query.push(format!("{k}={}", enc(v)));
        }
    }
    let path = format!("{PREFIX}/subscriptions/{sub}/changes?{}", query.join("&"));
    let items = client(read)?.get_all(&path).await?;
    print(read.output, &Value::Array(items.clone()), || {
        let mut t = table(&["When", "Resource", "Recommendation", "Status", "Score"]);
        for c in &items {
            let status = |v: &Value| if v.is_null() { "(none)".to_string() } else { text(v) };
            let mut change = format!("{} → {}", status(&c["oldStatus"]), status(&c["newStatus"]));
            if let Some(cause) = c["cause"].as_str() {
                change.push_str(&format!(" ({cause})"));
            }
            t.add_row([
                text(&c["at"]),
                text(&c["resourceId"]),
                text(&c["displayName"]),
                change,
                format!("{} → {}", score(&c["scoreBefore"]), score(&c["scoreAfter"])),
            ]);
        }
        t
    })
}

fn exemption_rows(t: &mut Table, items: &[Value]) {
    for e in items {
        let p = &e["properties"];
        t.add_row([
            text(&e["name"]),
            text(&p["state"]),
            text(&p["category"]),
            text(&p["assessmentDisplayName"]).chars().take(60).collect::<String>(),
            text(&p["scope"]),
            text(&p["expiresOn"]),
        ]);
    }
}

const EXEMPTION_HEADER: [&str; 6] =
    ["Name", "State", "Category", "Recommendation", "Scope", "Expires"];

/// `securescore exemptions list|create|delete`.
pub async fn exemptions(cmd: ExemptionsCommand) -> Result<()> {
    match cmd {
        ExemptionsCommand::List { read, scope } => {
            let query = scope.as_deref().map(|s| format!("?scope={}", enc(s))).unwrap_or_default();
            let items = client(&read)?.get_all(&format!("{PREFIX}/exemptions{query}")).await?;
            print(read.output, &Value::Array(items.clone()), || {
                let mut t = table(&EXEMPTION_HEADER);
                exemption_rows(&mut t, &items);
                t
            })
        }
        ExemptionsCommand::Create(args) => {
            let mut properties = json!({
                "scope": args.scope,
                "assessment": args.assessment,
                "category": match args.category {
                    ExemptionCategory::Waiver => "Waiver",
                    ExemptionCategory::Mitigated => "Mitigated",
                },
                "description": args.description,
            });
            if let Some(t) = &args.expires_on {
                properties["expiresOn"] = json!(t);
            }
            let path = format!("{PREFIX}/exemptions/{}", enc(&args.name));
            let e =
                client(&args.read)?.put_json(&path, &json!({ "properties": properties })).await?;
            print(args.read.output, &e, || {
                let mut t = table(&EXEMPTION_HEADER);
                exemption_rows(&mut t, std::slice::from_ref(&e));
                t
            })
        }
        ExemptionsCommand::Delete { read, name } => {
            let deleted =
                client(&read)?.delete(&format!("{PREFIX}/exemptions/{}", enc(&name))).await?;
            match read.output {
                Output::Json => println!("{}", json!({ "name": name, "deleted": deleted })),
                Output::Table if deleted => println!("deleted the exemption {name}"),
                Output::Table => println!("there was no exemption {name}"),
            }
            Ok(())
        }
    }
}
