//! Assessment metadata: the built-in catalogue at tenant scope, and each subscription's custom
//! metadata (list/get/PUT/DELETE). Custom and preview recommendations never move the score.
//! Every api-version renders the one stored model through `render_properties` and parses
//! requests through `parse_custom`, both told the version's `AssessmentModel`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::scores::view;
use super::{ok, Ctx};
use crate::arm::api_version::AssessmentModel;
use crate::arm::paging::page_of;
use crate::arm::{ApiError, ApiResult};
use crate::catalog::{self, AssessmentDef};
use crate::store::ScoreView;

/// The `properties` of an assessmentMetadata resource.
pub type MetadataJson = Value;

/// Metadata known under a name: built-in, or custom in a subscription.
pub enum Meta<'a> {
    BuiltIn(&'static AssessmentDef),
    Custom { name: &'a str, properties: &'a Value },
}

/// Find metadata by name: built-ins first, then the subscription's custom metadata.
pub fn lookup<'a>(name: &str, view: Option<&'a ScoreView>) -> Option<Meta<'a>> {
    if let Some(def) = catalog::builtin().assessment(name) {
        return Some(Meta::BuiltIn(def));
    }
    let (name, properties) = view?.custom_metadata.get(&name.to_ascii_lowercase())?;
    Some(Meta::Custom { name, properties })
}

impl Meta<'_> {
    pub fn name(&self) -> &str {
        match self {
            Meta::BuiltIn(d) => &d.name,
            Meta::Custom { name, .. } => name,
        }
    }

    pub fn display_name(&self) -> String {
        match self {
            Meta::BuiltIn(d) => d.display_name(),
            Meta::Custom { properties, .. } => properties
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }

    pub fn properties(&self) -> MetadataJson {
        match self {
            Meta::Custom { properties, .. } => (*properties).clone(),
            Meta::BuiltIn(d) => {
                let mut p = Map::new();
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        p.insert(k.to_string(), v);
                    }
                };
                let s = |v: &Option<String>| v.clone().map(Value::String);
                let list = |v: &Option<Vec<String>>| {
                    v.clone().map(|l| Value::Array(l.into_iter().map(Value::String).collect()))
                };
                put("displayName", Some(Value::String(d.display_name())));
                put("policyDefinitionId", s(&d.policy_definition_id));
                put(
                    "description",
                    Some(Value::String(d.description.clone().unwrap_or_else(|| {
                        "No public description is known for this built-in assessment key (see the catalogue's provenance)."
                            .to_string()
                    }))),
                );
                put("remediationDescription", s(&d.remediation_description));
                put("categories", list(&d.categories));
                put("severity", Some(Value::String(d.severity.clone())));
                put("userImpact", s(&d.user_impact));
                put("implementationEffort", s(&d.implementation_effort));
                put("threats", list(&d.threats));
                put("preview", d.preview.map(Value::Bool));
                put("assessmentType", Some(Value::String(d.assessment_type.clone())));
                Value::Object(p)
            }
        }
    }

    /// The properties as the response model of an api-version has them.
    pub fn properties_at(&self, model: AssessmentModel) -> MetadataJson {
        render_properties(self.properties(), model)
    }

    /// The resource. Metadata ids are tenant-level, also for custom metadata (official example).
    pub fn resource(&self, model: AssessmentModel) -> Value {
        serde_json::json!({
            "id": format!("/providers/Microsoft.Security/assessmentMetadata/{}", self.name()),
            "name": self.name(),
            "type": "Microsoft.Security/assessmentMetadata",
            "properties": self.properties_at(model),
        })
    }
}

/// The fields of metadata properties that only some api-versions' response models have.
const PARTNER_FIELDS: &[&str] = &["partnerData"];
const RESPONSE_EXTRAS: &[&str] =
    &["publishDates", "plannedDeprecationDate", "tactics", "techniques"];

/// Per-version rendering of metadata properties: drop what the version's model lacks. Values of
/// enums a later version widened (a `Critical` severity written at 2025-05-04) are shown as
/// stored: the enums are open (`modelAsString`) in every version, and hiding them would lie.
pub fn render_properties(mut properties: MetadataJson, model: AssessmentModel) -> MetadataJson {
    if let Value::Object(p) = &mut properties {
        let absent = (!model.partner_data())
            .then_some(PARTNER_FIELDS)
            .into_iter()
            .chain((!model.metadata_response_extras()).then_some(RESPONSE_EXTRAS))
            .flatten();
        for field in absent {
            // `shift_remove` keeps the order of the remaining fields (ARM documents are read by eye).
            p.shift_remove(*field);
        }
    }
    properties
}

fn not_found(sub: Option<Uuid>, name: &str) -> ApiError {
    match sub {
        Some(sub) => ApiError::ResourceNotFound {
            resource_type: "assessmentMetadata".into(),
            name: name.to_string(),
            subscription: sub.to_string(),
        },
        None => ApiError::TenantResourceNotFound {
            resource_type: "assessmentMetadata".into(),
            name: name.to_string(),
        },
    }
}

pub async fn get(ctx: &Ctx<'_>, sub: Option<Uuid>, name: &str) -> ApiResult<Response> {
    let view = match sub {
        Some(sub) => Some(view(ctx, sub).await?),
        None => None,
    };
    let meta = lookup(name, view.as_deref()).ok_or_else(|| not_found(sub, name))?;
    ok(&meta.resource(AssessmentModel::of(ctx.api_version)))
}

pub async fn list(ctx: &Ctx<'_>, sub: Option<Uuid>) -> ApiResult<Response> {
    let view = match sub {
        Some(sub) => Some(view(ctx, sub).await?),
        None => None,
    };
    let mut all: Vec<Meta<'_>> =
        catalog::builtin().assessments().iter().map(Meta::BuiltIn).collect();
    if let Some(view) = &view {
        all.extend(
            view.custom_metadata
                .values()
                .map(|(name, properties)| Meta::Custom { name, properties }),
        );
    }
    let cursor = ctx.cursor()?;
    let model = AssessmentModel::of(ctx.api_version);
    ok(&page_of(
        &all,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |m| m.resource(model),
    )?)
}

const LEVELS: &[&str] = &["Low", "Moderate", "High"];
/// MITRE ATT&CK tactics of the 2021-06-01 and later models.
const TACTICS: &[&str] = &[
    "Reconnaissance",
    "Resource Development",
    "Initial Access",
    "Execution",
    "Persistence",
    "Privilege Escalation",
    "Defense Evasion",
    "Credential Access",
    "Discovery",
    "Lateral Movement",
    "Collection",
    "Command and Control",
    "Exfiltration",
    "Impact",
];
const THREATS: &[&str] = &[
    "accountBreach",
    "dataExfiltration",
    "dataSpillage",
    "maliciousInsider",
    "elevationOfPrivilege",
    "threatResistance",
    "missingCoverage",
    "denialOfService",
];

/// Validate a custom metadata body in the request model of an api-version into the properties we
/// store (canonical enum spellings; `category` accepted for `categories`; read-only and secret
/// fields dropped). From 2021-06-01 the request is the response model, so publish dates, the
/// planned deprecation date, tactics and techniques are kept too.
fn parse_custom(body: &Value, model: AssessmentModel) -> ApiResult<Value> {
    let props = match body.get("properties") {
        Some(Value::Object(p)) => p,
        _ => {
            return Err(ApiError::invalid_field(
                "properties",
                "The required object 'properties' is missing.",
            ))
        }
    };
    let target = |f: &str| format!("properties.{f}");
    let string = |f: &str, required: bool| -> ApiResult<Option<String>> {
        match props.get(f) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::invalid_field(
                target(f),
                format!("The required field '{f}' is missing or empty."),
            )),
            Some(_) => Err(ApiError::invalid_field(target(f), format!("'{f}' must be a string."))),
        }
    };
    let one_of = |f: &str, v: Option<String>, allowed: &[&str]| -> ApiResult<Option<Value>> {
        let Some(v) = v else { return Ok(None) };
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&v)) {
            Some(a) => Ok(Some(Value::String((*a).to_string()))),
            None => Err(ApiError::invalid_field(
                target(f),
                format!(
                    "The value '{v}' of '{f}' is invalid. Allowed values: '{}'.",
                    allowed.join("', '")
                ),
            )),
        }
    };
    let list_of = |f: &str, allowed: &[&str]| -> ApiResult<Option<Value>> {
        let Some(v) = props.get(f).filter(|v| !v.is_null()) else { return Ok(None) };
        let Some(items) = v.as_array() else {
            return Err(ApiError::invalid_field(
                target(f),
                format!("'{f}' must be an array of strings."),
            ));
        };
        let mut out = Vec::new();
        for item in items {
            let s = item.as_str().map(str::to_string);
            if s.is_none() {
                return Err(ApiError::invalid_field(
                    target(f),
                    format!("'{f}' must be an array of strings."),
                ));
            }
            out.extend(one_of(f, s, allowed)?);
        }
        Ok(Some(Value::Array(out)))
    };
    let assessment_type =
        one_of("assessmentType", string("assessmentType", true)?, &["CustomerManaged"])?;
    let mut p = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            p.insert(k.to_string(), v);
        }
    };
    put("displayName", string("displayName", true)?.map(Value::String));
    put("description", string("description", false)?.map(Value::String));
    put("remediationDescription", string("remediationDescription", false)?.map(Value::String));
    let categories = match list_of("categories", model.categories())? {
        Some(c) => Some(c),
        None => list_of("category", model.categories())?,
    };
    put("categories", categories);
    put("severity", one_of("severity", string("severity", true)?, model.severities())?);
    put("userImpact", one_of("userImpact", string("userImpact", false)?, LEVELS)?);
    put(
        "implementationEffort",
        one_of("implementationEffort", string("implementationEffort", false)?, LEVELS)?,
    );
    put("threats", list_of("threats", THREATS)?);
    match props.get("preview") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => put("preview", Some(Value::Bool(*b))),
        Some(_) => {
            return Err(ApiError::invalid_field(target("preview"), "'preview' must be a boolean."))
        }
    }
    put("assessmentType", assessment_type);
    if model.metadata_response_extras() {
        parse_response_extras(props, &mut p)?;
    }
    Ok(Value::Object(p))
}

/// `publishDates`, `plannedDeprecationDate`, `tactics` and `techniques` of the 2021-06-01 and
/// later models, checked against the specification's patterns and enums.
fn parse_response_extras(
    props: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> ApiResult<()> {
    // `dd/mm/yyyy` and `mm/yyyy`: digit groups separated by '/'.
    let dated = |v: &str, groups: &[usize]| {
        let parts: Vec<&str> = v.split('/').collect();
        parts.len() == groups.len()
            && parts
                .iter()
                .zip(groups)
                .all(|(p, n)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let date =
        |obj: &Map<String, Value>, key: &str, target: String, groups: &[usize], shape: &str| {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) if dated(v, groups) => Ok(Some(Value::String(v.clone()))),
                Some(_) => Err(ApiError::invalid_field(
                    target,
                    format!("'{key}' must be a date written {shape}."),
                )),
            }
        };
    match props.get("publishDates") {
        None | Some(Value::Null) => {}
        Some(Value::Object(d)) => {
            let mut dates = Map::new();
            let ga = date(d, "GA", "properties.publishDates.GA".into(), &[2, 2, 4], "dd/mm/yyyy")?;
            // Earlier examples spell the key `ga`.
            let ga = match ga {
                Some(v) => Some(v),
                None => {
                    date(d, "ga", "properties.publishDates.ga".into(), &[2, 2, 4], "dd/mm/yyyy")?
                }
            };
            if let Some(v) = ga {
                dates.insert("GA".into(), v);
            }
            let public = date(
                d,
                "public",
                "properties.publishDates.public".into(),
                &[2, 2, 4],
                "dd/mm/yyyy",
            )?
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "properties.publishDates.public",
                    "The required field 'publishDates.public' is missing.",
                )
            })?;
            dates.insert("public".into(), public);
            out.insert("publishDates".into(), Value::Object(dates));
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "properties.publishDates",
                "'publishDates' must be an object.",
            ))
        }
    }
    if let Some(v) = date(
        props,
        "plannedDeprecationDate",
        "properties.plannedDeprecationDate".into(),
        &[2, 4],
        "mm/yyyy",
    )? {
        out.insert("plannedDeprecationDate".into(), v);
    }
    let strings = |key: &str| -> ApiResult<Option<Vec<String>>> {
        match props.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        format!("properties.{key}"),
                        format!("'{key}' must be an array of non-empty strings."),
                    )
                }),
            Some(_) => Err(ApiError::invalid_field(
                format!("properties.{key}"),
                format!("'{key}' must be an array of non-empty strings."),
            )),
        }
    };
    if let Some(tactics) = strings("tactics")? {
        // The official examples write tactics in camelCase (`credentialAccess`); the enum
        // spells them with spaces. Both name the same tactic.
        let squash = |s: &str| s.replace(' ', "").to_ascii_lowercase();
        let canonical = tactics
            .iter()
            .map(|t| {
                TACTICS.iter().find(|c| squash(c) == squash(t)).ok_or_else(|| {
                    ApiError::invalid_field(
                        "properties.tactics",
                        format!(
                            "The tactic '{t}' is invalid. Allowed values: '{}'.",
                            TACTICS.join("', '")
                        ),
                    )
                })
            })
            .map(|c| c.map(|c| Value::String((*c).to_string())))
            .collect::<ApiResult<Vec<_>>>()?;
        out.insert("tactics".into(), Value::Array(canonical));
    }
    // Techniques: an open list of MITRE ATT&CK names (the enum is `modelAsString` and grows
    // with ATT&CK itself), kept as written.
    if let Some(techniques) = strings("techniques")? {
        out.insert(
            "techniques".into(),
            Value::Array(techniques.into_iter().map(Value::String).collect()),
        );
    }
    Ok(())
}

/// The name of new custom metadata. The specification gives the name no pattern but calls it the
/// assessment key, and every key — the built-in ones, the official examples' custom ones — is a
/// GUID: so a custom name must be one too (hyphenated, as ARM writes subscription ids). Names that
/// are not GUIDs could later collide with nothing we can check, and no client generates them.
fn check_custom_name(name: &str) -> ApiResult<()> {
    if name.len() == 36 && Uuid::try_parse(name).is_ok() {
        return Ok(());
    }
    Err(ApiError::InvalidResourceName {
        name: name.chars().take(80).collect(),
        reason: "a custom assessment metadata name is a GUID such as 'ca039e75-a276-4175-aebc-bcd41e4b14b7'.",
    })
}

pub async fn put(ctx: &Ctx<'_>, sub: Uuid, name: &str) -> ApiResult<Response> {
    check_custom_name(name)?;
    view(ctx, sub).await?;
    if catalog::builtin().assessment(name).is_some() {
        return Err(ApiError::invalid_field(
            "assessmentMetadataName",
            format!("'{name}' is the name of a built-in assessment metadata; choose another name (a new GUID)."),
        ));
    }
    let body = ctx.json_body()?;
    let model = AssessmentModel::of(ctx.api_version);
    let properties = parse_custom(&body, model)?;
    ctx.state.store.put_custom_metadata(sub, name, &properties).await?;
    ok(&Meta::Custom { name, properties: &properties }.resource(model))
}

pub async fn delete(ctx: &Ctx<'_>, sub: Uuid, name: &str) -> ApiResult<Response> {
    view(ctx, sub).await?;
    if catalog::builtin().assessment(name).is_some() {
        return Err(ApiError::invalid_field(
            "assessmentMetadataName",
            format!("'{name}' is a built-in assessment metadata and cannot be deleted."),
        ));
    }
    ctx.state.store.delete_custom_metadata(sub, name).await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(extra: Value) -> Value {
        let mut props =
            json!({"displayName": "x", "severity": "High", "assessmentType": "CustomerManaged"});
        if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
            p.extend(e);
        }
        json!({ "properties": props })
    }

    #[test]
    fn each_version_renders_only_its_fields() {
        let stored = json!({
            "displayName": "x", "severity": "Critical", "partnerData": {"partnerName": "p"},
            "publishDates": {"public": "01/01/2024"}, "plannedDeprecationDate": "01/2030",
            "tactics": ["Impact"], "techniques": ["Brute Force"],
        });
        let keys = |m| {
            let rendered = render_properties(stored.clone(), m);
            rendered.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
        };
        assert_eq!(keys(AssessmentModel::V2019Preview), ["displayName", "severity"]);
        assert_eq!(keys(AssessmentModel::V2020), ["displayName", "severity", "partnerData"]);
        assert_eq!(render_properties(stored.clone(), AssessmentModel::V2021), stored);
        assert_eq!(render_properties(stored.clone(), AssessmentModel::V2025), stored);
    }

    #[test]
    fn requests_are_read_with_their_version_model() {
        let newer = body(json!({"severity": "Critical", "categories": ["Container"]}));
        assert!(parse_custom(&newer, AssessmentModel::V2025).is_ok());
        for old in [AssessmentModel::V2019Preview, AssessmentModel::V2020, AssessmentModel::V2021] {
            assert_eq!(parse_custom(&newer, old).unwrap_err().code(), "InvalidRequestContent");
        }
        let extras = body(json!({
            "publishDates": {"ga": "01/02/2023", "public": "03/04/2023"},
            "tactics": ["lateralMovement", "command and control"],
        }));
        let p = parse_custom(&extras, AssessmentModel::V2021).unwrap();
        assert_eq!(p["publishDates"], json!({"GA": "01/02/2023", "public": "03/04/2023"}));
        assert_eq!(p["tactics"], json!(["Lateral Movement", "Command and Control"]));
        let p = parse_custom(&extras, AssessmentModel::V2020).unwrap();
        assert!(p.get("publishDates").is_none() && p.get("tactics").is_none());
        for bad in ["1/02/2023", "01/02/23", "01-02-2023", "aa/bb/cccc", "01/02/2023/"] {
            let b = body(json!({"publishDates": {"public": bad}}));
            assert!(parse_custom(&b, AssessmentModel::V2025).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_names_are_guids() {
        assert!(check_custom_name("ca039e75-a276-4175-aebc-bcd41e4b14b7").is_ok());
        assert!(check_custom_name("CA039E75-A276-4175-AEBC-BCD41E4B14B7").is_ok());
        for bad in [
            "my-check",
            "ca039e75a2764175aebcbcd41e4b14b7",
            "{ca039e75-a276-4175-aebc-bcd41e4b14b7}",
            "",
        ] {
            assert_eq!(check_custom_name(bad).unwrap_err().code(), "InvalidResourceName", "{bad}");
        }
    }
}
