//! [`MemoryEngine`]: an in-process engine bounded by bytes, TTL-aware (on the crate's
//! sharded map, see `src/cache/bounded.rs`).
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
use std::time::Duration;

use bytes::Bytes;

use super::super::bounded::Bounded;
use super::super::recycle;
use super::contract::{CacheEngine, CacheError, InProcess, Resident, Token};

/// Keys up to this many bytes are kept inline (the default key is 64 hex digits).
const INLINE_KEY: usize = 64;

/// A key of the map: inline up to [`INLINE_KEY`] bytes, so the map reaches it without a
/// second pointer (each hit and store compares one) and an entry costs no allocation
/// besides its value; on the heap beyond. Hashed, compared and borrowed as the bytes of
/// the `str` it holds, so lookups by `key.as_bytes()` build nothing.
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
    /// Encoded by the cache layer of this process and handed over directly (never
    /// through the public `set`): its checksum was computed over these very bytes, so
    /// a hit need not recompute it. Bytes stored by anybody else are verified on read.
    trusted: bool,
}

/// An in-memory engine holding at most a byte budget of entries, each with its own TTL.
///
/// When a store exceeds the budget, entries are evicted least recently used first, as
/// Redis approximates it: the victim is the least recently read or written of 5
/// entries sampled at random (an expired one first); a store never evicts the entry it
/// writes.
///
/// Every operation does its own bookkeeping under the lock of one of up to 64 shards:
/// nothing is deferred to a background task or a later read.
///
/// Cloning is cheap and clones share the same storage.
#[derive(Clone)]
pub struct MemoryEngine {
    map: Arc<Bounded<MemKey, Value>>,
}

impl MemoryEngine {
    /// The bytes each entry is charged against the budget besides its key and value:
    /// what an entry costs in resident memory beyond them (the map's bookkeeping, the
    /// key's and value's allocations), measured with `examples/memory_overhead.rs`
    /// (see `BENCHMARKS.md`: 123 bytes with 64-byte keys kept inline, from 100,000 to
    /// 1,048,600 entries; 401 on the moka map used before). The charge is about twice
    /// that: a margin for allocator slack and for a shard's entries growing into a new
    /// vector while the old one is still held.
    pub const ENTRY_OVERHEAD: u64 = 256;

    /// An engine holding at most `max_bytes` of entries: each is charged its key, its
    /// value and [`ENTRY_OVERHEAD`](Self::ENTRY_OVERHEAD), so the process's resident
    /// memory for the entries stays within the budget.
    pub fn new(max_bytes: u64) -> Self {
        MemoryEngine {
            map: Arc::new(Bounded::new(max_bytes)),
        }
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.map.max_weight()
    }

    /// The number of entries (expired ones included until read or evicted).
    pub fn entry_count(&self) -> u64 {
        self.map.len()
    }

    /// The bytes charged against the budget: each entry's key, value and
    /// [`ENTRY_OVERHEAD`](Self::ENTRY_OVERHEAD).
    pub fn weighted_size(&self) -> u64 {
        self.map.weight()
    }

    /// Removes every entry past its TTL now (evictions need no call: every store applies
    /// its own). Expired entries are otherwise removed when read or sampled for eviction,
    /// and count in [`entry_count`](Self::entry_count) and
    /// [`weighted_size`](Self::weighted_size) until then.
    pub fn run_pending_tasks(&self) {
        self.map.purge_expired();
    }

    /// Reads an entry synchronously.
    pub fn get_sync(&self, key: &str) -> Option<Bytes> {
        self.map.get(key.as_bytes()).map(|v| v.data)
    }

    /// Stores an entry synchronously.
    pub fn set_sync(&self, key: &str, data: Bytes, ttl: Option<Duration>) {
        self.insert(key, data, ttl, false);
    }

    fn insert(&self, key: &str, data: Bytes, ttl: Option<Duration>, trusted: bool) {
        let weight = key.len() as u64 + data.len() as u64 + Self::ENTRY_OVERHEAD;
        // An evicted entry's buffer goes to the next entry this thread encodes.
        self.map.insert_with(
            MemKey::new(key),
            Value { data, trusted },
            weight,
            ttl,
            |old| recycle::give(old.data),
        );
    }
}

/// The cache layer's in-process path (see `CacheEngine::resident`).
impl InProcess for MemoryEngine {
    /// Reads an entry with whether it was stored by `set_trusted`.
    fn get_with_trust(&self, key: &str) -> Option<(Bytes, bool)> {
        self.map.get(key.as_bytes()).map(|v| (v.data, v.trusted))
    }

    /// Stores an entry the cache layer has just encoded (see `Value::trusted`).
    fn set_trusted(&self, key: &str, data: Bytes, ttl: Option<Duration>) {
        self.insert(key, data, ttl, true);
    }
}

impl fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("max_bytes", &self.max_bytes())
            .field("entries", &self.entry_count())
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
        self.map.remove(key.as_bytes());
        Ok(())
    }
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        Ok(self.map.keys(MemKey::to_string_lossy))
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
        e.set_with_ttl(
            "c",
            Bytes::from_static(b"3"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // Nothing read yet: a read past its TTL removes "a", run_pending_tasks "c".
        assert_eq!(e.entry_count(), 3);
        assert!(e.get("a").await.unwrap_err().is_miss());
        assert_eq!(e.entry_count(), 2);
        e.run_pending_tasks();
        assert_eq!(e.entry_count(), 1);
        assert_eq!(e.get("b").await.unwrap(), "2");
        e.delete("b").await.unwrap();
        assert!(e.get("b").await.unwrap_err().is_miss());
    }

    #[test]
    fn an_evicted_entry_nobody_holds_goes_to_the_next_encoding_and_a_held_one_does_not() {
        // On its own thread: the recycled buffers are per thread.
        std::thread::spawn(|| {
            let entry = |fill: u8| Bytes::from(vec![fill; 4096]);
            // Room for two entries (one shard: the oldest of two is the victim).
            let e = MemoryEngine::new(2 * (1 + 4096 + MemoryEngine::ENTRY_OVERHEAD));
            let a = entry(b'a');
            let a_ptr = a.as_ptr();
            e.set_sync("a", a, None);
            e.set_sync("b", entry(b'b'), None);
            e.set_sync("c", entry(b'c'), None);
            assert!(e.get_sync("a").is_none(), "a was evicted");
            let reused = recycle::take(4096);
            assert_eq!(reused.as_ptr(), a_ptr, "a's buffer is the next one encoded");
            assert!(reused.is_empty());

            // c is read and held (a hit still sending it), then b is read: storing d
            // evicts c, whose buffer must not be reused.
            let held = e.get_sync("c").unwrap();
            assert_eq!(e.get_sync("b").unwrap()[0], b'b');
            e.set_sync("d", entry(b'd'), None);
            assert!(e.get_sync("c").is_none(), "c was evicted");
            let fresh = recycle::take(4096);
            assert_ne!(fresh.as_ptr(), held.as_ptr());
            drop(fresh);
            assert!(held.iter().all(|&x| x == b'c'), "the held bytes are intact");
        })
        .join()
        .unwrap();
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
