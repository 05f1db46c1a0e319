//! What a valid automation is: the request body checks (each failure a 400 naming the offending
//! property's path), the stored [`Spec`], and its rendering without the write-only secrets
//! (`uri` of a LogicApp action, `connectionString` of an EventHub action).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::rules::{parse_jpath, Expected, Operator, PropertyType};
use crate::arm::{ApiError, ResourceId};
use crate::store::AutomationRecord;

/// Event sources this server produces events for. The spec's other sources (alerts, regulatory
/// compliance, attack paths, sub-assessments) are accepted and stored, and never fire here.
pub const PRODUCED_SOURCES: &[&str] = &[
    "Assessments",
    "AssessmentsSnapshot",
    "SecureScores",
    "SecureScoresSnapshot",
    "SecureScoreControls",
    "SecureScoreControlsSnapshot",
];
const OTHER_SOURCES: &[&str] = &[
    "SubAssessments",
    "SubAssessmentsSnapshot",
    "Alerts",
    "RegulatoryComplianceAssessment",
    "RegulatoryComplianceAssessmentSnapshot",
    "AttackPaths",
    "AttackPathsSnapshot",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub is_enabled: bool,
    pub scopes: Vec<Scope>,
    pub sources: Vec<Source>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scope_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub event_source: String,
    #[serde(default)]
    pub rule_sets: Vec<RuleSet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(rename = "propertyJPath")]
    pub property_jpath: String,
    pub property_type: PropertyType,
    pub expected_value: String,
    pub operator: Operator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "actionType")]
pub enum Action {
    #[serde(rename_all = "camelCase")]
    LogicApp {
        logic_app_resource_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        uri: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    EventHub {
        event_hub_resource_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sas_policy_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        connection_string: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        is_trusted_service_enabled: Option<bool>,
    },
    #[serde(rename_all = "camelCase")]
    Workspace { workspace_resource_id: String },
}

impl Action {
    /// The action as responses show it: the write-only secrets left out.
    fn public(&self) -> Action {
        match self.clone() {
            Action::LogicApp { logic_app_resource_id, .. } => {
                Action::LogicApp { logic_app_resource_id, uri: None }
            }
            Action::EventHub {
                connection_string: _,
                event_hub_resource_id,
                sas_policy_name,
                is_trusted_service_enabled,
            } => Action::EventHub {
                event_hub_resource_id,
                sas_policy_name,
                connection_string: None,
                is_trusted_service_enabled,
            },
            other => other,
        }
    }
}

impl Spec {
    pub fn from_record(record: &AutomationRecord) -> anyhow::Result<Spec> {
        Ok(serde_json::from_value(record.spec.clone())?)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The resource as GET, PUT and list answer it.
pub fn render(record: &AutomationRecord, spec: &Spec) -> Value {
    let mut public = spec.clone();
    public.properties.actions = spec.properties.actions.iter().map(Action::public).collect();
    let mut out = Map::new();
    out.insert("id".into(), Value::String(record.id()));
    out.insert("name".into(), Value::String(record.name.clone()));
    out.insert("type".into(), Value::String("Microsoft.Security/automations".into()));
    if let Some(l) = &public.location {
        out.insert("location".into(), Value::String(l.clone()));
    }
    if let Some(k) = &public.kind {
        out.insert("kind".into(), Value::String(k.clone()));
    }
    out.insert("etag".into(), Value::String(record.etag.clone()));
    out.insert("tags".into(), Value::Object(public.tags.clone()));
    out.insert("properties".into(), serde_json::to_value(&public.properties).unwrap_or_default());
    Value::Object(out)
}

fn bad(target: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(target, message)
}

fn one_of(value: &str, allowed: &[&'static str]) -> Option<&'static str> {
    allowed.iter().find(|a| a.eq_ignore_ascii_case(value)).copied()
}

/// `path.key`, or `key` at the body's root (`path` empty).
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn string_at(v: &Value, key: &str, path: &str, required: bool) -> Result<Option<String>, ApiError> {
    let at = join(path, key);
    match v.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad(&at, format!("The property '{at}' is required."))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(&at, format!("The property '{at}' must be a string."))),
    }
}

fn array_at<'a>(v: &'a Value, key: &str, path: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(bad(
            format!("{path}.{key}"),
            format!("The property '{path}.{key}' must be an array."),
        )),
    }
}

fn required_array<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    match array_at(v, key, path)? {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(bad(
            format!("{path}.{key}"),
            format!("The property '{path}.{key}' is required and must have at least one item."),
        )),
    }
}

/// A PUT body for the automation `subscription/group/name`, checked.
pub fn parse_put(body: &Value, subscription: Uuid) -> Result<Spec, ApiError> {
    if !body.is_object() {
        return Err(bad("", "The request content must be a JSON object."));
    }
    let location = string_at(body, "location", "", false)?;
    if location.as_deref().is_none_or(|l| l.trim().is_empty()) {
        return Err(bad("location", "The property 'location' is required."));
    }
    let props = body.get("properties").filter(|p| p.is_object()).ok_or_else(|| {
        bad("properties", "The property 'properties' is required and must be an object.")
    })?;
    Ok(Spec {
        location,
        kind: string_at(body, "kind", "", false)?,
        tags: tags(body.get("tags"))?,
        properties: parse_properties(props, None, subscription)?,
    })
}

/// A PATCH body (2023-12-01-preview: `properties` and `tags`) merged over the stored spec: the
/// properties it names replace the stored ones.
pub fn parse_patch(body: &Value, stored: &Spec, subscription: Uuid) -> Result<Spec, ApiError> {
    if !body.is_object() {
        return Err(bad("", "The request content must be a JSON object."));
    }
    let mut spec = stored.clone();
    if let Some(t) = body.get("tags") {
        // The 2023 PATCH model's `tags` refers to a wrapper object with its own `tags` member;
        // clients send the plain map (as the example does) or, taking the model literally, the
        // wrapper: both are read.
        let t = match t.as_object() {
            Some(m) if m.len() == 1 && m.get("tags").is_some_and(Value::is_object) => &m["tags"],
            _ => t,
        };
        spec.tags = tags(Some(t))?;
    }
    match body.get("properties") {
        None | Some(Value::Null) => {}
        Some(p @ Value::Object(_)) => {
            spec.properties = parse_properties(p, Some(&stored.properties), subscription)?;
        }
        Some(_) => return Err(bad("properties", "The property 'properties' must be an object.")),
    }
    Ok(spec)
}

fn tags(v: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return Err(bad(
                        format!("tags.{k}"),
                        format!("The tag '{k}' must have a string value."),
                    ));
                }
            }
            Ok(m.clone())
        }
        Some(_) => Err(bad("tags", "The property 'tags' must be an object of strings.")),
    }
}

/// `base`: the stored properties a PATCH falls back on for what it leaves out.
fn parse_properties(
    p: &Value,
    base: Option<&Properties>,
    subscription: Uuid,
) -> Result<Properties, ApiError> {
    let path = "properties";
    let description = match (string_at(p, "description", path, false)?, base) {
        (None, Some(b)) if p.get("description").is_none() => b.description.clone(),
        (d, _) => d,
    };
    let is_enabled = match p.get("isEnabled") {
        None | Some(Value::Null) => base.is_none_or(|b| b.is_enabled),
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad(
                "properties.isEnabled",
                "The property 'properties.isEnabled' must be a boolean.",
            ))
        }
    };
    let scopes = match (p.get("scopes"), base) {
        (None, Some(b)) => b.scopes.clone(),
        _ => required_array(p, "scopes", path)?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_scope(s, &format!("{path}.scopes[{i}]"), subscription))
            .collect::<Result<_, _>>()?,
    };
    let sources = match (p.get("sources"), base) {
        (None, Some(b)) => b.sources.clone(),
        _ => required_array(p, "sources", path)?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_source(s, &format!("{path}.sources[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    let actions = match (p.get("actions"), base) {
        (None, Some(b)) => b.actions.clone(),
        _ => required_array(p, "actions", path)?
            .iter()
            .enumerate()
            .map(|(i, a)| parse_action(a, &format!("{path}.actions[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    Ok(Properties { description, is_enabled, scopes, sources, actions })
}

fn parse_scope(v: &Value, path: &str, subscription: Uuid) -> Result<Scope, ApiError> {
    if !v.is_object() {
        return Err(bad(path, format!("'{path}' must be an object.")));
    }
    let scope_path = string_at(v, "scopePath", path, true)?.unwrap_or_default();
    let target = format!("{path}.scopePath");
    let id = ResourceId::parse(&scope_path).map_err(|_| {
        bad(
            &target,
            format!(
                "The scope '{scope_path}' is not a subscription, resource group or resource id."
            ),
        )
    })?;
    if id.subscription() != subscription {
        return Err(bad(
            &target,
            format!("The scope '{scope_path}' is outside the automation's subscription '{subscription}'."),
        ));
    }
    Ok(Scope { description: string_at(v, "description", path, false)?, scope_path })
}

fn parse_source(v: &Value, path: &str) -> Result<Source, ApiError> {
    if !v.is_object() {
        return Err(bad(path, format!("'{path}' must be an object.")));
    }
    let raw = string_at(v, "eventSource", path, true)?.unwrap_or_default();
    let all: Vec<&'static str> = PRODUCED_SOURCES.iter().chain(OTHER_SOURCES).copied().collect();
    let event_source = one_of(&raw, &all).ok_or_else(|| {
        bad(
            format!("{path}.eventSource"),
            format!("The event source '{raw}' is not one of '{}'.", all.join("', '")),
        )
    })?;
    let rule_sets = array_at(v, "ruleSets", path)?
        .map(|sets| {
            sets.iter()
                .enumerate()
                .map(|(i, set)| {
                    let set_path = format!("{path}.ruleSets[{i}]");
                    let rules =
                        array_at(set, "rules", &set_path)?.map(Vec::as_slice).unwrap_or_default();
                    let rules = rules
                        .iter()
                        .enumerate()
                        .map(|(j, r)| parse_rule(r, &format!("{set_path}.rules[{j}]")))
                        .collect::<Result<_, _>>()?;
                    Ok(RuleSet { rules })
                })
                .collect::<Result<_, ApiError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Source { event_source: event_source.to_string(), rule_sets })
}

fn parse_rule(v: &Value, path: &str) -> Result<Rule, ApiError> {
    if !v.is_object() {
        return Err(bad(path, format!("'{path}' must be an object.")));
    }
    let jpath = string_at(v, "propertyJPath", path, true)?.unwrap_or_default();
    parse_jpath(&jpath).map_err(|why| {
        bad(format!("{path}.propertyJPath"), format!("The JPath '{jpath}' is malformed: {why}."))
    })?;
    let type_text = string_at(v, "propertyType", path, true)?.unwrap_or_default();
    let property_type = PropertyType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(&type_text))
        .ok_or_else(|| {
            bad(
                format!("{path}.propertyType"),
                format!("The property type '{type_text}' is not one of 'String', 'Integer', 'Number', 'Boolean'."),
            )
        })?;
    let op_text = string_at(v, "operator", path, true)?.unwrap_or_default();
    let operator = Operator::ALL
        .into_iter()
        .find(|o| o.name().eq_ignore_ascii_case(&op_text))
        .ok_or_else(|| {
            let names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
            bad(
                format!("{path}.operator"),
                format!("The operator '{op_text}' is not one of '{}'.", names.join("', '")),
            )
        })?;
    let expected_value = string_at(v, "expectedValue", path, true)?.unwrap_or_default();
    Expected::parse(property_type, &expected_value).map_err(|why| {
        bad(format!("{path}.expectedValue"), format!("The expected value {why}."))
    })?;
    Ok(Rule { property_jpath: jpath, property_type, expected_value, operator })
}

fn parse_action(v: &Value, path: &str) -> Result<Action, ApiError> {
    if !v.is_object() {
        return Err(bad(path, format!("'{path}' must be an object.")));
    }
    let kind = string_at(v, "actionType", path, true)?.unwrap_or_default();
    let required = |key: &str| -> Result<String, ApiError> {
        match string_at(v, key, path, true)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(bad(
                format!("{path}.{key}"),
                format!("The property '{path}.{key}' must not be empty."),
            )),
        }
    };
    match one_of(&kind, &["LogicApp", "EventHub", "Workspace"]) {
        Some("LogicApp") => {
            let uri = required("uri")?;
            match reqwest::Url::parse(&uri) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
                _ => {
                    return Err(bad(
                        format!("{path}.uri"),
                        format!(
                            "The property '{path}.uri' must be an absolute https (or http) URL."
                        ),
                    ))
                }
            }
            Ok(Action::LogicApp {
                logic_app_resource_id: required("logicAppResourceId")?,
                uri: Some(uri),
            })
        }
        Some("EventHub") => {
            let connection_string = required("connectionString")?;
            // The policy a connection string authenticates with is what responses show.
            let sas_policy_name = connection_string.split(';').find_map(|part| {
                let (k, v) = part.split_once('=')?;
                k.trim().eq_ignore_ascii_case("SharedAccessKeyName").then(|| v.trim().to_string())
            });
            let is_trusted_service_enabled = match v.get("isTrustedServiceEnabled") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(bad(
                        format!("{path}.isTrustedServiceEnabled"),
                        "The property 'isTrustedServiceEnabled' must be a boolean.",
                    ))
                }
            };
            Ok(Action::EventHub {
                event_hub_resource_id: required("eventHubResourceId")?,
                sas_policy_name,
                connection_string: Some(connection_string),
                is_trusted_service_enabled,
            })
        }
        Some(_) => {
            Ok(Action::Workspace { workspace_resource_id: required("workspaceResourceId")? })
        }
        None => Err(bad(
            format!("{path}.actionType"),
            format!("The action type '{kind}' is not one of 'LogicApp', 'EventHub', 'Workspace'."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUB: &str = "a5caac9c-5c04-49af-b3d0-e204f40345d5";

    fn body() -> Value {
        json!({
            "location": "Central US",
            "properties": {
                "isEnabled": true,
                "scopes": [{"scopePath": format!("/subscriptions/{SUB}/resourceGroups/rg")}],
                "sources": [{"eventSource": "Assessments", "ruleSets": [{"rules": [{
                    "propertyJPath": "properties.status.code", "propertyType": "String",
                    "expectedValue": "Unhealthy", "operator": "Equals"}]}]}],
                "actions": [{"actionType": "LogicApp", "logicAppResourceId": "/x", "uri": "https://example.com/hook"}]
            }
        })
    }

    fn error_target(mutate: impl FnOnce(&mut Value)) -> String {
        let mut b = body();
        mutate(&mut b);
        match parse_put(&b, Uuid::parse_str(SUB).unwrap()) {
            Err(ApiError::InvalidRequestContent { target, .. }) => target,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_valid_body_parses_and_renders_without_secrets() {
        let spec = parse_put(&body(), Uuid::parse_str(SUB).unwrap()).unwrap();
        let record = AutomationRecord {
            subscription: Uuid::parse_str(SUB).unwrap(),
            resource_group: "rg".into(),
            name: "a".into(),
            etag: "e".into(),
            spec: spec.to_value(),
            last_snapshot_at: None,
        };
        let out = render(&record, &Spec::from_record(&record).unwrap());
        assert_eq!(
            out["properties"]["actions"][0],
            json!({"actionType": "LogicApp", "logicAppResourceId": "/x"})
        );
        assert_eq!(Spec::from_record(&record).unwrap(), spec, "the stored spec keeps the secret");
    }

    #[test]
    fn each_invalid_part_is_named_by_its_path() {
        let p = |v: &mut Value| v["properties"].clone();
        let _ = p;
        assert_eq!(
            error_target(|b| b["properties"]["actions"][0]["actionType"] = json!("Email")),
            "properties.actions[0].actionType"
        );
        assert_eq!(
            error_target(|b| b["properties"]["sources"][0]["eventSource"] = json!("Nope")),
            "properties.sources[0].eventSource"
        );
        let rule = "properties.sources[0].ruleSets[0].rules[0]";
        assert_eq!(
            error_target(|b| b["properties"]["sources"][0]["ruleSets"][0]["rules"][0]
                ["operator"] = json!("Like")),
            format!("{rule}.operator")
        );
        assert_eq!(
            error_target(|b| b["properties"]["sources"][0]["ruleSets"][0]["rules"][0]
                ["propertyType"] = json!("Date")),
            format!("{rule}.propertyType")
        );
        assert_eq!(
            error_target(|b| b["properties"]["sources"][0]["ruleSets"][0]["rules"][0]
                ["propertyJPath"] = json!("a..b")),
            format!("{rule}.propertyJPath")
        );
        assert_eq!(
            error_target(|b| {
                b["properties"]["sources"][0]["ruleSets"][0]["rules"][0]["propertyType"] =
                    json!("Integer");
            }),
            format!("{rule}.expectedValue")
        );
        assert_eq!(
            error_target(|b| b["properties"]["scopes"][0]["scopePath"] =
                json!("/subscriptions/00000000-0000-0000-0000-000000000001")),
            "properties.scopes[0].scopePath"
        );
        assert_eq!(
            error_target(|b| b["properties"]["scopes"][0]["scopePath"] = json!("not an id")),
            "properties.scopes[0].scopePath"
        );
        assert_eq!(error_target(|b| b["properties"]["actions"] = json!([])), "properties.actions");
        assert_eq!(
            error_target(|b| {
                b["properties"].as_object_mut().unwrap().remove("scopes");
            }),
            "properties.scopes"
        );
        assert_eq!(
            error_target(|b| {
                b["properties"]["actions"][0].as_object_mut().unwrap().remove("uri");
            }),
            "properties.actions[0].uri"
        );
        assert_eq!(
            error_target(|b| b["properties"]["actions"][0]["uri"] = json!("ftp://x")),
            "properties.actions[0].uri"
        );
        assert_eq!(
            error_target(|b| {
                b.as_object_mut().unwrap().remove("location");
            }),
            "location"
        );
        assert_eq!(
            error_target(|b| b["properties"]["isEnabled"] = json!("yes")),
            "properties.isEnabled"
        );
        assert_eq!(error_target(|b| b["location"] = json!(3)), "location");
        assert_eq!(error_target(|b| b["kind"] = json!([])), "kind");
        assert_eq!(error_target(|b| b["tags"] = json!({"a": 1})), "tags.a");
    }

    #[test]
    fn a_patch_merges_over_the_stored_automation() {
        let sub = Uuid::parse_str(SUB).unwrap();
        let stored = parse_put(&body(), sub).unwrap();
        let wrapped =
            parse_patch(&json!({"tags": {"tags": {"team": "sec"}}}), &stored, sub).unwrap();
        let plain = parse_patch(&json!({"tags": {"team": "sec"}}), &stored, sub).unwrap();
        assert_eq!(wrapped, plain);
        assert_eq!(plain.tags["team"], "sec");
        assert_eq!(plain.properties, stored.properties, "no properties: all kept");
        let off = parse_patch(&json!({"properties": {"isEnabled": false}}), &stored, sub).unwrap();
        assert!(!off.properties.is_enabled);
        assert_eq!(off.properties.actions, stored.properties.actions, "the secret uri is kept");
        assert_eq!(off.location, stored.location);
        let e = parse_patch(&json!({"properties": {"scopes": []}}), &stored, sub).unwrap_err();
        assert!(
            matches!(e, ApiError::InvalidRequestContent { ref target, .. } if target == "properties.scopes"),
            "{e:?}"
        );
    }

    #[test]
    fn event_hub_actions_show_their_policy_not_their_secret() {
        let mut b = body();
        b["properties"]["actions"] = json!([{"actionType": "EventHub", "eventHubResourceId": "/eh",
            "connectionString": "Endpoint=sb://x/;SharedAccessKeyName=send;SharedAccessKey=secret"}]);
        let spec = parse_put(&b, Uuid::parse_str(SUB).unwrap()).unwrap();
        let public = serde_json::to_value(spec.properties.actions[0].public()).unwrap();
        assert_eq!(
            public,
            json!({"actionType": "EventHub", "eventHubResourceId": "/eh", "sasPolicyName": "send"})
        );
    }
}
