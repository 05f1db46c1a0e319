//! The built-in authority's signing keys: RSA 2048, RS256, kept in `DATA_DIR/signing-keys.json`
//! (created with mode 0600 on first start; PKCS#8 PEM inside). Without a data directory
//! (`--memory --insecure-http`, tests) the ring lives in memory and dies with the process.
//!
//! Rotation makes a new *current* key (the one that signs) and keeps the previous ones published
//! in the JWKS and accepted until every token they signed has expired (lifetime + clock skew).
//! Other processes on the same data directory (the CLI's `keys rotate`, `token`) write the same
//! file; the server notices a change of the file within [`RELOAD_EVERY`] and at once on an
//! unknown `kid`.

use anyhow::{anyhow, Context, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Lifetime of an access token, as Entra ID's (clients refresh 5 minutes before expiry). Owned
/// here because it decides how long a retired key stays live; `token` signs with it.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;
/// Clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 300;

pub const KEYS_FILE: &str = "signing-keys.json";
/// How often signing and JWKS requests look at the key file for another process's rotation.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// One RSA key of the ring.
pub struct SigningKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub created: i64,
    /// When it stopped signing (a newer key became current); `None` for the current key.
    pub retired: Option<i64>,
    /// PKCS#8 PEM of the private key, as stored.
    pem: String,
    encoding: EncodingKey,
    /// The public key as the JWKS publishes it (`kid`, `use: sig`, `alg: RS256`).
    jwk: Jwk,
    /// The modulus, base64url.
    pub n: String,
    pub decoding: DecodingKey,
}

impl SigningKey {
    fn from_pem(pem: String, created: i64, retired: Option<i64>) -> Result<Self> {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| anyhow!("the signing key is not an RSA private key in PEM: {e}"))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|e| anyhow!("cannot derive the signing key's public key: {e}"))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let n = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => rsa.n.clone(),
            _ => anyhow::bail!("the signing key is not an RSA key"),
        };
        let decoding =
            DecodingKey::from_jwk(&jwk).map_err(|e| anyhow!("unusable signing key: {e}"))?;
        Ok(SigningKey { kid, created, retired, pem, encoding, jwk, n, decoding })
    }

    /// A new key. aws-lc-rs generates it: jsonwebtoken signs and verifies but cannot make keys.
    fn generate(created: i64) -> Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow!("cannot generate an RSA key"))?;
        let der = pair.as_der().map_err(|_| anyhow!("cannot encode the RSA key"))?;
        let pem = pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", der.as_ref()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Self::from_pem(pem, created, None)
    }

    /// The same key with another retirement time.
    fn retired_at(&self, retired: Option<i64>) -> Result<Self> {
        Self::from_pem(self.pem.clone(), self.created, retired)
    }

    /// Sign `header.payload` with RS256; the signature, base64url.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        jsonwebtoken::crypto::sign(message, &self.encoding, Algorithm::RS256)
            .map_err(|e| anyhow!("RSA signing failed: {e}"))
    }

    /// A signed JWT (RS256, this key's `kid`) of `claims`.
    pub fn sign_claims<T: Serialize>(&self, claims: &T) -> Result<String> {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| anyhow!("cannot sign a token: {e}"))
    }

    /// Still accepted (and published): current, or retired recently enough that its tokens live.
    fn live(&self, now: i64) -> bool {
        self.retired.is_none_or(|r| r + TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS > now)
    }

    /// The public key as a JWK (what the JWKS publishes).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<i64>,
    /// PKCS#8, PEM.
    private_key: String,
}

struct Loaded {
    keys: Vec<Arc<SigningKey>>,
    modified: Option<SystemTime>,
    checked: Instant,
}

pub struct KeyRing {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
    /// Serialises rotations within the process (the file is replaced atomically across processes).
    write: Mutex<()>,
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Write `contents` to `path` atomically; the file is created with mode 0600 (never wider).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

impl KeyRing {
    /// The ring of a data directory, created (one key) when the directory has none.
    pub fn open(dir: &Path) -> Result<KeyRing> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let path = dir.join(KEYS_FILE);
        if !path.exists() {
            let key = SigningKey::generate(now_secs())?;
            let ring = KeyRing {
                path: Some(path.clone()),
                loaded: RwLock::new(Loaded::empty()),
                write: Mutex::new(()),
            };
            // Another process may have created it meanwhile: never overwrite an existing ring.
            let file = KeyFile { keys: vec![stored(&key)] };
            ring.create_if_absent(&file)?;
        }
        let ring = KeyRing {
            path: Some(path),
            loaded: RwLock::new(Loaded::empty()),
            write: Mutex::new(()),
        };
        ring.reload()?;
        Ok(ring)
    }

    /// A ring that lives in memory only.
    pub fn ephemeral() -> Result<KeyRing> {
        let key = SigningKey::generate(now_secs())?;
        Ok(KeyRing {
            path: None,
            loaded: RwLock::new(Loaded {
                keys: vec![Arc::new(key)],
                modified: None,
                checked: Instant::now(),
            }),
            write: Mutex::new(()),
        })
    }

    fn create_if_absent(&self, file: &KeyFile) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let tmp =
            path.with_file_name(format!(".{KEYS_FILE}.{}.new", uuid::Uuid::new_v4().simple()));
        write_private(&tmp, &serde_json::to_vec_pretty(file)?)?;
        // hard_link fails when the target exists: the first writer wins, atomically.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }

    fn read_file(path: &Path) -> Result<Vec<Arc<SigningKey>>> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read the signing keys {}", path.display()))?;
        let file: KeyFile = serde_json::from_slice(&text).with_context(|| {
            format!("{} is not a signing key file of securescore", path.display())
        })?;
        let keys = file
            .keys
            .iter()
            .map(|k| {
                SigningKey::from_pem(k.private_key.clone(), k.created, k.retired).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        if !keys.iter().any(|k| k.retired.is_none()) {
            anyhow::bail!("{} has no current signing key", path.display());
        }
        Ok(keys)
    }

    /// Re-read the file (no-op for an in-memory ring).
    pub fn reload(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let stamp = modified(path);
        let keys = Self::read_file(path)?;
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded { keys, modified: stamp, checked: Instant::now() };
        Ok(())
    }

    /// Reload when the file changed, looking at most every [`RELOAD_EVERY`].
    fn refresh_if_stale(&self) {
        let Some(path) = &self.path else { return };
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.checked.elapsed() < RELOAD_EVERY {
                return;
            }
        }
        let stamp = modified(path);
        let changed = {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            loaded.checked = Instant::now();
            stamp != loaded.modified
        };
        if changed {
            if let Err(e) = self.reload() {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot reload the signing keys; keeping the ones loaded"
                );
            }
        }
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Result<Arc<SigningKey>> {
        self.refresh_if_stale();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded
            .keys
            .iter()
            .filter(|k| k.retired.is_none())
            .max_by_key(|k| k.created)
            .cloned()
            .ok_or_else(|| anyhow!("no current signing key"))
    }

    /// The keys tokens are accepted with (and the JWKS publishes).
    pub fn live(&self) -> Vec<Arc<SigningKey>> {
        self.refresh_if_stale();
        let now = now_secs();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.keys.iter().filter(|k| k.live(now)).cloned().collect()
    }

    /// The JWKS: the live keys' public halves.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet { keys: self.live().iter().map(|k| k.jwk().clone()).collect() }
    }

    /// A live key by `kid`, without touching the file.
    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        let now = now_secs();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.keys.iter().find(|k| k.kid == kid && k.live(now)).cloned()
    }

    /// A live key by `kid`, re-reading the file once when it is unknown (another process may
    /// have rotated). Re-reads are limited to one per second, so random kids cost nothing.
    pub fn find_or_reload(&self, kid: &str) -> Option<Arc<SigningKey>> {
        if let Some(k) = self.find(kid) {
            return Some(k);
        }
        self.path.as_ref()?;
        let recently = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            loaded.checked.elapsed() < Duration::from_secs(1)
        };
        if !recently {
            {
                let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                loaded.checked = Instant::now();
            }
            if let Err(e) = self.reload() {
                tracing::warn!(error = format!("{e:#}"), "cannot reload the signing keys");
            }
        }
        self.find(kid)
    }

    /// Make a new current key; the previous ones stay live until their tokens expire, and keys
    /// whose tokens have all expired are dropped. Returns the new key's `kid`.
    pub fn rotate(&self) -> Result<String> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        let key = SigningKey::generate(now)?;
        let kid = key.kid.clone();
        let Some(path) = &self.path else {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            let mut keys: Vec<Arc<SigningKey>> = Vec::new();
            for k in loaded.keys.drain(..) {
                if k.live(now) {
                    keys.push(Arc::new(k.retired_at(Some(k.retired.unwrap_or(now)))?));
                }
            }
            keys.push(Arc::new(key));
            loaded.keys = keys;
            return Ok(kid);
        };
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut file: KeyFile = serde_json::from_slice(&text)?;
        for k in &mut file.keys {
            k.retired.get_or_insert(now);
        }
        file.keys
            .retain(|k| k.retired.is_none_or(|r| r + TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS > now));
        file.keys.push(stored(&key));
        write_private(path, &serde_json::to_vec_pretty(&file)?)?;
        self.reload()?;
        Ok(kid)
    }
}

fn stored(key: &SigningKey) -> StoredKey {
    StoredKey {
        kid: key.kid.clone(),
        created: key.created,
        retired: key.retired,
        private_key: key.pem.clone(),
    }
}

impl Loaded {
    fn empty() -> Loaded {
        Loaded { keys: Vec::new(), modified: None, checked: Instant::now() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kid is RFC 7638's thumbprint over the minimal-length modulus (RFC 7518), as before
    /// jsonwebtoken built the JWK: tokens signed before an upgrade keep their key.
    #[test]
    fn the_kid_is_the_rfc7638_thumbprint_of_the_published_key() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        use sha2::Digest as _;
        let key = SigningKey::generate(0).unwrap();
        let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &key.jwk().algorithm else {
            panic!("an RSA JWK")
        };
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n);
        assert_eq!(key.kid, URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical)));
        let n = URL_SAFE_NO_PAD.decode(&rsa.n).unwrap();
        assert_eq!((n.len(), n[0] != 0), (256, true), "2048 bits, no leading zero octet");
        let published = serde_json::to_value(key.jwk()).unwrap();
        assert_eq!(
            (&published["kid"], &published["use"], &published["alg"], &published["kty"]),
            (
                &serde_json::json!(key.kid),
                &serde_json::json!("sig"),
                &serde_json::json!("RS256"),
                &serde_json::json!("RSA")
            )
        );
        // A token it signs verifies with the published key.
        let token = key.sign_claims(&serde_json::json!({"exp": 4_102_444_800_i64})).unwrap();
        let decoding = DecodingKey::from_jwk(key.jwk()).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &decoding,
            &jsonwebtoken::Validation::new(Algorithm::RS256),
        )
        .unwrap();
    }

    #[test]
    fn the_key_file_is_private_and_rotation_keeps_the_old_key_live() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.path().join(KEYS_FILE)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let old = ring.current().unwrap().kid.clone();
        // Reopening finds the same key.
        assert_eq!(KeyRing::open(dir.path()).unwrap().current().unwrap().kid, old);
        let new = ring.rotate().unwrap();
        assert_ne!(old, new);
        assert_eq!(ring.current().unwrap().kid, new);
        let live: Vec<String> = ring.live().iter().map(|k| k.kid.clone()).collect();
        assert!(live.contains(&old) && live.contains(&new));
        // Another process sees the rotation.
        let other = KeyRing::open(dir.path()).unwrap();
        assert_eq!(other.current().unwrap().kid, new);
        assert!(other.find(&old).is_some());
    }
}
