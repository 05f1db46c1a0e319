//! What a valid assessment write is: the checks of a PUT body, shared by the PUT handler
//! (`api::assessments`) and bulk ingest (`ingest`), so that both accept exactly the same documents.
//!
//! Only the writable fields are read. Read-only fields Azure returns (`displayName`, `links`,
//! `metadata`, `status.statusChangeDate`, `resourceDetails.id`, ...) are ignored, so a document
//! as Azure lists it is accepted unchanged.

use serde_json::{Map, Value};

use crate::arm::{ApiError, ApiResult, ResourceId};
use crate::catalog;
use crate::score::Status;
use crate::store::{AssessmentInput, ScoreView};

/// Parse and validate a PUT body (or one assessment of a bulk import) into a write. Error targets
/// name the field as it sits in the body (`properties.status.code`).
pub fn parse_input(
    resource: &ResourceId,
    name: &str,
    body: &Value,
    view: &ScoreView,
) -> ApiResult<AssessmentInput> {
    let known = catalog::builtin().assessment(name).is_some()
        || view.custom_metadata.contains_key(&name.to_ascii_lowercase());
    if !known {
        return Err(ApiError::invalid_field(
            "name",
            format!(
                "The assessment name '{name}' is not a known assessment metadata: use the name of a built-in \
                 recommendation (GET /providers/Microsoft.Security/assessmentMetadata) or create custom metadata \
                 in the subscription first."
            ),
        ));
    }
    let Some(body) = body.as_object() else {
        return Err(ApiError::invalid_field("", "The request body must be a JSON object."));
    };
    let props = match body.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(ApiError::invalid_field("properties", "'properties' must be an object."))
        }
        None => {
            return Err(ApiError::invalid_field(
                "properties",
                "The required field 'properties' is missing.",
            ))
        }
    };
    let resource_details = parse_resource_details(props.get("resourceDetails"))?;

    let status = match props.get("status") {
        Some(Value::Object(s)) => s,
        Some(_) => {
            return Err(ApiError::invalid_field("properties.status", "'status' must be an object."))
        }
        None => {
            return Err(ApiError::invalid_field(
                "properties.status",
                "The required field 'status' is missing.",
            ))
        }
    };
    let code = match status.get("code") {
        Some(Value::String(c)) => Status::parse(c).ok_or_else(|| {
            ApiError::invalid_field(
                "properties.status.code",
                format!("The status code '{c}' is invalid. Allowed values: 'Healthy', 'Unhealthy', 'NotApplicable'."),
            )
        })?,
        Some(_) => return Err(ApiError::invalid_field("properties.status.code", "'code' must be a string.")),
        None => {
            return Err(ApiError::invalid_field(
                "properties.status.code",
                "The required field 'status.code' is missing. Allowed values: 'Healthy', 'Unhealthy', 'NotApplicable'.",
            ))
        }
    };
    let cause = optional_string(status, "cause", "properties.status.cause")?;
    let description = optional_string(status, "description", "properties.status.description")?;

    let additional_data = match props.get("additionalData") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return Err(ApiError::invalid_field(
                    format!("properties.additionalData.{k}"),
                    "Every value of 'additionalData' must be a string.",
                ));
            }
            Some(map.clone())
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "properties.additionalData",
                "'additionalData' must be an object of string values.",
            ))
        }
    };
    let partner_name = match props.get("partnersData") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => {
            let name = required_string(p, "partnerName", "properties.partnersData.partnerName")?;
            required_string(p, "secret", "properties.partnersData.secret")?;
            Some(name)
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "properties.partnersData",
                "'partnersData' must be an object.",
            ))
        }
    };
    Ok(AssessmentInput {
        resource: resource.clone(),
        name: name.to_string(),
        status: code,
        cause,
        description,
        resource_details,
        additional_data,
        partner_name,
    })
}

fn optional_string(obj: &Map<String, Value>, key: &str, target: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_field(target, format!("'{key}' must be a string."))),
    }
}

fn required_string(obj: &Map<String, Value>, key: &str, target: &str) -> ApiResult<String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::invalid_field(
            target,
            format!("The required field '{key}' is missing or empty."),
        )),
        Some(_) => Err(ApiError::invalid_field(target, format!("'{key}' must be a string."))),
    }
}

/// `resourceDetails`, discriminated by `source` (the spec's ResourceDetails and its subtypes).
/// Stored normalised: the canonical `source` and the subtype's fields; Azure's `id` is read-only
/// and always the assessed resource.
fn parse_resource_details(value: Option<&Value>) -> ApiResult<Value> {
    const T: &str = "properties.resourceDetails";
    let obj = match value {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ApiError::invalid_field(T, "'resourceDetails' must be an object.")),
        None => {
            return Err(ApiError::invalid_field(
                T,
                "The required field 'resourceDetails' is missing.",
            ))
        }
    };
    // The official PUT example answers with `Source`; accept either spelling from clients.
    let source = obj.get("source").or_else(|| obj.get("Source"));
    let source = match source {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(ApiError::invalid_field(
                format!("{T}.source"),
                "The required field 'resourceDetails.source' is missing. Allowed values: 'Azure', 'OnPremise', 'OnPremiseSql'.",
            ))
        }
    };
    let (canonical, required): (&str, &[&str]) = if source.eq_ignore_ascii_case("Azure") {
        ("Azure", &[])
    } else if source.eq_ignore_ascii_case("OnPremise") {
        ("OnPremise", &["workspaceId", "vmuuid", "sourceComputerId", "machineName"])
    } else if source.eq_ignore_ascii_case("OnPremiseSql") {
        (
            "OnPremiseSql",
            &[
                "workspaceId",
                "vmuuid",
                "sourceComputerId",
                "machineName",
                "serverName",
                "databaseName",
            ],
        )
    } else {
        return Err(ApiError::invalid_field(
            format!("{T}.source"),
            format!("The resource details source '{source}' is invalid. Allowed values: 'Azure', 'OnPremise', 'OnPremiseSql'."),
        ));
    };
    let mut out = Map::new();
    out.insert("source".into(), Value::String(canonical.into()));
    for field in required {
        let v = required_string(obj, field, &format!("{T}.{field}"))?;
        out.insert((*field).into(), Value::String(v));
    }
    Ok(Value::Object(out))
}
