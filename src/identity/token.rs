//! Access tokens of the built-in authority: RS256 JWTs with Entra-like claims, 3599 s.

use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use uuid::Uuid;

use super::keys::KeyRing;
pub use super::keys::{CLOCK_SKEW_SECS, TOKEN_LIFETIME_SECS};
use crate::store::{PrincipalKind, PrincipalRecord};

/// The audience tokens are issued for unless the client asks for another allowed one.
pub const DEFAULT_AUDIENCE: &str = "https://management.azure.com/";
/// The audiences ARM accepts (docs/ARM.md); compared after normalising the trailing slash.
pub const ALLOWED_AUDIENCES: [&str; 4] = [
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

/// The allowed audience `resource` names, in its canonical form (with the trailing slash).
pub fn normalise_audience(resource: &str) -> Option<&'static str> {
    let trimmed = resource.trim().trim_end_matches('/');
    ["https://management.core.windows.net/", "https://management.azure.com/"]
        .into_iter()
        .find(|a| a.trim_end_matches('/').eq_ignore_ascii_case(trimmed))
}

/// What a token is issued for.
pub struct Grant<'a> {
    pub principal: &'a PrincipalRecord,
    /// The issuing authority: the server's public URL, e.g. `https://127.0.0.1:8443` (the issuer is
    /// `{authority}/{tid}/v2.0`, the only form the server accepts for its own keys).
    pub authority: &'a str,
    pub audience: &'a str,
    /// The requesting application (client credentials: the principal itself; implicit flow: the SPA).
    pub client_id: Option<Uuid>,
    /// Overrides the principal's tenant (the CLI's `token --tenant`).
    pub tenant: Option<Uuid>,
}

/// Sign an access token; `(token, expires_in)`.
pub fn issue(keys: &KeyRing, grant: &Grant<'_>) -> Result<(String, i64)> {
    let key = keys.current()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let p = grant.principal;
    let tid = grant.tenant.unwrap_or(p.tenant_id);
    let iss = format!("{}/{tid}/v2.0", grant.authority.trim_end_matches('/'));
    let appid = grant.client_id.or(p.app_id).unwrap_or(p.id).to_string();
    let mut claims = json!({
        "aud": grant.audience,
        "iss": iss,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_SECS,
        "appid": appid,
        "azp": appid,
        "appidacr": "1",
        "idp": iss,
        "oid": p.id.to_string(),
        "sub": p.id.to_string(),
        "tid": tid.to_string(),
        "uti": URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
        "ver": "2.0",
    });
    if let Value::Object(map) = &mut claims {
        match p.kind {
            PrincipalKind::ServicePrincipal => {
                map.insert("idtyp".into(), json!("app"));
                map.insert("roles".into(), json!([]));
            }
            PrincipalKind::User => {
                let upn = p.user_name.clone().unwrap_or_default();
                map.insert("idtyp".into(), json!("user"));
                map.insert("scp".into(), json!("user_impersonation"));
                map.insert("name".into(), json!(p.display_name));
                map.insert("upn".into(), json!(upn));
                map.insert("unique_name".into(), json!(upn));
            }
        }
    }
    Ok((key.sign_claims(&claims)?, TOKEN_LIFETIME_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_normalised() {
        assert_eq!(
            normalise_audience("https://management.azure.com"),
            Some("https://management.azure.com/")
        );
        assert_eq!(
            normalise_audience("https://management.azure.com//"),
            Some("https://management.azure.com/")
        );
        assert_eq!(
            normalise_audience("https://management.core.windows.net/"),
            Some("https://management.core.windows.net/")
        );
        assert_eq!(normalise_audience("https://graph.microsoft.com/"), None);
    }
}
