//! [`CacheService`]: answers from the engine or forwards to the inner service and records.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use tower::{Layer, ServiceExt};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
//! let svc = layer.layer(tower::service_fn(|_req: http::Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
//! }));
//! for expected in ["MISS", "HIT"] {
//!     let req = http::Request::post("/v1/x").body(Full::new(Bytes::from("{}"))).unwrap();
//!     let res = svc.clone().oneshot(req).await.unwrap();
//!     assert_eq!(res.headers()["x-cache"], expected);
//!     assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
//! }
//! # });
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use super::body::{Commit, Recorder, RequestBody, ResponseBody, TeeBody};
use super::control::{CacheMode, CacheStatus, RequestControl, X_CACHE, response_forbids_store};
use super::entry::{CacheEntry, Encoder, EntryKind, Frames};
use super::flight::{Flight, Head, LeaderGuard, Role};
use super::future::ResponseFuture;
use super::key::{HexKey, KeyInput, default_key_hex};
use super::layer::{Config, Shared, Tenant};
use super::metrics::Metrics;
use super::{CacheEngine, CacheError};
use crate::BoxError;

/// The service built by [`CacheLayer`](super::CacheLayer). See the [module docs](super).
pub struct CacheService<S, E> {
    inner: S,
    config: Arc<Config>,
    shared: Arc<Shared<E>>,
}

impl<S, E> CacheService<S, E> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>, shared: Arc<Shared<E>>) -> Self {
        CacheService {
            inner,
            config,
            shared,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the cache service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// A snapshot of the counters shared with the layer and its other services.
    pub fn metrics(&self) -> super::MetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

impl<S: Clone, E> Clone for CacheService<S, E> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, E: fmt::Debug> fmt::Debug for CacheService<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("engine", &self.shared.engine)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, E, B, ResBody> Service<Request<B>> for CacheService<S, E>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    E: CacheEngine,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Everything that can be decided without waiting (buffering a body that is
        // already there, the key, a read from an engine that answers synchronously) is
        // done here: a hit is returned as a ready future and the inner service is left
        // untouched (still ready for the next call).
        let state = match start(&self.config, &self.shared, req) {
            Start::Done(res) => return ResponseFuture::ready(res),
            Start::Continue(state) => state,
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::pending(Box::pin(finish(
            inner,
            self.config.clone(),
            self.shared.clone(),
            state,
        )))
    }
}

type Res<ResBody> = Result<Response<ResponseBody<ResBody>>, BoxError>;

/// Calls the inner service and passes its answer through, marked with `status`.
async fn forward<S, B, ResBody>(
    mut inner: S,
    parts: Parts,
    body: RequestBody<B>,
    status: CacheStatus,
) -> Res<ResBody>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    let mut res = inner
        .call(Request::from_parts(parts, body))
        .await
        .map_err(Into::into)?;
    res.headers_mut().insert(X_CACHE, status.header_value());
    Ok(res.map(ResponseBody::pass))
}

/// The outcome of buffering a request body.
enum Buffered {
    /// The whole body, within the limit.
    Full(Bytes),
    /// Over the limit: the prefix read so far (the rest is still in the body).
    Over(Bytes),
}

/// Reads a request body up to a limit, frame by frame, across polls.
struct Buffer {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    total: usize,
    limit: usize,
}

impl Buffer {
    fn new(limit: usize) -> Self {
        Buffer {
            first: None,
            rest: None,
            total: 0,
            limit,
        }
    }

    fn take(&mut self) -> Bytes {
        match self.rest.take() {
            Some(b) => b.freeze(),
            None => self.first.take().unwrap_or_default(),
        }
    }

    fn poll<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Buffered, BoxError>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            let Some(frame) = ready!(body.as_mut().poll_frame(cx)) else {
                return Poll::Ready(Ok(Buffered::Full(self.take())));
            };
            let Ok(data) = frame.map_err(Into::into)?.into_data() else {
                continue; // trailers are dropped
            };
            self.total += data.len();
            let over = self.total > self.limit;
            match (&mut self.first, &mut self.rest) {
                (None, _) => self.first = Some(data),
                (Some(f), None) => {
                    let cap = if over {
                        self.total
                    } else {
                        self.total.max(2 * f.len())
                    };
                    let mut b = BytesMut::with_capacity(cap);
                    b.extend_from_slice(f);
                    b.extend_from_slice(&data);
                    self.rest = Some(b);
                }
                (Some(_), Some(b)) => b.extend_from_slice(&data),
            }
            if over {
                return Poll::Ready(Ok(Buffered::Over(self.take())));
            }
        }
    }
}

/// The `Content-Length` header as a number, if present and valid.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `true` when `Content-Length` or the body's size hint already says it is over `limit`.
fn declared_over<B: Body>(parts: &Parts, body: &B, limit: usize) -> bool {
    content_length(&parts.headers).is_some_and(|n| n > limit as u64)
        || body.size_hint().lower() > limit as u64
}

/// Polls a future once; if it is not ready, waits for it under a tokio timeout when a
/// runtime is available.
async fn bounded<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let mut fut = pin!(fut);
    if let Poll::Ready(v) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Some(v);
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::timeout(timeout, fut).await.ok()
    } else {
        Some(fut.await)
    }
}

/// Reads and decodes the entry under `key`; every failure is a miss (fail-open).
async fn lookup<E: CacheEngine>(shared: &Shared<E>, cfg: &Config, key: &str) -> Option<CacheEntry> {
    // An engine that keeps failing is skipped for a while (a miss).
    let admit = shared.breaker.admit()?;
    let res = bounded(shared.engine.get(key), cfg.get_timeout)
        .await
        .unwrap_or(Err(CacheError::Timeout(cfg.get_timeout)));
    let answered = matches!(res, Ok(_) | Err(CacheError::Miss));
    shared.breaker.record(admit, answered);
    decode_entry(&shared.metrics, key, res, false)
}

/// Decodes what the engine answered; every failure is a miss (fail-open). `trusted`:
/// the bytes were encoded by this layer and kept in memory since (see
/// [`MemoryEngine`](super::MemoryEngine)), so their checksum is not recomputed.
fn decode_entry(
    m: &Metrics,
    key: &str,
    res: Result<Bytes, CacheError>,
    trusted: bool,
) -> Option<CacheEntry> {
    let data = match res {
        Ok(d) => d,
        Err(CacheError::Miss) => return None,
        Err(e) => {
            Metrics::inc(&m.engine_errors);
            tracing::warn!(key, error = %e, "cache engine get failed; treating as a miss");
            return None;
        }
    };
    // Room for the `x-cache` and `age` headers of a hit.
    let decoded = if trusted {
        CacheEntry::decode_trusted(&data, 2)
    } else {
        CacheEntry::decode_with_spare(&data, 2)
    };
    match decoded {
        Ok(e) => Some(e),
        Err(e) => {
            Metrics::inc(&m.corrupt_entries);
            tracing::warn!(key, error = %e, "undecodable cache entry; treating as a miss");
            None
        }
    }
}

fn hit_response<ResBody>(
    entry: CacheEntry,
    now_ms: u64,
    m: &Metrics,
) -> Response<ResponseBody<ResBody>> {
    let age = now_ms.saturating_sub(entry.created_ms()) / 1000;
    let (status, mut headers, frames) = entry.into_hit_parts();
    headers.insert(X_CACHE, CacheStatus::Hit.header_value());
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let age = match SMALL.get(age as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(age),
    };
    headers.insert(header::AGE, age);
    Metrics::inc(&m.hits);
    let body = match frames {
        Frames::One(f) => {
            Metrics::add(&m.bytes_served, f.len() as u64);
            ResponseBody::once(f)
        }
        Frames::Many(frames) => {
            Metrics::add(&m.bytes_served, frames.iter().map(|f| f.len() as u64).sum());
            ResponseBody::replay(frames)
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

fn only_if_cached_miss<ResBody>() -> Response<ResponseBody<ResBody>> {
    let body = Bytes::from_static(ONLY_IF_CACHED_MISS_BODY.as_bytes());
    let mut res = Response::new(ResponseBody::once(body));
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    let h = res.headers_mut();
    h.insert(X_CACHE, CacheStatus::Miss.header_value());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(ONLY_IF_CACHED_MISS_BODY.len()),
    );
    res
}

/// The body of the 504 answered to `only-if-cached` (or in replay-only mode) on a miss:
/// a JSON error in the flat `{object, message, type, code}` envelope that LLM APIs and
/// their SDKs parse, so the caller sees why instead of an empty error.
const ONLY_IF_CACHED_MISS_BODY: &str = r#"{"object":"error","message":"no cached answer for this request (only-if-cached or replay-only cache)","type":"cache_miss","param":null,"code":"only_if_cached"}"#;

/// What the leader needs to store the entry once its body ended.
struct CommitCtx<E> {
    shared: Arc<Shared<E>>,
    config: Arc<Config>,
    ttl: Option<Duration>,
    /// The request's `x-cache-namespace`, if any (otherwise the layer's).
    namespace: Option<String>,
    method: http::Method,
    path: String,
}

/// Whether a recorded event stream ended cleanly, so that replaying it is right.
///
/// Clean means: its last event is `data: [DONE]` (a whole event, not the text
/// inside another event's data), and no event reports an error: an `event: error`,
/// or a JSON payload with an `error` member, `"object": "error"`, or a choice whose
/// `finish_reason` is `"error"` (LLM APIs end a failed generation that way). Lines
/// end in LF, CRLF or CR, as the event-stream format allows.
pub(crate) fn sse_completed_cleanly(frames: &[Bytes]) -> bool {
    let body: std::borrow::Cow<'_, [u8]> = match frames {
        [] => return false,
        [one] => std::borrow::Cow::Borrowed(one),
        many => {
            let mut all = Vec::with_capacity(many.iter().map(Bytes::len).sum());
            many.iter().for_each(|f| all.extend_from_slice(f));
            std::borrow::Cow::Owned(all)
        }
    };
    let mut done = false;
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    let mut error_event = false;
    let mut event: Vec<u8> = Vec::new();
    let mut rest: &[u8] = &body;
    while !rest.is_empty() {
        let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        let mut next = end;
        if next < rest.len() {
            next += if rest[next] == b'\r' && rest.get(next + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
        }
        rest = &rest[next..];
        if line.is_empty() {
            // Dispatch the event.
            if has_data || error_event {
                if error_event {
                    return false;
                }
                if data == b"[DONE]" || final_event(&event, &data) {
                    done = true;
                } else {
                    if sse_payload_reports_error(&data) {
                        return false;
                    }
                    done = false;
                }
            }
            data.clear();
            event.clear();
            has_data = false;
            error_event = false;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"event" => {
                error_event = value == b"error";
                event.clear();
                event.extend_from_slice(value);
            }
            _ => {}
        }
    }
    // A final `data: [DONE]` without its blank line still marks the end.
    if has_data {
        done = (data == b"[DONE]" || final_event(&event, &data)) && !error_event;
    }
    done
}

/// Whether an event is its endpoint's own last event (`transcription.done`, ...):
/// streams that send no `[DONE]` end cleanly there (see [`crate::sse::is_final_event`]).
fn final_event(event: &[u8], data: &[u8]) -> bool {
    memchr::memmem::find(data, b".done").is_some()
        && crate::sse::is_final_event(
            &String::from_utf8_lossy(event),
            &String::from_utf8_lossy(data),
        )
}

/// Whether one event's JSON payload reports an error (see [`sse_completed_cleanly`]).
fn sse_payload_reports_error(data: &[u8]) -> bool {
    if memchr::memmem::find(data, b"error").is_none() {
        return false;
    }
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return false;
    };
    if obj.get("error").is_some_and(|e| !e.is_null())
        || obj.get("object").and_then(|o| o.as_str()) == Some("error")
    {
        return true;
    }
    obj.get("choices")
        .and_then(|c| c.as_array())
        .is_some_and(|choices| {
            choices
                .iter()
                .any(|c| c.get("finish_reason").and_then(|f| f.as_str()) == Some("error"))
        })
}

impl<E: CacheEngine> Commit for CommitCtx<E> {
    fn commit(&self, key: Arc<str>, flight: Arc<Flight>) {
        let shared = &self.shared;
        let created = self.config.clock.now_ms();
        let expires = self
            .ttl
            .map(|t| created.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        // Encoded straight from the flight (no copy of its head or frames first).
        let data =
            flight.with_recorded(|head, frames| self.encode(&key, head, frames, created, expires));
        let Some(data) = data else {
            shared.flights.remove(&key, &flight);
            return;
        };
        store(shared, self.config.set_timeout, key, data, self.ttl, flight);
    }
}

impl<E> CommitCtx<E> {
    /// The entry for the recorded answer, or `None` when it must not be stored.
    fn encode(
        &self,
        key: &str,
        head: Option<&Head>,
        frames: &[Bytes],
        created_ms: u64,
        expires_ms: Option<u64>,
    ) -> Option<Bytes> {
        let head = head?;
        let (content_length, one_frame) = match head.kind {
            EntryKind::Sse => {
                if !sse_completed_cleanly(frames) {
                    tracing::debug!(
                        key,
                        "stream ended without `data: [DONE]` or reported an error; not stored"
                    );
                    return None;
                }
                (None, false)
            }
            // A complete body is stored as one frame.
            _ => {
                let len: usize = frames.iter().map(Bytes::len).sum();
                let bodiless = self.method == http::Method::HEAD
                    || head.status == http::StatusCode::NO_CONTENT
                    || head.status == http::StatusCode::NOT_MODIFIED;
                if bodiless {
                    (None, true)
                } else if content_length(&head.headers).is_some_and(|n| n != len as u64) {
                    // The body ended short of (or past) its declared length: a
                    // truncated answer, never stored.
                    tracing::debug!(key, "body length differs from Content-Length; not stored");
                    return None;
                } else {
                    (Some(len), true)
                }
            }
        };
        let namespace = self.namespace.as_deref().unwrap_or(&self.config.namespace);
        Some(
            Encoder {
                kind: head.kind,
                status: head.status,
                headers: &head.headers,
                content_length,
                frames,
                one_frame,
                created_ms,
                expires_ms,
                namespace: namespace.as_bytes(),
                method: self.method.as_str().as_bytes(),
                path: self.path.as_bytes(),
            }
            .encode(),
        )
    }
}

fn record_store<E>(shared: &Shared<E>, key: &str, res: Result<(), CacheError>) {
    match res {
        Ok(()) => {
            Metrics::inc(&shared.metrics.stores);
            tracing::debug!(key, "cache store");
        }
        Err(e) => {
            Metrics::inc(&shared.metrics.store_errors);
            tracing::warn!(key, error = %e, "cache engine set failed; entry not stored");
        }
    }
}

/// Writes an entry without delaying the caller: inline into a [`MemoryEngine`]
/// (see [`CacheEngine::as_memory_engine`]), otherwise polled once inline (other
/// in-memory engines finish there) and finished on a spawned tokio task under
/// `timeout`. The flight is removed from the table once the write is over.
///
/// [`MemoryEngine`]: super::MemoryEngine
fn store<E: CacheEngine>(
    shared: &Arc<Shared<E>>,
    timeout: Duration,
    key: Arc<str>,
    data: Bytes,
    ttl: Option<Duration>,
    flight: Arc<Flight>,
) {
    if let Some(memory) = shared.engine.as_memory_engine() {
        memory.set_trusted(&key, data, ttl);
        record_store(shared, &key, Ok(()));
        shared.flights.remove(&key, &flight);
        return;
    }
    // An engine that keeps failing is not written to for a while.
    let Some(admit) = shared.breaker.admit() else {
        Metrics::inc(&shared.metrics.store_errors);
        shared.flights.remove(&key, &flight);
        return;
    };
    let shared = shared.clone();
    let s2 = shared.clone();
    let k2 = key.clone();
    let f2 = flight.clone();
    let mut fut = Box::pin(async move {
        let res = shared.engine.set_with_ttl(&key, data, ttl).await;
        shared.breaker.record(admit, res.is_ok());
        record_store(&shared, &key, res);
        shared.flights.remove(&key, &flight);
    });
    let mut cx = Context::from_waker(Waker::noop());
    if fut.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                if tokio::time::timeout(timeout, fut).await.is_err() {
                    s2.breaker.record(admit, false);
                    record_store(&s2, &k2, Err(CacheError::Timeout(timeout)));
                    s2.flights.remove(&k2, &f2);
                }
            });
        }
        Err(_) => {
            drop(fut);
            record_store(
                &s2,
                &k2,
                Err(CacheError::backend(
                    "engine set is pending and no tokio runtime is running",
                )),
            );
            s2.flights.remove(&k2, &f2);
        }
    }
}

fn is_sse(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .get(..17)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
    })
}

/// The leader: calls upstream and, if the answer is cacheable, shares and records it.
#[allow(clippy::too_many_arguments)]
async fn lead<S, E, B, ResBody>(
    mut inner: S,
    parts: Parts,
    body: Bytes,
    guard: LeaderGuard,
    ctx: CommitCtx<E>,
    status: CacheStatus,
) -> Res<ResBody>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    E: CacheEngine,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let res = inner
        .call(Request::from_parts(parts, RequestBody::full(body)))
        .await
        .map_err(Into::into)?; // on error the guard fails the flight
    let (mut rparts, rbody) = res.into_parts();
    let limit = ctx.config.max_response_body;
    let declared = content_length(&rparts.headers);
    let cacheable = rparts.status.is_success()
        && !response_forbids_store(&rparts.headers)
        && declared.is_none_or(|n| n <= limit as u64);
    if !cacheable {
        tracing::debug!(key = %guard.key, status = %rparts.status, "response not cacheable");
        drop(guard);
        rparts.headers.insert(X_CACHE, status.header_value());
        return Ok(Response::from_parts(rparts, ResponseBody::pass(rbody)));
    }
    let kind = if is_sse(&rparts.headers) {
        EntryKind::Sse
    } else {
        EntryKind::Json
    };
    guard.flight.set_head(Head {
        status: rparts.status,
        headers: rparts.headers.clone(),
        kind,
    });
    rparts.headers.insert(X_CACHE, status.header_value());
    let flight = guard.flight.clone();
    let erased: TeeBody = Box::pin(http_body_util::BodyExt::map_err(rbody, Into::into));
    let mut rec = Recorder {
        body: Some(erased),
        guard: Some(guard),
        commit: Arc::new(ctx),
        size: 0,
        limit,
    };
    if rec.body.as_ref().is_some_and(|b| b.is_end_stream()) {
        rec.finish_now();
    }
    Ok(Response::from_parts(rparts, ResponseBody::tee(flight, rec)))
}

fn follower_response<ResBody>(
    flight: Arc<Flight>,
    head: Head,
    status: CacheStatus,
) -> Response<ResponseBody<ResBody>> {
    let mut res = Response::new(ResponseBody::follow(flight));
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers;
    res.headers_mut().insert(X_CACHE, status.header_value());
    res
}

/// The key of a request: on the stack for the default key function.
enum Key {
    Hex(HexKey),
    Owned(String),
}

impl Key {
    fn as_str(&self) -> &str {
        match self {
            Key::Hex(k) => k.as_str(),
            Key::Owned(k) => k,
        }
    }
}

/// What `call` could not finish without waiting.
enum State<B> {
    /// Not cached: forward as is.
    Forward { parts: Parts, body: RequestBody<B> },
    /// The body has not fully arrived yet.
    Buffering {
        parts: Parts,
        ctl: RequestControl,
        body: Pin<Box<B>>,
        buf: Buffer,
    },
    /// Keyed; `lookup`: the engine must still be asked (it does not answer
    /// synchronously), otherwise no usable entry was found.
    Keyed {
        parts: Parts,
        ctl: RequestControl,
        bytes: Bytes,
        key: Key,
        lookup: bool,
    },
}

// A short-lived return value; boxing `State` would allocate on every miss.
#[allow(clippy::large_enum_variant)]
enum Start<B, ResBody> {
    Done(Res<ResBody>),
    Continue(State<B>),
}

/// The synchronous part of a request: control headers, bypass, buffering (if the body
/// is already there), key, and a read from an engine that answers synchronously.
fn start<E, B, ResBody>(cfg: &Config, shared: &Shared<E>, req: Request<B>) -> Start<B, ResBody>
where
    E: CacheEngine,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let m = &shared.metrics;
    let mut ctl = match RequestControl::take(&mut parts.headers, cfg.honor_cache_control) {
        Ok(ctl) => ctl,
        Err(e) => return Start::Done(Ok(e.response())),
    };

    if ctl.no_store
        || !cfg.cacheable.is_cacheable(&parts)
        || !ctl.apply_storage(cfg.cacheable.storage(&parts), cfg.ttl)
    {
        if ctl.only_if_cached {
            // Nothing can be read for this request: never call upstream.
            Metrics::inc(&m.misses);
            return Start::Done(Ok(only_if_cached_miss()));
        }
        Metrics::inc(&m.bypasses);
        tracing::debug!(method = %parts.method, path = parts.uri.path(), "cache bypass");
        let body = RequestBody::chained(Bytes::new(), body);
        return Start::Continue(State::Forward { parts, body });
    }
    let mut body = Box::pin(body);
    let mut buf = Buffer::new(cfg.max_request_body);
    let buffered = if declared_over(&parts, &*body, cfg.max_request_body) {
        Poll::Ready(Ok(Buffered::Over(Bytes::new())))
    } else {
        // A body that is already there (the usual case for a buffered client body) is
        // read now; otherwise the future goes on (the body is polled again with the
        // task's waker).
        buf.poll(body.as_mut(), &mut Context::from_waker(Waker::noop()))
    };
    match buffered {
        Poll::Ready(Ok(Buffered::Full(bytes))) => keyed(cfg, shared, parts, ctl, bytes),
        Poll::Ready(Ok(Buffered::Over(prefix))) => {
            Start::Continue(over_limit(m, parts, prefix, body))
        }
        Poll::Ready(Err(e)) => Start::Done(Err(e)),
        Poll::Pending => Start::Continue(State::Buffering {
            parts,
            ctl,
            body,
            buf,
        }),
    }
}

fn over_limit<B>(m: &Metrics, parts: Parts, prefix: Bytes, rest: Pin<Box<B>>) -> State<B> {
    Metrics::inc(&m.bypasses);
    tracing::debug!(
        path = parts.uri.path(),
        "request body over the cache limit; bypass"
    );
    let body = RequestBody::chained_pinned(prefix, rest);
    State::Forward { parts, body }
}

/// The namespace of a request: `x-cache-namespace` or the layer's.
fn namespace<'a>(cfg: &'a Config, ctl: &'a RequestControl) -> &'a str {
    ctl.namespace.as_deref().unwrap_or(&cfg.namespace)
}

/// Keys the buffered request and answers it if the engine has a fresh entry and can
/// say so without waiting.
fn keyed<E, B, ResBody>(
    cfg: &Config,
    shared: &Shared<E>,
    parts: Parts,
    ctl: RequestControl,
    bytes: Bytes,
) -> Start<B, ResBody>
where
    E: CacheEngine,
{
    let tenant: &[u8] = match &cfg.tenant {
        Tenant::Authorization => parts
            .headers
            .get(header::AUTHORIZATION)
            .map_or(&[], |v| v.as_bytes()),
        Tenant::Fixed(d) => d,
        Tenant::Shared => &[],
    };
    let input = KeyInput {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &bytes,
        namespace: namespace(cfg, &ctl),
        tenant,
    };
    let key = if cfg.default_key {
        Key::Hex(default_key_hex(&input))
    } else {
        Key::Owned(cfg.key_fn.key(&input))
    };

    let read = !ctl.no_cache && cfg.mode != CacheMode::WriteOnly;
    let mut lookup = read;
    let k = key.as_str(); // validated once
    let now = if !read {
        None
    } else if let Some(memory) = shared.engine.as_memory_engine() {
        Some(match memory.get_with_trust(k) {
            Some((data, trusted)) => (Ok(data), trusted),
            None => (Err(CacheError::Miss), false),
        })
    } else {
        shared.engine.try_get_now(k).map(|res| (res, false))
    };
    if let Some((res, trusted)) = now {
        lookup = false;
        let m = &shared.metrics;
        if let Some(entry) = decode_entry(m, k, res, trusted)
            && let Some(res) = fresh_hit(cfg, &ctl, m, k, entry)
        {
            return Start::Done(Ok(res));
        }
        if let Some(res) = replay_only_miss(cfg, &ctl, m, k) {
            return Start::Done(Ok(res));
        }
    }
    Start::Continue(State::Keyed {
        parts,
        ctl,
        bytes,
        key,
        lookup,
    })
}

/// The hit response if `entry` is fresh enough for this request.
fn fresh_hit<ResBody>(
    cfg: &Config,
    ctl: &RequestControl,
    m: &Metrics,
    key: &str,
    entry: CacheEntry,
) -> Option<Response<ResponseBody<ResBody>>> {
    let now = cfg.clock.now_ms();
    let fresh = !entry.is_expired(now)
        && ctl
            .max_age
            .is_none_or(|max| now.saturating_sub(entry.created_ms()) <= max.saturating_mul(1000));
    if !fresh {
        return None;
    }
    tracing::debug!(key, "cache hit");
    Some(hit_response(entry, now, m))
}

/// The `504` of `only-if-cached` (or replay-only mode) when nothing usable was found.
fn replay_only_miss<ResBody>(
    cfg: &Config,
    ctl: &RequestControl,
    m: &Metrics,
    key: &str,
) -> Option<Response<ResponseBody<ResBody>>> {
    if ctl.only_if_cached || cfg.mode == CacheMode::ReplayOnly {
        Metrics::inc(&m.misses);
        tracing::debug!(key, "cache miss with only-if-cached; 504");
        return Some(only_if_cached_miss());
    }
    None
}

/// The part of a request that waits: the rest of the body, the engine, upstream,
/// another request of the same flight.
async fn finish<S, E, B, ResBody>(
    inner: S,
    cfg: Arc<Config>,
    shared: Arc<Shared<E>>,
    state: State<B>,
) -> Res<ResBody>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    E: CacheEngine,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (parts, ctl, bytes, key, lookup) = match state {
        State::Forward { parts, body } => {
            return forward(inner, parts, body, CacheStatus::Bypass).await;
        }
        State::Buffering {
            parts,
            ctl,
            mut body,
            mut buf,
        } => match poll_fn(|cx| buf.poll(body.as_mut(), cx)).await? {
            Buffered::Full(bytes) => match keyed::<E, B, ResBody>(&cfg, &shared, parts, ctl, bytes)
            {
                Start::Done(res) => return res,
                Start::Continue(State::Keyed {
                    parts,
                    ctl,
                    bytes,
                    key,
                    lookup,
                }) => (parts, ctl, bytes, key, lookup),
                Start::Continue(_) => unreachable!("keyed returns Keyed"),
            },
            Buffered::Over(prefix) => {
                let State::Forward { parts, body } =
                    over_limit(&shared.metrics, parts, prefix, body)
                else {
                    unreachable!("over_limit returns Forward")
                };
                return forward(inner, parts, body, CacheStatus::Bypass).await;
            }
        },
        State::Keyed {
            parts,
            ctl,
            bytes,
            key,
            lookup,
        } => (parts, ctl, bytes, key, lookup),
    };
    run(inner, cfg, shared, parts, ctl, bytes, key, lookup).await
}

#[allow(clippy::too_many_arguments)]
async fn run<S, E, B, ResBody>(
    inner: S,
    cfg: Arc<Config>,
    shared: Arc<Shared<E>>,
    parts: Parts,
    ctl: RequestControl,
    bytes: Bytes,
    key: Key,
    lookup_first: bool,
) -> Res<ResBody>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    E: CacheEngine,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let m = &shared.metrics;
    let key = key.as_str();
    let read = !ctl.no_cache && cfg.mode != CacheMode::WriteOnly;
    if lookup_first {
        if let Some(entry) = lookup(&shared, &cfg, key).await
            && let Some(res) = fresh_hit(&cfg, &ctl, m, key, entry)
        {
            return Ok(res);
        }
        if let Some(res) = replay_only_miss(&cfg, &ctl, m, key) {
            return Ok(res);
        }
    } else if !read && let Some(res) = replay_only_miss(&cfg, &ctl, m, key) {
        // Not read at all (no-cache / write-only) yet only-if-cached: still a 504.
        return Ok(res);
    }
    let mut status = if read {
        CacheStatus::Miss
    } else {
        CacheStatus::Refresh
    };
    if cfg.mode == CacheMode::ReadOnly {
        Metrics::inc(&m.misses);
        return forward(inner, parts, RequestBody::full(bytes), status).await;
    }

    let ttl = ctl.ttl.or(cfg.ttl);
    for _attempt in 0..3 {
        let role = match cfg.flight_wait {
            Some(_) => shared
                .flights
                .join_or_lead(key, status != CacheStatus::Refresh),
            None => Role::Leader(Arc::new(Flight::default()), Arc::from(key)),
        };
        match role {
            Role::Leader(flight, key) => {
                Metrics::inc(if status == CacheStatus::Refresh {
                    &m.refreshes
                } else {
                    &m.misses
                });
                tracing::debug!(
                    key = &*key,
                    status = status.as_str(),
                    "cache miss; calling upstream"
                );
                let guard = LeaderGuard {
                    flights: shared.flights.clone(),
                    key,
                    flight,
                    armed: true,
                };
                let ctx = CommitCtx {
                    shared: shared.clone(),
                    config: cfg.clone(),
                    ttl,
                    namespace: ctl.namespace.clone(),
                    method: parts.method.clone(),
                    path: parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned(),
                };
                return lead(inner, parts, bytes, guard, ctx, status).await;
            }
            Role::Follower(flight) => {
                let wait = cfg.flight_wait.unwrap_or_default();
                // Joining a flight that already completed (its entry is being written)
                // is a hit; waiting for a live one is coalescing.
                let complete = flight.is_complete();
                match bounded(flight.wait_head(), wait).await {
                    Some(Some(head)) => {
                        let st = if complete {
                            Metrics::inc(&m.hits);
                            CacheStatus::Hit
                        } else {
                            Metrics::inc(&m.coalesced);
                            CacheStatus::Coalesced
                        };
                        tracing::debug!(
                            key,
                            status = st.as_str(),
                            "answered by an in-flight request"
                        );
                        return Ok(follower_response(flight, head, st));
                    }
                    Some(None) => {
                        // The leader failed before its head: start over (one of the
                        // followers becomes the new leader).
                        tracing::debug!(key, "in-flight leader failed; retrying");
                        status = CacheStatus::Miss;
                        continue;
                    }
                    None => {
                        tracing::debug!(key, "waited too long for the in-flight request");
                        break;
                    }
                }
            }
        }
    }
    Metrics::inc(&m.misses);
    forward(inner, parts, RequestBody::full(bytes), status).await
}

#[cfg(test)]
mod sse_commit_tests {
    use super::*;

    fn clean(parts: &[&'static str]) -> bool {
        let frames: Vec<Bytes> = parts
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect();
        sse_completed_cleanly(&frames)
    }

    #[test]
    fn done_event_ends_a_clean_stream_in_any_line_ending() {
        assert!(clean(&["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]));
        assert!(clean(&[
            "data: {\"a\":1}\r\n\r\n",
            "data: [DO",
            "NE]\r\n\r\n"
        ]));
        assert!(clean(&["data: {\"a\":1}\r\rdata: [DONE]\r\r"]));
        assert!(clean(&[": keep-alive\n\ndata:[DONE]\n\n"]));
        assert!(clean(&["data: [DONE]"]));
    }

    #[test]
    fn a_final_done_event_ends_a_clean_stream_without_done() {
        assert!(clean(&[
            "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"a\"}\n\n",
            "event: transcription.done\ndata: {\"type\":\"transcription.done\",\"text\":\"a\"}\n\n",
        ]));
        assert!(clean(&[
            "data: {\"type\":\"speech.audio.done\",\"usage\":{}}\n\n"
        ]));
        // cut before it, or followed by more events: not clean
        assert!(!clean(&[
            "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"a\"}\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"type\":\"transcription.done\"}\n\n",
            "data: {\"type\":\"transcription.text.delta\"}\n\n",
        ]));
    }

    #[test]
    fn missing_or_embedded_done_is_not_clean() {
        assert!(!clean(&[]));
        assert!(!clean(&["data: {\"a\":1}\n\n"]));
        assert!(!clean(&["data: {\"t\":\"data: [DONE]\"}\n\n"]));
        assert!(!clean(&["data: [DONE]\n\ndata: {\"a\":1}\n\n"]));
        assert!(!clean(&["data: [DONE]\ndata: x\n\n"]));
    }

    #[test]
    fn error_events_and_error_finishes_are_not_clean() {
        assert!(!clean(&["event: error\ndata: {}\n\n", "data: [DONE]\n\n"]));
        assert!(!clean(&[
            "data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"object\":\"error\",\"message\":\"x\"}\n\ndata: [DONE]\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"choices\":[{\"finish_reason\":\"error\"}]}\n\ndata: [DONE]\n\n"
        ]));
        // The word "error" in content is not an error.
        assert!(clean(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"error\"},\"finish_reason\":\"stop\"}],\"error\":null}\n\ndata: [DONE]\n\n"
        ]));
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    use tower_layer::Layer;

    use super::*;
    use crate::cache::{CacheLayer, MemoryEngine};

    fn post(body: &'static str) -> Request<Full<Bytes>> {
        Request::post("/v1/x")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    #[tokio::test]
    async fn memory_hit_is_ready_in_call_and_leaves_inner_alone() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inner = tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
        });
        let mut svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        let res = svc.ready().await.unwrap().call(post("{}")).await.unwrap();
        assert_eq!(res.headers()[X_CACHE], "MISS");
        res.into_body().collect().await.unwrap();

        let mut fut = svc.ready().await.unwrap().call(post("{ }"));
        assert!(format!("{fut:?}").contains("ready"), "{fut:?}");
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(res)) = Pin::new(&mut fut).poll(&mut cx) else {
            panic!("a memory hit must be ready on the first poll")
        };
        assert_eq!(res.headers()[X_CACHE], "HIT");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A body that is pending on its first poll (waking its task), then yields `data`.
    struct Late {
        data: Option<Bytes>,
        polled: bool,
    }

    impl Body for Late {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            if !self.polled {
                self.polled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
        }
    }

    #[tokio::test]
    async fn body_arriving_later_is_buffered_by_the_future() {
        let inner = tower::service_fn(|req: Request<RequestBody<Late>>| async move {
            let b = req.into_body().into_full().ok().unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(b)))
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        for expected in ["MISS", "HIT"] {
            let body = Late {
                data: Some(Bytes::from_static(b"{\"a\":1}")),
                polled: false,
            };
            let req = Request::post("/v1/x").body(body).unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(res.headers()[X_CACHE], expected);
            assert_eq!(
                res.into_body().collect().await.unwrap().to_bytes(),
                "{\"a\":1}"
            );
        }
    }
}
