//! A two-level cache engine: a fast L1 (usually in memory) in front of a shared L2.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, MemoryEngine, TieredEngine};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // In production L2 would be a RedisEngine, PostgresEngine, ObjectStoreEngine...
//! let engine = TieredEngine::new(MemoryEngine::new(16 << 20), MemoryEngine::new(64 << 20))
//!     .with_l1_ttl(Duration::from_secs(30));
//! engine.set("k", Bytes::from_static(b"v")).await.unwrap();
//! assert_eq!(engine.get("k").await.unwrap(), "v");
//! assert_eq!(engine.l1().get("k").await.unwrap(), "v");
//! # });
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::contract::{CacheEngine, CacheError, Resident, Token};
use crate::cache::Chain;

/// An L1 engine in front of an L2 engine.
///
/// Reads try L1, then L2; an L2 hit is copied into L1 so the next read stays
/// local. Writes and deletes go to both levels (L2 first). L2 is the source of
/// truth: an L1 failure never fails a read or a write (it is logged), an L2
/// failure is reported, and L1 never keeps a value that L2 refused. Entries copied from L2 into L1 carry no TTL of their own unless
/// [`TieredEngine::with_l1_ttl`] caps it (entries written by the cache layer
/// carry their expiry inside, so a long-lived L1 copy is still never served
/// stale by the layer).
#[derive(Debug, Clone)]
pub struct TieredEngine<L1, L2> {
    l1: L1,
    l2: L2,
    l1_ttl: Option<Duration>,
}

impl<L1, L2> TieredEngine<L1, L2> {
    /// Puts `l1` in front of `l2`.
    pub fn new(l1: L1, l2: L2) -> Self {
        TieredEngine {
            l1,
            l2,
            l1_ttl: None,
        }
    }

    /// Caps how long entries live in L1 (the shorter of this and the entry's
    /// own TTL). Useful when other processes write L2, so L1 copies refresh.
    pub fn with_l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// The L1 engine.
    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// The L2 engine.
    pub fn l2(&self) -> &L2 {
        &self.l2
    }

    fn l1_ttl_for(&self, ttl: Option<Duration>) -> Option<Duration> {
        match (ttl, self.l1_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<L1: CacheEngine, L2: CacheEngine> CacheEngine for TieredEngine<L1, L2> {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        match self.l1.get(key).await {
            Ok(v) => return Ok(v),
            Err(CacheError::Miss) => {}
            Err(e) => tracing::debug!(error = %Chain(&e), "tiered cache: L1 get failed, trying L2"),
        }
        let value = self.l2.get(key).await?;
        if let Err(e) = self.l1.set_with_ttl(key, value.clone(), self.l1_ttl).await {
            tracing::debug!(error = %Chain(&e), "tiered cache: L1 fill failed");
        }
        Ok(value)
    }

    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.set_with_ttl(key, data, None).await
    }

    /// Writes L2, then L1. When L2 fails, its error is returned and L1 is not
    /// written (its old copy is dropped), so L1 never holds what L2 refused.
    async fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if let Err(e) = self.l2.set_with_ttl(key, data.clone(), ttl).await {
            let _ = self.l1.delete(key).await;
            return Err(e);
        }
        if let Err(e) = self.l1.set_with_ttl(key, data, self.l1_ttl_for(ttl)).await {
            tracing::debug!(error = %Chain(&e), "tiered cache: L1 set failed");
        }
        Ok(())
    }

    /// Deletes from both levels. An L1 error is reported too (after an L2
    /// error): it could leave a stale L1 copy that reads would still serve.
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let (r1, r2) = tokio::join!(self.l1.delete(key), self.l2.delete(key));
        r2?;
        r1
    }

    /// The keys of L2 (L1 holds a subset).
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        self.l2.keys().await
    }

    /// The front's in-process store, if it has one, as a partial one: a hit there is
    /// answered without a future, a miss there goes on to [`get`](CacheEngine::get).
    fn resident(&self, token: Token) -> Option<Resident<'_>> {
        self.l1.resident(token).map(|r| Resident {
            complete: false,
            ..r
        })
    }

    /// The second level's: it is the store the processes share.
    fn fleet(&self) -> Option<&dyn super::SharedFlight> {
        self.l2.fleet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A map engine that can be told to fail, and counts reads.
    #[derive(Default)]
    struct Flaky {
        map: Mutex<HashMap<String, (Bytes, Option<Duration>)>>,
        fail: std::sync::atomic::AtomicBool,
        gets: AtomicUsize,
    }

    impl Flaky {
        fn failing() -> Self {
            let f = Flaky::default();
            f.fail.store(true, Ordering::SeqCst);
            f
        }
        fn check(&self) -> Result<(), CacheError> {
            if self.fail.load(Ordering::SeqCst) {
                Err(CacheError::backend("down"))
            } else {
                Ok(())
            }
        }
    }

    impl CacheEngine for Flaky {
        async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            let map = self.map.lock().unwrap();
            map.get(key).map(|v| v.0.clone()).ok_or(CacheError::Miss)
        }
        async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
            self.set_with_ttl(key, data, None).await
        }
        async fn set_with_ttl(
            &self,
            key: &str,
            data: Bytes,
            ttl: Option<Duration>,
        ) -> Result<(), CacheError> {
            self.check()?;
            self.map.lock().unwrap().insert(key.to_owned(), (data, ttl));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.check()?;
            self.map.lock().unwrap().remove(key);
            Ok(())
        }
        async fn keys(&self) -> Result<Vec<String>, CacheError> {
            self.check()?;
            Ok(self.map.lock().unwrap().keys().cloned().collect())
        }
    }

    #[tokio::test]
    async fn l2_hit_fills_l1_and_next_read_stays_in_l1() {
        let t = TieredEngine::new(Flaky::default(), Flaky::default())
            .with_l1_ttl(Duration::from_secs(5));
        t.l2().set("k", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(t.get("k").await.unwrap(), "v");
        assert_eq!(t.l2().gets.load(Ordering::SeqCst), 1);
        assert_eq!(
            t.l1().map.lock().unwrap()["k"],
            (Bytes::from_static(b"v"), Some(Duration::from_secs(5)))
        );
        assert_eq!(t.get("k").await.unwrap(), "v");
        assert_eq!(t.l2().gets.load(Ordering::SeqCst), 1, "second read hit L1");
        assert!(t.get("absent").await.unwrap_err().is_miss());
    }

    #[tokio::test]
    async fn writes_go_to_both_and_l1_ttl_is_capped() {
        let t = TieredEngine::new(Flaky::default(), Flaky::default())
            .with_l1_ttl(Duration::from_secs(5));
        t.set_with_ttl("a", Bytes::from_static(b"1"), Some(Duration::from_secs(60)))
            .await
            .unwrap();
        t.set_with_ttl("b", Bytes::from_static(b"2"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        let l1 = t.l1().map.lock().unwrap().clone();
        let l2 = t.l2().map.lock().unwrap().clone();
        assert_eq!(l1["a"].1, Some(Duration::from_secs(5)));
        assert_eq!(l1["b"].1, Some(Duration::from_secs(1)));
        assert_eq!(l2["a"].1, Some(Duration::from_secs(60)));
        t.delete("a").await.unwrap();
        assert!(t.l1().get("a").await.unwrap_err().is_miss());
        assert!(t.l2().get("a").await.unwrap_err().is_miss());
        assert_eq!(t.keys().await.unwrap(), vec!["b".to_owned()]);
    }

    #[tokio::test]
    async fn l1_failure_does_not_fail_but_l2_failure_does() {
        let t = TieredEngine::new(Flaky::failing(), Flaky::default());
        t.set("k", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(t.get("k").await.unwrap(), "v");

        let t = TieredEngine::new(Flaky::default(), Flaky::failing());
        t.l1().set("k", Bytes::from_static(b"old")).await.unwrap();
        assert!(matches!(
            t.set("k", Bytes::from_static(b"v")).await,
            Err(CacheError::Backend(_))
        ));
        assert!(
            t.l1().map.lock().unwrap().is_empty(),
            "L1 must not keep a value L2 refused"
        );
        assert!(matches!(t.delete("k").await, Err(CacheError::Backend(_))));
    }

    #[test]
    fn a_memory_front_is_a_partial_resident() {
        use crate::cache::MemoryEngine;
        let t = TieredEngine::new(MemoryEngine::new(1 << 20), Flaky::default());
        let r = t
            .resident(Token(()))
            .expect("a memory front keeps the fast path");
        assert!(
            !r.complete,
            "a miss in the front is not a miss of the engine"
        );
        assert!(r.store.get_with_trust("absent").is_none());
        assert!(
            TieredEngine::new(Flaky::default(), MemoryEngine::new(1 << 20))
                .resident(Token(()))
                .is_none(),
            "only the front counts"
        );
        // Forwarded by the erased and shared forms.
        let boxed = crate::cache::BoxEngine::new(t);
        assert!(boxed.resident(Token(())).is_some_and(|r| !r.complete));
    }
}
