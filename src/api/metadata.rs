//! Assessment metadata: the built-in catalogue at tenant scope, and each subscription's custom
//! metadata (list/get/PUT/DELETE). Custom and preview recommendations never move the score.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::scores::view;
use super::{ok, Ctx};
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

    /// The resource. Metadata ids are tenant-level, also for custom metadata (official example).
    pub fn resource(&self) -> Value {
        serde_json::json!({
            "id": format!("/providers/Microsoft.Security/assessmentMetadata/{}", self.name()),
            "name": self.name(),
            "type": "Microsoft.Security/assessmentMetadata",
            "properties": self.properties(),
        })
    }
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
    ok(&meta.resource())
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
    ok(&page_of(&all, cursor.as_ref(), ctx.page_size(), |c| ctx.next_link(c), Meta::resource)?)
}

const SEVERITIES: &[&str] = &["Low", "Medium", "High"];
const LEVELS: &[&str] = &["Low", "Moderate", "High"];
const CATEGORIES: &[&str] = &["Compute", "Networking", "Data", "IdentityAndAccess", "IoT"];
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

/// Validate a custom metadata body into the properties we store (canonical enum spellings;
/// `category` accepted for `categories`; read-only and secret fields dropped).
fn parse_custom(body: &Value) -> ApiResult<Value> {
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
    let categories = match list_of("categories", CATEGORIES)? {
        Some(c) => Some(c),
        None => list_of("category", CATEGORIES)?,
    };
    put("categories", categories);
    put("severity", one_of("severity", string("severity", true)?, SEVERITIES)?);
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
    Ok(Value::Object(p))
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
    let body: Value = serde_json::from_slice(&ctx.body).map_err(|e| {
        ApiError::invalid_field("", format!("The request content is not valid JSON: {e}."))
    })?;
    let properties = parse_custom(&body)?;
    ctx.state.store.put_custom_metadata(sub, name, &properties).await?;
    ok(&Meta::Custom { name, properties: &properties }.resource())
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
