//! Trusted external authorities (`serve --trust-issuer URL`, e.g. a real Entra ID tenant): OpenID
//! discovery, then a JWKS cache.
//!
//! Security note: a token is checked against an external authority's keys only when its `iss` is
//! exactly that authority's issuer (v2 form) or the v1 form `https://sts.windows.net/{tid}/` of the
//! same tenant; an OpenID configuration naming an issuer on another host than the configured URL
//! is refused. The JWKS is refreshed on an unknown `kid` at most once a minute per authority (so
//! tokens with random kids cannot make the server hammer the authority), by one fetch that
//! concurrent requests wait for, and a failed refresh keeps the keys already known.

use anyhow::{Context, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The least time between two JWKS fetches of one authority.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
const TENANT_PLACEHOLDER: &str = "{tenantid}";

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

pub struct TrustedIssuer {
    /// As configured: an issuer URL or its `.well-known/openid-configuration` URL.
    pub configured: String,
    discovery_url: String,
    discovery: RwLock<Option<Discovery>>,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    last_fetch: Mutex<Option<Instant>>,
    /// Single flight: one fetch at a time; waiters re-check the cache after it.
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    /// Fetches made (observability and tests).
    pub fetches: std::sync::atomic::AtomicU64,
}

/// `scheme://host[:port]` of a URL, lowercase; `None` when it is not an absolute URL.
fn origin(url: &str) -> Option<String> {
    let uri = url.parse::<axum::http::Uri>().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?).to_ascii_lowercase())
}

impl TrustedIssuer {
    pub fn new(configured: &str) -> Result<TrustedIssuer> {
        let url = configured.trim().trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            anyhow::bail!("--trust-issuer {configured}: give the authority's issuer URL, e.g. https://login.microsoftonline.com/TENANT/v2.0");
        }
        let discovery_url = if url.ends_with("/.well-known/openid-configuration") {
            url.to_string()
        } else {
            format!("{url}/.well-known/openid-configuration")
        };
        crate::tls::install_crypto_provider();
        let http =
            reqwest::Client::builder().use_rustls_tls().timeout(Duration::from_secs(10)).build()?;
        Ok(TrustedIssuer {
            configured: configured.to_string(),
            discovery_url,
            discovery: RwLock::new(None),
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            http,
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Does this authority issue tokens with `iss` for tenant `tid`? `None`: not discovered yet.
    pub fn issues(&self, iss: &str, tid: &str) -> Option<bool> {
        let d = self.discovery.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        // In full: the issuer the authority's OpenID configuration names, for this tenant.
        if iss == d.issuer.replace(TENANT_PLACEHOLDER, tid) {
            return Some(true);
        }
        // The v1 form of the same tenant (Entra issues v1 tokens for ARM).
        let tenant_matches =
            d.issuer.contains(TENANT_PLACEHOLDER) || d.issuer.contains(&format!("/{tid}/"));
        Some(tenant_matches && iss == format!("https://sts.windows.net/{tid}/"))
    }

    /// Let the next unknown kid fetch at once (tests of the once-a-minute limit).
    #[doc(hidden)]
    pub fn forget_last_fetch_for_tests(&self) {
        *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn cached(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(kid).cloned()
    }

    /// The key `kid`, fetching the JWKS once if it is unknown and the last fetch is old enough.
    pub async fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        self.refresh().await;
        self.cached(kid)
    }

    /// Make sure discovery ran once (rate-limited like key refreshes).
    pub async fn ensure_discovered(&self) {
        if self.discovery.read().unwrap_or_else(|e| e.into_inner()).is_none() {
            self.refresh().await;
        }
    }

    /// Fetch discovery (when unknown) and the JWKS, unless a fetch happened within
    /// [`REFRESH_INTERVAL`]. Concurrent callers share one fetch.
    pub async fn refresh(&self) {
        let started = Instant::now();
        let _flight = self.fetching.lock().await;
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            // Someone fetched while we waited, or recently enough: use what they got.
            if last.is_some_and(|t| t >= started || t.elapsed() < REFRESH_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.fetch().await {
            Ok((discovery, keys)) => {
                tracing::info!(issuer = %discovery.issuer, keys = keys.len(), "fetched the keys of a trusted issuer");
                *self.discovery.write().unwrap_or_else(|e| e.into_inner()) = Some(discovery);
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(e) => tracing::warn!(
                issuer = %self.configured,
                error = format!("{e:#}"),
                "cannot refresh a trusted issuer's keys; keeping the known ones"
            ),
        }
    }

    async fn fetch(&self) -> Result<(Discovery, HashMap<String, Arc<DecodingKey>>)> {
        let known = self.discovery.read().unwrap_or_else(|e| e.into_inner()).clone();
        let discovery = match known {
            Some(d) => d,
            None => self
                .http
                .get(&self.discovery_url)
                .send()
                .await?
                .error_for_status()?
                .json::<Discovery>()
                .await
                .with_context(|| {
                    format!("{} is not an OpenID configuration", self.discovery_url)
                })?,
        };
        if origin(&discovery.issuer) != origin(&self.discovery_url) {
            anyhow::bail!(
                "the OpenID configuration {} names the issuer '{}' of another host; its tokens are not trusted",
                self.discovery_url,
                discovery.issuer
            );
        }
        let set: JwkSet = self
            .http
            .get(&discovery.jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .with_context(|| format!("{} is not a JWKS", discovery.jwks_uri))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // RSA keys only: tokens are RS256 only.
            let (Some(kid), AlgorithmParameters::RSA(_)) = (&jwk.common.key_id, &jwk.algorithm)
            else {
                continue;
            };
            if let Ok(k) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), Arc::new(k));
            }
        }
        Ok((discovery, keys))
    }
}
