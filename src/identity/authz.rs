//! Authorization (RBAC), apart from authentication: Azure's built-in roles (their GUIDs, and
//! their actions as far as this API goes), the [`Need`] of a request as plain data, and the check.
//!
//! Security note: least privilege by default — a principal with no role assignment can do nothing
//! but read the tenant-level catalogue (definitions, assessment metadata), and `GET /subscriptions`
//! lists only the subscriptions it holds a role on. Assignments exist at `/`,
//! `/providers/Microsoft.Management/managementGroups/{group}` and `/subscriptions/{id}`, and are
//! inherited below their scope: an assignment at a management group covers the groups nested
//! in it, their subscriptions and everything in those. What a request is about is a [`Target`]:
//! a subscription (or none) and the management groups it lies below, as the API computes them
//! from its cached hierarchy. Roles are matched with Azure's
//! `Actions`/`NotActions` wildcards, case-insensitively.

use uuid::Uuid;

use crate::store::valid_group_name;
use crate::store::RoleAssignment;

pub struct RoleDef {
    pub id: Uuid,
    pub name: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

/// Azure's role definitions (docs/ARM.md). One place for each role's permissions.
pub const ROLES: &[RoleDef] = &[
    RoleDef {
        id: uuid::uuid!("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        name: "Owner",
        actions: &["*"],
        not_actions: &[],
    },
    RoleDef {
        id: uuid::uuid!("b24988ac-6180-42a0-ab88-20f7382dd24c"),
        name: "Contributor",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    },
    RoleDef {
        id: uuid::uuid!("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        name: "Reader",
        actions: &["*/read"],
        not_actions: &[],
    },
    RoleDef {
        id: uuid::uuid!("fb1c8493-542b-48eb-b624-b4c8fea62acd"),
        name: "Security Admin",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Management/managementGroups/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Security/*",
        ],
        not_actions: &[],
    },
    RoleDef {
        id: uuid::uuid!("39bc4728-0917-49c7-9d2c-d95423bc2eb4"),
        name: "Security Reader",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Management/managementGroups/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Security/*/read",
        ],
        not_actions: &[],
    },
    RoleDef {
        // Azure's role grants Microsoft.Security/assessments/*; docs/ARM.md decides that all six
        // roles read the scores, so it reads Microsoft.Security too.
        id: uuid::uuid!("612c2aa1-cb24-443b-ac28-3ab7272de6f5"),
        name: "Security Assessment Contributor",
        actions: &[
            "Microsoft.Security/assessments/*",
            "Microsoft.Security/*/read",
            "Microsoft.Resources/subscriptions/read",
        ],
        not_actions: &[],
    },
];

pub const OWNER: Uuid = uuid::uuid!("8e3af657-a8ff-443c-a75c-2fe8c4bcb635");
pub const READER: Uuid = uuid::uuid!("acdd72a7-3385-48ef-bd42-f606fba81ae7");

/// The action of administering the server (principals, role assignments, keys, subscriptions,
/// bulk import): Azure's role assignment write, which only Owner holds; checked at `/`.
pub const ADMIN_ACTION: &str = "Microsoft.Authorization/roleAssignments/write";
pub const SUBSCRIPTION_READ: &str = "Microsoft.Resources/subscriptions/read";
pub const SCORE_READ: &str = "Microsoft.Security/secureScores/read";

/// A role by name (case-insensitive, spaces optional) or by GUID (bare or as an ARM id).
pub fn role(name_or_id: &str) -> Option<&'static RoleDef> {
    let text = name_or_id.trim();
    let last = text.rsplit('/').next().unwrap_or(text);
    if let Ok(id) = Uuid::parse_str(last) {
        return ROLES.iter().find(|r| r.id == id);
    }
    let squash =
        |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    ROLES.iter().find(|r| squash(r.name) == squash(text))
}

pub fn role_by_id(id: Uuid) -> Option<&'static RoleDef> {
    ROLES.iter().find(|r| r.id == id)
}

/// Azure's wildcard match: `*` matches any run of characters; case-insensitive.
fn matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == a;
    }
    let mut rest = a.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

impl RoleDef {
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|p| matches(p, action))
            && !self.not_actions.iter().any(|p| matches(p, action))
    }
}

/// The prefix of a management group scope.
pub const GROUP_SCOPE: &str = "/providers/Microsoft.Management/managementGroups/";

/// What a request is about, for authorization: a subscription (`None`: a tenant-level or
/// management group target) and the lowercase names of the management groups it lies below,
/// nearest first (a group target lists itself first).
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub subscription: Option<Uuid>,
    pub groups: &'a [String],
}

/// Normalise a role assignment scope: `/`, `/subscriptions/{lowercase guid}` or
/// `/providers/Microsoft.Management/managementGroups/{lowercase name}`.
pub fn parse_scope(scope: &str) -> Option<String> {
    let trimmed = scope.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Some("/".into());
    }
    let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        [s, id] if s.eq_ignore_ascii_case("subscriptions") => {
            Uuid::parse_str(id).ok().map(|id| format!("/subscriptions/{id}"))
        }
        [p, ns, t, g]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Management")
                && t.eq_ignore_ascii_case("managementGroups")
                && valid_group_name(g) =>
        {
            Some(format!("{GROUP_SCOPE}{}", g.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// Does an assignment at `scope` cover `subscription` (`None`: the root `/`)? Without the
/// subscription's groups: see [`covers_target`].
pub fn covers(scope: &str, subscription: Option<Uuid>) -> bool {
    covers_target(scope, &Target { subscription, groups: &[] })
}

/// Does an assignment at `scope` cover `target`: the root, the target's subscription, or a
/// management group the target lies below? The one decision of inheritance.
pub fn covers_target(scope: &str, target: &Target<'_>) -> bool {
    if scope == "/" {
        return true;
    }
    if let Some(group) = scope.strip_prefix(GROUP_SCOPE) {
        return target.groups.iter().any(|g| g.eq_ignore_ascii_case(group));
    }
    target.subscription.is_some_and(|s| scope == format!("/subscriptions/{s}"))
}

/// Is `action` granted over `subscription` (or `/`) by any of `assignments`?
pub fn granted(assignments: &[RoleAssignment], action: &str, subscription: Option<Uuid>) -> bool {
    granted_at(assignments, action, &Target { subscription, groups: &[] })
}

/// Is `action` granted over `target` by any of `assignments`?
pub fn granted_at(assignments: &[RoleAssignment], action: &str, target: &Target<'_>) -> bool {
    assignments.iter().any(|a| {
        covers_target(&a.scope, target)
            && role_by_id(a.role_definition_id).is_some_and(|r| r.allows(action))
    })
}

/// What one request needs, as the API works it out from its endpoint and method.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Any valid token: the tenant-level catalogue and `/tenants`.
    Authenticated,
    /// `GET /subscriptions`: any token; the list shows only the subscriptions the principal has a role on.
    ListSubscriptions,
    /// `action` over `scope` (reported in a 403) within `subscription`.
    Action { action: &'static str, subscription: Uuid, scope: String },
    /// `action` over `scope` at a management group (its name as requested).
    GroupAction { action: &'static str, group: String, scope: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn can(role_name: &str, action: &str) -> bool {
        role(role_name).unwrap().allows(action)
    }

    #[test]
    fn roles_grant_what_docs_arm_says() {
        let reads = [
            "Microsoft.Security/secureScores/read",
            "Microsoft.Security/secureScores/secureScoreControls/read",
            "Microsoft.Security/secureScoreControls/read",
            "Microsoft.Security/secureScoreControlDefinitions/read",
            "Microsoft.Security/assessments/read",
        ];
        for r in ROLES {
            for a in reads {
                assert!(r.allows(a), "{} reads {a}", r.name);
            }
        }
        for a in ["Microsoft.Security/assessments/write", "Microsoft.Security/assessments/delete"] {
            for r in ["Owner", "Contributor", "Security Admin", "Security Assessment Contributor"] {
                assert!(can(r, a), "{r} may {a}");
            }
            for r in ["Reader", "Security Reader"] {
                assert!(!can(r, a), "{r} may not {a}");
            }
        }
        assert!(can("owner", ADMIN_ACTION));
        for r in [
            "Contributor",
            "Reader",
            "SecurityAdmin",
            "Security Reader",
            "Security Assessment Contributor",
        ] {
            assert!(!can(r, ADMIN_ACTION), "{r} does not administer");
        }
        assert_eq!(role("acdd72a7-3385-48ef-bd42-f606fba81ae7").unwrap().name, "Reader");
        assert_eq!(
            role("/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635").unwrap().name,
            "Owner"
        );
        assert!(role("Janitor").is_none());
    }

    #[test]
    fn scopes_and_inheritance() {
        let s = Uuid::new_v4();
        assert_eq!(parse_scope("/"), Some("/".into()));
        assert_eq!(
            parse_scope(&format!("/Subscriptions/{}/", s.to_string().to_uppercase())),
            Some(format!("/subscriptions/{s}"))
        );
        assert_eq!(parse_scope("/subscriptions/x"), None);
        assert_eq!(parse_scope("/subscriptions/x/resourceGroups/y"), None);
        assert!(covers("/", Some(s)) && covers("/", None));
        assert!(covers(&format!("/subscriptions/{s}"), Some(s)));
        assert!(!covers(&format!("/subscriptions/{s}"), Some(Uuid::new_v4())));
        assert!(!covers(&format!("/subscriptions/{s}"), None));
        let g = parse_scope("/providers/microsoft.management/managementGroups/Parent/").unwrap();
        assert_eq!(g, "/providers/Microsoft.Management/managementGroups/parent");
        assert_eq!(parse_scope("/providers/Microsoft.Management/managementGroups/a b"), None);
        let chain = ["child".to_string(), "parent".to_string()];
        let below = Target { subscription: Some(s), groups: &chain };
        assert!(covers_target(&g, &below), "a group covers what lies below it");
        assert!(!covers(&g, Some(s)), "without the ancestry nothing is inherited");
        let elsewhere = Target { subscription: Some(s), groups: &["other".to_string()] };
        assert!(!covers_target(&g, &elsewhere));
    }

    #[test]
    fn wildcards() {
        assert!(matches("*/read", "Microsoft.Security/secureScores/read"));
        assert!(!matches("*/read", "Microsoft.Security/assessments/write"));
        assert!(matches("Microsoft.Security/*", "microsoft.security/assessments/write"));
        assert!(matches(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!matches("Microsoft.Security/*/read", "Microsoft.Security/assessments/write"));
    }
}
