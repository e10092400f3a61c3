//! [`MemoryEngine`]: an in-process engine on `moka`, bounded by bytes and TTL-aware.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, MemoryEngine};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let engine = MemoryEngine::new(64 * 1024 * 1024);
//! engine.set("k", Bytes::from_static(b"v")).await.unwrap();
//! assert_eq!(engine.get("k").await.unwrap(), "v");
//! assert!(engine.get("absent").await.unwrap_err().is_miss());
//! # });
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;

use super::contract::{CacheEngine, CacheError, InProcess, Resident, Token};

/// Keys up to this many bytes are kept inline (the default key is 64 hex digits).
const INLINE_KEY: usize = 64;

/// A key of the map: inline up to [`INLINE_KEY`] bytes, so the map reaches it without a
/// second pointer (moka rehashes its table in place as evictions leave tombstones, hashing
/// every key again; each hit and store hashes one) and an entry costs one allocation
/// less; on the heap beyond. Hashed, compared and borrowed as the bytes of the `str` it
/// holds, so lookups by `key.as_bytes()` build nothing.
enum MemKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Arc<str>),
}

impl MemKey {
    fn new(key: &str) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            MemKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            MemKey::Heap(Arc::from(key))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            MemKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            MemKey::Heap(s) => s.as_bytes(),
        }
    }

    /// The key as stored (always UTF-8: copied from a `&str` whole).
    fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl Borrow<[u8]> for MemKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for MemKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes (the `Borrow` contract).
        self.as_bytes().hash(state);
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for MemKey {}

#[derive(Clone)]
struct Value {
    data: Bytes,
    ttl: Option<Duration>,
    /// Encoded by the cache layer of this process and handed over directly (never
    /// through the public `set`): its checksum was computed over these very bytes, so
    /// a hit need not recompute it. Bytes stored by anybody else are verified on read.
    trusted: bool,
}

struct PerEntryTtl;

impl Expiry<MemKey, Value> for PerEntryTtl {
    fn expire_after_create(&self, _: &MemKey, v: &Value, _: Instant) -> Option<Duration> {
        v.ttl
    }
    fn expire_after_update(
        &self,
        _: &MemKey,
        v: &Value,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        v.ttl
    }
}

/// An in-memory engine holding at most a byte budget of entries (least recently and
/// least frequently used entries are evicted first), each with its own TTL.
///
/// Cloning is cheap and clones share the same storage.
#[derive(Clone)]
pub struct MemoryEngine {
    cache: Cache<MemKey, Value, ahash::RandomState>,
    max_bytes: u64,
}

impl MemoryEngine {
    /// The bytes each entry is charged against the budget besides its key and value:
    /// what an entry costs in resident memory beyond them (the map's bookkeeping, the
    /// key's and value's allocations), measured with `examples/memory_overhead.rs`
    /// (see `BENCHMARKS.md`: 401 bytes with 64-byte keys kept inline, 449 when keys had
    /// their own allocation; the charge keeps a margin for allocator slack).
    pub const ENTRY_OVERHEAD: u64 = 480;

    /// An engine holding at most `max_bytes` of entries: each is charged its key, its
    /// value and [`ENTRY_OVERHEAD`](Self::ENTRY_OVERHEAD), so the process's resident
    /// memory for the entries stays within the budget.
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &MemKey, v: &Value| {
                let w = k.as_bytes().len() as u64 + v.data.len() as u64 + Self::ENTRY_OVERHEAD;
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            // Keys may come from a custom key function, so the hasher stays seeded per
            // engine (no fixed hash an attacker could aim collisions at), but it is
            // several times cheaper than SipHash on 64-byte keys.
            .build_with_hasher(ahash::RandomState::new());
        MemoryEngine { cache, max_bytes }
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The number of entries (approximate: pending evictions may still be counted).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// The weighted size in bytes (approximate).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Applies pending evictions and expirations now (useful in tests).
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// Reads an entry synchronously.
    pub fn get_sync(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key.as_bytes()).map(|v| v.data)
    }

    /// Stores an entry synchronously.
    pub fn set_sync(&self, key: &str, data: Bytes, ttl: Option<Duration>) {
        self.insert(key, data, ttl, false);
    }

    fn insert(&self, key: &str, data: Bytes, ttl: Option<Duration>, trusted: bool) {
        self.cache
            .insert(MemKey::new(key), Value { data, ttl, trusted });
    }
}

/// The cache layer's in-process path (see `CacheEngine::resident`).
impl InProcess for MemoryEngine {
    /// Reads an entry with whether it was stored by `set_trusted`.
    fn get_with_trust(&self, key: &str) -> Option<(Bytes, bool)> {
        self.cache.get(key.as_bytes()).map(|v| (v.data, v.trusted))
    }

    /// Stores an entry the cache layer has just encoded (see `Value::trusted`).
    fn set_trusted(&self, key: &str, data: Bytes, ttl: Option<Duration>) {
        self.insert(key, data, ttl, true);
    }
}

impl fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl CacheEngine for MemoryEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.get_sync(key).ok_or(CacheError::Miss)
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.set_sync(key, data, None);
        Ok(())
    }
    async fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.set_sync(key, data, ttl);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.cache.invalidate(key.as_bytes());
        Ok(())
    }
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        Ok(self
            .cache
            .iter()
            .map(|(k, _)| k.to_string_lossy())
            .collect())
    }
    fn try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        Some(self.get_sync(key).ok_or(CacheError::Miss))
    }
    fn resident(&self, _: Token) -> Option<Resident<'_>> {
        Some(Resident {
            store: self,
            complete: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_inline_and_on_the_heap_are_found_by_str() {
        let e = MemoryEngine::new(1 << 20);
        let long = "k".repeat(INLINE_KEY + 1);
        let keys = ["", "a", "é☃", &"0123456789abcdef".repeat(4), &long];
        for (i, k) in keys.iter().enumerate() {
            e.set(k, Bytes::from(vec![i as u8])).await.unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(e.get(k).await.unwrap(), vec![i as u8], "{k:?}");
            let key = MemKey::new(k);
            assert_eq!(key.as_bytes(), k.as_bytes());
            assert_eq!(key.to_string_lossy(), *k);
            assert!(matches!(key, MemKey::Heap(_)) == (k.len() > INLINE_KEY));
            let h = ahash::RandomState::with_seeds(1, 2, 3, 4);
            assert_eq!(
                h.hash_one(&key),
                h.hash_one(k.as_bytes()),
                "hashed as its bytes"
            );
        }
        // A prefix or an extension of a stored key is another key.
        assert!(e.get(&long[..INLINE_KEY]).await.unwrap_err().is_miss());
        assert!(e.get("ab").await.unwrap_err().is_miss());
        let mut listed = e.keys().await.unwrap();
        listed.sort();
        let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[tokio::test]
    async fn bounded_by_bytes() {
        let e = MemoryEngine::new(100_000);
        for i in 0..100 {
            e.set(&format!("k{i}"), Bytes::from(vec![0u8; 10_000]))
                .await
                .unwrap();
        }
        e.run_pending_tasks();
        assert!(e.weighted_size() <= 100_000, "{}", e.weighted_size());
        assert!(e.entry_count() < 100);
    }

    #[test]
    fn the_budget_charges_each_entry_its_overhead() {
        // 10,000 tiny entries: their keys and values alone (65 bytes each) would fit
        // 1,538 of them in the budget; with the per-entry overhead charged, at most
        // `budget / (65 + ENTRY_OVERHEAD)` stay, so the resident memory they cost (see
        // `examples/memory_overhead.rs`) stays within the budget.
        let budget = 100_000;
        let e = MemoryEngine::new(budget);
        for i in 0..10_000 {
            e.set_sync(&format!("{i:064x}"), Bytes::from_static(b"v"), None);
        }
        e.run_pending_tasks();
        let charged = 64 + 1 + MemoryEngine::ENTRY_OVERHEAD;
        assert!(e.weighted_size() <= budget, "{}", e.weighted_size());
        assert_eq!(e.weighted_size() % charged, 0, "{}", e.weighted_size());
        assert!(e.entry_count() <= budget / charged, "{}", e.entry_count());
    }

    #[tokio::test]
    async fn ttl_expires_entries() {
        let e = MemoryEngine::new(1 << 20);
        e.set_with_ttl(
            "a",
            Bytes::from_static(b"1"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
        e.set("b", Bytes::from_static(b"2")).await.unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(e.get("a").await.unwrap_err().is_miss());
        assert_eq!(e.get("b").await.unwrap(), "2");
        e.delete("b").await.unwrap();
        assert!(e.get("b").await.unwrap_err().is_miss());
    }

    #[test]
    fn answers_synchronously() {
        let e = MemoryEngine::new(1 << 20);
        e.set_sync("k", Bytes::from_static(b"v"), None);
        assert_eq!(e.try_get_now("k").unwrap().unwrap(), "v");
        assert!(e.try_get_now("absent").unwrap().unwrap_err().is_miss());
        let boxed = crate::cache::BoxEngine::new(e.clone());
        assert_eq!(boxed.try_get_now("k").unwrap().unwrap(), "v");
        assert_eq!(Arc::new(e).try_get_now("k").unwrap().unwrap(), "v");
    }
}
