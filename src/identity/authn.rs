//! Authentication: who sent an ARM request, from its bearer token, validated as docs/ARM.md says.
//!
//! Security note: RS256 only — `none`, HS* and every other algorithm are refused before any key
//! is looked at, so a public key can never be used as an HMAC secret. The key is chosen by `kid`:
//! the built-in authority's ring (re-read once if the kid is unknown: another process may have
//! rotated), else the JWKS of the trusted external authority that `iss` names. Then `exp`/`nbf`
//! (5 minutes of skew), the issuer (the built-in authority's tokens: exactly
//! `{public URL}/{tid}/v2.0`), the audience and a principal claim. `jsonwebtoken` does the JWT
//! work (header, signature, times); this module decides the order and ARM's answers. Each
//! failure has its own ARM code, message and `error_description`; nothing about the server's keys
//! leaks into them.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;
use time::OffsetDateTime;

use super::token::{normalise_audience, ALLOWED_AUDIENCES, CLOCK_SKEW_SECS};
use super::Identity;

/// Why a request is not authenticated: the ARM code, the message, and the challenge's description.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthFailure {
    pub code: &'static str,
    pub message: String,
    pub description: String,
}

pub const INVALID_TOKEN_MESSAGE: &str = "The access token is invalid.";

impl AuthFailure {
    fn invalid(description: impl Into<String>) -> Self {
        AuthFailure {
            code: "InvalidAuthenticationToken",
            message: INVALID_TOKEN_MESSAGE.into(),
            description: description.into(),
        }
    }

    pub fn missing_header() -> Self {
        AuthFailure {
            code: "AuthenticationFailed",
            message: "Authentication failed. The 'Authorization' header is missing.".into(),
            description: "The authentication failed because of missing 'Authorization' header."
                .into(),
        }
    }

    pub fn bad_header() -> Self {
        AuthFailure {
            code: "AuthenticationFailed",
            message: "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
            description: "The 'Authorization' header must be 'Bearer <access token>'.".into(),
        }
    }

    /// The token's tenant is not the subscription's.
    pub fn wrong_tenant(iss: &str, expected_tenant: &str, authority: &str) -> Self {
        AuthFailure {
            code: "InvalidAuthenticationTokenTenant",
            message: format!(
                "The access token is from the wrong issuer '{iss}'. It must match the tenant \
                 'https://sts.windows.net/{expected_tenant}/' associated with this subscription. Please use the \
                 authority (URL) '{authority}/{expected_tenant}' to get the token. Note, if the subscription is \
                 transferred to another tenant there is no impact to the services, but information about new \
                 tenant could take time to propagate (up to an hour). If you just transferred your subscription \
                 and see this error message, please try back later."
            ),
            description: format!("The access token's tenant is not the subscription's tenant '{expected_tenant}'."),
        }
    }
}

/// A validated token's principal.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    /// `oid`, else `puid`, else `altsecid`; lowercase.
    pub object_id: String,
    /// `tid`.
    pub tenant: String,
    pub issuer: String,
    /// `upn` of a user, else `appid`/`azp` of an application (ARM's 403 names it).
    pub client: String,
}

/// ARM's time format in its messages: `M/d/yyyy h:mm:ss tt`, UTC.
pub fn arm_time(unix: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else { return unix.to_string() };
    let (h, pm) = match t.hour() {
        0 => (12, false),
        h @ 1..=11 => (h, false),
        12 => (12, true),
        h => (h - 12, true),
    };
    format!(
        "{}/{}/{} {}:{:02}:{:02} {}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        h,
        t.minute(),
        t.second(),
        if pm { "PM" } else { "AM" }
    )
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthFailure> {
    let value = header.ok_or_else(AuthFailure::missing_header)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(AuthFailure::bad_header)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("Bearer") || token.is_empty() {
        return Err(AuthFailure::bad_header());
    }
    Ok(token)
}

/// Three dot-separated, non-empty base64url segments (what `--auth any` accepts).
pub fn well_formed(token: &str) -> bool {
    let segs: Vec<&str> = token.split('.').collect();
    segs.len() == 3
        && segs.iter().all(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The claims of a JWT-shaped token, unverified (for `--auth any`'s best-effort principal, and to
/// find the key of a token before its signature is checked).
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token).ok().map(|t| t.claims)
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn num_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// Whose key signed a token: the built-in authority's, or a trusted external authority's (which
/// already matched the token's `iss` when its key was chosen).
enum Signer {
    Ours,
    External,
}

/// How many verified tokens are remembered. A token is ~1.3 KB, so this bounds the cache to a
/// few megabytes; a client reuses its token for an hour, so a few thousand covers every client a
/// single server sees at once, and a flood of distinct tokens only evicts (each still verified).
pub const TOKEN_CACHE_ENTRIES: usize = 4096;

/// Tokens of the built-in authority whose signature and claims were verified, keyed by the
/// token's bytes, so that a client's repeated requests skip the RSA verification (≈ 40 µs, the
/// largest cost of a small GET). `quick_cache` rather than a map of our own: it is bounded and
/// evicts by itself, and is concurrent without a global lock.
///
/// An entry is used only while the token is within its time (`exp` plus the clock skew, the
/// same bound `jsonwebtoken` applies, checked against the clock on every hit) and while the
/// key ring is the one it was verified with ([`super::keys::KeyRing::generation`]): a rotation,
/// another process's change of the key file or another replica's of the shared ring makes every
/// entry verify again, so a token dies with its key. Tokens of external authorities are not
/// cached: their keys change with a JWKS this server does not watch.
pub struct TokenCache {
    entries: quick_cache::sync::Cache<Box<str>, Arc<Verified>>,
}

struct Verified {
    who: TokenIdentity,
    /// The last second (unix) at which the token is still accepted: `exp` + skew.
    valid_until: i64,
    /// The key ring's generation it was verified under.
    generation: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache { entries: quick_cache::sync::Cache::new(TOKEN_CACHE_ENTRIES) }
    }
}

impl TokenCache {
    fn get(&self, token: &str, generation: u64, now: i64) -> Option<TokenIdentity> {
        let hit = self.entries.get(token)?;
        (hit.generation == generation && now <= hit.valid_until).then(|| hit.who.clone())
    }

    fn put(&self, token: &str, who: &TokenIdentity, exp: i64, generation: u64) {
        let valid_until = exp.saturating_add(CLOCK_SKEW_SECS);
        let entry = Verified { who: who.clone(), valid_until, generation };
        self.entries.insert(token.into(), Arc::new(entry));
    }

    #[cfg(test)]
    pub(crate) fn get_for_tests(
        &self,
        token: &str,
        generation: u64,
        now: i64,
    ) -> Option<TokenIdentity> {
        self.get(token, generation, now)
    }

    #[cfg(test)]
    pub(crate) fn put_for_tests(
        &self,
        token: &str,
        who: &TokenIdentity,
        exp: i64,
        generation: u64,
    ) {
        self.put(token, who, exp, generation)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Validate a bearer token: from the cache of verified tokens when it is there and still
/// valid, else in full (and then cached).
pub async fn validate(identity: &Identity, token: &str) -> Result<TokenIdentity, AuthFailure> {
    // Read before any key is looked at (see KeyRing::generation).
    let generation = identity.keys.generation();
    if let Some(who) = identity.tokens.get(token, generation, now_secs()) {
        return Ok(who);
    }
    let (who, exp, signer) = verify(identity, token).await?;
    if matches!(signer, Signer::Ours) {
        identity.tokens.put(token, &who, exp, generation);
    }
    Ok(who)
}

/// Validate a bearer token in full: the identity, its `exp` and whose key signed it.
async fn verify(
    identity: &Identity,
    token: &str,
) -> Result<(TokenIdentity, i64, Signer), AuthFailure> {
    // RS256 only, decided on the header before any key is looked at. A header that does not
    // parse names no algorithm this server knows (`none` among them).
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        AuthFailure::invalid(
            "The access token is not a JWT signed with an accepted algorithm: tokens must be signed with RS256.",
        )
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(AuthFailure::invalid(format!(
            "The token's signing algorithm '{:?}' is not accepted: tokens must be signed with RS256.",
            header.alg
        )));
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AuthFailure::invalid("The token's header has no 'kid'."))?;
    let unverified = unverified_claims(token)
        .ok_or_else(|| AuthFailure::invalid("The token's payload is not a JSON object."))?;
    let iss = str_claim(&unverified, "iss").unwrap_or("").to_string();
    let tid = str_claim(&unverified, "tid").unwrap_or("").to_string();

    // The key: ours by kid, else the external authority the issuer names.
    let (key, signer): (Arc<DecodingKey>, Signer) = match identity.keys.find_or_reload(&kid) {
        Some(k) => (Arc::new(k.decoding.clone()), Signer::Ours),
        None => (external_key(identity, &iss, &tid, &kid).await?, Signer::External),
    };
    // The signature first, then the times (with the skew); the audience is checked below, where
    // its failure gets ARM's own message.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = CLOCK_SKEW_SECS.unsigned_abs();
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return Err(time_or_signature_failure(e.kind(), &unverified)),
    };

    let iss = str_claim(&claims, "iss").unwrap_or("").to_string();
    let tid = str_claim(&claims, "tid")
        .ok_or_else(|| AuthFailure::invalid("The token has no 'tid' claim."))?;
    // The built-in authority's tokens name exactly the configured public URL; an issuer naming
    // any other host (a `Host` header of an attacker's choosing, say) is not ours.
    let expected = format!("{}/{tid}/v2.0", identity.public_url);
    if matches!(signer, Signer::Ours) && iss != expected {
        return Err(AuthFailure {
            code: "InvalidAuthenticationTokenTenant",
            message: format!(
                "The access token is from the wrong issuer '{iss}'. It must be '{expected}' (this server's \
                 authority) or the issuer of a trusted authority."
            ),
            description: "The access token's issuer is not of a trusted authority or does not match its tenant.".into(),
        });
    }
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => a.clone(),
        Some(Value::Array(list)) => {
            list.iter().filter_map(Value::as_str).next().unwrap_or("").to_string()
        }
        _ => String::new(),
    };
    if normalise_audience(&aud).is_none() {
        return Err(AuthFailure {
            code: "InvalidAuthenticationTokenAudience",
            message: format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match \
                 with one of the allowed audiences '{}'.",
                ALLOWED_AUDIENCES.join("','")
            ),
            description: "The access token's audience is not Azure Resource Manager.".into(),
        });
    }
    let object_id = ["oid", "puid", "altsecid"]
        .iter()
        .find_map(|c| str_claim(&claims, c))
        .ok_or_else(|| AuthFailure::invalid("The token has none of the claims 'oid', 'puid', 'altsecid' that identify its principal."))?
        .to_ascii_lowercase();
    let client = ["upn", "unique_name", "appid", "azp"]
        .iter()
        .find_map(|c| str_claim(&claims, c))
        .unwrap_or(&object_id)
        .to_string();
    // Required above (`set_required_spec_claims`), so present and numeric.
    let exp = num_claim(&claims, "exp").unwrap_or(0);
    Ok((
        TokenIdentity { object_id, tenant: tid.to_ascii_lowercase(), issuer: iss, client },
        exp,
        signer,
    ))
}

/// The 401 of a token `jsonwebtoken` refused: expired and not-yet-valid tokens get ARM's messages
/// (with the times of the token, whose signature was checked before its times), anything else is
/// an invalid token.
fn time_or_signature_failure(kind: &ErrorKind, claims: &Map<String, Value>) -> AuthFailure {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match kind {
        ErrorKind::ExpiredSignature => AuthFailure {
            code: "ExpiredAuthenticationToken",
            message: format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                arm_time(num_claim(claims, "exp").unwrap_or(0)),
                arm_time(now)
            ),
            description: "The access token has expired.".into(),
        },
        ErrorKind::ImmatureSignature => AuthFailure {
            code: "InvalidAuthenticationToken",
            message: format!(
                "The access token is not yet valid: its 'not before' UTC time '{}' is later than current UTC time '{}'.",
                arm_time(num_claim(claims, "nbf").unwrap_or(0)),
                arm_time(now)
            ),
            description: "The access token is not yet valid.".into(),
        },
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthFailure::invalid(format!("The token has no '{claim}' claim."))
        }
        ErrorKind::InvalidSignature => AuthFailure::invalid("The token's signature is invalid."),
        _ => AuthFailure::invalid("The token is not valid: its signature or claims do not verify."),
    }
}

async fn external_key(
    identity: &Identity,
    iss: &str,
    tid: &str,
    kid: &str,
) -> Result<Arc<DecodingKey>, AuthFailure> {
    let unknown = || {
        AuthFailure::invalid("The token's signing key is not one of a trusted authority's keys.")
    };
    for trusted in &identity.trusted {
        trusted.ensure_discovered().await;
        if trusted.issues(iss, tid) == Some(true) {
            return trusted.key(kid).await.ok_or_else(unknown);
        }
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_time_format() {
        // 2021-04-20T17:06:05Z
        assert_eq!(arm_time(1618938365), "4/20/2021 5:06:05 PM");
        assert_eq!(arm_time(1618876800), "4/20/2021 12:00:00 AM");
    }

    #[test]
    fn bearer_header_shapes() {
        assert_eq!(bearer(None).unwrap_err().code, "AuthenticationFailed");
        assert_eq!(bearer(Some("Basic abc")).unwrap_err(), AuthFailure::bad_header());
        assert_eq!(bearer(Some("Bearer ")).unwrap_err(), AuthFailure::bad_header());
        assert_eq!(bearer(Some("bearer a.b.c")).unwrap(), "a.b.c");
        assert!(well_formed("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
        assert!(!well_formed("a.b"));
        assert!(!well_formed("a..c"));
        assert!(!well_formed("a.b.c d"));
    }
}
