//! The forwarding handler: every request not meant for the proxy itself goes
//! upstream through the client stack, through the cache on cached routes.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::Either;
use tower::ServiceExt as _;

use super::config::CachedRoutes;
use super::metrics::{CacheState, Metrics, UpstreamErrorKind, tenant_label};
use super::stack::CachedService;
use crate::cache::memo::{Frozen, Memo};
use crate::cache::{Chain, SavedTokens, X_CACHE_SAVED_TOKENS};
use crate::client::HttpService;
use crate::{Body, BoxError};

/// Largest body shared from the cache without `x-cache-saved-tokens` (a coalesced
/// answer, an entry stored before the header was) scanned for its `usage`.
const MAX_USAGE_SCAN: usize = 16 * 1024 * 1024;

/// State shared by every request of one proxy.
#[derive(Debug)]
pub(crate) struct ProxyState {
    /// The cache over the stack, for cached routes (`None`: no cache, they are
    /// forwarded like every other route).
    pub(crate) cached: Option<CachedService>,
    /// The plain stack, for every other route.
    pub(crate) direct: HttpService,
    pub(crate) routes: CachedRoutes,
    pub(crate) metrics: Arc<Metrics>,
    /// Longest silence allowed inside a client's request body.
    pub(crate) request_body_idle: Duration,
    /// Which requests are written to the access log.
    pub(crate) access_log: super::AccessLog,
}

/// The URI handed to the client stack: the request's path and query only (the
/// stack's base URL layer adds the upstream scheme, host and path prefix).
pub(crate) fn upstream_uri(uri: &http::Uri) -> Result<http::Uri, http::Error> {
    if uri.scheme().is_none() && uri.authority().is_none() && uri.path_and_query().is_some() {
        // Already in origin form (what HTTP/1.1 clients send): shared, not re-parsed.
        return Ok(uri.clone());
    }
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Ok(http::Uri::try_from(path_and_query)?)
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` is one of [`HOP_BY_HOP`] (a match on the lowercase name: no
/// comparison of `HeaderName`s, whose custom names compare byte by byte).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there is none: one pass over the names instead of a lookup per name.
    // Headers named by `Connection` only count when `Connection` is there.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers named by `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The router's fallback handler: see [`forward_request`].
pub(crate) async fn forward(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    forward_request(state, req).await
}

/// Forwards one request and wraps the answer so it is logged and counted when
/// its body ends.
pub(crate) async fn forward_request(state: Arc<ProxyState>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let cached = match &state.cached {
        Some(cached) if state.routes.matches(&method, req.uri().path()) => Some(cached),
        _ => None,
    };
    let cached_route = cached.is_some();

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The transport sets `Host` from the upstream URL. The upstream is asked for an
    // identity encoding so stored entries can be served to any client.
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::ACCEPT_ENCODING);
    // `Expect: 100-continue` was answered by this server already.
    parts.headers.remove(header::EXPECT);
    // The client's HTTP version belongs to its own connection (an HTTP/2 or HTTP/1.0
    // client); the upstream connection negotiates its own, which hyper refuses when
    // the request demands HTTP/2 over an HTTP/1 connection.
    parts.version = http::Version::HTTP_11;
    parts.uri = match upstream_uri(&parts.uri) {
        Ok(uri) => uri,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("cannot forward this request URI: {e}"),
            );
        }
    };
    let body = ClientBody {
        inner: body,
        idle: state.request_body_idle,
        sleep: None,
    };
    // Logged by its path; a clone of the URI shares its bytes (no copy).
    let uri = parts.uri.clone();
    // The tenant of the savings metrics (hashed only if the answer is from the cache).
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    let upstream_req = http::Request::from_parts(parts, body);

    state.metrics.in_flight_inc();
    let mut log = RequestLog {
        metrics: state.metrics.clone(),
        method,
        uri,
        start,
        headers_after: Duration::ZERO,
        status: StatusCode::BAD_GATEWAY,
        cache: CacheState::Uncached,
        correlation_id: None,
        bytes: 0,
        complete: false,
        capture: None,
        saved: None,
        authorization,
        access_log: state.access_log,
    };
    // The cached stack's answer keeps its own body type (no boxing on a hit).
    let result = match cached {
        // The client body as it is: the cache layer reads it (no boxing).
        Some(cached) => cached
            .clone()
            .oneshot(upstream_req)
            .await
            .map(|res| res.map(Either::Left)),
        None => state
            .direct
            .clone()
            .oneshot(upstream_req.map(Body::new))
            .await
            .map(|res| res.map(Either::Right)),
    };
    match result {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let cache = if cached_route {
                CacheState::from_header(parts.headers.get("x-cache").and_then(|v| v.to_str().ok()))
            } else {
                CacheState::Uncached
            };
            log.headers_after = start.elapsed();
            log.status = parts.status;
            log.cache = cache;
            log.correlation_id = parts.headers.get("mistral-correlation-id").cloned();
            if cache.is_from_cache() {
                // A hit tells what it saved; anything else shared from the cache is
                // scanned for its `usage`.
                match parts.headers.get(X_CACHE_SAVED_TOKENS) {
                    Some(v) => log.saved = saved_of_header(v),
                    None => log.capture = Some(Capture::Empty),
                }
            }
            // An empty body is complete before it is polled (hyper may never poll it).
            log.complete = http_body::Body::is_end_stream(&body);
            let body = ObservedBody { inner: body, log };
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(err) if is_client_body_timeout(&*err) => {
            let message = Chain(&*err).to_string();
            tracing::warn!(error = %message, "client request body stalled");
            log.headers_after = start.elapsed();
            log.status = StatusCode::REQUEST_TIMEOUT;
            log.cache = CacheState::Error;
            log.complete = true;
            drop(log);
            error_response(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message)
        }
        Err(err) if chain_has::<ClientBodyError>(&*err) => {
            let message = Chain(&*err).to_string();
            tracing::warn!(error = %message, "unreadable client request body");
            log.headers_after = start.elapsed();
            log.status = StatusCode::BAD_REQUEST;
            log.complete = true;
            drop(log);
            error_response(StatusCode::BAD_REQUEST, "invalid_request_error", &message)
        }
        Err(err) => {
            let (status, kind, message) = classify_error(err);
            state.metrics.record_upstream_error(kind);
            tracing::warn!(error = %message, "upstream request failed");
            log.headers_after = start.elapsed();
            log.status = status;
            log.cache = CacheState::Error;
            log.complete = true;
            drop(log);
            error_response(status, kind_type(kind), &message)
        }
    }
}

fn kind_type(kind: UpstreamErrorKind) -> &'static str {
    match kind {
        UpstreamErrorKind::Connect => "upstream_unreachable",
        UpstreamErrorKind::Timeout => "upstream_timeout",
        UpstreamErrorKind::Other => "upstream_error",
    }
}

/// An error answer in the Mistral API's error shape:
/// `{"object":"error","message":...,"type":...,"param":null,"code":"<status>"}`.
pub(crate) fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "object": "error",
        "message": message,
        "type": kind,
        "param": null,
        "code": status.as_str(),
    });
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Maps a stack error to the status the client gets: 504 when a timeout elapsed
/// (connect, total or stream idle), 502 for everything else (connection refused,
/// reset, DNS, TLS...).
pub(crate) fn classify_error(err: BoxError) -> (StatusCode, UpstreamErrorKind, String) {
    let err = crate::Error::from_service_error(err);
    let mut timeout = err.is_timeout();
    let mut connect = err.is_connect();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = current {
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            timeout = true;
        }
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= e.is_connect();
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            match e.kind() {
                std::io::ErrorKind::TimedOut => timeout = true,
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected
                | std::io::ErrorKind::AddrNotAvailable => connect = true,
                _ => {}
            }
        }
        current = e.source();
    }
    let detail = Chain(&err).to_string();
    if timeout {
        (
            StatusCode::GATEWAY_TIMEOUT,
            UpstreamErrorKind::Timeout,
            format!("the upstream did not answer in time: {detail}"),
        )
    } else if connect {
        (
            StatusCode::BAD_GATEWAY,
            UpstreamErrorKind::Connect,
            format!("cannot reach the upstream: {detail}"),
        )
    } else {
        (
            StatusCode::BAD_GATEWAY,
            UpstreamErrorKind::Other,
            format!("upstream request failed: {detail}"),
        )
    }
}

/// A client's request body went silent for longer than the allowed idle time.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data for {0:?}")]
pub(crate) struct ClientBodyTimeout(Duration);

fn is_client_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    chain_has::<ClientBodyTimeout>(err)
}

/// The client's request body could not be read (a malformed chunked encoding, a
/// connection closed mid-body): the client's fault, answered `400`, not an upstream
/// error.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body could not be read: {0}")]
pub(crate) struct ClientBodyError(#[source] BoxError);

fn chain_has<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        // A body error may be sent as an `io::Error` wrapping it (`TimedOut` for the
        // idle timeout, which the cache layer answers with a `408` by itself on cached
        // routes).
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if e.is::<E>() || inner.is_some_and(|i| i.is::<E>()) {
            return true;
        }
        current = e.source();
    }
    false
}

pin_project_lite::pin_project! {
    /// A client's request body with an idle timeout: a client that stops sending
    /// mid-body (a short body with a longer `Content-Length`, a stalled upload) gets
    /// a `408` instead of holding the request, and the cache's buffering, forever.
    ///
    /// Not tower-http's `RequestBodyTimeoutLayer` (0.6): its `TimeoutBody` does not
    /// forward `size_hint` or `is_end_stream`, so the upstream request would lose its
    /// `Content-Length` framing (and a body-less request would be sent chunked), and it
    /// arms a timer on the first poll of every body, also when the whole body is
    /// already there; this one arms it only when the body is pending. The timeout is
    /// an `io::Error` of kind `TimedOut`, which the cache layer answers with a `408`
    /// by itself.
    struct ClientBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> http_body::Body for ClientBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.sleep = None;
                Poll::Ready(
                    frame.map(|f| f.map_err(|e| Box::new(ClientBodyError(e.into())) as BoxError)),
                )
            }
            Poll::Pending => {
                let idle = *this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        ClientBodyTimeout(idle),
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is logged and counted once a response ends (or is dropped).
struct RequestLog {
    metrics: Arc<Metrics>,
    method: Method,
    /// The request's URI (origin form); its path is logged.
    uri: http::Uri,
    start: Instant,
    headers_after: Duration,
    status: StatusCode,
    cache: CacheState,
    correlation_id: Option<HeaderValue>,
    bytes: u64,
    complete: bool,
    /// The body of an answer from the cache without `x-cache-saved-tokens`, kept to
    /// count the tokens of its `usage`.
    capture: Option<Capture>,
    /// What a hit saved, from its `x-cache-saved-tokens`.
    saved: Option<Arc<SavedTokens>>,
    /// The request's `Authorization`, for the tenant label of the savings.
    authorization: Option<HeaderValue>,
    access_log: super::AccessLog,
}

/// The frames of a body kept for [`SavedTokens::from_body`]: a body sent in one frame (a
/// cache hit usually is) is kept by reference, without a copy.
enum Capture {
    Empty,
    One(Bytes),
    Many(Vec<u8>),
}

impl Capture {
    fn len(&self) -> usize {
        match self {
            Capture::Empty => 0,
            Capture::One(b) => b.len(),
            Capture::Many(v) => v.len(),
        }
    }

    fn push(&mut self, data: &Bytes) {
        match self {
            Capture::Empty => *self = Capture::One(data.clone()),
            Capture::One(first) => {
                let mut all = Vec::with_capacity(first.len() + data.len());
                all.extend_from_slice(first);
                all.extend_from_slice(data);
                *self = Capture::Many(all);
            }
            Capture::Many(all) => all.extend_from_slice(data),
        }
    }

    /// The `usage` (and model) of the captured body.
    fn saved(&self) -> Option<Arc<SavedTokens>> {
        match self {
            Capture::Empty => None,
            Capture::One(b) => saved_of_shared(b),
            Capture::Many(v) => SavedTokens::from_body(v).map(Arc::new),
        }
    }
}

/// Bodies up to this size have their `usage` remembered by [`saved_of_shared`].
const USAGE_MEMO_MAX_BODY: usize = 256 * 1024;
/// Bodies (and headers) remembered per thread by [`saved_of_shared`] (and
/// [`saved_of_header`]).
const USAGE_MEMO_SLOTS: usize = 8;

/// What was read from the last few buffers of type `O` on a thread.
type UsageMemo<O> = RefCell<Memo<O, Option<Arc<SavedTokens>>, USAGE_MEMO_SLOTS>>;

thread_local! {
    /// The bodies whose `usage` was read last on this thread, with what was read.
    static USAGE_MEMO: UsageMemo<Bytes> = const { RefCell::new(Memo::new()) };
    /// The `x-cache-saved-tokens` values read last on this thread, with what was read.
    static SAVED_HEADER_MEMO: UsageMemo<HeaderValue> = const { RefCell::new(Memo::new()) };
}

/// [`SavedTokens::from_body`] of one frame, remembered by the frame's identity (see
/// [`Memo`]).
///
/// An entry stored without `x-cache-saved-tokens` (by an older version), served
/// from an in-memory engine, is the same stored buffer again and again,
/// so its `usage` is parsed once instead of on every hit.
fn saved_of_shared(body: &Bytes) -> Option<Arc<SavedTokens>> {
    if body.len() > USAGE_MEMO_MAX_BODY {
        return SavedTokens::from_body(body).map(Arc::new);
    }
    remembered(&USAGE_MEMO, body, |b| SavedTokens::from_body(b))
}

/// [`SavedTokens::from_header`], remembered by the value's identity: a hit's headers
/// share the stored entry's memory, so an in-memory engine hands out the same value
/// on every hit of an entry (see [`Memo`]).
fn saved_of_header(value: &HeaderValue) -> Option<Arc<SavedTokens>> {
    remembered(&SAVED_HEADER_MEMO, value, SavedTokens::from_header)
}

/// `derive(owner)` from `memo` when it holds this very buffer, otherwise derived and
/// remembered.
fn remembered<O: Frozen + Clone>(
    memo: &'static std::thread::LocalKey<UsageMemo<O>>,
    owner: &O,
    derive: impl FnOnce(&O) -> Option<SavedTokens>,
) -> Option<Arc<SavedTokens>> {
    if let Some(saved) = memo.with_borrow(|m| m.get(owner.frozen_bytes()).cloned()) {
        return saved;
    }
    let saved = derive(owner).map(Arc::new);
    memo.with_borrow_mut(|m| m.put(owner.clone(), saved.clone()));
    saved
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.in_flight_dec();
        m.record_request(self.cache);
        let from_cache = self.cache.is_from_cache();
        m.record_bytes(self.bytes, from_cache);
        if from_cache && self.complete {
            let saved = match self.saved.take() {
                Some(s) => Some(s),
                None => self.capture.as_ref().and_then(Capture::saved),
            };
            if let Some(saved) = saved {
                m.record_cached_usage(saved.usage);
                m.record_saved(&saved, &tenant_label(self.authorization.as_ref()));
            }
        }
        let error = self.cache == CacheState::Error || !self.complete;
        if !self.access_log.should_log(self.status, error) {
            return;
        }
        let latency = self.start.elapsed();
        tracing::info!(
            target: "mistral_cache::access",
            method = %self.method,
            path = %self.uri.path(),
            status = self.status.as_u16(),
            cache = self.cache.as_str(),
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            headers_ms = u64::try_from(self.headers_after.as_millis()).unwrap_or(u64::MAX),
            bytes = self.bytes,
            complete = self.complete,
            correlation_id = self
                .correlation_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            "request"
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body forwarded frame by frame while counting what passes.
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        log: RequestLog,
    }
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.log.bytes += data.len() as u64;
                    if let Some(buf) = &mut this.log.capture {
                        if buf.len() + data.len() <= MAX_USAGE_SCAN {
                            buf.push(data);
                        } else {
                            this.log.capture = None;
                        }
                    }
                }
                if this.inner.is_end_stream() {
                    this.log.complete = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                tracing::warn!(error = %Chain(&*e), path = %this.log.uri.path(), "response body failed");
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.log.complete = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn the_hop_by_hop_test_names_exactly_the_list() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "authorization",
            "content-type",
            "x-cache",
            "te-x",
            "keep-alive2",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn headers_without_hop_by_hop_are_left_alone() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
        // A header named by `Connection` goes, even when it is the only other one.
        h.insert(header::CONNECTION, HeaderValue::from_static("content-type"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn usage_memo_answers_like_a_parse() {
        let body = Bytes::from_static(br#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#);
        let parsed = SavedTokens::from_body(&body);
        assert_eq!(parsed.as_ref().map(|s| s.usage.total_tokens), Some(3));
        assert_eq!(saved_of_shared(&body).as_deref(), parsed.as_ref());
        assert_eq!(
            saved_of_shared(&body).as_deref(),
            parsed.as_ref(),
            "remembered"
        );
        // Same length, other bytes, other buffer: parsed on its own.
        let other = Bytes::from_static(br#"{"usage":{"prompt_tokens":4,"completion_tokens":5}}"#);
        assert_eq!(
            saved_of_shared(&other).map(|s| s.usage.total_tokens),
            Some(9)
        );
        // A slice of a remembered buffer is another body.
        let prefix = body.slice(..10);
        assert_eq!(saved_of_shared(&prefix), None);
        // More bodies than slots: the oldest are forgotten, answers stay right.
        let many: Vec<Bytes> = (0..2 * USAGE_MEMO_SLOTS as u64)
            .map(|n| Bytes::from(format!(r#"{{"usage":{{"total_tokens":{n}}}}}"#)))
            .collect();
        for _ in 0..2 {
            for (n, b) in many.iter().enumerate() {
                assert_eq!(
                    saved_of_shared(b).map(|s| s.usage.total_tokens),
                    Some(n as u64)
                );
            }
        }
        let mut capture = Capture::Empty;
        assert_eq!(capture.saved(), None);
        capture.push(&body.slice(..20));
        capture.push(&body.slice(20..));
        assert_eq!(capture.len(), body.len());
        assert_eq!(
            capture.saved().as_deref(),
            parsed.as_ref(),
            "frames are joined"
        );
    }

    #[test]
    fn saved_header_memo_answers_like_a_parse() {
        let stored = Bytes::from_static(b"98; prompt=27; completion=71; model=\"m\"");
        let value = HeaderValue::from_maybe_shared(stored.clone()).unwrap();
        let parsed = SavedTokens::from_header(&value);
        assert_eq!(parsed.as_ref().map(|s| s.usage.total_tokens), Some(98));
        assert_eq!(saved_of_header(&value).as_deref(), parsed.as_ref());
        // A copy of the value shares its memory (a hit's headers cloned from one entry).
        let hit = value.clone();
        assert_eq!(
            saved_of_header(&hit).as_deref(),
            parsed.as_ref(),
            "remembered"
        );
        // Same length, other tokens, other memory: parsed on its own.
        let other = HeaderValue::from_static("99; prompt=28; completion=71; model=\"m\"");
        assert_eq!(
            saved_of_header(&other).map(|s| (s.usage.total_tokens, s.usage.prompt_tokens)),
            Some((99, 28))
        );
        assert_eq!(saved_of_header(&HeaderValue::from_static("nonsense")), None);
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_only() {
        let uri: http::Uri = "http://proxy:8080/v1/models?x=1".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/v1/models?x=1");
        let uri: http::Uri = "/v1/chat/completions".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/v1/chat/completions");
        let uri: http::Uri = "/v1/models?page=2".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/v1/models?page=2");
        let uri: http::Uri = "http://proxy:8080".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/");
    }

    #[test]
    fn errors_are_classified() {
        let refused: BoxError =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let (status, kind, _) = classify_error(refused);
        assert_eq!(
            (status, kind),
            (StatusCode::BAD_GATEWAY, UpstreamErrorKind::Connect)
        );
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(classify_error(elapsed).0, StatusCode::GATEWAY_TIMEOUT);
        let other: BoxError = "boom".into();
        assert_eq!(classify_error(other).1, UpstreamErrorKind::Other);
    }

    #[tokio::test]
    async fn error_body_has_the_api_shape() {
        let res = error_response(StatusCode::BAD_GATEWAY, "upstream_unreachable", "down");
        assert_eq!(res.status(), 502);
        let bytes = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["object"], "error");
        assert_eq!(v["type"], "upstream_unreachable");
        assert_eq!(v["message"], "down");
        assert!(v["param"].is_null());
        assert_eq!(v["code"], "502");
    }
}
