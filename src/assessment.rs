//! What a valid assessment write is: the checks of a PUT body, shared by the PUT handler
//! (`api::assessments`) and bulk ingest (`ingest`), so that both accept exactly the same documents.
//!
//! Only the writable fields are read. Read-only fields Azure returns (`displayName`, `links`,
//! `metadata`, `status.statusChangeDate`, `resourceDetails.id`, ...) are ignored, so a document
//! as Azure lists it is accepted unchanged.
//!
//! The request model depends on the api-version (`AssessmentModel`): 2019-01-01-preview has no
//! `partnersData` (ignored there), 2025-05-04 adds `risk` (checked against its schema; the
//! server computes no risk and stores none, so answers carry no `risk`).

use serde_json::{Map, Value};

use crate::arm::api_version::AssessmentModel;
use crate::arm::{ApiError, ApiResult, ResourceId};
use crate::catalog;
use crate::score::Status;
use crate::store::{AssessmentInput, ScoreView};

/// Parse and validate one assessment of a bulk import (the 2021-06-01 request model, which
/// import lines and Azure's export use) into a write.
pub fn parse_input(
    resource: &ResourceId,
    name: &str,
    body: &Value,
    view: &ScoreView,
) -> ApiResult<AssessmentInput> {
    parse_input_at(resource, name, body, view, AssessmentModel::V2021)
}

/// Parse and validate a PUT body in the request model of an api-version into a write. Error
/// targets name the field as it sits in the body (`properties.status.code`).
pub fn parse_input_at(
    resource: &ResourceId,
    name: &str,
    body: &Value,
    view: &ScoreView,
    model: AssessmentModel,
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
    let props = properties_of(body)?;
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
    if model.risk() {
        check_risk(props.get("risk"))?;
    }
    let partners_data = if model.partner_data() { props.get("partnersData") } else { None };
    let partner_name = match partners_data {
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

/// The `properties` object of an ARM resource body (a JSON object), or a 400 naming what is wrong.
pub fn properties_of(body: &Value) -> ApiResult<&Map<String, Value>> {
    let Some(body) = body.as_object() else {
        return Err(ApiError::invalid_field("", "The request body must be a JSON object."));
    };
    match body.get("properties") {
        Some(Value::Object(p)) => Ok(p),
        Some(_) => Err(ApiError::invalid_field("properties", "'properties' must be an object.")),
        None => Err(ApiError::invalid_field(
            "properties",
            "The required field 'properties' is missing.",
        )),
    }
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

/// `risk` (2025-05-04): its shape as the specification defines it. Nothing of it is kept.
fn check_risk(value: Option<&Value>) -> ApiResult<()> {
    const T: &str = "properties.risk";
    let risk = match value {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(r)) => r,
        Some(_) => return Err(ApiError::invalid_field(T, "'risk' must be an object.")),
    };
    let strings = |v: Option<&Value>, target: &str, unique: bool| -> ApiResult<()> {
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(()) };
        let items = v.as_array().filter(|a| a.iter().all(Value::is_string)).ok_or_else(|| {
            ApiError::invalid_field(target, "The value must be an array of strings.")
        })?;
        if unique && items.iter().enumerate().any(|(i, x)| items[..i].contains(x)) {
            return Err(ApiError::invalid_field(target, "The items must be unique."));
        }
        Ok(())
    };
    let objects = |v: Option<&Value>, target: &str| -> ApiResult<Vec<Map<String, Value>>> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
                Ok(items.iter().filter_map(Value::as_object).cloned().collect())
            }
            Some(_) => {
                Err(ApiError::invalid_field(target, "The value must be an array of objects."))
            }
        }
    };
    strings(risk.get("riskFactors"), &format!("{T}.riskFactors"), true)?;
    strings(risk.get("attackPathsReferences"), &format!("{T}.attackPathsReferences"), false)?;
    match risk.get("level") {
        None | Some(Value::Null) => {}
        Some(Value::String(l))
            if ["Low", "Medium", "High", "Critical"].iter().any(|a| a.eq_ignore_ascii_case(l)) => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                format!("{T}.level"),
                "The risk level is invalid. Allowed values: 'Low', 'Medium', 'High', 'Critical'.",
            ))
        }
    }
    if !matches!(risk.get("isContextualRisk"), None | Some(Value::Null) | Some(Value::Bool(_))) {
        return Err(ApiError::invalid_field(
            format!("{T}.isContextualRisk"),
            "'isContextualRisk' must be a boolean.",
        ));
    }
    for (i, path) in objects(risk.get("paths"), &format!("{T}.paths"))?.iter().enumerate() {
        let at = format!("{T}.paths[{i}]");
        optional_string(path, "id", &format!("{at}.id"))?;
        for (j, node) in objects(path.get("nodes"), &format!("{at}.nodes"))?.iter().enumerate() {
            optional_string(node, "id", &format!("{at}.nodes[{j}].id"))?;
            strings(
                node.get("nodePropertiesLabel"),
                &format!("{at}.nodes[{j}].nodePropertiesLabel"),
                false,
            )?;
        }
        for (j, edge) in objects(path.get("edges"), &format!("{at}.edges"))?.iter().enumerate() {
            for key in ["id", "sourceId", "targetId"] {
                required_string(edge, key, &format!("{at}.edges[{j}].{key}"))?;
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    //! The PUT body parser (also every NDJSON import line) on arbitrary and nearly valid input:
    //! it never panics, answers a value or a 400 `InvalidRequestContent`, and accepts exactly the
    //! bodies whose every part is valid.

    use super::*;
    use crate::store::Subscription;
    use axum::http::StatusCode;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    /// A built-in, scored recommendation ("Endpoint protection … on virtual machine scale sets").
    const BUILT_IN: &str = "21300918-b2e3-0346-785f-c77ff57d243b";
    const CUSTOM: &str = "My-Own-Check";

    fn view() -> ScoreView {
        let sub = Subscription {
            id: uuid::Uuid::from_u128(1),
            display_name: "props".into(),
            tenant_id: uuid::Uuid::nil(),
            state: "Enabled".into(),
        };
        ScoreView::build(sub, HashMap::new(), vec![(CUSTOM.into(), json!({"displayName": "x"}))])
    }

    fn resource() -> ResourceId {
        ResourceId::parse(
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        )
        .expect("a valid id")
    }

    fn assert_client_error(result: &ApiResult<AssessmentInput>) -> Result<(), TestCaseError> {
        if let Err(e) = result {
            prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{}", e);
            prop_assert_eq!(e.code(), "InvalidRequestContent");
        }
        Ok(())
    }

    /// Any JSON, with keys biased towards the ones the parser looks at.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec!["Healthy", "unhealthy", "Azure", "OnPremise", ""])
                .prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            prop::sample::select(vec![
                "properties",
                "resourceDetails",
                "status",
                "code",
                "source",
                "Source",
                "cause",
                "description",
                "additionalData",
                "partnersData",
                "partnerName",
                "secret",
                "workspaceId",
            ])
            .prop_map(str::to_string),
            "[a-zA-Z]{0,6}",
        ];
        leaf.prop_recursive(4, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn recased(word: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), word.len()).prop_map(move |flips| {
            word.chars()
                .zip(flips)
                .map(|(c, f)| if f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        })
    }

    /// One part of a body: its value (`None`: left out) and whether the parser must accept it.
    type Part = (Option<Value>, bool);

    fn code() -> impl Strategy<Value = Part> {
        prop_oneof![
            prop_oneof![recased("Healthy"), recased("Unhealthy"), recased("NotApplicable")]
                .prop_map(|c| (Some(Value::String(c)), true)),
            ".{0,14}".prop_map(|c| {
                let valid = Status::parse(&c).is_some();
                (Some(Value::String(c)), valid)
            }),
            any::<i64>().prop_map(|n| (Some(Value::from(n)), false)),
            Just((Some(Value::Null), false)),
            Just((None, false)),
        ]
    }

    fn optional_text() -> impl Strategy<Value = Part> {
        prop_oneof![
            Just((None, true)),
            Just((Some(Value::Null), true)),
            ".{0,10}".prop_map(|s| (Some(Value::String(s)), true)),
            any::<bool>().prop_map(|b| (Some(Value::Bool(b)), false)),
            Just((Some(json!(["a"])), false)),
        ]
    }

    fn resource_details() -> impl Strategy<Value = Part> {
        let on_premise =
            json!({"workspaceId": "w", "vmuuid": "v", "sourceComputerId": "s", "machineName": "m"});
        prop_oneof![
            recased("Azure").prop_map(|s| (Some(json!({ "source": s })), true)),
            Just((Some(json!({"Source": "Azure"})), true)),
            Just((
                Some(
                    json!({"source": "OnPremise", "workspaceId": "w", "vmuuid": "v", "sourceComputerId": "s", "machineName": "m"})
                ),
                true
            )),
            // OnPremise without one of its required fields, or with an empty one.
            (0usize..4, any::<bool>()).prop_map(move |(i, empty)| {
                let mut d = on_premise.clone();
                let fields = ["workspaceId", "vmuuid", "sourceComputerId", "machineName"];
                if let Some(o) = d.as_object_mut() {
                    if empty {
                        o.insert(fields[i].into(), json!(""));
                    } else {
                        o.remove(fields[i]);
                    }
                    o.insert("source".into(), json!("OnPremise"));
                }
                (Some(d), false)
            }),
            Just((Some(json!({"source": "OnPremiseSql", "workspaceId": "w"})), false)),
            "[A-Za-z]{0,10}".prop_map(|s| {
                let valid = ["azure"].contains(&s.to_ascii_lowercase().as_str());
                (Some(json!({ "source": s })), valid)
            }),
            Just((Some(json!({})), false)),
            Just((Some(json!("Azure")), false)),
            Just((None, false)),
        ]
    }

    fn additional_data() -> impl Strategy<Value = Part> {
        prop_oneof![
            Just((None, true)),
            Just((Some(Value::Null), true)),
            prop::collection::btree_map("[a-z]{1,6}", ".{0,6}", 0..4).prop_map(|m| {
                (
                    Some(Value::Object(
                        m.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
                    )),
                    true,
                )
            }),
            Just((Some(json!({"k": 1})), false)),
            Just((Some(json!({"a": "ok", "b": null})), false)),
            Just((Some(json!(["k"])), false)),
        ]
    }

    fn partners_data() -> impl Strategy<Value = Part> {
        prop_oneof![
            Just((None, true)),
            Just((Some(Value::Null), true)),
            ("[a-z]{1,6}", "[a-z]{1,6}")
                .prop_map(|(n, s)| { (Some(json!({"partnerName": n, "secret": s})), true) }),
            Just((Some(json!({"partnerName": "p"})), false)),
            Just((Some(json!({"partnerName": "", "secret": "s"})), false)),
            Just((Some(json!({"partnerName": 1, "secret": "s"})), false)),
            Just((Some(json!("p")), false)),
        ]
    }

    /// Put the parts together; `status` itself may also be missing or not an object.
    fn body(details: &Part, status: Option<Map<String, Value>>, extra: &[(&str, &Part)]) -> Value {
        let mut props = Map::new();
        if let Some(d) = &details.0 {
            props.insert("resourceDetails".into(), d.clone());
        }
        if let Some(s) = status {
            props.insert("status".into(), Value::Object(s));
        }
        for (key, (value, _)) in extra {
            if let Some(v) = value {
                props.insert((*key).into(), v.clone());
            }
        }
        json!({ "properties": props })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_json_is_an_input_or_a_400(doc in any_json(), name in prop::sample::select(vec![BUILT_IN, CUSTOM])) {
            assert_client_error(&parse_input(&resource(), name, &doc, &view()))?;
            // The same document one level down, where the parser reads the properties.
            let wrapped = json!({ "properties": doc });
            assert_client_error(&parse_input(&resource(), name, &wrapped, &view()))?;
        }

        #[test]
        fn any_bytes_are_json_or_a_400(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            // The PUT handler's first step: a body that is not JSON is the client's mistake.
            if let Ok(doc) = serde_json::from_slice::<Value>(&bytes) {
                assert_client_error(&parse_input(&resource(), BUILT_IN, &doc, &view()))?;
            }
        }

        #[test]
        fn a_body_is_accepted_exactly_when_every_part_is_valid(
            details in resource_details(),
            code in code(),
            cause in optional_text(),
            description in optional_text(),
            additional in additional_data(),
            partners in partners_data(),
        ) {
            let mut status = Map::new();
            for (key, (value, _)) in [("code", &code), ("cause", &cause), ("description", &description)] {
                if let Some(v) = value {
                    status.insert(key.into(), v.clone());
                }
            }
            let doc = body(&details, Some(status), &[("additionalData", &additional), ("partnersData", &partners)]);
            let valid = [&details, &code, &cause, &description, &additional, &partners].iter().all(|p| p.1);
            let parsed = parse_input(&resource(), BUILT_IN, &doc, &view());
            assert_client_error(&parsed)?;
            prop_assert_eq!(parsed.is_ok(), valid, "{}: {:?}", doc, parsed.as_ref().err().map(ToString::to_string));
            if let Ok(input) = parsed {
                let code_text = code.0.as_ref().and_then(Value::as_str).unwrap_or_default();
                prop_assert_eq!(Some(input.status), Status::parse(code_text));
                prop_assert_eq!(input.cause.as_deref(), cause.0.as_ref().and_then(Value::as_str));
                prop_assert_eq!(input.description.as_deref(), description.0.as_ref().and_then(Value::as_str));
                // The source is stored in its canonical spelling.
                let source = input.resource_details["source"].as_str().unwrap_or_default();
                prop_assert!(["Azure", "OnPremise", "OnPremiseSql"].contains(&source), "{source}");
                prop_assert_eq!(&input.resource, &resource());
            }
        }

        #[test]
        fn status_that_is_missing_or_not_an_object_is_a_400(status in prop_oneof![Just(None), any_json().prop_map(Some)]) {
            prop_assume!(!matches!(status, Some(Value::Object(_))));
            let mut doc = json!({"properties": {"resourceDetails": {"source": "Azure"}}});
            if let (Some(s), Some(props)) = (status, doc["properties"].as_object_mut()) {
                props.insert("status".into(), s);
            }
            let e = parse_input(&resource(), BUILT_IN, &doc, &view()).expect_err("no status object");
            prop_assert_eq!(e.code(), "InvalidRequestContent");
            prop_assert!(matches!(&e, ApiError::InvalidRequestContent { target, .. } if target == "properties.status"), "{e:?}");
        }

        #[test]
        fn only_known_metadata_names_are_accepted(name in prop_oneof![
            "[0-9a-f-]{0,36}",
            ".{0,20}",
            recased("my-own-check"),
            recased("21300918-b2e3-0346-785f-c77ff57d243b"),
        ]) {
            let doc = json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}}});
            let known = catalog::builtin().assessment(&name).is_some() || name.eq_ignore_ascii_case(CUSTOM);
            match parse_input(&resource(), &name, &doc, &view()) {
                Ok(input) => {
                    prop_assert!(known, "{name:?} accepted");
                    prop_assert_eq!(input.name, name);
                }
                Err(e) => {
                    prop_assert!(!known, "{name:?} refused: {e}");
                    prop_assert!(matches!(&e, ApiError::InvalidRequestContent { target, .. } if target == "name"), "{e:?}");
                }
            }
        }
    }

    /// The request model of each api-version: fields a version lacks are ignored there, the
    /// fields it has are checked.
    mod versions {
        use super::*;

        fn base() -> Value {
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}}})
        }

        fn with(field: &str, value: Value) -> Value {
            let mut body = base();
            body["properties"][field] = value;
            body
        }

        fn parse(body: &Value, model: AssessmentModel) -> ApiResult<AssessmentInput> {
            parse_input_at(&resource(), BUILT_IN, body, &view(), model)
        }

        #[test]
        fn the_official_2025_risk_is_accepted() {
            let risk = json!({
                "attackPathsReferences": [], "isContextualRisk": true,
                "riskFactors": ["Exposure to the Internet", "Sensitive Data"],
                "paths": [{"id": "p", "nodes": [{"id": "n", "nodePropertiesLabel": ["exposedToInternet"]}], "edges": []}],
                "level": "Critical",
            });
            assert!(parse(&with("risk", risk), AssessmentModel::V2025).is_ok());
            let repeated = json!({"riskFactors": ["a", "a"]});
            let e = parse(&with("risk", repeated), AssessmentModel::V2025).unwrap_err();
            assert!(format!("{e:?}").contains("properties.risk.riskFactors"), "{e:?}");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Any `risk`: before 2025-05-04 it changes nothing; at 2025-05-04 it is accepted
            /// (and changes nothing stored) or refused with a 400 naming a part of `risk`.
            #[test]
            fn risk_is_read_only_by_2025(risk in any_json()) {
                let body = with("risk", risk);
                let plain = parse(&base(), AssessmentModel::V2021).expect("a valid body");
                for model in [AssessmentModel::V2019Preview, AssessmentModel::V2020, AssessmentModel::V2021] {
                    prop_assert_eq!(parse(&body, model).expect("risk is not in this model"), plain.clone());
                }
                let newest = parse(&body, AssessmentModel::V2025);
                assert_client_error(&newest)?;
                match newest {
                    Ok(input) => prop_assert_eq!(input, plain),
                    Err(e) => {
                        let text = format!("{:?}", e);
                        prop_assert!(text.contains("properties.risk"), "{}", text);
                    }
                }
            }

            /// Any `partnersData` is ignored at 2019-01-01-preview (its model has none).
            #[test]
            fn partners_data_is_not_in_the_2019_model(partners in any_json()) {
                let body = with("partnersData", partners);
                let plain = parse(&base(), AssessmentModel::V2019Preview).expect("a valid body");
                prop_assert_eq!(parse(&body, AssessmentModel::V2019Preview).expect("ignored"), plain);
                assert_client_error(&parse(&body, AssessmentModel::V2020))?;
            }
        }
    }
}
