//! The API's side of authorization: what each request needs (an action over a scope, worked out
//! from its [`Endpoint`] or extension path) — identity then decides, from plain data, whether the
//! caller has it. The ARM dispatcher calls [`authorize`]; [`guard_ext`] is the layer in front of
//! the extension API.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, Endpoint};
use crate::arm::{parse_subscription_id, ApiResult};
use crate::identity::{authz, Need, Principal};

const SUB_ASSESSMENT_READ: &str = "Microsoft.Security/assessments/subAssessments/read";

/// Authenticate and authorize one ARM request, before its handler runs. The subscription comes
/// from the cached read model: authorization must not cost a database read per request.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    endpoint: &Endpoint,
    method: &Method,
) -> ApiResult<Principal> {
    let need = need(endpoint, method, uri.path());
    let view = match &need {
        Need::Action { subscription, .. } => state.store.view(*subscription).await?,
        _ => None,
    };
    state.identity.authorize(headers, &need, view.as_ref().map(|v| &v.subscription)).await
}

/// The (action, scope) of an ARM request, from its endpoint and method. `path` is the request
/// path, which ARM names as the scope in its 403 messages.
pub fn need(endpoint: &Endpoint, method: &Method, path: &str) -> Need {
    let scope = path.trim_end_matches('/').to_string();
    let write = |read: &'static str, write: &'static str, delete: &'static str| match *method {
        Method::PUT => write,
        Method::DELETE => delete,
        _ => read,
    };
    let (action, subscription) = match endpoint {
        Endpoint::Definitions
        | Endpoint::MetadataList
        | Endpoint::Metadata { .. }
        | Endpoint::Tenants => return Need::Authenticated,
        Endpoint::Subscriptions => return Need::ListSubscriptions,
        Endpoint::Subscription { sub } => (authz::SUBSCRIPTION_READ, *sub),
        Endpoint::SecureScores { sub } | Endpoint::SecureScore { sub, .. } => {
            (authz::SCORE_READ, *sub)
        }
        Endpoint::SecureScoreControls { sub, .. } => {
            ("Microsoft.Security/secureScores/secureScoreControls/read", *sub)
        }
        Endpoint::Controls { sub } => ("Microsoft.Security/secureScoreControls/read", *sub),
        Endpoint::SubscriptionDefinitions { sub } => {
            ("Microsoft.Security/secureScoreControlDefinitions/read", *sub)
        }
        Endpoint::Assessments { scope } => {
            ("Microsoft.Security/assessments/read", scope.subscription())
        }
        Endpoint::Assessment { resource, .. } => (
            write(
                "Microsoft.Security/assessments/read",
                "Microsoft.Security/assessments/write",
                "Microsoft.Security/assessments/delete",
            ),
            resource.subscription(),
        ),
        Endpoint::SubAssessmentsAll { scope } | Endpoint::SubAssessments { scope, .. } => {
            (SUB_ASSESSMENT_READ, scope.subscription())
        }
        // Azure defines only the read action; write and delete name this server's extension.
        Endpoint::SubAssessment { resource, .. } => (
            write(
                SUB_ASSESSMENT_READ,
                "Microsoft.Security/assessments/subAssessments/write",
                "Microsoft.Security/assessments/subAssessments/delete",
            ),
            resource.subscription(),
        ),
        Endpoint::SubscriptionMetadataList { sub } => {
            ("Microsoft.Security/assessmentMetadata/read", *sub)
        }
        Endpoint::SubscriptionMetadata { sub, .. } => (
            write(
                "Microsoft.Security/assessmentMetadata/read",
                "Microsoft.Security/assessmentMetadata/write",
                "Microsoft.Security/assessmentMetadata/delete",
            ),
            *sub,
        ),
    };
    Need::Action { action, subscription, scope }
}

/// The layer in front of the extension API's existing routes: reads of one subscription need read
/// access to it; everything else is administration (Owner at `/`).
pub async fn guard_ext(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Owned parts: a request body is not Sync, so no reference to the request may cross an await.
    let (method, uri, headers) =
        (request.method().clone(), request.uri().clone(), request.headers().clone());
    match ext_principal(&state, &method, &uri, &headers).await {
        Ok(p) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn ext_principal(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Principal> {
    let identity = &state.identity;
    let path = uri.path().trim_end_matches('/');
    let rest = path.strip_prefix(super::ext::PREFIX).unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if *method != Method::GET {
        return identity.require(headers, authz::ADMIN_ACTION, None).await;
    }
    match segs.as_slice() {
        ["subscriptions"] => identity.require(headers, authz::SUBSCRIPTION_READ, None).await,
        ["subscriptions", id] => {
            let sub = parse_subscription_id(id)?;
            identity.require(headers, authz::SUBSCRIPTION_READ, Some(sub)).await
        }
        ["subscriptions", id, "history"] => {
            let sub = parse_subscription_id(id)?;
            identity.require(headers, authz::SCORE_READ, Some(sub)).await
        }
        ["aggregate"] => {
            let ids = super::ext::aggregate_subscriptions(state, uri.query()).await?;
            let principal =
                identity.require(headers, authz::SCORE_READ, ids.first().copied()).await?;
            for id in ids {
                if !principal.can(authz::SCORE_READ, Some(id)) {
                    return Err(
                        principal.forbidden(authz::SCORE_READ, &format!("/subscriptions/{id}"))
                    );
                }
            }
            Ok(principal)
        }
        _ => identity.require(headers, authz::ADMIN_ACTION, None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";

    fn need_of(method: Method, path: &str, version: &str) -> Need {
        let endpoint = Endpoint::parse(path, version).expect("a known path");
        need(&endpoint, &method, path)
    }

    fn action_of(method: Method, path: &str, version: &str) -> (&'static str, String, String) {
        match need_of(method, path, version) {
            Need::Action { action, subscription, scope } => {
                (action, subscription.to_string(), scope)
            }
            other => panic!("{path} needs an action, not {other:?}"),
        }
    }

    #[test]
    fn sub_assessments_need_their_actions_and_roles_split_read_from_write() {
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        );
        let one = format!("{vm}/providers/Microsoft.Security/assessments/a/subAssessments/s");
        let v = "2019-01-01-preview";
        let read = "Microsoft.Security/assessments/subAssessments/read";
        assert_eq!(action_of(Method::GET, &one, v), (read, SUB.to_string(), one.clone()));
        let all = format!("/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments");
        assert_eq!(action_of(Method::GET, &all, v).0, read);
        let write = action_of(Method::PUT, &one, v).0;
        let delete = action_of(Method::DELETE, &one, v).0;
        let role = |name: &str| crate::identity::authz::role(name).expect("a built-in role");
        for r in ["Reader", "Security Reader", "Security Assessment Contributor", "Owner"] {
            assert!(role(r).allows(read), "{r} reads sub-assessments");
        }
        for a in [write, delete] {
            assert!(role("Security Assessment Contributor").allows(a), "{a}");
            assert!(role("Security Admin").allows(a), "{a}");
            assert!(!role("Reader").allows(a) && !role("Security Reader").allows(a), "{a}");
        }
    }

    #[test]
    fn each_request_needs_azures_action_over_its_path() {
        assert_eq!(
            need_of(
                Method::GET,
                "/providers/Microsoft.Security/secureScoreControlDefinitions",
                "2020-01-01"
            ),
            Need::Authenticated
        );
        assert_eq!(need_of(Method::GET, "/subscriptions", "2022-12-01"), Need::ListSubscriptions);

        let score =
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScores/ascScore/");
        let (action, sub, scope) = action_of(Method::GET, &score, "2020-01-01");
        assert_eq!((action, sub.as_str()), (authz::SCORE_READ, SUB));
        assert_eq!(scope, score.trim_end_matches('/'), "ARM names the path without its last slash");

        let assessment = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Security/assessments/a1"
        );
        for (method, want) in [
            (Method::GET, "Microsoft.Security/assessments/read"),
            (Method::PUT, "Microsoft.Security/assessments/write"),
            (Method::DELETE, "Microsoft.Security/assessments/delete"),
        ] {
            let (action, sub, scope) = action_of(method.clone(), &assessment, "2021-06-01");
            assert_eq!((action, sub.as_str()), (want, SUB), "{method}");
            assert_eq!(scope, assessment);
        }
    }
}
