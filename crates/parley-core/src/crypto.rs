//! Secrets at rest: auth tokens, API key secrets and push credential keys are sealed with
//! XChaCha20-Poly1305 under a 32-byte server key. The server must be able to read them back
//! (Access Tokens are HMAC-signed with API key secrets; push credentials sign provider requests),
//! so they are encrypted rather than hashed.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;

/// Sealing failed or the ciphertext was not made with this key.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The server key text is not 64 hex digits (or base64 of 32 bytes).
    #[error("the secret key must be 32 bytes written as 64 hex digits")]
    BadKey,
    /// The ciphertext is damaged or was sealed with another key.
    #[error("cannot open sealed secret: wrong server key or damaged data")]
    Open,
}

/// A 32-byte server key. `Debug` never prints it.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    key_id: [u8; 4],
    mac_key: [u8; 32],
    /// Earlier keys that still open (never seal) what they sealed, during a key rotation.
    previous: Vec<SecretBox>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(key_id={})", hex::encode(self.key_id))
    }
}

/// Version byte of the sealed format: `1 || key_id(4) || nonce(24) || ciphertext+tag`.
const FORMAT_V1: u8 = 1;

impl SecretBox {
    /// Use `key` (32 bytes).
    pub fn new(key: [u8; 32]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key);
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&digest[..4]);
        // A separate key for MACs, derived so that sealing and signing never share a key.
        let mac_key: [u8; 32] = sha2::Sha256::new()
            .chain_update(b"parley-mac-v1")
            .chain_update(key)
            .finalize()
            .into();
        Self {
            cipher: XChaCha20Poly1305::new((&key).into()),
            key_id,
            mac_key,
            previous: Vec::new(),
        }
    }

    /// This key, also opening what `previous` keys sealed (a key rotation in progress: secrets
    /// are sealed with this key only, and a sealed value names the key that sealed it).
    #[must_use]
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = SecretBox>) -> Self {
        for key in previous {
            if key.key_id != self.key_id && !self.previous.iter().any(|p| p.key_id == key.key_id) {
                self.previous.push(key.without_previous());
            }
        }
        self
    }

    /// This key alone, without the previous keys it accepts.
    #[must_use]
    pub fn without_previous(mut self) -> Self {
        self.previous.clear();
        self
    }

    /// The key ids of the previous keys this box still opens.
    pub fn previous_key_ids(&self) -> Vec<String> {
        self.previous.iter().map(SecretBox::key_id).collect()
    }

    /// Whether `sealed` was sealed with this box's own (current) key.
    pub fn is_sealed_with_current_key(&self, sealed: &[u8]) -> bool {
        sealed.len() >= 5 && sealed[0] == FORMAT_V1 && sealed[1..5] == self.key_id
    }

    /// HMAC-SHA256 of `data` under a key derived from the server key: signs values the server
    /// hands out and must recognise later (paging tokens), identically on every node.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        // HMAC accepts keys of any length, so construction cannot fail.
        let Ok(mut m) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.mac_key) else {
            return [0; 32];
        };
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Parse a key written as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::new(key))
    }

    /// A fresh random key as 64 hex digits.
    pub fn generate_hex() -> String {
        let key: [u8; 32] = rand::random();
        hex::encode(key)
    }

    /// Short fingerprint of the key (first 4 bytes of its SHA-256), safe to log.
    pub fn key_id(&self) -> String {
        hex::encode(self.key_id)
    }

    /// Encrypt `plain`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and in-memory buffer cannot fail.
        let ct = self.cipher.encrypt(nonce, plain).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 4 + 24 + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Encrypt a UTF-8 string.
    pub fn seal_str(&self, plain: &str) -> Vec<u8> {
        self.seal(plain.as_bytes())
    }

    /// Decrypt what [`SecretBox::seal`] made.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + 4 + 24 + 16 || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Open);
        }
        if sealed[1..5] != self.key_id {
            return match self.previous.iter().find(|p| sealed[1..5] == p.key_id) {
                Some(previous) => previous.open(sealed),
                None => Err(CryptoError::Open),
            };
        }
        let nonce = XNonce::from_slice(&sealed[5..29]);
        self.cipher
            .decrypt(nonce, &sealed[29..])
            .map_err(|_| CryptoError::Open)
    }

    /// Decrypt to a UTF-8 string.
    pub fn open_str(&self, sealed: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| CryptoError::Open)
    }
}

/// Constant-time equality of two secrets.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A new auth token / API key secret: 32 lowercase hex digits, like Twilio's.
pub fn generate_token() -> String {
    crate::sid::random_hex32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key_fails() {
        let a = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        let b = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        let sealed = a.seal_str("token-123");
        assert_ne!(sealed, a.seal_str("token-123"), "nonces differ");
        assert_eq!(a.open_str(&sealed).expect("open"), "token-123");
        assert!(b.open(&sealed).is_err());
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(a.open(&damaged).is_err());
    }

    #[test]
    fn previous_keys_open_but_never_seal() {
        let old = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        let new = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        let sealed_old = old.seal_str("old secret");
        let ring = new.clone().with_previous([old.clone()]);
        assert_eq!(ring.open_str(&sealed_old).expect("open"), "old secret");
        let sealed_new = ring.seal_str("new secret");
        assert!(ring.is_sealed_with_current_key(&sealed_new));
        assert!(!ring.is_sealed_with_current_key(&sealed_old));
        assert!(
            old.open(&sealed_new).is_err(),
            "sealed with the new key only"
        );
        assert_eq!(new.open_str(&sealed_new).expect("open"), "new secret");
        assert!(ring.without_previous().open(&sealed_old).is_err());
        assert_eq!(new.previous_key_ids(), Vec::<String>::new());
    }

    #[test]
    fn mac_depends_on_key_and_data() {
        let a = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        let b = SecretBox::from_hex(&SecretBox::generate_hex()).expect("key");
        assert_eq!(a.mac(b"x"), a.mac(b"x"));
        assert_ne!(a.mac(b"x"), a.mac(b"y"));
        assert_ne!(a.mac(b"x"), b.mac(b"x"));
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(SecretBox::from_hex("abcd").is_err());
        assert!(SecretBox::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn secrets_equal_compares() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
    }
}
