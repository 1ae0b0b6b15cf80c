//! Authenticating values in Redis: an HMAC-SHA256 tag over the full Redis key and the value.
//!
//! Redis may be shared with other deployments or written by anything that can reach it, so a
//! value read back is trusted only when it carries a tag made with this store's secret for
//! the very key it was read from: a value copied under another key, or written by anyone
//! without the secret, fails the check and is read as a miss.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the tag in front of every value.
const TAG_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Seals and opens values with one store's secret.
pub struct Seal {
    secret: Vec<u8>,
}

impl Seal {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    /// The tag, then the value: what is written under `redis_key`.
    pub fn seal(&self, redis_key: &str, value: &[u8]) -> Vec<u8> {
        let tag = self.mac(redis_key, value).finalize().into_bytes();
        let mut sealed = Vec::with_capacity(TAG_BYTES + value.len());
        sealed.extend_from_slice(&tag);
        sealed.extend_from_slice(value);
        sealed
    }

    /// The value inside `sealed` when its tag is right for `redis_key`, else None.
    pub fn open<'a>(&self, redis_key: &str, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, value) = sealed.split_at_checked(TAG_BYTES)?;
        self.mac(redis_key, value).verify_slice(tag).ok()?;
        Some(value)
    }

    /// The MAC over the key's length, the key and the value, so that no split of one
    /// key-and-value pair into another gives the same input.
    fn mac(&self, redis_key: &str, value: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(&(redis_key.len() as u64).to_le_bytes());
        mac.update(redis_key.as_bytes());
        mac.update(value);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_under_its_own_key_only() {
        let seal = Seal::new(b"secret");
        let sealed = seal.seal("ns:v2:aaaa", b"value");
        assert_eq!(seal.open("ns:v2:aaaa", &sealed), Some(&b"value"[..]));
        assert_eq!(seal.open("ns:v2:bbbb", &sealed), None);
    }

    #[test]
    fn another_secret_a_changed_byte_or_a_short_value_is_refused() {
        let sealed = Seal::new(b"secret").seal("key", b"value");
        assert_eq!(Seal::new(b"other").open("key", &sealed), None);
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(Seal::new(b"secret").open("key", &changed), None);
        assert_eq!(
            Seal::new(b"secret").open("key", &sealed[..TAG_BYTES - 1]),
            None
        );
        assert_eq!(Seal::new(b"secret").open("key", b""), None);
    }
}
