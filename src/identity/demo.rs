//! The demo principals of `serve --demo`: a service principal of the demo tenant with Owner on the
//! demo subscription, and a demo *user* with Reader there (who signs in to the dashboard with a
//! user name and password), whose credentials are written to `DATA_DIR/demo-credentials.json`
//! (0600) so that the SDK, az, curl and a person at the dashboard can sign in at once. The file is the source of truth across restarts:
//! the same client id and secret keep working (also with `--memory`, where the database is new).
//! Replicas on a shared database keep them in the database instead (the meta row
//! [`CREDENTIALS_META`]): every replica started with `--demo` then serves the same demo principal.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{authz, keys, secret};
use crate::demo::DEMO_SUBSCRIPTION;
use crate::store::{PrincipalKey, PrincipalKind, PrincipalRecord, RoleAssignment, Store};

pub const CREDENTIALS_FILE: &str = "demo-credentials.json";
/// The meta row holding the demo credentials on a shared database.
pub const CREDENTIALS_META: &str = "demo_credentials";
pub const DEMO_PRINCIPAL_NAME: &str = "securescore-demo";
/// The demo user's sign-in name.
pub const DEMO_USER_NAME: &str = "demo@securescore.local";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoCredentials {
    pub tenant_id: Uuid,
    pub client_id: Uuid,
    pub client_secret: String,
    pub subscription_id: Uuid,
    /// The demo user (files written before there was one lack it: a password is then generated).
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub user_password: String,
}

/// Read `DIR/demo-credentials.json`, if there is one.
pub fn read(dir: &Path) -> Result<Option<DemoCredentials>> {
    let path = dir.join(CREDENTIALS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a demo credentials file", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The demo credentials in force: a shared database's, else the data directory's file.
pub async fn read_for(store: &Store, dir: Option<&Path>) -> Result<Option<DemoCredentials>> {
    if store.is_shared() {
        return match store.meta(CREDENTIALS_META).await? {
            Some(text) => Ok(Some(
                serde_json::from_str(&text)
                    .context("the database's demo credentials are not readable")?,
            )),
            None => Ok(None),
        };
    }
    match dir {
        Some(d) => read(d),
        None => Ok(None),
    }
}

/// Make sure the demo principal exists with Owner on the demo subscription; its credentials.
pub async fn ensure(store: &Store, tenant: Uuid, dir: Option<&Path>) -> Result<DemoCredentials> {
    let mut known = read_for(store, dir).await?;
    if known.is_none() && store.is_shared() {
        // Replicas starting together agree on one set: the first to write it wins.
        let candidate = DemoCredentials {
            tenant_id: tenant,
            client_id: Uuid::new_v4(),
            client_secret: secret::generate(),
            subscription_id: DEMO_SUBSCRIPTION,
            user_name: DEMO_USER_NAME.into(),
            user_password: secret::generate(),
        };
        let text = serde_json::to_string(&candidate)?;
        let in_force = store.set_meta_if_absent(CREDENTIALS_META, &text).await?;
        known = Some(serde_json::from_str(&in_force)?);
    }
    let (client_id, client_secret) = match &known {
        Some(c) => (c.client_id, c.client_secret.clone()),
        None => (Uuid::new_v4(), secret::generate()),
    };
    let principal = match store.principal(PrincipalKey::AppId(client_id)).await? {
        Some(p) => {
            if !secret::verify(&client_secret, &p.secret_hash) {
                store.set_secret_hash(p.id, &secret::hash(&client_secret)).await?;
            }
            p
        }
        None => {
            let p = PrincipalRecord {
                id: Uuid::new_v4(),
                kind: PrincipalKind::ServicePrincipal,
                display_name: DEMO_PRINCIPAL_NAME.into(),
                app_id: Some(client_id),
                user_name: None,
                tenant_id: tenant,
                secret_hash: secret::hash(&client_secret),
                created_at: OffsetDateTime::now_utc(),
            };
            store.insert_principal(&p).await?;
            p
        }
    };
    store
        .put_role_assignment(&RoleAssignment {
            id: Uuid::new_v4(),
            principal_id: principal.id.to_string(),
            role_definition_id: authz::OWNER,
            scope: format!("/subscriptions/{DEMO_SUBSCRIPTION}"),
            created_at: OffsetDateTime::now_utc(),
        })
        .await?;
    let user_password = known
        .as_ref()
        .map(|c| c.user_password.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(secret::generate);
    ensure_user(store, tenant, &user_password).await?;
    let credentials = DemoCredentials {
        tenant_id: principal.tenant_id,
        client_id,
        client_secret,
        subscription_id: DEMO_SUBSCRIPTION,
        user_name: DEMO_USER_NAME.into(),
        user_password,
    };
    if let Some(dir) = dir {
        if known.as_ref() != Some(&credentials) {
            keys::write_private(
                &dir.join(CREDENTIALS_FILE),
                &serde_json::to_vec_pretty(&credentials)?,
            )?;
        }
    }
    Ok(credentials)
}

/// The demo user with `password` and Reader on the demo subscription: it sees everything the
/// dashboard shows and can change nothing (a write answers 403, as a Reader's does in Azure).
async fn ensure_user(store: &Store, tenant: Uuid, password: &str) -> Result<()> {
    let user = match store.principal(PrincipalKey::UserName(DEMO_USER_NAME)).await? {
        Some(p) => {
            if !secret::verify(password, &p.secret_hash) {
                store.set_secret_hash(p.id, &secret::hash(password)).await?;
            }
            p
        }
        None => {
            let p = PrincipalRecord {
                id: Uuid::new_v4(),
                kind: PrincipalKind::User,
                display_name: "Demo User".into(),
                app_id: None,
                user_name: Some(DEMO_USER_NAME.into()),
                tenant_id: tenant,
                secret_hash: secret::hash(password),
                created_at: OffsetDateTime::now_utc(),
            };
            store.insert_principal(&p).await?;
            p
        }
    };
    store
        .put_role_assignment(&RoleAssignment {
            id: Uuid::new_v4(),
            principal_id: user.id.to_string(),
            role_definition_id: authz::READER,
            scope: format!("/subscriptions/{DEMO_SUBSCRIPTION}"),
            created_at: OffsetDateTime::now_utc(),
        })
        .await?;
    Ok(())
}
