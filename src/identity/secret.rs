//! Client secrets and passwords: generated from the OS's CSPRNG, stored only as a salted SHA-256
//! (`sha256$<salt>$<digest>`, base64url), compared in constant time. Secrets are 40 random
//! characters (about 238 bits), so a fast hash is enough; user-chosen passwords are not the
//! threat model of a local emulator's sign-in page, and are hashed the same way.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";

/// A new client secret, in the shape of Entra's (`xxx8Q~...`, 40 characters).
pub fn generate() -> String {
    let mut rng = OsRng;
    let mut s: String = (0..3).map(|_| ALPHABET[rng.gen_range(0..62)] as char).collect();
    s.push_str("8Q~");
    s.extend((0..34).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char));
    s
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

pub fn hash(secret: &str) -> String {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    format!(
        "sha256${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(digest(&salt, secret))
    )
}

pub fn verify(secret: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(want), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(want)) = (URL_SAFE_NO_PAD.decode(salt), URL_SAFE_NO_PAD.decode(want)) else {
        return false;
    };
    let got = digest(&salt, secret);
    want.len() == got.len()
        && want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_secret() {
        let s = generate();
        assert_eq!(s.len(), 40);
        let h = hash(&s);
        assert!(!h.contains(&s));
        assert!(verify(&s, &h));
        assert!(!verify("wrong", &h));
        assert!(!verify(&s, "garbage"));
        assert_ne!(hash(&s), h, "salted");
    }
}
