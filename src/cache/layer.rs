//! [`CacheLayer`]: the configuration of the cache and the state its services share.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, CacheMode, MemoryEngine};
//! use std::time::Duration;
//!
//! let layer = CacheLayer::new(MemoryEngine::new(64 << 20))
//!     .ttl(Duration::from_secs(3600))
//!     .namespace("docs")
//!     .mode(CacheMode::ReadWrite)
//!     .max_request_body(1 << 20);
//! assert_eq!(layer.metrics().hits, 0);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::config::{Clock, Config, DEFAULT_FLIGHT_WAIT, Shared, Tenant};
use super::control::{CacheMode, Cacheable};
use super::flight::Flights;
use super::key::{KeyFn, RawIndex};
use super::metrics::{Metrics, MetricsSnapshot};
use super::service::CacheService;
use super::sign::EntrySecrets;

/// A tower layer caching the responses of the inner service in a [`CacheEngine`].
///
/// The layer holds configuration, plus one `Arc` of shared state (the engine, the
/// in-flight table and the metrics) cloned into every service it builds, so all of them
/// share hits, single-flight and counters. See the [module docs](super) for the
/// behaviour and the request headers.
///
/// [`CacheEngine`]: super::CacheEngine
#[derive(Clone)]
pub struct CacheLayer<E> {
    config: Arc<Config>,
    shared: Arc<Shared<E>>,
}

impl<E: fmt::Debug> fmt::Debug for CacheLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("engine", &self.shared.engine)
            .field("config", &self.config)
            .finish()
    }
}

impl<E> CacheLayer<E> {
    /// A layer over this engine with the default settings: no TTL, empty namespace,
    /// read-write, GET/HEAD/POST cacheable, tenant = hash of `Authorization`, 4 MiB
    /// request limit, 16 MiB response limit, 1 s get timeout, single-flight on.
    pub fn new(engine: E) -> Self {
        CacheLayer {
            config: Arc::new(Config::new()),
            shared: Arc::new(Shared {
                engine,
                flights: Arc::new(Flights::default()),
                metrics: Metrics::default(),
                breaker: Default::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The default time to live of stored entries (`x-cache-ttl` overrides it per request).
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.ttl = Some(ttl))
    }

    /// Sets or clears the default time to live (`None`: entries never expire).
    pub fn default_ttl(self, ttl: Option<Duration>) -> Self {
        self.with(|c| c.ttl = ttl)
    }

    /// The default namespace (part of the key; `x-cache-namespace` overrides it).
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        let ns = namespace.into();
        self.with(|c| c.namespace = ns)
    }

    /// What the layer may do with the engine.
    pub fn mode(self, mode: CacheMode) -> Self {
        self.with(|c| c.mode = mode)
    }

    /// Which requests may use the cache (default: [`DefaultCacheable`]).
    ///
    /// [`DefaultCacheable`]: super::DefaultCacheable
    pub fn cacheable(self, predicate: impl Cacheable) -> Self {
        let p: Arc<dyn Cacheable> = Arc::new(predicate);
        self.with(|c| {
            c.cacheable = p;
            c.default_cacheable = false;
        })
    }

    /// Sets the predicate only if none was chosen yet (used by the client's cache slot
    /// to put the Mistral operation table in place of [`DefaultCacheable`]).
    #[cfg(feature = "client")]
    pub(crate) fn cacheable_or(self, predicate: impl Cacheable) -> Self {
        if self.config.default_cacheable {
            self.cacheable(predicate)
        } else {
            self
        }
    }

    /// Also read the standard request `Cache-Control` header as cache directives
    /// (default `false`: only `x-cache-control` is, since HTTP libraries send
    /// `Cache-Control` on their own, e.g. `no-store` on every SSE request).
    pub fn honor_cache_control(self, honor: bool) -> Self {
        self.with(|c| c.honor_cache_control = honor)
    }

    /// Replaces the key derivation (default: [`DefaultKeyFn`]).
    ///
    /// [`DefaultKeyFn`]: super::DefaultKeyFn
    pub fn key_fn(self, key_fn: impl KeyFn) -> Self {
        let k: Arc<dyn KeyFn> = Arc::new(key_fn);
        self.with(|c| {
            c.key_fn = k;
            c.default_key = false;
        })
    }

    /// The budget of the index of byte-identical repeats (default 8 MiB; `0` turns it
    /// off). With the default key, a request whose method, path and query, namespace,
    /// tenant scope, `Content-Type` and body are byte for byte those of an earlier
    /// request that hit reuses that request's key instead of canonicalizing its body
    /// again; anything else derives the key as usual. The index keeps a copy of each
    /// such body and a SHA-256 digest of the rest (never the tenant scope itself);
    /// bodies over a sixteenth of the budget are not indexed. See
    /// [`key`](super::key#byte-identical-repeats).
    pub fn raw_key_index(self, max_bytes: u64) -> Self {
        let index = (max_bytes > 0).then(|| Arc::new(RawIndex::new(max_bytes)));
        self.with(|c| c.raw_index = index)
    }

    /// Scopes every entry to this secret (for example an API key that is added *inside*
    /// the cache, so requests reaching the layer carry no `Authorization`). Only a
    /// SHA-256 digest of the secret is kept.
    pub fn tenant_secret(self, secret: impl AsRef<[u8]>) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"mistral-tower/tenant/v1\0");
        h.update(secret.as_ref());
        let d: [u8; 32] = h.finalize().into();
        self.with(|c| c.tenant = Tenant::Fixed(d))
    }

    /// Signs every entry this layer writes with HMAC-SHA256 under `secret`, and refuses
    /// every entry read from the engine that is unsigned, modified or signed with
    /// another secret: it is a miss (counted in
    /// [`MetricsSnapshot::entries_rejected_signature`], logged at `warn` at the 1st,
    /// 2nd, 4th, 8th, ... refusal), never served, and the answer fetched upstream
    /// overwrites it. For stores that others can write: an S3 bucket, a shared Redis.
    ///
    /// The tag covers the whole stored entry (status, headers, body, times, request
    /// line) and is compared in constant time; only keyed HMAC states are kept, and
    /// `Debug` never shows them. Entries this layer wrote into an in-process
    /// [`MemoryEngine`](super::MemoryEngine) are not re-verified (they never left the
    /// process); everything read from any other engine, or from the memory front of
    /// a [`TieredEngine`](super::TieredEngine) (filled from a shared one), is.
    /// Turning signing on makes the unsigned entries already stored misses, rewritten
    /// signed as they are requested; with signing off, signed entries are served
    /// (their checksum is checked). Rotate with
    /// [`sign_entries_with`](Self::sign_entries_with).
    ///
    /// Single-flight across processes ([`fleet_flight`](Self::fleet_flight)) is signed
    /// too: a signing leader signs every event it publishes to the store (an HMAC over
    /// the key, its lease, the event's position and bytes), and a signing follower
    /// refuses any other (counted in
    /// [`MetricsSnapshot::fleet_events_rejected_signature`]): before the response head
    /// it calls upstream itself, after it ends the body with
    /// [`SharedResponseFailed`](super::SharedResponseFailed). Replicas share flights
    /// when they share a secret.
    ///
    /// # Panics
    ///
    /// When `secret` is empty.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use mistral_tower::cache::{CacheEngine, CacheEntry, CacheLayer, MemoryEngine};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let upstream = tower::service_fn(|_req: http::Request<_>| async {
    ///     let body = Full::new(Bytes::from_static(br#"{"id":"cmpl-1"}"#));
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(body))
    /// });
    /// let store = Arc::new(MemoryEngine::new(1 << 20)); // stands for a shared store
    /// let layer = CacheLayer::new(store.clone()).sign_entries("a long random secret");
    /// let svc = ServiceBuilder::new().layer(layer.clone()).service(upstream);
    /// let request = || http::Request::post("/v1/chat/completions").body(Full::new(Bytes::new())).unwrap();
    ///
    /// let res = svc.clone().oneshot(request()).await.unwrap(); // MISS
    /// res.into_body().collect().await.unwrap(); // stored, signed, at the end of the body
    /// // Someone without the secret rewrites the entry in the store.
    /// let key = store.keys().await.unwrap().pop().unwrap();
    /// let stored = store.get(&key).await.unwrap();
    /// let forged = CacheEntry::decode(&stored).unwrap().encode(); // unsigned copy
    /// store.set(&key, forged).await.unwrap();
    ///
    /// let res = svc.clone().oneshot(request()).await.unwrap();
    /// assert_eq!(res.headers()["x-cache"], "MISS"); // refused, fetched again
    /// res.into_body().collect().await.unwrap(); // and stored, signed
    /// assert_eq!(layer.metrics().entries_rejected_signature, 1);
    /// let res = svc.oneshot(request()).await.unwrap();
    /// assert_eq!(res.headers()["x-cache"], "HIT"); // the signed answer replaced it
    /// # });
    /// ```
    pub fn sign_entries(self, secret: impl AsRef<[u8]>) -> Self {
        self.sign_entries_with(secret, std::iter::empty::<&[u8]>())
    }

    /// [`sign_entries`](Self::sign_entries) with secret rotation: new entries are
    /// signed with `current`; entries signed with `current` or with any of
    /// `previous` are served. Rotate by moving the old secret into `previous`,
    /// and drop it once entries signed with it have expired or been rewritten.
    ///
    /// ```
    /// use mistral_tower::cache::{CacheLayer, MemoryEngine};
    /// let layer = CacheLayer::new(MemoryEngine::new(1 << 20))
    ///     .sign_entries_with("secret-2026", ["secret-2025"]);
    /// assert!(!format!("{layer:?}").contains("secret-20"));
    /// ```
    ///
    /// # Panics
    ///
    /// When a secret is empty.
    pub fn sign_entries_with<I>(self, current: impl AsRef<[u8]>, previous: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let secrets = previous
            .into_iter()
            .fold(EntrySecrets::new(current), |s, p| s.accept(p));
        let secrets = Some(Arc::new(secrets));
        self.with(|c| c.secrets = secrets)
    }

    /// Shares entries between all callers, whatever their `Authorization` header.
    pub fn shared_tenant(self) -> Self {
        self.with(|c| c.tenant = Tenant::Shared)
    }

    /// Scopes entries by a hash of the `Authorization` header (the default).
    pub fn tenant_from_authorization(self) -> Self {
        self.with(|c| c.tenant = Tenant::Authorization)
    }

    /// Request bodies larger than this are forwarded uncached (`x-cache: BYPASS`).
    pub fn max_request_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_request_body = bytes)
    }

    /// Response bodies larger than this are forwarded but not stored.
    pub fn max_response_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_response_body = bytes)
    }

    /// How long an engine `get` may take before it counts as a miss (fail-open).
    ///
    /// The timeout uses tokio's timer and only applies when the engine's future does not
    /// complete on its first poll.
    pub fn get_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.get_timeout = timeout)
    }

    /// How long a background engine `set` may take before it is abandoned (and counted
    /// as a store error).
    pub fn set_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.set_timeout = timeout)
    }

    /// How long a follower waits for the response head of an identical in-flight request
    /// before calling upstream itself.
    pub fn flight_wait(self, wait: Duration) -> Self {
        self.with(|c| c.flight_wait = Some(wait))
    }

    /// Turns single-flight across processes on or off (on by default). With an engine
    /// that has a fleet capability ([`CacheEngine::fleet`](super::CacheEngine::fleet): Redis, PostgreSQL), identical
    /// concurrent misses in every process on the same store make one upstream call; see
    /// "Single-flight across processes" in the [module docs](super). Engines without one are not
    /// affected. Single-flight itself ([`single_flight`](Self::single_flight)) must be on,
    /// and entry signing ([`sign_entries`](Self::sign_entries)) off.
    pub fn fleet_flight(self, enabled: bool) -> Self {
        self.with(|c| c.fleet = enabled)
    }

    /// The fleet leader's lease (default [`DEFAULT_FLEET_LEASE`](super::DEFAULT_FLEET_LEASE)):
    /// renewed every third of it while the leader runs; a leader that dies is noticed by
    /// its followers within it (they then take over, or end their body with an error).
    pub fn fleet_lease(self, lease: Duration) -> Self {
        self.with(|c| c.fleet_lease = lease.max(Duration::from_millis(100)))
    }

    /// Turns single-flight (coalescing of identical concurrent misses) on or off.
    pub fn single_flight(self, enabled: bool) -> Self {
        self.with(|c| {
            c.flight_wait = if enabled {
                Some(c.flight_wait.unwrap_or(DEFAULT_FLIGHT_WAIT))
            } else {
                None
            }
        })
    }

    /// Replaces the clock used for entry times, TTL and `age` (for tests).
    pub fn clock(self, clock: impl Clock) -> Self {
        let k: Arc<dyn Clock> = Arc::new(clock);
        self.with(|c| c.clock = k)
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// A snapshot of the counters shared by every service built from this layer.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.shared.metrics.snapshot();
        self.shared.breaker.fill(&mut m);
        m
    }

    /// The engine's circuit breaker: after `failures` engine errors or timeouts in a
    /// row, reads are skipped (misses) and writes dropped for `cool_down`, then one
    /// request probes the engine (see [`BreakerState`](super::BreakerState)). Default
    /// 5 failures, 10 s; `0` failures turns it off. Shared by every layer cloned from
    /// this one.
    pub fn circuit_breaker(self, failures: u32, cool_down: Duration) -> Self {
        self.shared.breaker.configure(failures, cool_down);
        self
    }
}

impl<S, E> Layer<S> for CacheLayer<E> {
    type Service = CacheService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::from_parts(inner, self.config.clone(), self.shared.clone())
    }
}
