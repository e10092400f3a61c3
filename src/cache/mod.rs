//! A response cache as tower middleware: [`CacheLayer`] in front of any HTTP service,
//! storing answers in a pluggable [`CacheEngine`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let upstream = tower::service_fn(|_req: http::Request<_>| async {
//!     let res = http::Response::builder()
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from_static(br#"{"id":"cmpl-1"}"#)))
//!         .unwrap();
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//! let layer = CacheLayer::new(MemoryEngine::new(64 * 1024 * 1024)); // byte budget
//! let svc = ServiceBuilder::new().layer(layer.clone()).service(upstream);
//!
//! // Field order and whitespace do not change the key.
//! for body in [r#"{"model":"m","n":1}"#, r#"{ "n": 1, "model": "m" }"#] {
//!     let req = http::Request::post("/v1/chat/completions")
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from(body)))
//!         .unwrap();
//!     let res = svc.clone().oneshot(req).await.unwrap();
//!     println!("{}", res.headers()["x-cache"].to_str().unwrap()); // MISS, then HIT
//!     assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), r#"{"id":"cmpl-1"}"#);
//! }
//! assert_eq!((layer.metrics().misses, layer.metrics().hits), (1, 1));
//! # });
//! ```
//!
//! # Behaviour
//!
//! - **Key**: SHA-256 over method, path and query, the canonicalized JSON body (field
//!   order and whitespace never matter), the namespace and a tenant scope (by default a
//!   hash of the `Authorization` header, so two API keys never share entries; see
//!   [`CacheLayer::tenant_secret`] and [`CacheLayer::shared_tenant`]). See [`key`] for the
//!   canonical form; [`CacheLayer::key_fn`] replaces it.
//! - **Request body**: buffered up to [`CacheLayer::max_request_body`]; a larger body is
//!   forwarded untouched and uncached (`x-cache: BYPASS`). The inner service receives a
//!   [`RequestBody`].
//! - **Hit**: the stored status, headers and body, plus `x-cache: HIT` and `age`; the
//!   inner service is not called. An answer with an OpenAI-style `usage` object (a JSON
//!   body, or the last event of a stream that carries one) is stored with
//!   [`X_CACHE_SAVED_TOKENS`] (`98; prompt=27; completion=71; model="…"`, read once
//!   when the entry is stored), so every hit tells the tokens it saved. An engine that
//!   keeps entries in memory ([`MemoryEngine`], [`FileEngine`]'s hot tier) hands out the
//!   same stored buffer on every hit; each runtime thread remembers the entries it
//!   decoded from its last 8 such buffers (up to 256 KiB each), so a repeated hit is
//!   neither decoded nor checksummed again. Nothing is served from that memo that the
//!   engine did not just return (an entry purged or replaced is another buffer), and a
//!   signing layer checks the signature first.
//! - **`x-cache-key`**: hits, misses, refreshes and coalesced answers carry
//!   [`X_CACHE_KEY`], the key the entry is stored under (the hex SHA-256 digest of the
//!   default key; never the key material, never a credential), for
//!   `mistral-cache inspect`. A custom [`CacheLayer::key_fn`] key is sent only when it
//!   looks like a digest (32 to 128 lowercase hex digits). Bypassed requests (not
//!   cacheable, `no-store`, body over the limit) and answers the cache gives itself
//!   (`400`, `413`) carry no key: nothing was looked up or stored.
//! - **Miss**: the inner service's answer is streamed to the caller as it arrives and
//!   stored only if it is complete and cacheable: 2xx, no `Cache-Control: no-store`,
//!   within [`CacheLayer::max_response_body`], and its body ended cleanly. Errors,
//!   4xx/5xx, bodies ending in an error and bodies dropped early are never stored.
//! - **SSE** (`text/event-stream`): each frame reaches the caller immediately; the stream
//!   is stored only when it ended cleanly after `data: [DONE]`, frame by frame, and a hit
//!   replays the same frames byte for byte. A caller that drops the body right after
//!   `[DONE]` (SDKs do) does not lose the entry: the rest of the upstream body is read on
//!   a task (at most 2 s). A caller that drops it earlier stops the upstream stream.
//! - **Single-flight**: identical concurrent misses make one upstream call; the others
//!   join it (`x-cache: COALESCED`), streams included. If the leader fails before its
//!   response head, a follower takes over.
//! - **Single-flight across processes**: with an engine that can coordinate processes
//!   ([`CacheEngine::fleet`]: Redis, Redis Cluster, PostgreSQL), identical concurrent
//!   misses in every process on the same store make one upstream call; followers in other
//!   processes receive the leader's head and frames through the engine as they arrive,
//!   byte for byte. A lease with fencing bounds every wait: a leader that dies before its
//!   head is taken over, one that dies after it ends its followers' bodies with
//!   [`SharedResponseFailed`]; an engine that fails means calling upstream. On by default,
//!   see [`CacheLayer::fleet_flight`] and [`CacheLayer::fleet_lease`]; an engine with only
//!   `get` and `set` keeps per-process single-flight.
//! - **Fail-open**: an engine error or a `get` slower than [`CacheLayer::get_timeout`]
//!   is a miss; a failed `set` is logged and counted; writes never delay the response
//!   (they are polled once inline and otherwise finished on a spawned tokio task). An
//!   entry that does not decode is a miss and is overwritten.
//! - **Signed entries** (for stores others can write): with
//!   [`CacheLayer::sign_entries`], every entry carries an HMAC-SHA256 tag; an entry
//!   read from the engine that is unsigned, modified or forged is a miss (counted in
//!   [`MetricsSnapshot::entries_rejected_signature`]), never served, and overwritten.
//!
//! # Request headers
//!
//! | header | effect | `x-cache` |
//! |---|---|---|
//! | `x-cache-control: no-cache` | skip the read, call upstream, store the answer | `REFRESH` |
//! | `x-cache-control: no-store` | neither read nor write | `BYPASS` |
//! | `x-cache-control: max-age=N` | accept only an entry younger than N (`60`, `10m`) | `HIT` / `MISS` |
//! | `x-cache-control: only-if-cached` | `504` on a miss (JSON error, `"code":"only_if_cached"`), upstream never called | `MISS` |
//! | `x-cache-ttl: N` | store the answer for N (`3600`, `30m`, `7d`) | |
//! | `x-cache-namespace: NAME` | key the request in this namespace (any UTF-8) | |
//!
//! They are removed before the request is forwarded; a value that does not parse is
//! answered `400`. The standard `Cache-Control` request header is ignored unless
//! [`CacheLayer::honor_cache_control`] is on (HTTP libraries send it on their own).
//! `x-cache` values: `HIT`, `MISS`,
//! `COALESCED` (shared an identical in-flight call), `BYPASS`, `REFRESH`.
//!
//! # Engines
//!
//! An engine is a byte store implementing [`CacheEngine`]: `get` and `set` under string
//! keys. **`get` must return [`CacheError::Miss`] when no entry exists**: any other
//! error is counted as an engine failure (and still treated as a miss). The layer stores
//! its own expiry time in every entry, so an engine without TTL support stays correct.
//! [`MemoryEngine`] (bounded by bytes, least recently used evicted first) and
//! [`FileEngine`] (a directory, the default at `.mistral/cache`) are built in; an
//! engine chosen at run time goes in a [`BoxEngine`]. Stored bytes follow the [`entry`] format and can be decoded with
//! [`CacheEntry::decode`]. The engines and their trait live in [`engine`].
//!
//! # Errors
//!
//! The service's error is the inner service's (`CacheService<S, E>::Error ==
//! S::Error`): the cache adds none of its own. A request body that fails while it is
//! buffered is answered by the cache itself, without calling the inner service: `413`
//! for a body-size limit (`http_body_util::LengthLimitError`), `408` for an I/O timeout,
//! `400` otherwise, each with a JSON error body.
//!
//! # Layout
//!
//! Each module imports only the ones listed before it:
//!
//! - [`key`], [`entry`], `control` (request headers), `metrics`, `head` (reading HTTP
//!   heads), `usage` (the tokens an answer's `usage` counts): leaves; `sign` (entry
//!   signatures, [`EntrySecrets`]) over [`entry`];
//! - [`engine`]: the contract (`engine/contract.rs`), then the memory, file, tiered,
//!   Redis, PostgreSQL and object-store engines and `engine_from_url`;
//! - `flight/`: single-flight, from the bottom up: `state` (one flight), `table`
//!   (flights by key, the leader's guard), `recorder` (the leader's upstream body teed
//!   into its flight), `reader` (a response body's cursor into a flight), `commit` (the
//!   entry a completed flight stores);
//! - `config` (the layer's settings and shared state), `buffer` (request body),
//!   `lookup` (key and engine read), `respond` (answers the cache gives by itself),
//!   `store` (writing a completed flight), `fleet/` (single-flight across processes
//!   through the engine's [`SharedFlight`](engine::SharedFlight): `head` (the head as a
//!   published event), `leader` (lease and publishing), `follower` (reading another
//!   process's flight)), `miss` (leading or joining a flight);
//! - the middleware: `body` ([`RequestBody`], [`ResponseBody`]), `future`
//!   ([`ResponseFuture`]), `service` ([`CacheService`]) and `layer` ([`CacheLayer`]).
//!
//! Everything here builds without the crate's `client` feature.

mod body;
mod bounded;
pub(crate) mod breaker;
mod buffer;
mod config;
mod control;
pub mod engine;
pub mod entry;
mod fleet;
mod flight;
mod future;
mod head;
pub mod key;
mod layer;
mod lookup;
pub(crate) mod memo;
mod metrics;
mod miss;
pub mod multipart;
mod recycle;
mod report;
mod respond;
mod service;
mod sign;
mod store;
mod usage;

pub(crate) use report::Chain;

pub use body::{RequestBody, ResponseBody};
pub use breaker::{BreakerState, DEFAULT_BREAKER_COOL_DOWN, DEFAULT_BREAKER_FAILURES};
pub use config::{
    Clock, DEFAULT_FLEET_LEASE, DEFAULT_FLIGHT_WAIT, DEFAULT_GET_TIMEOUT, DEFAULT_MAX_REQUEST_BODY,
    DEFAULT_MAX_RESPONSE_BODY, DEFAULT_SET_TIMEOUT, SystemClock,
};
#[cfg(feature = "server")]
pub(crate) use control::parse_duration;
pub use control::{
    CacheMode, CacheStatus, Cacheable, DefaultCacheable, Storage, X_CACHE, X_CACHE_CONTROL,
    X_CACHE_NAMESPACE, X_CACHE_TTL,
};
#[cfg(feature = "s3")]
pub use engine::ObjectStoreEngine;
#[cfg(feature = "redis")]
pub use engine::RedisEngine;
pub use engine::{
    BoxEngine, CacheEngine, CacheError, DEFAULT_FILE_CACHE_DIR, DynCacheEngine, FileEngine,
    MemoryEngine, TieredEngine, engine_from_url,
};
#[cfg(feature = "postgres")]
pub use engine::{PostgresEngine, SweeperHandle};
pub use entry::{CacheEntry, DecodeError, EntryKind};
pub use flight::SharedResponseFailed;
pub use future::ResponseFuture;
pub use key::{DefaultKeyFn, KeyFn, KeyInput, canonical_json};
pub use layer::CacheLayer;
pub use metrics::MetricsSnapshot;
pub use service::CacheService;
pub use sign::{EntrySecrets, SignatureError};
pub use usage::{SavedTokens, Usage, X_CACHE_KEY, X_CACHE_SAVED_TOKENS, usage_from_body};
