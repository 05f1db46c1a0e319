//! Identity records in the store: principals (service principals and users of the built-in
//! authority) and Azure role assignments. The engine side is a sibling of [`super::engine::Engine`]
//! (every engine implements both); the SQLite implementation lives here too, so that identity
//! storage is one file to read. Every write bumps the generation counter like all other writes.

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sqlite::{bump_generation, SqliteEngine};
use super::Store;
use crate::arm::{format_time, parse_time};

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
}

const PRINCIPAL_COLUMNS: &str =
    "id, kind, display_name, app_id, user_name, tenant_id, secret_hash, created_at";
const ASSIGNMENT_COLUMNS: &str = "id, principal_id, role_definition_id, scope, created_at";

fn principal_from_row(row: &SqliteRow) -> Result<PrincipalRecord> {
    let uuid = |col: &str| -> Result<Uuid> {
        let text: String = row.try_get(col)?;
        Uuid::parse_str(&text).with_context(|| format!("stored {col} '{text}' is not a GUID"))
    };
    let app_id: Option<String> = row.try_get("app_id")?;
    Ok(PrincipalRecord {
        id: uuid("id")?,
        kind: PrincipalKind::parse(row.try_get("kind")?)?,
        display_name: row.try_get("display_name")?,
        app_id: app_id.map(|a| Uuid::parse_str(&a)).transpose()?,
        user_name: row.try_get("user_name")?,
        tenant_id: uuid("tenant_id")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: parse_time(row.try_get("created_at")?)?,
    })
}

fn assignment_from_row(row: &SqliteRow) -> Result<RoleAssignment> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role_definition_id")?;
    Ok(RoleAssignment {
        id: Uuid::parse_str(&id)?,
        principal_id: row.try_get("principal_id")?,
        role_definition_id: Uuid::parse_str(&role)?,
        scope: row.try_get("scope")?,
        created_at: parse_time(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl IdentityEngine for SqliteEngine {
    async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!(
            "INSERT INTO principals ({PRINCIPAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(p.id.to_string())
        .bind(p.kind.as_str())
        .bind(&p.display_name)
        .bind(p.app_id.map(|a| a.to_string()))
        .bind(p.user_name.as_deref().map(str::to_lowercase))
        .bind(p.tenant_id.to_string())
        .bind(&p.secret_hash)
        .bind(format_time(p.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                anyhow::anyhow!("a principal with this id, client id or user name exists already")
            }
            other => other.into(),
        })?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn principal(&self, key: PrincipalKey<'_>) -> Result<Option<PrincipalRecord>> {
        let (column, value) = match key {
            PrincipalKey::Id(id) => ("id", id.to_string()),
            PrincipalKey::AppId(id) => ("app_id", id.to_string()),
            PrincipalKey::UserName(name) => ("user_name", name.to_lowercase()),
        };
        sqlx::query(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE {column} = ?1"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| principal_from_row(&row))
            .transpose()
    }

    async fn principals(&self) -> Result<Vec<PrincipalRecord>> {
        sqlx::query(&format!("SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(principal_from_row)
            .collect()
    }

    async fn remove_principal(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = id.to_string();
        sqlx::query("DELETE FROM role_assignments WHERE principal_id = ?1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query("DELETE FROM principals WHERE id = ?1").bind(&id).execute(&mut *tx).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_secret_hash(&self, id: Uuid, hash: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE principals SET secret_hash = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_role_assignment(&self, a: &RoleAssignment) -> Result<(RoleAssignment, bool)> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments \
             WHERE principal_id = ?1 AND role_definition_id = ?2 AND scope = ?3"
        ))
        .bind(&a.principal_id)
        .bind(a.role_definition_id.to_string())
        .bind(&a.scope)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| assignment_from_row(&row))
        .transpose()?;
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
        sqlx::query(&format!(
            "INSERT INTO role_assignments ({ASSIGNMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
        ))
        .bind(a.id.to_string())
        .bind(&a.principal_id)
        .bind(a.role_definition_id.to_string())
        .bind(&a.scope)
        .bind(format_time(a.created_at))
        .execute(&mut *tx)
        .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok((a.clone(), true))
    }

    async fn role_assignments(&self, principal_id: Option<&str>) -> Result<Vec<RoleAssignment>> {
        let rows = match principal_id {
            Some(p) => {
                sqlx::query(&format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments WHERE principal_id = ?1 ORDER BY scope, id"
                ))
                .bind(p)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments ORDER BY principal_id, scope, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(assignment_from_row).collect()
    }

    async fn remove_role_assignment(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM role_assignments WHERE id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Identity operations of the one store handle.
impl Store {
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
