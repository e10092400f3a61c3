//! The forwarding handler: every request not meant for the proxy itself goes
//! upstream through the client stack, through the cache on cached routes.

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
use tower::ServiceExt as _;

use super::config::CachedRoutes;
use super::metrics::{CacheState, Metrics, UpstreamErrorKind, usage_from_body};
use crate::client::HttpService;
use crate::{Body, BoxError};

/// Largest cache hit body scanned for its `usage` (token metrics).
const MAX_USAGE_SCAN: usize = 16 * 1024 * 1024;

/// State shared by every request of one proxy.
#[derive(Debug)]
pub(crate) struct ProxyState {
    /// The stack behind the cache, for cached routes.
    pub(crate) cached: HttpService,
    /// The plain stack, for every other route.
    pub(crate) direct: HttpService,
    pub(crate) routes: CachedRoutes,
    pub(crate) metrics: Arc<Metrics>,
}

/// The URI handed to the client stack: the request's path and query only (the
/// stack's base URL layer adds the upstream scheme, host and path prefix).
pub(crate) fn upstream_uri(uri: &http::Uri) -> Result<http::Uri, http::Error> {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Ok(http::Uri::try_from(path_and_query)?)
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Forwards one request and wraps the answer so it is logged and counted when
/// its body ends.
pub(crate) async fn forward(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let cached_route = state.routes.matches(&method, &path);

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The transport sets `Host` from the upstream URL. The upstream is asked for an
    // identity encoding so stored entries can be served to any client.
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::ACCEPT_ENCODING);
    // `Expect: 100-continue` was answered by this server already.
    parts.headers.remove(header::EXPECT);
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
    let upstream_req = http::Request::from_parts(parts, Body::new(body));

    let service = if cached_route {
        state.cached.clone()
    } else {
        state.direct.clone()
    };
    state.metrics.in_flight_inc();
    let mut log = RequestLog {
        metrics: state.metrics.clone(),
        method,
        path,
        start,
        headers_after: Duration::ZERO,
        status: StatusCode::BAD_GATEWAY,
        cache: CacheState::Uncached,
        correlation_id: None,
        bytes: 0,
        complete: false,
        capture: None,
    };
    match service.oneshot(upstream_req).await {
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
            log.correlation_id = parts
                .headers
                .get("mistral-correlation-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            log.capture = cache.is_from_cache().then(Vec::new);
            let body = ObservedBody { inner: body, log };
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(err) => {
            let (status, kind, message) = classify_error(err);
            state.metrics.record_upstream_error(kind);
            tracing::warn!(error = %message, "upstream request failed");
            log.headers_after = start.elapsed();
            log.status = status;
            if cached_route {
                log.cache = CacheState::Miss;
            }
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
    let detail = error_chain(&err);
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

/// `outer: inner: innermost`, skipping repeated messages.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        current = e.source();
    }
    out
}

/// What is logged and counted once a response ends (or is dropped).
struct RequestLog {
    metrics: Arc<Metrics>,
    method: Method,
    path: String,
    start: Instant,
    headers_after: Duration,
    status: StatusCode,
    cache: CacheState,
    correlation_id: Option<String>,
    bytes: u64,
    complete: bool,
    /// The body of a cache hit, kept to count the tokens of its `usage`.
    capture: Option<Vec<u8>>,
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.in_flight_dec();
        m.record_request(self.cache);
        let from_cache = self.cache.is_from_cache();
        m.record_bytes(self.bytes, from_cache);
        if from_cache
            && self.complete
            && let Some(usage) = self.capture.as_deref().and_then(usage_from_body)
        {
            m.record_cached_usage(usage);
        }
        let latency = self.start.elapsed();
        tracing::info!(
            target: "mistral_cache::access",
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            cache = self.cache.as_str(),
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            headers_ms = u64::try_from(self.headers_after.as_millis()).unwrap_or(u64::MAX),
            bytes = self.bytes,
            complete = self.complete,
            correlation_id = self.correlation_id.as_deref().unwrap_or("-"),
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
                            buf.extend_from_slice(data);
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
                tracing::warn!(error = %error_chain(&*e), path = %this.log.path, "response body failed");
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
    fn upstream_uri_keeps_path_and_query_only() {
        let uri: http::Uri = "http://proxy:8080/v1/models?x=1".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/v1/models?x=1");
        let uri: http::Uri = "/v1/chat/completions".parse().unwrap();
        assert_eq!(upstream_uri(&uri).unwrap(), "/v1/chat/completions");
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
