//! Requests are parsed into an [`Endpoint`] before any handler runs. ARM paths are matched
//! case-insensitively, with or without a trailing slash; `{resourceId}` and `{scope}` are
//! multi-segment ids parsed into [`ResourceId`]s here, once.
//!
//! Routing works on the raw path as the client sent it: it is split on `/` first and each segment
//! is then decoded exactly once ([`decode_segment`]), so an encoded `/` can never move a name into
//! another segment.

use axum::http::Method;
use uuid::Uuid;

use crate::arm::resource_id::decode_segment;
use crate::arm::{parse_subscription_id, ApiError, Family, ResourceId};

/// The namespaces Azure Resource Manager serves at the root. Other paths that no route matches are
/// a plain 404, not an ARM routing error.
const ARM_ROOTS: &[&str] = &["subscriptions", "providers", "tenants"];

/// Does `path` (raw) belong to the ARM surface?
pub fn is_arm_path(path: &str) -> bool {
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or("");
    ARM_ROOTS.iter().any(|root| root.eq_ignore_ascii_case(first))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    SecureScores {
        sub: Uuid,
    },
    SecureScore {
        sub: Uuid,
        name: String,
    },
    SecureScoreControls {
        sub: Uuid,
        score: String,
    },
    Controls {
        sub: Uuid,
    },
    Definitions,
    SubscriptionDefinitions {
        sub: Uuid,
    },
    Assessments {
        scope: ResourceId,
    },
    Assessment {
        resource: ResourceId,
        name: String,
    },
    MetadataList,
    Metadata {
        name: String,
    },
    SubscriptionMetadataList {
        sub: Uuid,
    },
    SubscriptionMetadata {
        sub: Uuid,
        name: String,
    },
    Subscriptions,
    Subscription {
        sub: Uuid,
    },
    Tenants,
    /// `GET /providers/Microsoft.Security/operations`: what this server serves.
    Operations,
    // Sub-assessments (2019-01-01-preview).
    /// `{scope}/providers/Microsoft.Security/subAssessments`
    SubAssessmentsAll {
        scope: ResourceId,
    },
    /// `{scope}/providers/Microsoft.Security/assessments/{assessment}/subAssessments`
    SubAssessments {
        scope: ResourceId,
        assessment: String,
    },
    /// `{resourceId}/providers/Microsoft.Security/assessments/{assessment}/subAssessments/{name}`
    SubAssessment {
        resource: ResourceId,
        assessment: String,
        name: String,
    },
    // Automations (continuous export; 2019-01-01-preview, 2023-12-01-preview).
    /// `/subscriptions/{s}[/resourceGroups/{g}]/providers/Microsoft.Security/automations`
    Automations {
        sub: Uuid,
        group: Option<String>,
    },
    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Security/automations/{name}`
    Automation {
        sub: Uuid,
        group: String,
        name: String,
    },
    /// `…/automations/{name}/validate` (POST)
    AutomationValidate {
        sub: Uuid,
        group: String,
        name: String,
    },
}

// HEAD is served wherever GET is.
const GET: &str = "GET, HEAD";
const GET_PUT_DELETE: &str = "GET, HEAD, PUT, DELETE";
const GET_PUT_PATCH_DELETE: &str = "GET, HEAD, PUT, PATCH, DELETE";
const POST: &str = "POST";

impl Endpoint {
    pub fn family(&self) -> Family {
        use Endpoint::*;
        match self {
            SecureScores { .. } | SecureScore { .. } => Family::SECURE_SCORES,
            SecureScoreControls { .. } => Family::SECURE_SCORE_CONTROLS,
            Controls { .. } => Family::CONTROLS,
            Definitions | SubscriptionDefinitions { .. } => Family::DEFINITIONS,
            Assessments { .. } | Assessment { .. } => Family::ASSESSMENTS,
            MetadataList
            | Metadata { .. }
            | SubscriptionMetadataList { .. }
            | SubscriptionMetadata { .. } => Family::METADATA,
            Subscriptions | Subscription { .. } | Tenants => Family::ARM,
            Operations => Family::OPERATIONS,
            SubAssessmentsAll { .. } | SubAssessments { .. } | SubAssessment { .. } => {
                Family::SUB_ASSESSMENTS
            }
            Automations { .. } | Automation { .. } | AutomationValidate { .. } => {
                Family::AUTOMATIONS
            }
        }
    }

    /// The subscription the request is about, if any (budgets and authorization are per subscription).
    pub fn subscription(&self) -> Option<Uuid> {
        use Endpoint::*;
        match self {
            SecureScores { sub }
            | SecureScore { sub, .. }
            | SecureScoreControls { sub, .. }
            | Controls { sub }
            | SubscriptionDefinitions { sub }
            | SubscriptionMetadataList { sub }
            | SubscriptionMetadata { sub, .. }
            | Subscription { sub } => Some(*sub),
            Assessments { scope } => Some(scope.subscription()),
            Assessment { resource, .. } => Some(resource.subscription()),
            Definitions | MetadataList | Metadata { .. } | Subscriptions | Tenants | Operations => {
                None
            }
            SubAssessmentsAll { scope } | SubAssessments { scope, .. } => {
                Some(scope.subscription())
            }
            SubAssessment { resource, .. } => Some(resource.subscription()),
            Automations { sub, .. } | Automation { sub, .. } | AutomationValidate { sub, .. } => {
                Some(*sub)
            }
        }
    }

    /// The methods the endpoint answers, as an `Allow` header value.
    pub fn allow(&self) -> &'static str {
        match self {
            Endpoint::Assessment { .. }
            | Endpoint::SubscriptionMetadata { .. }
            | Endpoint::SubAssessment { .. } => GET_PUT_DELETE,
            Endpoint::Automation { .. } => GET_PUT_PATCH_DELETE,
            Endpoint::AutomationValidate { .. } => POST,
            _ => GET,
        }
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// A low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        use Endpoint::*;
        match self {
            SecureScores { .. } => "SecureScores_List",
            SecureScore { .. } => "SecureScores_Get",
            SecureScoreControls { .. } => "SecureScoreControls_ListBySecureScore",
            Controls { .. } => "SecureScoreControls_List",
            Definitions => "SecureScoreControlDefinitions_List",
            SubscriptionDefinitions { .. } => "SecureScoreControlDefinitions_ListBySubscription",
            Assessments { .. } => "Assessments_List",
            Assessment { .. } => "Assessments",
            MetadataList => "AssessmentsMetadata_List",
            Metadata { .. } => "AssessmentsMetadata_Get",
            SubscriptionMetadataList { .. } => "AssessmentsMetadata_ListBySubscription",
            SubscriptionMetadata { .. } => "AssessmentsMetadata_InSubscription",
            Subscriptions => "Subscriptions_List",
            Subscription { .. } => "Subscriptions_Get",
            Tenants => "Tenants_List",
            Operations => "Operations_List",
            SubAssessmentsAll { .. } => "SubAssessments_ListAll",
            SubAssessments { .. } => "SubAssessments_List",
            SubAssessment { .. } => "SubAssessments_Get",
            Automations { group: None, .. } => "Automations_List",
            Automations { group: Some(_), .. } => "Automations_ListByResourceGroup",
            Automation { .. } => "Automations",
            AutomationValidate { .. } => "Automations_Validate",
        }
    }

    /// Route a raw (still percent-encoded) path. `api_version` is only used to word errors.
    pub fn parse(path: &str, api_version: &str) -> Result<Endpoint, ApiError> {
        // Borrowed unless a segment has percent-escapes: routing allocates little per request.
        // A trailing slash is allowed; an empty segment inside the path is an empty name (the
        // outer layer has collapsed the leading slashes already).
        let trimmed = path.trim_matches('/');
        let decoded: Vec<std::borrow::Cow<'_, str>> = match trimmed {
            "" => Vec::new(),
            _ => trimmed
                .split('/')
                .map(|s| match s {
                    "" => Err(ApiError::InvalidResourceName {
                        name: String::new(),
                        reason: "a name is empty (two slashes in a row).",
                    }),
                    s => decode_segment(s),
                })
                .collect::<Result<_, _>>()?,
        };
        let segs: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let security = (0..segs.len().saturating_sub(1))
            .rev()
            .find(|&i| eq(segs[i], "providers") && eq(segs[i + 1], "Microsoft.Security"));
        let unknown_type = |namespace: &str, rest: &[&str]| {
            // Name the type as ARM does: the type segments without the names between them.
            let resource_type: Vec<&str> = rest.iter().step_by(2).copied().collect();
            ApiError::UnknownResourceType {
                namespace: namespace.to_string(),
                resource_type: resource_type.join("/"),
                version: api_version.to_string(),
            }
        };
        let unknown_path = || ApiError::UnknownPath(format!("/{}", segs.join("/")));

        let Some(i) = security else {
            return match segs.as_slice() {
                [s] if eq(s, "subscriptions") => Ok(Endpoint::Subscriptions),
                [s, id] if eq(s, "subscriptions") => {
                    Ok(Endpoint::Subscription { sub: parse_subscription_id(id)? })
                }
                [t] if eq(t, "tenants") => Ok(Endpoint::Tenants),
                [s, id, rest @ ..] if eq(s, "subscriptions") => {
                    parse_subscription_id(id)?;
                    match rest {
                        [p, ns, tail @ ..] if eq(p, "providers") && !tail.is_empty() => {
                            Err(unknown_type(ns, tail))
                        }
                        _ => Err(unknown_path()),
                    }
                }
                _ => Err(unknown_path()),
            };
        };
        let (scope, rest) = (&segs[..i], &segs[i + 2..]);
        let name = |s: &str| s.to_string();
        match scope {
            [] => match rest {
                [t] if eq(t, "secureScoreControlDefinitions") => Ok(Endpoint::Definitions),
                [t] if eq(t, "assessmentMetadata") => Ok(Endpoint::MetadataList),
                [t] if eq(t, "operations") => Ok(Endpoint::Operations),
                [t, n] if eq(t, "assessmentMetadata") => Ok(Endpoint::Metadata { name: name(n) }),
                _ => Err(unknown_type("Microsoft.Security", rest)),
            },
            [s, id] if eq(s, "subscriptions") => {
                let sub = parse_subscription_id(id)?;
                match rest {
                    [t] if eq(t, "secureScores") => Ok(Endpoint::SecureScores { sub }),
                    [t, n] if eq(t, "secureScores") => {
                        Ok(Endpoint::SecureScore { sub, name: name(n) })
                    }
                    [t, n, c] if eq(t, "secureScores") && eq(c, "secureScoreControls") => {
                        Ok(Endpoint::SecureScoreControls { sub, score: name(n) })
                    }
                    [t] if eq(t, "secureScoreControls") => Ok(Endpoint::Controls { sub }),
                    [t] if eq(t, "secureScoreControlDefinitions") => {
                        Ok(Endpoint::SubscriptionDefinitions { sub })
                    }
                    [t] if eq(t, "assessmentMetadata") => {
                        Ok(Endpoint::SubscriptionMetadataList { sub })
                    }
                    [t, n] if eq(t, "assessmentMetadata") => {
                        Ok(Endpoint::SubscriptionMetadata { sub, name: name(n) })
                    }
                    [t] if eq(t, "assessments") => {
                        Ok(Endpoint::Assessments { scope: ResourceId::from_segments(scope)? })
                    }
                    [t] if eq(t, "automations") => Ok(Endpoint::Automations { sub, group: None }),
                    [t, n] if eq(t, "assessments") => Ok(Endpoint::Assessment {
                        resource: ResourceId::from_segments(scope)?,
                        name: name(n),
                    }),
                    rest if is_sub_assessment(rest) => {
                        sub_assessment(ResourceId::from_segments(scope)?, rest)
                    }
                    _ => Err(unknown_type("Microsoft.Security", rest)),
                }
            }
            [s, id, r, g]
                if eq(s, "subscriptions") && eq(r, "resourceGroups") && is_automation(rest) =>
            {
                let sub = parse_subscription_id(id)?;
                ResourceId::from_segments(scope)?;
                automation(sub, g, rest).ok_or_else(|| unknown_type("Microsoft.Security", rest))
            }
            [s, ..] if eq(s, "subscriptions") => {
                let resource = ResourceId::from_segments(scope)?;
                match rest {
                    [t] if eq(t, "assessments") => Ok(Endpoint::Assessments { scope: resource }),
                    [t, n] if eq(t, "assessments") => {
                        Ok(Endpoint::Assessment { resource, name: name(n) })
                    }
                    rest if is_sub_assessment(rest) => sub_assessment(resource, rest),
                    _ => Err(unknown_type("Microsoft.Security", rest)),
                }
            }
            _ => Err(unknown_path()),
        }
    }
}

/// Is `rest` (the segments after `providers/Microsoft.Security`) an automations path?
fn is_automation(rest: &[&str]) -> bool {
    rest.first().is_some_and(|t| t.eq_ignore_ascii_case("automations"))
}

/// The automation endpoint of a resource group path that [`is_automation`] accepted.
fn automation(sub: Uuid, group: &str, rest: &[&str]) -> Option<Endpoint> {
    let group = group.to_string();
    match rest {
        [_] => Some(Endpoint::Automations { sub, group: Some(group) }),
        [_, n] => Some(Endpoint::Automation { sub, group, name: n.to_string() }),
        [_, n, v] if v.eq_ignore_ascii_case("validate") => {
            Some(Endpoint::AutomationValidate { sub, group, name: n.to_string() })
        }
        _ => None,
    }
}

/// Is `rest` (the segments after `providers/Microsoft.Security`) a sub-assessment path?
fn is_sub_assessment(rest: &[&str]) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match rest {
        [t] => eq(t, "subAssessments"),
        [a, _, t] | [a, _, t, _] => eq(a, "assessments") && eq(t, "subAssessments"),
        _ => false,
    }
}

/// The sub-assessment endpoint of a path that [`is_sub_assessment`] accepted.
fn sub_assessment(scope: ResourceId, rest: &[&str]) -> Result<Endpoint, ApiError> {
    match rest {
        [_] => Ok(Endpoint::SubAssessmentsAll { scope }),
        [_, a, _] => Ok(Endpoint::SubAssessments { scope, assessment: a.to_string() }),
        [_, a, _, n] => Ok(Endpoint::SubAssessment {
            resource: scope,
            assessment: a.to_string(),
            name: n.to_string(),
        }),
        _ => Err(ApiError::UnknownPath(format!("/{}", rest.join("/")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";

    fn parse(p: &str) -> Result<Endpoint, ApiError> {
        Endpoint::parse(p, "2020-01-01")
    }

    #[test]
    fn routes_case_insensitively_with_trailing_slashes() {
        let sub = Uuid::parse_str(S).unwrap();
        let want = Endpoint::SecureScore { sub, name: "ascScore".into() };
        assert_eq!(
            parse(&format!(
                "/subscriptions/{S}/providers/Microsoft.Security/secureScores/ascScore"
            ))
            .unwrap(),
            want
        );
        assert_eq!(
            parse(&format!(
                "/SUBSCRIPTIONS/{S}/PROVIDERS/microsoft.security/securescores/ascScore/"
            ))
            .unwrap(),
            want
        );
        assert_eq!(
            parse("/providers/Microsoft.Security/secureScoreControlDefinitions").unwrap(),
            Endpoint::Definitions
        );
        assert_eq!(parse("/subscriptions").unwrap(), Endpoint::Subscriptions);
        for p in [
            "/providers/Microsoft.Security/operations",
            "/PROVIDERS/microsoft.security/OPERATIONS/",
        ] {
            let e = parse(p).unwrap();
            assert_eq!(e, Endpoint::Operations, "{p}");
            assert_eq!((e.subscription(), e.allow(), e.label()), (None, GET, "Operations_List"));
        }
        // Operations are the provider's, listed at the tenant only.
        let e = parse(&format!("/subscriptions/{S}/providers/Microsoft.Security/operations"))
            .unwrap_err();
        assert_eq!(e.code(), "InvalidResourceType");
    }

    #[test]
    fn routes_multi_segment_resource_ids() {
        let p = format!(
            "/subscriptions/{S}/resourceGroups/myRg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss2/providers/Microsoft.Security/assessments/21300918-b2e3-0346-785f-c77ff57d243b"
        );
        match parse(&p).unwrap() {
            Endpoint::Assessment { resource, name } => {
                assert!(resource.as_str().ends_with("/vmss2"));
                assert_eq!(name, "21300918-b2e3-0346-785f-c77ff57d243b");
            }
            other => panic!("{other:?}"),
        }
        let p = format!(
            "/subscriptions/{S}/resourceGroups/myRg/providers/Microsoft.Security/assessments"
        );
        assert!(matches!(parse(&p).unwrap(), Endpoint::Assessments { .. }));
    }

    #[test]
    fn routes_sub_assessments() {
        let rg = format!("/subscriptions/{S}/resourceGroups/myRg");
        let p = format!("{rg}/providers/Microsoft.Security/subAssessments");
        assert!(matches!(parse(&p).unwrap(), Endpoint::SubAssessmentsAll { .. }));
        let p = format!(
            "/subscriptions/{S}/providers/Microsoft.Security/assessments/a1/subAssessments"
        );
        match parse(&p).unwrap() {
            Endpoint::SubAssessments { scope, assessment } => {
                assert_eq!(scope.kind(), crate::arm::ScopeKind::Subscription);
                assert_eq!(assessment, "a1");
            }
            other => panic!("{other:?}"),
        }
        let p = format!(
            "{rg}/providers/Microsoft.ContainerRegistry/registries/r/providers/Microsoft.Security/assessments/a1/SUBASSESSMENTS/s1/"
        );
        match parse(&p).unwrap() {
            Endpoint::SubAssessment { resource, assessment, name } => {
                assert!(resource.as_str().ends_with("/registries/r"));
                assert_eq!((assessment.as_str(), name.as_str()), ("a1", "s1"));
            }
            other => panic!("{other:?}"),
        }
        let p = format!("{rg}/providers/Microsoft.Security/assessments/a1/subAssessments/s1/x");
        assert_eq!(parse(&p).unwrap_err().code(), "InvalidResourceType");
    }

    #[test]
    fn routes_automations() {
        let sub = Uuid::parse_str(S).unwrap();
        let rg = format!("/subscriptions/{S}/resourceGroups/myRg/providers/Microsoft.Security");
        assert_eq!(
            parse(&format!("/subscriptions/{S}/providers/Microsoft.Security/automations")).unwrap(),
            Endpoint::Automations { sub, group: None }
        );
        assert_eq!(
            parse(&format!("{rg}/AUTOMATIONS/")).unwrap(),
            Endpoint::Automations { sub, group: Some("myRg".into()) }
        );
        let one = parse(&format!("{rg}/automations/a1")).unwrap();
        assert_eq!(one, Endpoint::Automation { sub, group: "myRg".into(), name: "a1".into() });
        assert!(one.allows(&Method::PATCH) && !one.allows(&Method::POST));
        let validate = parse(&format!("{rg}/automations/a1/validate")).unwrap();
        assert_eq!(
            validate,
            Endpoint::AutomationValidate { sub, group: "myRg".into(), name: "a1".into() }
        );
        assert!(validate.allows(&Method::POST) && !validate.allows(&Method::GET));
        assert_eq!(validate.label(), "Automations_Validate");
        for bad in [format!("{rg}/automations/a1/other"), format!("{rg}/automations/a1/validate/x")]
        {
            assert_eq!(parse(&bad).unwrap_err().code(), "InvalidResourceType", "{bad}");
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse("/subscriptions/not-a-guid/providers/Microsoft.Security/secureScores"),
            Err(ApiError::InvalidSubscriptionId(_))
        ));
        let e =
            parse(&format!("/subscriptions/{S}/providers/Microsoft.Security/alerts")).unwrap_err();
        assert_eq!(e.code(), "InvalidResourceType");
        assert!(e.to_string().contains("'alerts'"));
        let e = parse(&format!("/subscriptions/{S}/providers/Microsoft.Compute/virtualMachines/x"))
            .unwrap_err();
        assert!(e.to_string().contains("'Microsoft.Compute'"));
        assert!(matches!(parse("/nothing/here"), Err(ApiError::UnknownPath(_))));
    }

    #[test]
    fn names_are_exact() {
        let rg = format!("/subscriptions/{S}/resourceGroups");
        let a = "providers/Microsoft.Security/assessments";
        for bad in [
            format!("{rg}/rg%2Fother/{a}/x"),
            format!("{rg}/rg/{a}/x%2Fy"),
            format!("{rg}/rg/{a}/alias%FFb"),
            format!("{rg}/rg/{a}/.."),
            format!("{rg}/%2e%2e/{a}/x"),
            format!("/subscriptions/{S}/providers/Microsoft.Security/assessmentMetadata/a%0Ab"),
        ] {
            assert_eq!(parse(&bad).unwrap_err().code(), "InvalidResourceName", "{bad}");
        }
        // An encoded character that is allowed decodes to the same resource as the plain one.
        let plain = parse(&format!("{rg}/my-rg/{a}/x")).unwrap();
        assert_eq!(parse(&format!("{rg}/my%2Drg/{a}/x")).unwrap(), plain);
        // An empty name is refused rather than skipped: skipping would move the names after it.
        let e = parse(&format!("{rg}//providers/Microsoft.Compute/vms/vm/{a}/x")).unwrap_err();
        assert_eq!(e.code(), "InvalidResourceName");
        assert!(parse(&format!("{rg}/rg/{a}/x/")).is_ok(), "a trailing slash is fine");
        assert!(Endpoint::SecureScores { sub: Uuid::nil() }.allows(&Method::HEAD));
        assert!(is_arm_path("/SUBSCRIPTIONS/x") && is_arm_path("//providers"));
        assert!(!is_arm_path("/whatever") && !is_arm_path("/"));
    }
}
