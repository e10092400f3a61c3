//! Signed entries: an HMAC-SHA256 tag over each stored entry, so an entry modified or
//! forged in a shared store (a bucket or a Redis that others can write) is refused.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEntry, EntryKind, EntrySecrets, SignatureError};
//!
//! let entry = CacheEntry::new(EntryKind::Json, http::StatusCode::OK, http::HeaderMap::new())
//!     .with_frames(vec![Bytes::from_static(b"{}")]);
//! let old = EntrySecrets::new("secret-2025");
//! let signed = old.sign(&entry);
//! assert_eq!(old.verify(&signed), Ok(()));
//!
//! // Rotation: the new secret signs, the old one is still accepted.
//! let rotated = EntrySecrets::new("secret-2026").accept("secret-2025");
//! assert_eq!(rotated.verify(&signed), Ok(()));
//! assert_eq!(EntrySecrets::new("secret-2026").verify(&signed), Err(SignatureError::Invalid));
//! assert_eq!(rotated.verify(&entry.encode()), Err(SignatureError::Unsigned));
//! ```
//!
//! The tag covers every byte of the entry before it (see the [`entry`](super::entry)
//! format, version 2) and is compared in constant time. Secrets are kept only as
//! keyed HMAC states and never appear in `Debug` output.

use std::fmt;

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::entry::{CacheEntry, split_signed};

type HmacSha256 = Hmac<Sha256>;

/// The secrets a cache signs and verifies its entries with: the current one (signs
/// new entries, accepted on read) and any number of previous ones (accepted on read
/// only, for rotation).
#[derive(Clone)]
pub struct EntrySecrets {
    /// HMAC states keyed with the current secret, then each previous one.
    keys: Vec<HmacSha256>,
}

/// Why an entry's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The entry carries no signature (an unsigned or unreadable entry).
    #[error("entry is not signed")]
    Unsigned,
    /// The signature matches none of the accepted secrets (modified or forged).
    #[error("entry signature matches no accepted secret")]
    Invalid,
    /// Signed, but at a time too far from now to be live (a fleet flight's head
    /// replayed from an earlier flight).
    #[error("signed too long ago (or in the future) to be live")]
    Stale,
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    assert!(!secret.is_empty(), "an entry secret must not be empty");
    HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length")
}

impl EntrySecrets {
    /// Signs with `current` and accepts it on read.
    ///
    /// # Panics
    ///
    /// When `current` is empty.
    pub fn new(current: impl AsRef<[u8]>) -> Self {
        EntrySecrets {
            keys: vec![keyed(current.as_ref())],
        }
    }

    /// Also accepts entries signed with `previous` (a secret being rotated out).
    ///
    /// # Panics
    ///
    /// When `previous` is empty.
    pub fn accept(mut self, previous: impl AsRef<[u8]>) -> Self {
        self.keys.push(keyed(previous.as_ref()));
        self
    }

    /// How many previous secrets are accepted besides the current one.
    pub fn previous_count(&self) -> usize {
        self.keys.len() - 1
    }

    /// `entry` encoded and signed with the current secret (format version 2).
    pub fn sign(&self, entry: &CacheEntry) -> Bytes {
        self.seal(entry.encoder().encode_buf(true))
    }

    /// Appends the current secret's tag to an entry encoded for signing.
    pub(crate) fn seal(&self, mut buf: BytesMut) -> Bytes {
        let mut mac = self.keys[0].clone();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        buf.freeze()
    }

    /// Checks that `data` is a signed entry whose tag one of the accepted secrets
    /// made (current first). The comparison takes constant time.
    pub fn verify(&self, data: &[u8]) -> Result<(), SignatureError> {
        let (signed, tag) = split_signed(data).ok_or(SignatureError::Unsigned)?;
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(signed);
            if mac.verify_slice(tag).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Invalid)
    }
}

impl EntrySecrets {
    /// The current secret's tag over `parts`, each preceded by its length (so no two
    /// lists of parts feed the same bytes): for messages other than entries, such as
    /// fleet events.
    pub(crate) fn tag_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keys[0].clone();
        feed(&mut mac, parts);
        mac.finalize().into_bytes().into()
    }

    /// Whether one of the accepted secrets made `tag` over `parts` (see
    /// [`tag_parts`](Self::tag_parts)); each comparison takes constant time.
    pub(crate) fn verify_parts(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.keys.iter().any(|key| {
            let mut mac = key.clone();
            feed(&mut mac, parts);
            mac.verify_slice(tag).is_ok()
        })
    }
}

fn feed(mac: &mut HmacSha256, parts: &[&[u8]]) {
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
}

impl fmt::Debug for EntrySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySecrets")
            .field("current", &"<redacted>")
            .field("previous", &self.previous_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::EntryKind;

    fn entry() -> CacheEntry {
        CacheEntry::new(EntryKind::Sse, http::StatusCode::OK, http::HeaderMap::new())
            .with_frames(vec![
                Bytes::from_static(b"data: 1\n\n"),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
            .with_times(5, Some(9))
            .with_request("ns", "POST", "/v1/chat/completions")
    }

    #[test]
    fn tags_over_parts_verify_under_any_accepted_secret_and_bind_the_split() {
        let old = EntrySecrets::new("k1");
        let tag = old.tag_parts(&[b"ab", b"c"]);
        assert!(old.verify_parts(&[b"ab", b"c"], &tag));
        assert!(
            EntrySecrets::new("k2")
                .accept("k1")
                .verify_parts(&[b"ab", b"c"], &tag)
        );
        assert!(!EntrySecrets::new("k2").verify_parts(&[b"ab", b"c"], &tag));
        // The same bytes split differently are another message.
        assert!(!old.verify_parts(&[b"a", b"bc"], &tag));
        assert!(!old.verify_parts(&[b"abc"], &tag));
        assert!(!old.verify_parts(&[b"ab", b"c"], &tag[..31]));
    }

    #[test]
    fn a_signed_entry_decodes_and_every_flipped_bit_is_refused() {
        let s = EntrySecrets::new("k1");
        let bytes = s.sign(&entry());
        assert_eq!(bytes.len(), entry().encode().len() + 32);
        assert_eq!(s.verify(&bytes), Ok(()));
        let back = CacheEntry::decode(&bytes).unwrap();
        assert_eq!(back.frames(), entry().frames());
        assert_eq!((back.created_ms(), back.expires_ms()), (5, Some(9)));
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut v = bytes.to_vec();
                v[i] ^= bit;
                assert!(s.verify(&v).is_err(), "flip {bit:#x} at {i}");
            }
        }
        for len in 0..bytes.len() {
            assert!(s.verify(&bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn rotation_accepts_previous_secrets_and_signs_with_the_current_one() {
        let old = EntrySecrets::new("old");
        let rotated = EntrySecrets::new("new").accept("older").accept("old");
        assert_eq!(rotated.verify(&old.sign(&entry())), Ok(()));
        assert_eq!(
            old.verify(&rotated.sign(&entry())),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            EntrySecrets::new("new").verify(&rotated.sign(&entry())),
            Ok(())
        );
        assert_eq!(
            rotated.verify(&entry().encode()),
            Err(SignatureError::Unsigned)
        );
    }

    #[test]
    fn a_version_1_entry_relabelled_as_signed_is_refused() {
        // An unsigned entry with its version byte set to 2 and 32 bytes appended.
        let mut v = entry().encode().to_vec();
        v[4] = 2;
        v.extend_from_slice(&[0; 32]);
        assert_eq!(
            EntrySecrets::new("k").verify(&v),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn debug_hides_the_secrets() {
        let s = EntrySecrets::new("hunter2-current").accept("hunter2-old");
        let text = format!("{s:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("previous: 1"), "{text}");
    }

    #[test]
    #[should_panic(expected = "must not be empty")]
    fn an_empty_secret_is_refused() {
        let _ = EntrySecrets::new("");
    }
}
