//! Faults the cache layer must survive without the proxy (issue 16, "what fuzzing and
//! fault injection found"): a planted undecodable entry, a hanging engine.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mistral_tower::cache::{CacheEngine, CacheEntry, CacheLayer, MemoryEngine};
use support::{post, x_cache};
use tower::{Layer, ServiceExt};

/// The 41-byte entry of issue 16 (a valid checksum over a header count of 0xFFFF).
pub const ISSUE_16_ENTRY: &str =
    "4d54434501000000c800000000000000000000000000000000000000000000ffff7aa44c7e68584f86";

fn unhex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn the_issue_entry_does_not_decode() {
    assert!(CacheEntry::decode(&unhex(ISSUE_16_ENTRY)).is_err());
}

#[tokio::test]
async fn the_issue_entry_is_a_counted_miss_and_is_overwritten() {
    let engine = MemoryEngine::new(1 << 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new(engine.clone());
    let counted = calls.clone();
    let svc = layer.layer(tower::service_fn(move |_req: Request<_>| {
        counted.fetch_add(1, SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                    .unwrap(),
            )
        }
    }));
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    res.into_body().collect().await.unwrap();
    let key = engine.keys().await.unwrap().pop().unwrap();
    engine.set(&key, unhex(ISSUE_16_ENTRY)).await.unwrap();

    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
    assert_eq!(layer.metrics().corrupt_entries, 1);
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT", "the planted entry was overwritten");
    CacheEntry::decode(&engine.get(&key).await.unwrap()).unwrap();
    assert_eq!(calls.load(SeqCst), 2);
}

/// An engine that can be made to hang: every call then waits forever.
#[derive(Clone)]
struct Flaky {
    inner: MemoryEngine,
    hanging: Arc<std::sync::atomic::AtomicBool>,
    gets: Arc<AtomicUsize>,
}

impl CacheEngine for Flaky {
    async fn get(&self, key: &str) -> Result<Bytes, mistral_tower::cache::CacheError> {
        self.gets.fetch_add(1, SeqCst);
        if self.hanging.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), mistral_tower::cache::CacheError> {
        if self.hanging.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.set(key, data).await
    }
}

#[tokio::test]
async fn a_hanging_engine_is_skipped_then_used_again() {
    use mistral_tower::cache::BreakerState;
    use std::time::Duration;

    let engine = Flaky {
        inner: MemoryEngine::new(1 << 20),
        hanging: Arc::new(true.into()),
        gets: Arc::new(AtomicUsize::new(0)),
    };
    let layer = CacheLayer::new(engine.clone())
        .get_timeout(Duration::from_millis(20))
        .set_timeout(Duration::from_millis(20))
        .circuit_breaker(3, Duration::from_millis(100));
    let svc = layer.layer(tower::service_fn(|_req: Request<_>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                .unwrap(),
        )
    }));
    // During the outage: three requests wait for the get timeout, then the engine is
    // no longer asked (the requests are misses answered by the inner service).
    for i in 0..20 {
        let res = svc
            .clone()
            .oneshot(post(&format!("/x{i}"), "{}"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.unwrap();
        if i == 2 {
            assert_eq!(layer.metrics().breaker, BreakerState::Open);
        }
    }
    let gets = engine.gets.load(SeqCst);
    assert!(
        gets < 6,
        "the engine was asked {gets} times for 20 requests"
    );
    let m = layer.metrics();
    assert!(m.breaker_opens >= 1 && m.engine_skips >= 14, "{m:?}");

    // The engine recovers: after the cool-down a probe closes the breaker, and caching
    // resumes on its own.
    engine.hanging.store(false, SeqCst);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let res = svc.clone().oneshot(post("/again", "{}")).await.unwrap();
            let hit = x_cache(&res) == "HIT";
            res.into_body().collect().await.unwrap();
            if hit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("caching resumed");
    assert_eq!(layer.metrics().breaker, BreakerState::Closed);
}
