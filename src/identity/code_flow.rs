//! The authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636), as MSAL.js uses it against
//! Entra ID: the public clients the authority knows, the codes it hands out on sign-in, and their
//! one-time redemption against the `code_verifier`.
//!
//! A code is a random 256-bit string, valid [`CODE_LIFETIME`], redeemable once, bound to the
//! client id, the redirect URI and the S256 challenge of the authorization request (`plain` is
//! refused: a challenge that equals its verifier protects nothing once the URL leaks).
//!
//! Pending codes live in the store (only their SHA-256), so that behind a load balancer the token
//! request may reach another replica than the sign-in did, and a restart keeps them. Redemption
//! takes the row out in one statement: of two concurrent attempts, on any replicas, one gets it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use super::token::normalise_audience;
use crate::store::{PendingCode, Store};

/// How long a code may wait for its redemption.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The dashboard's application id: a public client (no secret) of every tenant of this authority.
pub const DASHBOARD_CLIENT_ID: Uuid = uuid::uuid!("5c2b0d7e-53d4-4f61-9a3c-2f0b8d5e1a01");

/// Where the dashboard may receive a code: its page on this server's public URL, nothing else.
pub fn dashboard_redirect_uris(public_url: &str) -> [String; 2] {
    let base = public_url.trim_end_matches('/');
    [format!("{base}/"), base.to_string()]
}

/// What the authorization request bound a code to, and whom it signs in.
#[derive(Debug, Clone)]
pub struct Pending {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub principal_id: Uuid,
    pub audience: &'static str,
    pub nonce: Option<String>,
}

impl Pending {
    pub fn new(
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
        principal_id: Uuid,
        audience: &'static str,
        nonce: Option<&str>,
    ) -> Pending {
        Pending {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            principal_id,
            audience,
            nonce: nonce.map(str::to_string),
        }
    }
}

/// Why a redemption failed; each is RFC 6749's `invalid_grant` (the description differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, already used, or expired: indistinguishable on purpose.
    UnknownCode,
    ClientMismatch,
    RedirectMismatch,
    VerifierMismatch,
}

impl Refusal {
    pub fn description(self) -> &'static str {
        match self {
            Refusal::UnknownCode => {
                "The provided authorization code is invalid, expired or was already redeemed."
            }
            Refusal::ClientMismatch => "The authorization code was issued to another client.",
            Refusal::RedirectMismatch => {
                "The redirect_uri does not match the one of the authorization request."
            }
            Refusal::VerifierMismatch => "The code_verifier does not match the code_challenge.",
        }
    }
}

/// Is `s` a well-formed S256 challenge (43 base64url characters, no padding)?
pub fn valid_challenge(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier))`, the S256 transformation.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The digest a code is stored under.
fn digest(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code.as_bytes()))
}

/// The pending codes, in the store every replica shares.
pub struct Codes {
    store: Store,
}

impl Codes {
    pub fn new(store: Store) -> Codes {
        Codes { store }
    }

    /// Remember `pending`; the code to send to the redirect URI.
    pub async fn issue(&self, pending: Pending) -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let lifetime = time::Duration::try_from(CODE_LIFETIME)?;
        let stored = PendingCode {
            code_hash: digest(&code),
            client_id: pending.client_id,
            redirect_uri: pending.redirect_uri,
            challenge: pending.challenge,
            principal_id: pending.principal_id,
            audience: pending.audience.to_owned(),
            nonce: pending.nonce,
            expires_at: OffsetDateTime::now_utc() + lifetime,
        };
        self.store.put_code(&stored).await?;
        Ok(code)
    }

    /// Redeem `code`: it is removed whatever the outcome (one attempt per code, as Entra does).
    /// The outer error is the store's; the inner one the refusal the client gets.
    pub async fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> anyhow::Result<Result<Pending, Refusal>> {
        let taken = self.store.take_code(&digest(code)).await?;
        Ok(taken
            .ok_or(Refusal::UnknownCode)
            .and_then(|p| check(p, client_id, redirect_uri, verifier, OffsetDateTime::now_utc())))
    }
}

/// Whether a taken code may be redeemed by this request at `now`: THE checks of a redemption.
fn check(
    p: PendingCode,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    now: OffsetDateTime,
) -> Result<Pending, Refusal> {
    if now >= p.expires_at {
        return Err(Refusal::UnknownCode);
    }
    if !p.client_id.eq_ignore_ascii_case(client_id) {
        return Err(Refusal::ClientMismatch);
    }
    if p.redirect_uri != redirect_uri {
        return Err(Refusal::RedirectMismatch);
    }
    // Both sides are public values of fixed length; a plain comparison leaks nothing useful.
    if s256(verifier) != p.challenge {
        return Err(Refusal::VerifierMismatch);
    }
    // Stored from a known audience; one that is not known any more signs nobody in.
    let audience = normalise_audience(&p.audience).ok_or(Refusal::UnknownCode)?;
    Ok(Pending {
        client_id: p.client_id,
        redirect_uri: p.redirect_uri,
        challenge: p.challenge,
        principal_id: p.principal_id,
        audience,
        nonce: p.nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn pending() -> Pending {
        Pending::new(
            "client",
            "https://h/",
            &s256(VERIFIER),
            Uuid::nil(),
            "https://management.azure.com/",
            None,
        )
    }

    #[test]
    fn s256_matches_the_rfc_7636_appendix_b_example() {
        assert_eq!(s256(VERIFIER), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(valid_challenge(&s256(VERIFIER)));
        assert!(valid_verifier(VERIFIER));
        assert!(!valid_verifier("short"));
        assert!(!valid_challenge("not a challenge"));
    }

    async fn codes() -> Codes {
        Codes::new(Store::open(&crate::store::StoreConfig::Memory).await.unwrap())
    }

    async fn redeem(
        codes: &Codes,
        code: &str,
        client: &str,
        redirect: &str,
        verifier: &str,
    ) -> Option<Refusal> {
        codes.redeem(code, client, redirect, verifier).await.unwrap().err()
    }

    #[tokio::test]
    async fn a_code_redeems_once_with_its_verifier() {
        let codes = codes().await;
        let code = codes.issue(pending()).await.unwrap();
        let p = codes.redeem(&code, "client", "https://h/", VERIFIER).await.unwrap().unwrap();
        assert_eq!((p.principal_id, p.audience), (Uuid::nil(), "https://management.azure.com/"));
        let again = redeem(&codes, &code, "client", "https://h/", VERIFIER).await;
        assert_eq!(again, Some(Refusal::UnknownCode));
        assert_eq!(
            redeem(&codes, "made-up", "client", "https://h/", VERIFIER).await,
            Some(Refusal::UnknownCode)
        );
    }

    #[tokio::test]
    async fn only_a_digest_of_the_code_is_stored() {
        let codes = codes().await;
        let code = codes.issue(pending()).await.unwrap();
        assert!(codes.store.take_code(&code).await.unwrap().is_none(), "not under the code");
        assert!(codes.store.take_code(&digest(&code)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn every_binding_is_checked_and_a_failed_attempt_burns_the_code() {
        let codes = codes().await;
        let c = codes.issue(pending()).await.unwrap();
        assert_eq!(
            redeem(&codes, &c, "other", "https://h/", VERIFIER).await,
            Some(Refusal::ClientMismatch)
        );
        assert_eq!(
            redeem(&codes, &c, "client", "https://h/", VERIFIER).await,
            Some(Refusal::UnknownCode)
        );
        let c = codes.issue(pending()).await.unwrap();
        assert_eq!(
            redeem(&codes, &c, "client", "https://x/", VERIFIER).await,
            Some(Refusal::RedirectMismatch)
        );
        let c = codes.issue(pending()).await.unwrap();
        let wrong = "A".repeat(43);
        assert_eq!(
            redeem(&codes, &c, "client", "https://h/", &wrong).await,
            Some(Refusal::VerifierMismatch)
        );
    }

    #[test]
    fn codes_expire_after_their_lifetime() {
        let now = OffsetDateTime::now_utc();
        let stored = |expires_at| PendingCode {
            code_hash: "h".into(),
            client_id: "client".into(),
            redirect_uri: "https://h/".into(),
            challenge: s256(VERIFIER),
            principal_id: Uuid::nil(),
            audience: "https://management.azure.com/".into(),
            nonce: None,
            expires_at,
        };
        let late = check(stored(now), "client", "https://h/", VERIFIER, now);
        assert_eq!(late.err(), Some(Refusal::UnknownCode));
        let early = now + time::Duration::seconds(5);
        assert!(check(stored(early), "client", "https://h/", VERIFIER, now).is_ok());
    }
}
