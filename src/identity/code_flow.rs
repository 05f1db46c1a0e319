//! The authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636), as MSAL.js uses it against
//! Entra ID: the public clients the authority knows, the codes it hands out on sign-in, and their
//! one-time redemption against the `code_verifier`.
//!
//! A code is a random 256-bit string, valid [`CODE_LIFETIME`], redeemable once, bound to the
//! client id, the redirect URI and the S256 challenge of the authorization request (`plain` is
//! refused: a challenge that equals its verifier protects nothing once the URL leaks).
//!
//! Codes live in this process's memory. With several replicas behind a load balancer, the token
//! request must reach the replica that issued the code (sticky sessions), or this map must move to
//! a shared store; a restart simply makes pending codes fail with `invalid_grant`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    issued: Instant,
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
            issued: Instant::now(),
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

/// The pending codes of this process.
#[derive(Default)]
pub struct Codes {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Codes {
    /// Remember `pending`; the code to send to the redirect URI.
    pub fn issue(&self, pending: Pending) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the expired ones here, so an abandoned sign-in never stays in memory for long.
        map.retain(|_, p| p.issued.elapsed() < CODE_LIFETIME);
        map.insert(code.clone(), pending);
        code
    }

    /// Redeem `code`: it is removed whatever the outcome (one attempt per code, as Entra does).
    pub fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Pending, Refusal> {
        self.redeem_at(code, client_id, redirect_uri, verifier, Instant::now())
    }

    fn redeem_at(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: Instant,
    ) -> Result<Pending, Refusal> {
        let taken = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(code);
        let Some(p) = taken else { return Err(Refusal::UnknownCode) };
        if now.saturating_duration_since(p.issued) >= CODE_LIFETIME {
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
        Ok(p)
    }
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

    #[test]
    fn a_code_redeems_once_with_its_verifier() {
        let codes = Codes::default();
        let code = codes.issue(pending());
        assert!(codes.redeem(&code, "client", "https://h/", VERIFIER).is_ok());
        let again = codes.redeem(&code, "client", "https://h/", VERIFIER);
        assert_eq!(again.err(), Some(Refusal::UnknownCode));
    }

    #[test]
    fn every_binding_is_checked_and_a_failed_attempt_burns_the_code() {
        let codes = Codes::default();
        let c = codes.issue(pending());
        assert_eq!(
            codes.redeem(&c, "other", "https://h/", VERIFIER).err(),
            Some(Refusal::ClientMismatch)
        );
        assert_eq!(
            codes.redeem(&c, "client", "https://h/", VERIFIER).err(),
            Some(Refusal::UnknownCode)
        );
        let c = codes.issue(pending());
        assert_eq!(
            codes.redeem(&c, "client", "https://x/", VERIFIER).err(),
            Some(Refusal::RedirectMismatch)
        );
        let c = codes.issue(pending());
        let wrong = "A".repeat(43);
        assert_eq!(
            codes.redeem(&c, "client", "https://h/", &wrong).err(),
            Some(Refusal::VerifierMismatch)
        );
    }

    #[test]
    fn codes_expire_after_their_lifetime() {
        let codes = Codes::default();
        let c = codes.issue(pending());
        let late = Instant::now() + CODE_LIFETIME + Duration::from_millis(1);
        assert_eq!(
            codes.redeem_at(&c, "client", "https://h/", VERIFIER, late).err(),
            Some(Refusal::UnknownCode)
        );
        let c = codes.issue(pending());
        let early = Instant::now() + CODE_LIFETIME - Duration::from_secs(5);
        assert!(codes.redeem_at(&c, "client", "https://h/", VERIFIER, early).is_ok());
    }
}
