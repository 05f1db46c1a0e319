//! Identity storage in either SQL engine: principals and role assignments (the trait and records
//! are [`crate::store::identity`]'s). Every write is announced like all others.

use anyhow::{Context, Result};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{query, query_as, write_one, SqlBackend, WriteTx};
use crate::arm::{format_time, parse_time};
use crate::store::identity::{
    IdentityEngine, PendingCode, PrincipalKey, PrincipalKind, PrincipalRecord, RoleAssignment,
};

const PRINCIPAL_COLUMNS: &str =
    "id, kind, display_name, app_id, user_name, tenant_id, secret_hash, created_at";
const ASSIGNMENT_COLUMNS: &str = "id, principal_id, role_definition_id, scope, created_at";
const CODE_COLUMNS: &str =
    "code_hash, client_id, redirect_uri, challenge, principal_id, audience, nonce, expires_at";

/// An `authorization_codes` row as stored.
#[derive(sqlx::FromRow)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    principal_id: String,
    audience: String,
    nonce: Option<String>,
    expires_at: String,
}

impl TryFrom<CodeRow> for PendingCode {
    type Error = anyhow::Error;
    fn try_from(row: CodeRow) -> Result<Self> {
        Ok(PendingCode {
            principal_id: Uuid::parse_str(&row.principal_id).with_context(|| {
                format!("stored principal_id '{}' is not a GUID", row.principal_id)
            })?,
            expires_at: parse_time(&row.expires_at)?,
            code_hash: row.code_hash,
            client_id: row.client_id,
            redirect_uri: row.redirect_uri,
            challenge: row.challenge,
            audience: row.audience,
            nonce: row.nonce,
        })
    }
}

/// A `principals` row as stored (GUIDs and times as text).
#[derive(sqlx::FromRow)]
struct PrincipalRow {
    id: String,
    kind: String,
    display_name: String,
    app_id: Option<String>,
    user_name: Option<String>,
    tenant_id: String,
    secret_hash: String,
    created_at: String,
}

fn guid(column: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("stored {column} '{text}' is not a GUID"))
}

impl TryFrom<PrincipalRow> for PrincipalRecord {
    type Error = anyhow::Error;

    fn try_from(row: PrincipalRow) -> Result<Self> {
        Ok(PrincipalRecord {
            id: guid("id", &row.id)?,
            kind: PrincipalKind::parse(&row.kind)?,
            display_name: row.display_name,
            app_id: row.app_id.as_deref().map(|a| guid("app_id", a)).transpose()?,
            user_name: row.user_name,
            tenant_id: guid("tenant_id", &row.tenant_id)?,
            secret_hash: row.secret_hash,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

/// A `role_assignments` row as stored.
#[derive(sqlx::FromRow)]
struct AssignmentRow {
    id: String,
    principal_id: String,
    role_definition_id: String,
    scope: String,
    created_at: String,
}

impl TryFrom<AssignmentRow> for RoleAssignment {
    type Error = anyhow::Error;

    fn try_from(row: AssignmentRow) -> Result<Self> {
        Ok(RoleAssignment {
            id: guid("id", &row.id)?,
            principal_id: row.principal_id,
            role_definition_id: guid("role_definition_id", &row.role_definition_id)?,
            scope: row.scope,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

#[async_trait]
impl<B: SqlBackend> IdentityEngine for B {
    async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        query(format!(
            "INSERT INTO principals ({PRINCIPAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(p.id.to_string())
        .bind(p.kind.as_str())
        .bind(&p.display_name)
        .bind(p.app_id.map(|a| a.to_string()))
        .bind(p.user_name.as_deref().map(str::to_lowercase))
        .bind(p.tenant_id.to_string())
        .bind(&p.secret_hash)
        .bind(format_time(p.created_at))
        .execute(tx.conn())
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                anyhow::anyhow!("a principal with this id, client id or user name exists already")
            }
            other => other.into(),
        })?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(())
    }

    async fn principal(&self, key: PrincipalKey<'_>) -> Result<Option<PrincipalRecord>> {
        let (column, value) = match key {
            PrincipalKey::Id(id) => ("id", id.to_string()),
            PrincipalKey::AppId(id) => ("app_id", id.to_string()),
            PrincipalKey::UserName(name) => ("user_name", name.to_lowercase()),
        };
        query_as::<PrincipalRow>(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(self.reader())
        .await?
        .map(PrincipalRecord::try_from)
        .transpose()
    }

    async fn principals(&self) -> Result<Vec<PrincipalRecord>> {
        query_as::<PrincipalRow>(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY created_at, id"
        ))
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(PrincipalRecord::try_from)
        .collect()
    }

    async fn remove_principal(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = id.to_string();
        query("DELETE FROM role_assignments WHERE principal_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        let done =
            query("DELETE FROM principals WHERE id = $1").bind(&id).execute(tx.conn()).await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_secret_hash(&self, id: Uuid, hash: &str) -> Result<bool> {
        let statement = query("UPDATE principals SET secret_hash = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(hash);
        Ok(write_one(self, None, statement).await? > 0)
    }

    async fn put_role_assignment(&self, a: &RoleAssignment) -> Result<(RoleAssignment, bool)> {
        let mut tx = self.write_tx().await?;
        let existing = query_as::<AssignmentRow>(format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments \
             WHERE principal_id = $1 AND role_definition_id = $2 AND scope = $3"
        ))
        .bind(&a.principal_id)
        .bind(a.role_definition_id.to_string())
        .bind(&a.scope)
        .fetch_optional(tx.conn())
        .await?
        .map(RoleAssignment::try_from)
        .transpose()?;
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
        query(format!(
            "INSERT INTO role_assignments ({ASSIGNMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(a.id.to_string())
        .bind(&a.principal_id)
        .bind(a.role_definition_id.to_string())
        .bind(&a.scope)
        .bind(format_time(a.created_at))
        .execute(tx.conn())
        .await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok((a.clone(), true))
    }

    async fn role_assignments(&self, principal_id: Option<&str>) -> Result<Vec<RoleAssignment>> {
        let rows = match principal_id {
            Some(p) => {
                query_as::<AssignmentRow>(format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments WHERE principal_id = $1 ORDER BY scope, id"
                ))
                .bind(p)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                query_as::<AssignmentRow>(format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM role_assignments ORDER BY principal_id, scope, id"
                ))
                .fetch_all(self.reader())
                .await?
            }
        };
        rows.into_iter().map(RoleAssignment::try_from).collect()
    }

    async fn remove_role_assignment(&self, id: Uuid) -> Result<bool> {
        let statement = query("DELETE FROM role_assignments WHERE id = $1").bind(id.to_string());
        Ok(write_one(self, None, statement).await? > 0)
    }

    // Codes are never cached by any process: their writes are not announced (an announcement
    // would make every replica drop its read models for a sign-in).
    async fn put_code(&self, code: &PendingCode, now: OffsetDateTime) -> Result<()> {
        let mut tx = self.write_tx().await?;
        query("DELETE FROM authorization_codes WHERE expires_at <= $1")
            .bind(format_time(now))
            .execute(tx.conn())
            .await?;
        query(format!(
            "INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.challenge)
        .bind(code.principal_id.to_string())
        .bind(&code.audience)
        .bind(&code.nonce)
        .bind(format_time(code.expires_at))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn take_code(&self, code_hash: &str) -> Result<Option<PendingCode>> {
        let mut tx = self.write_tx().await?;
        let row = query_as::<CodeRow>(format!(
            "DELETE FROM authorization_codes WHERE code_hash = $1 RETURNING {CODE_COLUMNS}"
        ))
        .bind(code_hash)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        row.map(PendingCode::try_from).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteEngine;

    /// A damaged row is an error naming the column, never a panic or a made-up value.
    #[tokio::test]
    async fn damaged_rows_are_errors_that_name_the_column() {
        let engine = SqliteEngine::memory(Default::default()).await.unwrap();
        query(format!(
            "INSERT INTO principals ({PRINCIPAL_COLUMNS}) VALUES \
             ('not-a-guid', 'User', 'x', NULL, 'x@example', '6d5ba1c5-0000-4000-8000-000000000000', 'h', '2026-01-01T00:00:00Z')"
        ))
        .execute(super::super::Conn::SqlitePool(&engine.pool))
        .await
        .unwrap();
        let err = engine.principals().await.unwrap_err();
        assert!(format!("{err:#}").contains("stored id 'not-a-guid' is not a GUID"), "{err:#}");

        query("DELETE FROM principals")
            .execute(super::super::Conn::SqlitePool(&engine.pool))
            .await
            .unwrap();
        query(format!(
            "INSERT INTO role_assignments ({ASSIGNMENT_COLUMNS}) VALUES \
             ('6d5ba1c5-0000-4000-8000-000000000001', 'p', 'owner', '/', '2026-01-01T00:00:00Z')"
        ))
        .execute(super::super::Conn::SqlitePool(&engine.pool))
        .await
        .unwrap();
        let err = engine.role_assignments(Some("p")).await.unwrap_err();
        assert!(format!("{err:#}").contains("role_definition_id 'owner'"), "{err:#}");
    }
}
