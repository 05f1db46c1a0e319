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
use crate::store::Scope;

/// Authenticate and authorize one ARM request, before its handler runs. The subscription comes
/// from the cached read model: authorization must not cost a database read per request.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    endpoint: &Endpoint,
    method: &Method,
) -> ApiResult<Principal> {
    let mut need = need(endpoint, method, uri.path());
    // Creating a group is write access to its parent, which only the body names: the handler
    // checks it (`api::management_groups`); here only the caller's identity.
    if let (Need::GroupAction { action: GROUPS_WRITE, group, .. }, &Method::PUT) = (&need, method) {
        if state.store.hierarchy().await?.key_of(group).is_none() {
            need = Need::Authenticated;
        }
    }
    let view = match &need {
        Need::Action { subscription, .. } => state.store.view(*subscription).await?,
        _ => None,
    };
    // The management groups above the target, from the store's cached hierarchy.
    let groups = match &need {
        Need::Action { subscription, .. } => {
            state.store.hierarchy().await?.ancestors_of_subscription(*subscription)
        }
        Need::GroupAction { group, .. } => state.store.hierarchy().await?.chain_of(group),
        _ => Vec::new(),
    };
    state.identity.authorize(headers, &need, view.as_ref().map(|v| &v.subscription), &groups).await
}

// Management group actions (Microsoft.Management): not part of the Microsoft.Security
// operations list, which lists only that provider's own operations.
pub const GROUPS_READ: &str = "Microsoft.Management/managementGroups/read";
pub const GROUPS_WRITE: &str = "Microsoft.Management/managementGroups/write";
pub const GROUPS_DELETE: &str = "Microsoft.Management/managementGroups/delete";
pub const GROUP_DESCENDANTS_READ: &str = "Microsoft.Management/managementGroups/descendants/read";
pub const GROUP_SUBSCRIPTIONS_READ: &str =
    "Microsoft.Management/managementGroups/subscriptions/read";
pub const GROUP_SUBSCRIPTIONS_WRITE: &str =
    "Microsoft.Management/managementGroups/subscriptions/write";
pub const GROUP_SUBSCRIPTIONS_DELETE: &str =
    "Microsoft.Management/managementGroups/subscriptions/delete";

/// One operation of `Microsoft.Security` this server serves: the RBAC action a request needs and
/// how the operations list (`GET /providers/Microsoft.Security/operations`) describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The action, as roles and the operations list name it.
    pub name: &'static str,
    /// Display name of the resource type the action applies to.
    pub resource: &'static str,
    /// Short display name of the action.
    pub operation: &'static str,
    pub description: &'static str,
}

const fn op(
    name: &'static str,
    resource: &'static str,
    operation: &'static str,
    description: &'static str,
) -> Operation {
    Operation { name, resource, operation, description }
}

const SCORES_READ: Operation = op(
    authz::SCORE_READ,
    "Secure Score",
    "Get secure scores",
    "Reads the secure scores of a subscription",
);
pub(super) const SCORE_CONTROLS_READ: Operation = op(
    "Microsoft.Security/secureScores/secureScoreControls/read",
    "Secure Score Controls",
    "Get the controls of a secure score",
    "Reads the security controls of one secure score, with their scores",
);
const CONTROLS_READ: Operation = op(
    "Microsoft.Security/secureScoreControls/read",
    "Secure Score Controls",
    "Get secure score controls",
    "Reads the security controls of a subscription, with their scores",
);
const DEFINITIONS_READ: Operation = op(
    "Microsoft.Security/secureScoreControlDefinitions/read",
    "Secure Score Control Definitions",
    "Get secure score control definitions",
    "Reads the definitions of the security controls",
);
pub(super) const ASSESSMENTS_READ: Operation = op(
    "Microsoft.Security/assessments/read",
    "Security Assessments",
    "Get security assessments",
    "Reads the security assessments of a scope or resource",
);
const ASSESSMENTS_WRITE: Operation = op(
    "Microsoft.Security/assessments/write",
    "Security Assessments",
    "Create or update a security assessment",
    "Creates or updates the security assessment of a resource",
);
const ASSESSMENTS_DELETE: Operation = op(
    "Microsoft.Security/assessments/delete",
    "Security Assessments",
    "Delete a security assessment",
    "Deletes the security assessment of a resource",
);
const METADATA_READ: Operation = op(
    "Microsoft.Security/assessmentMetadata/read",
    "Security Assessment Metadata",
    "Get security assessment metadata",
    "Reads the metadata of built-in and custom security assessments",
);
const METADATA_WRITE: Operation = op(
    "Microsoft.Security/assessmentMetadata/write",
    "Security Assessment Metadata",
    "Create or update security assessment metadata",
    "Creates or updates the metadata of a custom security assessment of a subscription",
);
const METADATA_DELETE: Operation = op(
    "Microsoft.Security/assessmentMetadata/delete",
    "Security Assessment Metadata",
    "Delete security assessment metadata",
    "Deletes the metadata of a custom security assessment of a subscription",
);
const SUB_ASSESSMENTS_READ: Operation = op(
    "Microsoft.Security/assessments/subAssessments/read",
    "Security Sub-Assessments",
    "Get security sub-assessments",
    "Reads the sub-assessments (individual findings) of security assessments",
);
// Azure defines only the read action; write and delete name this server's extension.
const SUB_ASSESSMENTS_WRITE: Operation = op(
    "Microsoft.Security/assessments/subAssessments/write",
    "Security Sub-Assessments",
    "Create or update a security sub-assessment",
    "Creates or updates a sub-assessment of a security assessment (an extension of this server)",
);
const SUB_ASSESSMENTS_DELETE: Operation = op(
    "Microsoft.Security/assessments/subAssessments/delete",
    "Security Sub-Assessments",
    "Delete a security sub-assessment",
    "Deletes a sub-assessment of a security assessment (an extension of this server)",
);
const AUTOMATIONS_READ: Operation = op(
    "Microsoft.Security/automations/read",
    "Security Automations",
    "Get security automations",
    "Reads the security automations (continuous export) of a subscription or resource group",
);
const AUTOMATIONS_WRITE: Operation = op(
    "Microsoft.Security/automations/write",
    "Security Automations",
    "Create, update or validate a security automation",
    "Creates, updates or validates a security automation (continuous export)",
);
const AUTOMATIONS_DELETE: Operation = op(
    "Microsoft.Security/automations/delete",
    "Security Automations",
    "Delete a security automation",
    "Deletes a security automation (continuous export)",
);
const OPERATIONS_READ: Operation = op(
    "Microsoft.Security/operations/read",
    "Operations",
    "Get operations",
    "Lists the operations of the Microsoft.Security provider",
);

/// Every `Microsoft.Security` operation served, in the order the operations list shows them. The
/// actions [`need`] asks for come from these entries, so the list cannot drift from what is served.
pub const OPERATIONS: &[Operation] = &[
    SCORES_READ,
    SCORE_CONTROLS_READ,
    CONTROLS_READ,
    DEFINITIONS_READ,
    ASSESSMENTS_READ,
    ASSESSMENTS_WRITE,
    ASSESSMENTS_DELETE,
    METADATA_READ,
    METADATA_WRITE,
    METADATA_DELETE,
    SUB_ASSESSMENTS_READ,
    SUB_ASSESSMENTS_WRITE,
    SUB_ASSESSMENTS_DELETE,
    AUTOMATIONS_READ,
    AUTOMATIONS_WRITE,
    AUTOMATIONS_DELETE,
    OPERATIONS_READ,
];

/// The (action, scope) of an ARM request, from its endpoint and method. `path` is the request
/// path, which ARM names as the scope in its 403 messages.
pub fn need(endpoint: &Endpoint, method: &Method, path: &str) -> Need {
    let scope = path.trim_end_matches('/').to_string();
    let write = |read: Operation, write: Operation, delete: Operation| match *method {
        Method::PUT => write.name,
        Method::DELETE => delete.name,
        _ => read.name,
    };
    let (action, subscription) = match endpoint {
        // Tenant-level reads of public data: any signed-in caller (Azure grants them to all).
        Endpoint::Definitions
        | Endpoint::MetadataList
        | Endpoint::Metadata { .. }
        | Endpoint::Operations
        | Endpoint::Tenants => return Need::Authenticated,
        // Resource Graph (`Microsoft.ResourceGraph/resources/read`, outside the Microsoft.Security
        // list): like Azure, every signed-in caller may query; each row is then filtered by the
        // read action of its own resource (`api::resource_graph`).
        Endpoint::ResourceGraph => return Need::Authenticated,
        Endpoint::Subscriptions => return Need::ListSubscriptions,
        Endpoint::Subscription { sub } => (authz::SUBSCRIPTION_READ, *sub),
        Endpoint::SecureScores { sub } | Endpoint::SecureScore { sub, .. } => {
            (SCORES_READ.name, *sub)
        }
        Endpoint::SecureScoreControls { sub, .. } => (SCORE_CONTROLS_READ.name, *sub),
        Endpoint::Controls { sub } => (CONTROLS_READ.name, *sub),
        Endpoint::SubscriptionDefinitions { sub } => (DEFINITIONS_READ.name, *sub),
        Endpoint::Assessments { scope } => (ASSESSMENTS_READ.name, scope.subscription()),
        Endpoint::Assessment { resource, .. } => (
            write(ASSESSMENTS_READ, ASSESSMENTS_WRITE, ASSESSMENTS_DELETE),
            resource.subscription(),
        ),
        Endpoint::SubAssessmentsAll { scope } | Endpoint::SubAssessments { scope, .. } => {
            (SUB_ASSESSMENTS_READ.name, scope.subscription())
        }
        Endpoint::SubAssessment { resource, .. } => (
            write(SUB_ASSESSMENTS_READ, SUB_ASSESSMENTS_WRITE, SUB_ASSESSMENTS_DELETE),
            resource.subscription(),
        ),
        Endpoint::Automations { sub, .. } => (AUTOMATIONS_READ.name, *sub),
        Endpoint::Automation { sub, .. } => match *method {
            Method::PUT | Method::PATCH => (AUTOMATIONS_WRITE.name, *sub),
            Method::DELETE => (AUTOMATIONS_DELETE.name, *sub),
            _ => (AUTOMATIONS_READ.name, *sub),
        },
        // Validation reads the body's secrets like a write would: the write action.
        Endpoint::AutomationValidate { sub, .. } => (AUTOMATIONS_WRITE.name, *sub),
        Endpoint::SubscriptionMetadataList { sub } => (METADATA_READ.name, *sub),
        Endpoint::SubscriptionMetadata { sub, .. } => {
            (write(METADATA_READ, METADATA_WRITE, METADATA_DELETE), *sub)
        }
        // Management groups and the scopes around them (`api::management_groups`).
        Endpoint::ManagementGroups => return Need::Authenticated,
        Endpoint::ManagementGroup { group } => {
            let action = match *method {
                Method::PUT | Method::PATCH => GROUPS_WRITE,
                Method::DELETE => GROUPS_DELETE,
                _ => GROUPS_READ,
            };
            return Need::GroupAction { action, group: group.clone(), scope };
        }
        Endpoint::ManagementGroupDescendants { group } => {
            return Need::GroupAction {
                action: GROUP_DESCENDANTS_READ,
                group: group.clone(),
                scope,
            }
        }
        Endpoint::ManagementGroupSubscriptions { group } => {
            return Need::GroupAction {
                action: GROUP_SUBSCRIPTIONS_READ,
                group: group.clone(),
                scope,
            }
        }
        Endpoint::ManagementGroupSubscription { group, .. } => {
            let action = match *method {
                Method::PUT => GROUP_SUBSCRIPTIONS_WRITE,
                Method::DELETE => GROUP_SUBSCRIPTIONS_DELETE,
                _ => GROUP_SUBSCRIPTIONS_READ,
            };
            return Need::GroupAction { action, group: group.clone(), scope };
        }
        Endpoint::ScopedSecureScores { scope: target }
        | Endpoint::ScopedSecureScore { scope: target, .. }
        | Endpoint::ScopedControls { scope: target, .. } => {
            let action = match endpoint {
                Endpoint::ScopedControls { score: Some(_), .. } => SCORE_CONTROLS_READ.name,
                Endpoint::ScopedControls { score: None, .. } => CONTROLS_READ.name,
                _ => SCORES_READ.name,
            };
            match target {
                Scope::Subscription(s) | Scope::ResourceGroup(s, _) => (action, *s),
                Scope::ManagementGroup(group) => {
                    return Need::GroupAction { action, group: group.clone(), scope }
                }
            }
        }
        Endpoint::GroupAssessments { group } => {
            return Need::GroupAction { action: ASSESSMENTS_READ.name, group: group.clone(), scope }
        }
        Endpoint::GroupSubAssessments { group, .. } => {
            return Need::GroupAction {
                action: SUB_ASSESSMENTS_READ.name,
                group: group.clone(),
                scope,
            }
        }
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
    let rest = path.strip_prefix(super::scope::PREFIX).unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // Issue 11. Exemptions: any valid token here; the handlers check the action over the
    // exemption's scope, which for a PUT is in the body. Improvements and changes: reads of the
    // subscription's scores.
    match segs.as_slice() {
        ["exemptions", ..] => {
            return identity.authorize(headers, &Need::Authenticated, None, &[]).await
        }
        ["subscriptions", id, "improvements", ..] | ["subscriptions", id, "changes"]
            if *method == Method::GET =>
        {
            let sub = parse_subscription_id(id)?;
            return identity.require(headers, authz::SCORE_READ, Some(sub)).await;
        }
        _ => {}
    }
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
            let tree = state.store.hierarchy().await?;
            for id in ids {
                let groups = tree.ancestors_of_subscription(id);
                let target = authz::Target { subscription: Some(id), groups: &groups };
                if !principal.can_at(authz::SCORE_READ, &target) {
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

    #[test]
    fn management_group_requests_need_management_actions_over_the_group() {
        let g = "/providers/Microsoft.Management/managementGroups/Prod";
        let group_need =
            |method: Method, path: &str, version: &str| match need_of(method, path, version) {
                Need::GroupAction { action, group, scope } => (action, group, scope),
                other => panic!("{path} needs a group action, not {other:?}"),
            };
        for (method, want) in [
            (Method::GET, GROUPS_READ),
            (Method::PUT, GROUPS_WRITE),
            (Method::PATCH, GROUPS_WRITE),
            (Method::DELETE, GROUPS_DELETE),
        ] {
            assert_eq!(
                group_need(method, g, "2021-04-01"),
                (want, "Prod".to_string(), g.to_string())
            );
        }
        let s = format!("{g}/subscriptions/{SUB}");
        assert_eq!(group_need(Method::PUT, &s, "2021-04-01").0, GROUP_SUBSCRIPTIONS_WRITE);
        assert_eq!(group_need(Method::DELETE, &s, "2021-04-01").0, GROUP_SUBSCRIPTIONS_DELETE);
        let score = format!("{g}/providers/Microsoft.Security/secureScores/ascScore");
        assert_eq!(group_need(Method::GET, &score, "2020-01-01").0, authz::SCORE_READ);
        let list = format!("{g}/providers/Microsoft.Security/assessments");
        assert_eq!(group_need(Method::GET, &list, "2021-06-01").0, ASSESSMENTS_READ.name);
        // A resource group's score is a read of the subscription's scores.
        let rg = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Security/secureScores"
        );
        assert_eq!(action_of(Method::GET, &rg, "2020-01-01").0, authz::SCORE_READ);
        assert_eq!(
            need_of(Method::GET, "/providers/Microsoft.Management/managementGroups", "2021-04-01"),
            Need::Authenticated
        );
        // Readers read groups; Security Reader too (as in Azure); only writers write them.
        let role = |name: &str| crate::identity::authz::role(name).expect("a built-in role");
        for r in ["Reader", "Security Reader", "Security Admin", "Owner", "Contributor"] {
            assert!(role(r).allows(GROUPS_READ), "{r}");
        }
        for r in ["Reader", "Security Reader", "Security Admin"] {
            assert!(!role(r).allows(GROUPS_WRITE), "{r}");
        }
    }

    /// The operations list and authorization read one table: every Microsoft.Security action a
    /// request can need is listed, and every listed action is one some request needs (the list's
    /// own read aside, which any signed-in caller may do).
    #[test]
    fn the_operations_table_is_what_authorization_asks_for() {
        let rg = format!("/subscriptions/{SUB}/resourceGroups/rg");
        let paths = [
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScores"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScores/ascScore"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScores/ascScore/secureScoreControls"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScoreControls"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScoreControlDefinitions"),
            format!("{rg}/providers/Microsoft.Security/assessments"),
            format!("{rg}/providers/Microsoft.Security/assessments/a1"),
            format!("{rg}/providers/Microsoft.Security/subAssessments"),
            format!("{rg}/providers/Microsoft.Security/assessments/a1/subAssessments"),
            format!("{rg}/providers/Microsoft.Security/assessments/a1/subAssessments/s1"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/assessmentMetadata"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/assessmentMetadata/m1"),
            "/providers/Microsoft.Security/operations".to_string(),
            "/providers/Microsoft.Security/assessmentMetadata".to_string(),
            format!("/subscriptions/{SUB}"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Security/automations"),
            format!("{rg}/providers/Microsoft.Security/automations/a1"),
        ];
        let mut asked = std::collections::BTreeSet::new();
        for path in &paths {
            let endpoint = Endpoint::parse(path, "2020-01-01").expect("a known path");
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                if !endpoint.allows(&method) {
                    continue;
                }
                if let Need::Action { action, .. } = need(&endpoint, &method, path) {
                    if action.starts_with("Microsoft.Security/") {
                        assert!(
                            OPERATIONS.iter().any(|o| o.name == action),
                            "{method} {path} needs {action}, which the operations list lacks"
                        );
                        asked.insert(action);
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<&str> =
            OPERATIONS.iter().map(|o| o.name).filter(|n| *n != OPERATIONS_READ.name).collect();
        assert_eq!(asked, listed);
        let unique: std::collections::BTreeSet<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        assert_eq!(unique.len(), OPERATIONS.len(), "each operation once");
    }
}
