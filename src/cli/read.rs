//! The read commands: an ARM client of any endpoint (this server or Azure) that follows
//! `nextLink`s and prints readable tables, or JSON with `-o json`.

use anyhow::{bail, Context, Result};
use comfy_table::Table;
use serde_json::Value;

use super::client::Client;
use super::show::{print, table, text};
use super::structs::{
    AggregateArgs, AssessmentsArgs, ControlsArgs, HistoryArgs, ReadArgs, ScoresCommand,
};

const SCORE_API: &str = "api-version=2020-01-01";
const ASSESSMENT_API: &str = "api-version=2021-06-01";

fn subscription(read: &ReadArgs) -> Result<uuid::Uuid> {
    read.subscription
        .context("say which subscription: --subscription GUID (or SECURESCORE_SUBSCRIPTION)")
}

fn percent(v: &Value) -> String {
    v.as_f64().map(|p| format!("{:.2}%", p * 100.0)).unwrap_or_default()
}

fn score_rows(t: &mut Table, items: &[Value]) {
    for i in items {
        let p = &i["properties"];
        t.add_row([
            text(&i["name"]),
            text(&p["displayName"]),
            text(&p["score"]["current"]),
            text(&p["score"]["max"]),
            percent(&p["score"]["percentage"]),
            text(&p["weight"]),
        ]);
    }
}

pub async fn scores(cmd: ScoresCommand) -> Result<()> {
    let (read, name) = match cmd {
        ScoresCommand::List(read) => (read, None),
        ScoresCommand::Show { name, read } => (read, Some(name)),
    };
    let client = Client::new(&read.endpoint, &read.target())?;
    let sub = subscription(&read)?;
    let base = format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScores");
    let items = match &name {
        Some(n) => vec![client.get_json(&format!("{base}/{n}?{SCORE_API}")).await?],
        None => client.get_all(&format!("{base}?{SCORE_API}")).await?,
    };
    let json = if name.is_some() { items[0].clone() } else { Value::Array(items.clone()) };
    print(read.output, &json, || {
        let mut t = table(&["Name", "Display name", "Current", "Max", "Percentage", "Weight"]);
        score_rows(&mut t, &items);
        t
    })
}

pub async fn controls(args: ControlsArgs) -> Result<()> {
    let read = &args.read;
    let client = Client::new(&read.endpoint, &read.target())?;
    let sub = subscription(read)?;
    let path = match &args.score {
        Some(score) => format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScores/{score}/secureScoreControls?{SCORE_API}"),
        None => format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?{SCORE_API}"),
    };
    let mut items = client.get_all(&path).await?;
    // What to fix first: the largest potential increase (max − current).
    let gain = |c: &Value| {
        let sc = &c["properties"]["score"];
        sc["max"].as_f64().unwrap_or(0.0) - sc["current"].as_f64().unwrap_or(0.0)
    };
    items.sort_by(|a, b| gain(b).total_cmp(&gain(a)));
    print(read.output, &Value::Array(items.clone()), || {
        let mut t = table(&[
            "Control",
            "Current",
            "Max",
            "Potential increase",
            "Healthy",
            "Unhealthy",
            "N/A",
        ]);
        for c in &items {
            let p = &c["properties"];
            t.add_row([
                text(&p["displayName"]),
                text(&p["score"]["current"]),
                text(&p["score"]["max"]),
                format!("{:.2}", gain(c)),
                text(&p["healthyResourceCount"]),
                text(&p["unhealthyResourceCount"]),
                text(&p["notApplicableResourceCount"]),
            ]);
        }
        t
    })
}

pub async fn definitions(read: ReadArgs) -> Result<()> {
    let client = Client::new(&read.endpoint, &read.target())?;
    let path = match read.subscription {
        Some(sub) => format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControlDefinitions?{SCORE_API}"),
        None => format!("/providers/Microsoft.Security/secureScoreControlDefinitions?{SCORE_API}"),
    };
    let items = client.get_all(&path).await?;
    print(read.output, &Value::Array(items.clone()), || {
        let mut t = table(&["Control", "Name", "Max score", "Recommendations"]);
        for d in &items {
            let p = &d["properties"];
            let n = p["assessmentDefinitions"].as_array().map_or(0, Vec::len);
            t.add_row([
                text(&p["displayName"]),
                text(&d["name"]),
                text(&p["maxScore"]),
                n.to_string(),
            ]);
        }
        t
    })
}

pub async fn assessments(args: AssessmentsArgs) -> Result<()> {
    let read = &args.read;
    let client = Client::new(&read.endpoint, &read.target())?;
    let scope = match &args.scope {
        Some(scope) => scope.trim_end_matches('/').to_string(),
        None => format!("/subscriptions/{}", subscription(read)?),
    };
    if !scope.starts_with('/') {
        bail!("--scope must start with '/', e.g. /subscriptions/GUID/resourceGroups/rg");
    }
    let items = client
        .get_all(&format!("{scope}/providers/Microsoft.Security/assessments?{ASSESSMENT_API}"))
        .await?;
    print(read.output, &Value::Array(items.clone()), || {
        let mut t = table(&["Status", "Recommendation", "Resource"]);
        for a in &items {
            let p = &a["properties"];
            let resource = text(&a["id"])
                .split("/providers/Microsoft.Security/assessments/")
                .next()
                .unwrap_or_default()
                .to_string();
            t.add_row([text(&p["status"]["code"]), text(&p["displayName"]), resource]);
        }
        t
    })
}

pub async fn history(args: HistoryArgs) -> Result<()> {
    let read = &args.read;
    let client = Client::new(&read.endpoint, &read.target())?;
    let sub = subscription(read)?;
    let mut query = Vec::new();
    for (k, v) in [("from", &args.from), ("to", &args.to), ("interval", &args.interval)] {
        if let Some(v) = v {
            query.push(format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            ));
        }
    }
    let v = client
        .get_json(&format!("/securescore/v1/subscriptions/{sub}/history?{}", query.join("&")))
        .await?;
    let points = v["value"].as_array().cloned().unwrap_or_default();
    print(read.output, &v, || {
        let mut t = table(&["When", "Current", "Max", "Percentage", "Weight"]);
        for p in &points {
            let when = if p["at"].is_string() { text(&p["at"]) } else { text(&p["date"]) };
            t.add_row([
                when,
                text(&p["score"]["current"]),
                text(&p["score"]["max"]),
                percent(&p["score"]["percentage"]),
                text(&p["weight"]),
            ]);
        }
        t
    })
}

pub async fn aggregate(args: AggregateArgs) -> Result<()> {
    let read = &args.read;
    let client = Client::new(&read.endpoint, &read.target())?;
    let query =
        args.subscriptions.as_deref().map(|s| format!("?subscriptions={s}")).unwrap_or_default();
    let v = client.get_json(&format!("/securescore/v1/aggregate{query}")).await?;
    print(read.output, &v, || {
        let mut t = table(&["Subscription", "Name", "Current", "Max", "Percentage", "Weight"]);
        for p in v["subscriptions"].as_array().cloned().unwrap_or_default() {
            t.add_row([
                text(&p["subscriptionId"]),
                text(&p["displayName"]),
                text(&p["score"]["current"]),
                text(&p["score"]["max"]),
                percent(&p["score"]["percentage"]),
                text(&p["weight"]),
            ]);
        }
        t.add_row([
            "all".to_string(),
            "(weighted)".to_string(),
            String::new(),
            String::new(),
            percent(&v["percentage"]),
            text(&v["weight"]),
        ]);
        t
    })
}
