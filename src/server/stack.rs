//! The cached stack: the cache layer over the client stack, and an engine wrapper
//! that tracks pending writes so a shutdown can flush them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::util::Oneshot;
use tower::{Layer as _, Service, ServiceExt as _};

use super::Config;
use crate::cache::engine::{Resident, Token};
use crate::cache::{BoxEngine, CacheEngine, CacheError, CacheLayer, CacheService, RequestBody};
use crate::client::HttpService;
use crate::{Body, BoxError};

/// An engine that counts its writes in progress.
#[derive(Debug, Clone)]
pub(crate) struct TrackedEngine {
    inner: BoxEngine,
    pending: Arc<AtomicU64>,
}

/// Decrements the pending-write count when a write ends or is dropped.
struct PendingGuard(Arc<AtomicU64>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TrackedEngine {
    fn write_guard(&self) -> PendingGuard {
        self.pending.fetch_add(1, Ordering::AcqRel);
        PendingGuard(self.pending.clone())
    }
}

impl CacheEngine for TrackedEngine {
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, CacheError>> + Send {
        self.inner.get(key)
    }

    fn set(&self, key: &str, data: Bytes) -> impl Future<Output = Result<(), CacheError>> + Send {
        self.set_with_ttl(key, data, None)
    }

    fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send {
        // Counted from the moment the layer creates the write, not when it is first polled.
        let guard = self.write_guard();
        let fut = self.inner.set_with_ttl(key, data, ttl);
        async move {
            let res = fut.await;
            drop(guard);
            res
        }
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CacheError>> + Send {
        self.inner.delete(key)
    }

    fn keys(&self) -> impl Future<Output = Result<Vec<String>, CacheError>> + Send {
        self.inner.keys()
    }

    fn try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        // Without this the default (`None`) would send every read of an in-memory
        // engine through the boxed asynchronous `get`.
        self.inner.try_get_now(key)
    }

    fn resident(&self, token: Token) -> Option<Resident<'_>> {
        // The layer's synchronous in-memory store: nothing pending to flush.
        self.inner.resident(token)
    }

    fn fleet(&self) -> Option<&dyn crate::cache::engine::SharedFlight> {
        self.inner.fleet()
    }
}

/// What the proxy keeps of the cache layer: its counters and pending writes.
#[derive(Debug, Clone)]
pub(super) struct CacheHandle {
    layer: CacheLayer<TrackedEngine>,
    pending: Arc<AtomicU64>,
}

impl CacheHandle {
    /// The layer's counters.
    pub(super) fn metrics(&self) -> crate::cache::MetricsSnapshot {
        self.layer.metrics()
    }

    /// Writes still in progress.
    pub(super) fn pending_writes(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until every pending write has finished, for at most `within`.
    pub(super) async fn flush(&self, within: Duration) -> bool {
        let wait = async {
            while self.pending_writes() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

/// Hands the cache layer's buffered request body to the client stack as a
/// buffered [`Body`] (so the stack's retry can replay it).
fn to_stack_request<B>(req: Request<RequestBody<B>>) -> Request<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    req.map(|body| match body.into_full() {
        Ok(bytes) => Body::full(bytes),
        Err(body) => Body::new(body),
    })
}

/// The client stack below the cache layer, shared: cloning it (which the proxy does
/// for every request, and the cache layer for every request it forwards) is one
/// reference count, and the boxed stack itself is cloned only for a request that
/// really goes upstream. A cache hit never touches it.
///
/// It is always ready: the stack's own readiness (retry, limits) is awaited inside
/// the call, so a hit never waits on the upstream side.
#[derive(Debug, Clone)]
pub(crate) struct Upstream(Arc<HttpService>);

impl<B> Service<Request<RequestBody<B>>> for Upstream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Oneshot<HttpService, Request<Body>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<B>>) -> Self::Future {
        HttpService::clone(&self.0).oneshot(to_stack_request(req))
    }
}

/// The proxy's cached stack: the cache layer over the shared client stack.
pub(crate) type CachedService = CacheService<Upstream, TrackedEngine>;

/// The cached stack: the cache layer, configured from `config`, over `inner`.
pub(super) fn cached_service(
    engine: BoxEngine,
    config: &Config,
    inner: HttpService,
) -> (CachedService, CacheHandle) {
    let pending = Arc::new(AtomicU64::new(0));
    let engine = TrackedEngine {
        inner: engine,
        pending: pending.clone(),
    };
    let mut layer = CacheLayer::new(engine)
        .default_ttl(config.ttl)
        .mode(config.mode)
        .max_request_body(config.max_request_body)
        .max_response_body(config.max_entry_size)
        .cacheable(config.cached_routes.clone())
        .honor_cache_control(config.honor_cache_control)
        .fleet_flight(config.fleet_flight);
    if let Some(ns) = &config.namespace {
        layer = layer.namespace(ns.clone());
    }
    if config.share_across_keys {
        layer = layer.shared_tenant();
    }
    if let Some(secret) = &config.entry_secret {
        layer = layer.sign_entries_with(secret, &config.previous_entry_secrets);
    }
    let svc = layer.layer(Upstream(Arc::new(inner)));
    (svc, CacheHandle { layer, pending })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryEngine;

    #[tokio::test]
    async fn tracked_engine_counts_writes_until_they_end() {
        let engine = TrackedEngine {
            inner: BoxEngine::new(MemoryEngine::new(1 << 20)),
            pending: Arc::default(),
        };
        let write = engine.set("k", Bytes::from_static(b"v"));
        assert_eq!(
            engine.pending.load(Ordering::Acquire),
            1,
            "counted when created"
        );
        write.await.unwrap();
        assert_eq!(engine.pending.load(Ordering::Acquire), 0);
        drop(engine.set("k2", Bytes::new()));
        assert_eq!(
            engine.pending.load(Ordering::Acquire),
            0,
            "a dropped write ends"
        );
        assert_eq!(engine.get("k").await.unwrap(), "v");
        // A synchronous engine stays synchronous behind the wrapper.
        assert_eq!(engine.try_get_now("k").unwrap().unwrap(), "v");
        // And keeps the layer's in-memory fast path.
        assert!(engine.resident(crate::cache::engine::Token(())).is_some());
    }
}
