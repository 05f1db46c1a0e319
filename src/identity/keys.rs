//! The built-in authority's signing keys: RSA 2048, RS256, kept in `DATA_DIR/signing-keys.json`
//! (created with mode 0600 on first start; PKCS#8 PEM inside). Without a data directory
//! (`--memory --insecure-http`, tests) the ring lives in memory and dies with the process. On a
//! store that several servers share (PostgreSQL), the ring lives in the database instead — the
//! same document, in one `meta` row replaced by compare-and-swap — so a token signed by one
//! replica verifies on every other, and a rotation on one reaches the others when they
//! [`KeyRing::refresh`] (the server does every [`SHARED_REFRESH_EVERY`]).
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::store::Store;

/// Lifetime of an access token, as Entra ID's (clients refresh 5 minutes before expiry). Owned
/// here because it decides how long a retired key stays live; `token` signs with it.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;
/// Clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 300;

pub const KEYS_FILE: &str = "signing-keys.json";
/// The `meta` row that holds the ring on a shared store.
pub const KEYS_META: &str = "signing_keys";
/// How often a server on a shared store re-reads the ring: well within the one second in which a
/// rotation on one replica must be honoured by all.
pub const SHARED_REFRESH_EVERY: Duration = Duration::from_millis(400);
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

impl KeyFile {
    fn of(keys: &[&SigningKey]) -> KeyFile {
        KeyFile { keys: keys.iter().map(|k| stored(k)).collect() }
    }

    fn parse(text: &[u8], origin: &dyn std::fmt::Display) -> Result<Vec<Arc<SigningKey>>> {
        let file: KeyFile = serde_json::from_slice(text)
            .with_context(|| format!("{origin} is not a signing key ring of securescore"))?;
        let keys = file
            .keys
            .iter()
            .map(|k| {
                SigningKey::from_pem(k.private_key.clone(), k.created, k.retired).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        if !keys.iter().any(|k| k.retired.is_none()) {
            anyhow::bail!("{origin} has no current signing key");
        }
        Ok(keys)
    }

    /// The ring after a rotation at `now` to `key`: every key retired (keeping an earlier
    /// retirement), the ones whose tokens have all expired dropped, `key` current.
    fn rotated(mut self, key: &SigningKey, now: i64) -> KeyFile {
        for k in &mut self.keys {
            k.retired.get_or_insert(now);
        }
        self.keys
            .retain(|k| k.retired.is_none_or(|r| r + TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS > now));
        self.keys.push(stored(key));
        self
    }
}

struct Loaded {
    keys: Vec<Arc<SigningKey>>,
    /// The file's modification time when it was read (file rings).
    modified: Option<SystemTime>,
    /// The stored document as read (shared rings): a refresh compares it.
    text: Option<String>,
    checked: Instant,
}

/// Where the ring is kept.
enum Backing {
    Memory,
    File(PathBuf),
    /// A `meta` row of a store several servers share.
    Shared(Store),
}

pub struct KeyRing {
    backing: Backing,
    loaded: RwLock<Loaded>,
    /// Serialises rotations within the process (the file is replaced atomically across
    /// processes; the shared row by compare-and-swap).
    write: tokio::sync::Mutex<()>,
    /// Bumped whenever the loaded keys are replaced (a rotation here, another process's change
    /// of the file, another replica's of the shared row): what was verified with the old keys
    /// is verified again ([`KeyRing::generation`]).
    generation: AtomicU64,
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
    fn with(backing: Backing, loaded: Loaded) -> KeyRing {
        KeyRing {
            backing,
            loaded: RwLock::new(loaded),
            write: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// The ring of a server or a command on `store`: in the database when the store is shared
    /// by several servers, else in `dir`'s file, else in memory.
    pub async fn for_store(store: &Store, dir: Option<&Path>) -> Result<KeyRing> {
        match dir {
            _ if store.is_shared() => KeyRing::shared(store).await,
            Some(dir) => KeyRing::open(dir),
            None => KeyRing::ephemeral(),
        }
    }

    /// The ring kept in `store`'s database, created (one key) when it has none. The first server
    /// to create it wins; every other adopts it.
    pub async fn shared(store: &Store) -> Result<KeyRing> {
        let text = match store.meta(KEYS_META).await? {
            Some(text) => text,
            None => {
                let key = SigningKey::generate(now_secs())?;
                let fresh = serde_json::to_string(&KeyFile::of(&[&key]))?;
                store.set_meta_if_absent(KEYS_META, &fresh).await?
            }
        };
        let keys = KeyFile::parse(text.as_bytes(), &"the database's signing_keys row")?;
        let loaded = Loaded { keys, modified: None, text: Some(text), checked: Instant::now() };
        Ok(KeyRing::with(Backing::Shared(store.clone()), loaded))
    }

    /// The ring of a data directory, created (one key) when the directory has none.
    pub fn open(dir: &Path) -> Result<KeyRing> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let path = dir.join(KEYS_FILE);
        if !path.exists() {
            let key = SigningKey::generate(now_secs())?;
            // Another process may have created it meanwhile: never overwrite an existing ring.
            create_if_absent(&path, &KeyFile::of(&[&key]))?;
        }
        let ring = KeyRing::with(Backing::File(path), Loaded::empty());
        ring.reload()?;
        Ok(ring)
    }

    /// A ring that lives in memory only.
    pub fn ephemeral() -> Result<KeyRing> {
        let key = SigningKey::generate(now_secs())?;
        let loaded = Loaded {
            keys: vec![Arc::new(key)],
            modified: None,
            text: None,
            checked: Instant::now(),
        };
        Ok(KeyRing::with(Backing::Memory, loaded))
    }

    fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::File(path) => Some(path),
            _ => None,
        }
    }
}

/// Write the ring file unless one exists (the first writer wins, atomically).
fn create_if_absent(path: &Path, file: &KeyFile) -> Result<()> {
    let tmp = path.with_file_name(format!(".{KEYS_FILE}.{}.new", uuid::Uuid::new_v4().simple()));
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

impl KeyRing {
    fn read_file(path: &Path) -> Result<Vec<Arc<SigningKey>>> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read the signing keys {}", path.display()))?;
        KeyFile::parse(&text, &path.display())
    }

    /// Re-read the file (no-op for an in-memory or shared ring: see [`KeyRing::refresh`]).
    pub fn reload(&self) -> Result<()> {
        let Some(path) = self.path() else { return Ok(()) };
        let stamp = modified(path);
        let keys = Self::read_file(path)?;
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded { keys, modified: stamp, text: None, checked: Instant::now() };
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Re-read a shared ring from the database, adopting another replica's rotation; whether it
    /// changed. File rings reload on their own when used; in-memory rings never change elsewhere.
    pub async fn refresh(&self) -> Result<bool> {
        let Backing::Shared(store) = &self.backing else { return Ok(false) };
        let text = store.meta(KEYS_META).await?.context("the database lost its signing keys")?;
        self.adopt(text)
    }

    /// Make `text` (the shared row) the loaded ring, unless it is the one loaded.
    fn adopt(&self, text: String) -> Result<bool> {
        if self.loaded.read().unwrap_or_else(|e| e.into_inner()).text.as_deref() == Some(&text) {
            return Ok(false);
        }
        let keys = KeyFile::parse(text.as_bytes(), &"the database's signing_keys row")?;
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded { keys, modified: None, text: Some(text), checked: Instant::now() };
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Reload when the file changed, looking at most every [`RELOAD_EVERY`].
    fn refresh_if_stale(&self) {
        let Some(path) = self.path() else { return };
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

    /// Which set of keys is loaded: changes whenever keys are replaced, so a cache of verified
    /// tokens compares it on every hit (read before the keys are looked at, so that a change
    /// racing with a verification makes that verification's entry stale, never the reverse).
    /// A file ring looks at its file first, as signing does (at most every [`RELOAD_EVERY`]).
    pub fn generation(&self) -> u64 {
        self.refresh_if_stale();
        self.generation.load(Ordering::Acquire)
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
        self.path()?;
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
    pub async fn rotate(&self) -> Result<String> {
        let _guard = self.write.lock().await;
        let now = now_secs();
        let key = SigningKey::generate(now)?;
        let kid = key.kid.clone();
        match &self.backing {
            Backing::Memory => {
                let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                let keys: Vec<&SigningKey> = loaded.keys.iter().map(|k| k.as_ref()).collect();
                let file = KeyFile::of(&keys).rotated(&key, now);
                loaded.keys = KeyFile::parse(&serde_json::to_vec(&file)?, &"the ring")?;
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Backing::File(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let file: KeyFile = serde_json::from_slice(&text)?;
                let file = file.rotated(&key, now);
                write_private(path, &serde_json::to_vec_pretty(&file)?)?;
                self.reload()?;
            }
            Backing::Shared(store) => {
                // Compare-and-swap: a replica rotating at the same moment makes this one start
                // over from the ring that won, so neither rotation's key is lost.
                loop {
                    let old = store
                        .meta(KEYS_META)
                        .await?
                        .context("the database lost its signing keys")?;
                    let file: KeyFile = serde_json::from_str(&old)?;
                    let new = serde_json::to_string(&file.rotated(&key, now))?;
                    if store.swap_meta(KEYS_META, &old, &new).await? {
                        self.adopt(new)?;
                        break;
                    }
                }
            }
        }
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
        Loaded { keys: Vec::new(), modified: None, text: None, checked: Instant::now() }
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

    #[tokio::test]
    async fn the_key_file_is_private_and_rotation_keeps_the_old_key_live() {
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
        let new = ring.rotate().await.unwrap();
        assert_ne!(old, new);
        assert_eq!(ring.current().unwrap().kid, new);
        let live: Vec<String> = ring.live().iter().map(|k| k.kid.clone()).collect();
        assert!(live.contains(&old) && live.contains(&new));
        // Another process sees the rotation.
        let other = KeyRing::open(dir.path()).unwrap();
        assert_eq!(other.current().unwrap().kid, new);
        assert!(other.find(&old).is_some());
    }

    /// Two servers on one shared store (two handles, two pools: what two replicas are): the ring
    /// the first creates is the second's; a rotation on either reaches the other on its next
    /// refresh; rotations racing on both keep both new keys.
    #[tokio::test]
    async fn a_shared_ring_is_one_ring_for_every_server() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::store::StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() };
        let a_store = Store::open(&config).await.unwrap();
        let b_store = Store::open(&config).await.unwrap();
        let a = KeyRing::shared(&a_store).await.unwrap();
        let b = KeyRing::shared(&b_store).await.unwrap();
        let first = a.current().unwrap().kid.clone();
        assert_eq!(b.current().unwrap().kid, first, "one ring, created once");
        assert!(!dir.path().join(KEYS_FILE).exists(), "nothing in the data directory");

        let rotated = a.rotate().await.unwrap();
        assert_eq!(b.current().unwrap().kid, first, "not seen before a refresh");
        assert!(b.refresh().await.unwrap());
        assert_eq!(b.current().unwrap().kid, rotated);
        assert!(b.find(&first).is_some(), "the old key stays live");
        assert!(!b.refresh().await.unwrap(), "nothing new");

        let (x, y) = tokio::join!(a.rotate(), b.rotate());
        let (x, y) = (x.unwrap(), y.unwrap());
        a.refresh().await.unwrap();
        b.refresh().await.unwrap();
        for ring in [&a, &b] {
            assert!(ring.find(&x).is_some() && ring.find(&y).is_some(), "no rotation lost");
            assert!(ring.find(&rotated).is_some() && ring.find(&first).is_some());
            assert_eq!(ring.live().iter().filter(|k| k.retired.is_none()).count(), 1);
        }
        assert_eq!(a.current().unwrap().kid, b.current().unwrap().kid);
    }
}
