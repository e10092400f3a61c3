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

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;

use super::contract::{CacheEngine, CacheError, InProcess, Resident, Token};

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

impl Expiry<Arc<str>, Value> for PerEntryTtl {
    fn expire_after_create(&self, _: &Arc<str>, v: &Value, _: Instant) -> Option<Duration> {
        v.ttl
    }
    fn expire_after_update(
        &self,
        _: &Arc<str>,
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
    cache: Cache<Arc<str>, Value, ahash::RandomState>,
    max_bytes: u64,
}

impl MemoryEngine {
    /// The bytes each entry is charged against the budget besides its key and value:
    /// what an entry costs in resident memory beyond them (the map's bookkeeping, the
    /// key's and value's allocations), measured with `examples/memory_overhead.rs`
    /// (see `BENCHMARKS.md`).
    pub const ENTRY_OVERHEAD: u64 = 480;

    /// An engine holding at most `max_bytes` of entries: each is charged its key, its
    /// value and [`ENTRY_OVERHEAD`](Self::ENTRY_OVERHEAD), so the process's resident
    /// memory for the entries stays within the budget.
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &Value| {
                let w = k.len() as u64 + v.data.len() as u64 + Self::ENTRY_OVERHEAD;
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
        self.cache.get(key).map(|v| v.data)
    }

    /// Stores an entry synchronously.
    pub fn set_sync(&self, key: &str, data: Bytes, ttl: Option<Duration>) {
        self.insert(key, data, ttl, false);
    }

    fn insert(&self, key: &str, data: Bytes, ttl: Option<Duration>, trusted: bool) {
        self.cache
            .insert(Arc::from(key), Value { data, ttl, trusted });
    }
}

/// The cache layer's in-process path (see `CacheEngine::resident`).
impl InProcess for MemoryEngine {
    /// Reads an entry with whether it was stored by `set_trusted`.
    fn get_with_trust(&self, key: &str) -> Option<(Bytes, bool)> {
        self.cache.get(key).map(|v| (v.data, v.trusted))
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
        self.cache.invalidate(key);
        Ok(())
    }
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        Ok(self.cache.iter().map(|(k, _)| k.to_string()).collect())
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
