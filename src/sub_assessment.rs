//! What a valid sub-assessment write is (`Microsoft.Security/assessments/subAssessments`,
//! api-version 2019-01-01-preview): the checks of a PUT body, shared by the PUT handler
//! (`api::sub_assessments`) and bulk ingest, so both accept exactly the same documents.
//!
//! Azure marks nearly every field read-only, since Defender writes them itself; here users are the
//! source, so every field is accepted, type-checked, and then stored and rendered as written.
//! `additionalData` is checked by its `assessedResourceType` discriminator, field by field.

use serde_json::{Map, Value};

use crate::arm::{parse_time, ApiError, ApiResult, ResourceId};
use crate::store::SubAssessment;

const STATUS_CODES: &[&str] = &["Healthy", "Unhealthy", "NotApplicable"];
const SEVERITIES: &[&str] = &["Low", "Medium", "High"];
const SOURCES: &[&str] = &["Azure", "OnPremise", "OnPremiseSql"];

/// The kinds of `additionalData` the spec defines. The server kind's discriminator value is
/// `ServerVulnerabilityAssessment` in the model and `ServerVulnerability` in the enum: both are
/// accepted and kept as written.
const KINDS: &[&str] = &[
    "SqlServerVulnerability",
    "ContainerRegistryVulnerability",
    "ServerVulnerabilityAssessment",
    "ServerVulnerability",
];

/// A field's expected JSON shape.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Time,
    Bool,
    /// A map from CVSS version to `{ "base": number }`.
    Cvss,
    /// An array of `{ "title": string, "link": string }`.
    References,
}

/// The fields each kind of `additionalData` defines (besides the discriminator).
fn kind_fields(kind: &str) -> &'static [(&'static str, Shape)] {
    use Shape::*;
    match kind {
        "SqlServerVulnerability" => &[("type", Text), ("query", Text)],
        "ContainerRegistryVulnerability" => &[
            ("type", Text),
            ("cvss", Cvss),
            ("patchable", Bool),
            ("cve", References),
            ("publishedTime", Time),
            ("vendorReferences", References),
            ("repositoryName", Text),
            ("imageDigest", Text),
        ],
        _ => &[
            ("type", Text),
            ("cvss", Cvss),
            ("patchable", Bool),
            ("cve", References),
            ("threat", Text),
            ("publishedTime", Time),
            ("vendorReferences", References),
        ],
    }
}

/// Parse and validate a PUT body (or one import line) into a sub-assessment of `resource`'s
/// assessment `assessment`. Error targets name the field as it sits in the body.
pub fn parse_input(
    resource: &ResourceId,
    assessment: &str,
    name: &str,
    body: &Value,
) -> ApiResult<SubAssessment> {
    let props = crate::assessment::properties_of(body)?;
    const P: &str = "properties";
    for key in ["id", "displayName", "remediation", "impact", "category", "description"] {
        check(props, key, Shape::Text, P)?;
    }
    check(props, "timeGenerated", Shape::Time, P)?;
    if let Some(status) = object(props, "status", P)? {
        const S: &str = "properties.status";
        check_enum(status, "code", STATUS_CODES, S)?;
        check_enum(status, "severity", SEVERITIES, S)?;
        check(status, "cause", Shape::Text, S)?;
        check(status, "description", Shape::Text, S)?;
    }
    if let Some(details) = object(props, "resourceDetails", P)? {
        const D: &str = "properties.resourceDetails";
        if details.get("source").is_none() {
            return Err(ApiError::invalid_field(
                format!("{D}.source"),
                "The required field 'source' is missing. Allowed values: 'Azure', 'OnPremise', 'OnPremiseSql'.",
            ));
        }
        check_enum(details, "source", SOURCES, D)?;
    }
    if let Some(data) = object(props, "additionalData", P)? {
        const A: &str = "properties.additionalData";
        let kind = match data.get("assessedResourceType") {
            Some(Value::String(k)) => KINDS.iter().find(|v| v.eq_ignore_ascii_case(k)),
            Some(_) => None,
            None => {
                return Err(ApiError::invalid_field(
                    format!("{A}.assessedResourceType"),
                    format!(
                    "The required field 'assessedResourceType' is missing. Allowed values: '{}'.",
                    KINDS.join("', '")
                ),
                ))
            }
        };
        let Some(kind) = kind else {
            return Err(ApiError::invalid_field(
                format!("{A}.assessedResourceType"),
                format!(
                    "'assessedResourceType' is not a known kind. Allowed values: '{}'.",
                    KINDS.join("', '")
                ),
            ));
        };
        for (key, shape) in kind_fields(kind) {
            check(data, key, *shape, A)?;
        }
    }
    Ok(SubAssessment {
        resource_id: resource.as_str().to_string(),
        assessment: assessment.to_string(),
        name: name.to_string(),
        properties: Value::Object(props.clone()),
    })
}

/// An optional object field.
fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> ApiResult<Option<&'a Map<String, Value>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ApiError::invalid_field(
            format!("{parent}.{key}"),
            format!("'{key}' must be an object."),
        )),
    }
}

fn check_enum(
    obj: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    parent: &str,
) -> ApiResult<()> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(v)) if allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) => Ok(()),
        Some(_) => Err(ApiError::invalid_field(
            format!("{parent}.{key}"),
            format!("'{key}' is invalid. Allowed values: '{}'.", allowed.join("', '")),
        )),
    }
}

/// An optional field of the given shape (`null` counts as absent).
fn check(obj: &Map<String, Value>, key: &str, shape: Shape, parent: &str) -> ApiResult<()> {
    let Some(value) = obj.get(key).filter(|v| !v.is_null()) else { return Ok(()) };
    let target = || format!("{parent}.{key}");
    let fail =
        |what: &str| Err(ApiError::invalid_field(target(), format!("'{key}' must be {what}.")));
    match shape {
        Shape::Text if value.is_string() => Ok(()),
        Shape::Text => fail("a string"),
        Shape::Bool if value.is_boolean() => Ok(()),
        Shape::Bool => fail("true or false"),
        Shape::Time => match value.as_str().map(parse_time) {
            Some(Ok(_)) => Ok(()),
            _ => fail("a date-time (RFC 3339, e.g. 2019-06-23T12:20:08Z)"),
        },
        Shape::Cvss => {
            let ok = value.as_object().is_some_and(|versions| {
                versions.values().all(|v| {
                    v.as_object()
                        .is_some_and(|o| o.get("base").is_none_or(|b| b.is_null() || b.is_number()))
                })
            });
            if ok {
                Ok(())
            } else {
                fail("an object from CVSS version to {\"base\": number}")
            }
        }
        Shape::References => {
            let ok = value.as_array().is_some_and(|items| {
                items.iter().all(|i| {
                    i.as_object().is_some_and(|o| {
                        ["title", "link"]
                            .iter()
                            .all(|k| o.get(*k).is_none_or(|v| v.is_null() || v.is_string()))
                    })
                })
            });
            if ok {
                Ok(())
            } else {
                fail("an array of {\"title\": string, \"link\": string}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rid() -> ResourceId {
        ResourceId::parse("/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/rg")
            .unwrap()
    }

    fn target(body: Value) -> String {
        match parse_input(&rid(), "a", "s", &body).unwrap_err() {
            ApiError::InvalidRequestContent { target, .. } => target,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepts_every_kind_and_keeps_the_body() {
        for kind in KINDS {
            let props = json!({"displayName": "x", "status": {"code": "Healthy"},
                "additionalData": {"assessedResourceType": kind, "type": "Vulnerability", "extra": 1}});
            let s = parse_input(&rid(), "a", "s", &json!({ "properties": props })).unwrap();
            assert_eq!(s.properties, props);
        }
    }

    #[test]
    fn refuses_wrong_shapes_with_their_target() {
        assert_eq!(target(json!([])), "");
        assert_eq!(target(json!({})), "properties");
        assert_eq!(
            target(json!({"properties": {"status": {"code": "Bad"}}})),
            "properties.status.code"
        );
        assert_eq!(
            target(json!({"properties": {"timeGenerated": "yesterday"}})),
            "properties.timeGenerated"
        );
        assert_eq!(
            target(json!({"properties": {"additionalData": {}}})),
            "properties.additionalData.assessedResourceType"
        );
        assert_eq!(
            target(json!({"properties": {"additionalData": {"assessedResourceType": "Nope"}}})),
            "properties.additionalData.assessedResourceType"
        );
        assert_eq!(
            target(json!({"properties": {"additionalData":
                {"assessedResourceType": "ContainerRegistryVulnerability", "patchable": "yes"}}})),
            "properties.additionalData.patchable"
        );
        assert_eq!(
            target(json!({"properties": {"additionalData":
                {"assessedResourceType": "ServerVulnerabilityAssessment", "cvss": {"3.0": {"base": "high"}}}}})),
            "properties.additionalData.cvss"
        );
        assert_eq!(
            target(json!({"properties": {"additionalData":
                {"assessedResourceType": "SqlServerVulnerability", "query": 5}}})),
            "properties.additionalData.query"
        );
        assert_eq!(
            target(json!({"properties": {"resourceDetails": {}}})),
            "properties.resourceDetails.source"
        );
    }
}
