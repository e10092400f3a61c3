//! The raw-request index: a bounded in-process map from a fast hash of a request's raw
//! key input to its [`DefaultKeyFn`](super::DefaultKeyFn) key, so a repeat that is
//! byte-identical to an earlier request skips canonicalization.
//!
//! The default key is a pure function of the [`KeyInput`] fields it reads: the method,
//! the path and query, the namespace, the tenant scope, the `Content-Type` header (it
//! picks the body's canonical form) and the body. An index slot keeps a copy of the
//! body, a SHA-256 digest of the other fields (so the tenant scope, often an API key,
//! is never stored) and the key derived from them. A lookup hashes the head fields with
//! a seeded `ahash` and the body with XXH3 seeded by that hash (several times cheaper
//! than SHA-256 over a large body) and accepts a slot only when the head digest and
//! the body bytes are equal; anything else (a
//! changed byte, another tenant or namespace, a hash collision) falls back to the
//! canonical key. A slot can go stale only in being useless: the key it names may have
//! been evicted or purged from the engine, which the engine read then tells.
//!
//! Slots are weighed by their bytes (body, digests and [`SLOT_OVERHEAD`]) against the
//! index's budget; the least recently used of a few sampled slots is evicted first.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::super::bounded::Bounded;
use super::{HexKey, KeyInput};

/// The bytes a slot costs besides its body: the map's own bookkeeping per entry (see
/// `src/cache/bounded.rs`), the slot (head digest, key, the body's `Bytes` handle, the
/// `Arc`) and the body's allocation header, with margin.
pub(crate) const SLOT_OVERHEAD: usize = 320;

/// The default budget of the index: 8 MiB.
pub(crate) const DEFAULT_RAW_INDEX_BYTES: u64 = 8 << 20;

struct Slot {
    /// SHA-256 of the head fields (see [`head_digest`]).
    head: [u8; 32],
    body: Bytes,
    key: HexKey,
}

/// The bounded map of byte-identical repeats (see the [module docs](self)).
pub(crate) struct RawIndex {
    map: Bounded<u64, Arc<Slot>>,
    hasher: ahash::RandomState,
    /// Bodies larger than this are not indexed (one would evict many others).
    max_body: usize,
}

impl fmt::Debug for RawIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawIndex")
            .field("max_bytes", &self.map.max_weight())
            .field("slots", &self.map.len())
            .finish()
    }
}

/// What a lookup that found nothing leaves for [`RawIndex::remember`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe(u64);

impl RawIndex {
    /// An index holding at most `max_bytes` of slots.
    pub(crate) fn new(max_bytes: u64) -> Self {
        RawIndex {
            map: Bounded::new(max_bytes),
            hasher: ahash::RandomState::new(),
            max_body: usize::try_from(max_bytes / 16).unwrap_or(usize::MAX),
        }
    }

    /// The key stored for a request byte-identical to `input`, or the probe to
    /// [`remember`](Self::remember) its canonical key by (`None`: not indexable).
    pub(crate) fn get(&self, input: &KeyInput<'_>) -> Result<HexKey, Option<Probe>> {
        if input.body.len() > self.max_body {
            return Err(None);
        }
        let hash = self.fast_hash(input);
        let Some(slot) = self.map.get(&hash) else {
            return Err(Some(Probe(hash)));
        };
        if slot.body[..] == *input.body && slot.head == head_digest(input) {
            Ok(slot.key)
        } else {
            Err(Some(Probe(hash)))
        }
    }

    /// Records `key` as the key of `input` (found by a lookup that returned `probe`).
    pub(crate) fn remember(&self, probe: Probe, input: &KeyInput<'_>, key: HexKey) {
        let slot = Slot {
            head: head_digest(input),
            // A copy: the request's buffer may be a slice of a larger read buffer.
            body: Bytes::copy_from_slice(input.body),
            key,
        };
        let weight = (slot.body.len() + SLOT_OVERHEAD) as u64;
        self.map.insert(probe.0, Arc::new(slot), weight, None);
    }

    /// The number of slots.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.map.len()
    }

    /// The weighed bytes of the slots.
    #[cfg(test)]
    fn weighted_size(&self) -> u64 {
        self.map.weight()
    }

    fn fast_hash(&self, input: &KeyInput<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        head_fields(input, |field| {
            h.write_usize(field.len());
            h.write(field);
        });
        // The body, often KiBs, through XXH3 seeded with the head's hash.
        xxhash_rust::xxh3::xxh3_64_with_seed(input.body, h.finish())
    }
}

/// Passes every field of `input` the default key reads, except the body, to `f`, in
/// one fixed order.
fn head_fields(input: &KeyInput<'_>, mut f: impl FnMut(&[u8])) {
    f(input.method.as_str().as_bytes());
    f(input
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .as_bytes());
    f(input.namespace.as_bytes());
    f(input.tenant);
    match input.headers.get(http::header::CONTENT_TYPE) {
        // The marker keeps an absent header apart from an empty one.
        Some(ct) => {
            f(b"ct");
            f(ct.as_bytes());
        }
        None => f(b"-"),
    }
}

/// SHA-256 of the length-prefixed head fields: what a slot keeps instead of them.
fn head_digest(input: &KeyInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mistral-tower/raw-index/v1");
    head_fields(input, |field| {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    });
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Method, Uri};

    use super::*;
    use crate::cache::key::default_key_hex;

    struct Req {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        namespace: &'static str,
        tenant: &'static [u8],
    }

    impl Req {
        fn new() -> Self {
            Req {
                method: Method::POST,
                uri: Uri::from_static("/v1/chat/completions"),
                headers: HeaderMap::new(),
                namespace: "",
                tenant: b"Bearer a",
            }
        }

        fn input<'a>(&'a self, body: &'a [u8]) -> KeyInput<'a> {
            KeyInput {
                method: &self.method,
                uri: &self.uri,
                headers: &self.headers,
                body,
                namespace: self.namespace,
                tenant: self.tenant,
            }
        }
    }

    /// The key through the index, remembering it when it was derived.
    fn key(index: &RawIndex, input: &KeyInput<'_>) -> (HexKey, bool) {
        match index.get(input) {
            Ok(k) => (k, true),
            Err(probe) => {
                let k = default_key_hex(input);
                if let Some(p) = probe {
                    index.remember(p, input, k);
                }
                (k, false)
            }
        }
    }

    #[test]
    fn a_byte_identical_repeat_is_found_and_anything_else_is_not() {
        let index = RawIndex::new(1 << 20);
        let body = br#"{"model":"m","messages":[]}"#;
        let req = Req::new();
        let (k1, found) = key(&index, &req.input(body));
        assert!(!found);
        let (k2, found) = key(&index, &req.input(body));
        assert!(found);
        assert_eq!(k1.as_str(), k2.as_str());

        // Every field the key reads makes another slot.
        let mut others = Vec::new();
        let mut r = Req::new();
        r.tenant = b"Bearer b";
        others.push(r);
        let mut r = Req::new();
        r.namespace = "ns";
        others.push(r);
        let mut r = Req::new();
        r.method = Method::PUT;
        others.push(r);
        let mut r = Req::new();
        r.uri = Uri::from_static("/v1/chat/completions?x=1");
        others.push(r);
        let mut r = Req::new();
        r.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        others.push(r);
        for r in &others {
            let input = r.input(body);
            assert!(index.get(&input).is_err());
            assert_eq!(
                key(&index, &input).0.as_str(),
                default_key_hex(&input).as_str()
            );
        }
        // An empty content type is not an absent one.
        let mut r = Req::new();
        r.headers
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(""));
        assert_ne!(head_digest(&r.input(body)), head_digest(&req.input(body)));
    }

    #[test]
    fn a_slot_under_the_same_hash_with_other_bytes_is_not_taken() {
        let index = RawIndex::new(1 << 20);
        let req = Req::new();
        let a = req.input(br#"{"a":1}"#);
        let b = req.input(br#"{"a":2}"#);
        // Forge a collision: b's slot stored under a's hash.
        let Err(Some(pa)) = index.get(&a) else {
            panic!("empty index")
        };
        index.remember(pa, &b, default_key_hex(&b));
        assert!(index.get(&a).is_err(), "a must not take b's key");
        // Same body and hash, other head: not taken either.
        let mut other = Req::new();
        other.tenant = b"Bearer z";
        let z = other.input(br#"{"a":1}"#);
        index.remember(pa, &z, default_key_hex(&z));
        assert!(
            index.get(&a).is_err(),
            "a must not take another tenant's key"
        );
    }

    #[test]
    fn the_index_stays_within_its_budget() {
        let budget = 64 * 1024;
        let index = RawIndex::new(budget);
        let req = Req::new();
        for i in 0..2_000 {
            let body = format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(200));
            key(&index, &req.input(body.as_bytes()));
        }
        assert!(index.weighted_size() <= budget, "{}", index.weighted_size());
        let per_slot = (200 + SLOT_OVERHEAD) as u64;
        assert!(index.len() <= budget / per_slot, "{}", index.len());
        // A body over a sixteenth of the budget is never indexed.
        let big = vec![b' '; budget as usize / 16 + 1];
        assert!(matches!(index.get(&req.input(&big)), Err(None)));
    }
}
