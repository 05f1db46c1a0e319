//! Identity records in the store: principals (service principals and users of the built-in
//! authority), Azure role assignments and the default tenant, with the engine trait for them.
//! The trait is a supertrait of [`super::engine::Engine`] (every engine implements both); engines
//! implement it beside their other SQL (both SQL engines: `store::sql::identity`), so the arrows go
//! engine → here and sqlite → here, never back.

use anyhow::{bail, Result};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;

/// The meta row holding the tenant id: the default tenant, and the name of the root management
/// group (SQL that resolves the hierarchy reads it there).
pub(crate) const TENANT_META: &str = "default_tenant";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PrincipalKind {
    /// An application signing in with client credentials.
    ServicePrincipal,
    /// A person signing in on the sign-in page (implicit flow) or with the password grant.
    User,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ServicePrincipal => "ServicePrincipal",
            PrincipalKind::User => "User",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ServicePrincipal" => Ok(PrincipalKind::ServicePrincipal),
            "User" => Ok(PrincipalKind::User),
            other => bail!("stored principal kind '{other}' is not a kind"),
        }
    }
}

/// A principal of the built-in authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// The object id (`oid` of its tokens).
    pub id: Uuid,
    pub kind: PrincipalKind,
    pub display_name: String,
    /// Client id (`appid`) of a service principal.
    pub app_id: Option<Uuid>,
    /// Lowercase user principal name of a user.
    pub user_name: Option<String>,
    pub tenant_id: Uuid,
    /// The salted hash of the secret or password (never the secret itself).
    pub secret_hash: String,
    pub created_at: OffsetDateTime,
}

/// A role granted to a principal (by object id) at `/` or `/subscriptions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub id: Uuid,
    /// An object id: a local principal's or one issued by a trusted external authority.
    pub principal_id: String,
    pub role_definition_id: Uuid,
    /// `/` or `/subscriptions/{lowercase guid}`.
    pub scope: String,
    pub created_at: OffsetDateTime,
}

/// A pending authorization code of the sign-in flow, as stored: what the authorization request
/// bound it to and whom it signs in (`identity::code_flow` decides what that means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    /// The code's digest (the code itself is never stored).
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub principal_id: Uuid,
    pub audience: String,
    pub nonce: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// How a principal is looked up.
#[derive(Debug, Clone, Copy)]
pub enum PrincipalKey<'a> {
    Id(Uuid),
    AppId(Uuid),
    UserName(&'a str),
}

#[async_trait]
pub(crate) trait IdentityEngine: Send + Sync + 'static {
    /// Insert a principal; an error when its id, client id or user name is taken.
    async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()>;
    async fn principal(&self, key: PrincipalKey<'_>) -> Result<Option<PrincipalRecord>>;
    async fn principals(&self) -> Result<Vec<PrincipalRecord>>;
    /// Remove a principal and its role assignments; false when it did not exist.
    async fn remove_principal(&self, id: Uuid) -> Result<bool>;
    async fn set_secret_hash(&self, id: Uuid, hash: &str) -> Result<bool>;

    /// Insert an assignment unless the same (principal, role, scope) exists; returns the one in force.
    async fn put_role_assignment(&self, a: &RoleAssignment) -> Result<(RoleAssignment, bool)>;
    async fn role_assignments(&self, principal_id: Option<&str>) -> Result<Vec<RoleAssignment>>;
    async fn remove_role_assignment(&self, id: Uuid) -> Result<bool>;

    /// Keep a pending code, and drop those expired at `now`.
    async fn put_code(&self, code: &PendingCode, now: OffsetDateTime) -> Result<()>;
    /// Remove a pending code and return it: each code is taken at most once, by one process.
    async fn take_code(&self, code_hash: &str) -> Result<Option<PendingCode>>;
}

/// Identity operations of the one store handle.
impl Store {
    /// The tenant of subscriptions and principals created without one, fixed per data directory.
    pub async fn default_tenant(&self) -> Result<Uuid> {
        let text = self.meta_or_init(TENANT_META, || Uuid::new_v4().to_string()).await?;
        Ok(Uuid::parse_str(&text)?)
    }

    pub async fn put_code(&self, code: &PendingCode) -> Result<()> {
        self.engine().put_code(code, OffsetDateTime::now_utc()).await
    }

    pub async fn take_code(&self, code_hash: &str) -> Result<Option<PendingCode>> {
        self.engine().take_code(code_hash).await
    }

    pub async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()> {
        self.engine().insert_principal(p).await
    }

    pub async fn principal(&self, key: PrincipalKey<'_>) -> Result<Option<PrincipalRecord>> {
        self.engine().principal(key).await
    }

    pub async fn principals(&self) -> Result<Vec<PrincipalRecord>> {
        self.engine().principals().await
    }

    pub async fn remove_principal(&self, id: Uuid) -> Result<bool> {
        self.engine().remove_principal(id).await
    }

    pub async fn set_secret_hash(&self, id: Uuid, hash: &str) -> Result<bool> {
        self.engine().set_secret_hash(id, hash).await
    }

    /// Grant a role; `(assignment, created)` — the existing one when the same grant exists.
    pub async fn put_role_assignment(&self, a: &RoleAssignment) -> Result<(RoleAssignment, bool)> {
        self.engine().put_role_assignment(a).await
    }

    /// All assignments, or a principal's (by object id, lowercase).
    pub async fn role_assignments(
        &self,
        principal_id: Option<&str>,
    ) -> Result<Vec<RoleAssignment>> {
        self.engine().role_assignments(principal_id).await
    }

    pub async fn remove_role_assignment(&self, id: Uuid) -> Result<bool> {
        self.engine().remove_role_assignment(id).await
    }

    /// The engine's write counter (identity caches compare it to notice writes of other processes).
    pub async fn generation(&self) -> Result<i64> {
        self.engine().generation().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[tokio::test]
    async fn principals_and_assignments_round_trip() {
        let store = Store::open(&StoreConfig::Memory).await.unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let p = PrincipalRecord {
            id: Uuid::new_v4(),
            kind: PrincipalKind::ServicePrincipal,
            display_name: "ci".into(),
            app_id: Some(Uuid::new_v4()),
            user_name: None,
            tenant_id: Uuid::new_v4(),
            secret_hash: "sha256$a$b".into(),
            created_at: now,
        };
        let g0 = store.generation().await.unwrap();
        store.insert_principal(&p).await.unwrap();
        assert!(store.generation().await.unwrap() > g0);
        assert!(store.insert_principal(&p).await.is_err(), "duplicate ids are refused");
        assert_eq!(
            store.principal(PrincipalKey::AppId(p.app_id.unwrap())).await.unwrap(),
            Some(p.clone())
        );
        let a = RoleAssignment {
            id: Uuid::new_v4(),
            principal_id: p.id.to_string(),
            role_definition_id: Uuid::new_v4(),
            scope: "/".into(),
            created_at: now,
        };
        assert!(store.put_role_assignment(&a).await.unwrap().1);
        let again = RoleAssignment { id: Uuid::new_v4(), ..a.clone() };
        assert_eq!(store.put_role_assignment(&again).await.unwrap(), (a.clone(), false));
        assert_eq!(store.role_assignments(Some(&p.id.to_string())).await.unwrap(), vec![a]);
        assert!(store.remove_principal(p.id).await.unwrap());
        assert!(
            store.role_assignments(None).await.unwrap().is_empty(),
            "assignments go with their principal"
        );
    }
}
