//! Retries of failed requests: a [`tower::retry::Policy`] with exponential
//! backoff, full jitter and `Retry-After` support.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::layers::retry::{RetryConfig, RetryLayer};
//!
//! let layer = RetryLayer::new(
//!     RetryConfig::default()
//!         .max_retries(5)
//!         .base_delay(Duration::from_millis(200)),
//! );
//! # let _ = layer;
//! ```

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request, Response};
use tower::retry::Policy;

use crate::client::MaxRetriesOverride;
use crate::error::{ConnectError, TimeoutError, TimeoutKind, is_retryable_status};
use crate::{Body, BoxError};

/// How failed requests are retried.
///
/// Retried: responses with status 429, 500, 502, 503 or 504, connection failures
/// and connect timeouts. Never retried: other errors (a total timeout included),
/// requests whose body cannot be cloned (a streaming request body), and anything
/// once a successful response was returned, so a started stream is never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    max_retries: u32,
    retry_statuses: bool,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
}

impl Default for RetryConfig {
    /// Two retries, 500 ms base delay, 30 s backoff cap, `Retry-After` capped at 60 s.
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            retry_statuses: true,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// The defaults (see [`Default`]).
    pub fn new() -> Self {
        RetryConfig::default()
    }
    /// No retries at all.
    pub fn disabled() -> Self {
        RetryConfig::default().max_retries(0)
    }
    /// Maximum number of retries after the first attempt (0 disables retries).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// Whether 429/5xx answers are retried (default `true`). With `false`, only
    /// failures that never reached the server are: connection errors and connect
    /// timeouts (what a transparent proxy such as `mistral-cache` retries by default,
    /// leaving status retries to its clients).
    pub fn retry_statuses(mut self, yes: bool) -> Self {
        self.retry_statuses = yes;
        self
    }
    /// The first backoff ceiling; attempt `n` waits a random time in
    /// `[0, min(max_delay, base_delay * 2^n)]` (full jitter).
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }
    /// The largest backoff ceiling.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    /// The largest wait a `Retry-After` header may impose.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }
    /// The configured maximum number of retries.
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The full-jitter backoff before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// The wait before the next attempt for a response with these headers: the
    /// `Retry-After` (seconds or HTTP-date) or `retry-after-ms` value, capped at
    /// `max_retry_after`, or the jittered backoff when there is none.
    pub fn delay_for(&self, attempt: u32, headers: Option<&HeaderMap>) -> Duration {
        match headers.and_then(|h| retry_after(h, SystemTime::now())) {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff(attempt),
        }
    }
}

/// Parses `retry-after-ms` or `Retry-After` (delay seconds, possibly fractional, or
/// an HTTP-date relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        // Too large for a Duration: as long as possible (the caller caps it).
        return Some(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX));
    }
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
        }
        return None;
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The retry [`Policy`] of the client stack. Each request gets its own copy, so
/// the attempt counter is per request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    attempt: u32,
}

impl RetryPolicy {
    /// A policy with this configuration.
    pub fn new(config: RetryConfig) -> Self {
        RetryPolicy { config, attempt: 0 }
    }
}

/// Whether a stack error is worth retrying: a connection failure or a connect
/// timeout.
pub fn is_retryable_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<TimeoutError>() {
            return t.kind() == TimeoutKind::Connect;
        }
        if e.is::<ConnectError>() {
            return true;
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return h.is_connect();
        }
        cur = e.source();
    }
    false
}

/// The retries allowed for this request: its own
/// ([`RequestOptions::max_retries`](crate::RequestOptions::max_retries)) or the
/// configured ones.
fn max_retries<B>(config: &RetryConfig, req: &Request<B>) -> u32 {
    req.extensions()
        .get::<MaxRetriesOverride>()
        .map_or(config.max_retries, |o| o.0)
}

impl<B> Policy<Request<Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = Pin<Box<tokio::time::Sleep>>;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        if self.attempt >= max_retries(&self.config, req) {
            return None;
        }
        let delay = match result {
            Ok(res) if self.config.retry_statuses && is_retryable_status(res.status()) => {
                self.config.delay_for(self.attempt, Some(res.headers()))
            }
            Ok(_) => return None,
            Err(e) if is_retryable_error(&**e) => self.config.delay_for(self.attempt, None),
            Err(_) => return None,
        };
        self.attempt += 1;
        tracing::debug!(attempt = self.attempt, ?delay, "retrying Mistral request");
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        if max_retries(&self.config, req) == 0 {
            return None;
        }
        let body = req.body().try_clone()?;
        let mut new = Request::new(body);
        *new.method_mut() = req.method().clone();
        *new.uri_mut() = req.uri().clone();
        *new.version_mut() = req.version();
        *new.headers_mut() = req.headers().clone();
        *new.extensions_mut() = req.extensions().clone();
        Some(new)
    }
}

/// Retries failed requests according to a [`RetryConfig`].
///
/// Produces a `tower::retry::Retry` service driven by a [`RetryPolicy`].
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    config: RetryConfig,
}

impl RetryLayer {
    /// A layer with this configuration.
    pub fn new(config: RetryConfig) -> Self {
        RetryLayer { config }
    }
}

impl<S> tower_layer::Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        tower::retry::Retry::new(RetryPolicy::new(self.config.clone()), inner)
    }
}

/// The retry service built by [`RetryLayer`].
pub type Retry<S> = tower::retry::Retry<RetryPolicy, S>;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer, ServiceExt, service_fn};

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(42));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(42)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(42));
        h.insert("retry-after", HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn retry_after_is_capped_and_backoff_bounded() {
        let c = RetryConfig::default()
            .max_retry_after(Duration::from_secs(3))
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(250));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(c.delay_for(0, Some(&h)), Duration::from_secs(3));
        // Values too large for a Duration are capped too, not ignored.
        for huge in ["99999999999999999999999", "1e300", "18446744073709551616.5"] {
            h.insert("retry-after", HeaderValue::from_static(huge));
            assert_eq!(c.delay_for(0, Some(&h)), Duration::from_secs(3), "{huge}");
        }
        h.remove("retry-after");
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(c.delay_for(0, Some(&h)), Duration::from_secs(3));
        for attempt in 0..40 {
            let d = c.backoff(attempt);
            let ceiling = Duration::from_millis(100 * 2u64.pow(attempt.min(20)))
                .min(Duration::from_millis(250));
            assert!(d <= ceiling, "{d:?} > {ceiling:?}");
        }
    }

    fn flaky(
        fail_times: usize,
        status: u16,
        retry_after: Option<&'static str>,
    ) -> (
        Arc<AtomicUsize>,
        impl tower_service::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = BoxError,
            Future = impl Send,
        > + Clone,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = service_fn(move |req: Request<Body>| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = req.into_body().collect_bytes().await?;
                assert_eq!(body, "payload", "the body is replayed on every attempt");
                let mut res = Response::new(Body::empty());
                if n < fail_times {
                    *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    if let Some(ra) = retry_after {
                        res.headers_mut()
                            .insert("retry-after", HeaderValue::from_static(ra));
                    }
                }
                Ok::<_, BoxError>(res)
            }
        });
        (calls, svc)
    }

    fn fast() -> RetryConfig {
        RetryConfig::default()
            .base_delay(Duration::from_millis(1))
            .max_retries(3)
    }

    #[tokio::test]
    async fn retries_retryable_statuses_then_succeeds() {
        for status in [429, 500, 502, 503, 504] {
            let (calls, svc) = flaky(2, status, None);
            let svc = RetryLayer::new(fast()).layer(svc);
            let res = svc
                .oneshot(Request::new(Body::from("payload")))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(calls.load(Ordering::SeqCst), 3, "status {status}");
        }
    }

    #[tokio::test]
    async fn status_retries_can_be_turned_off_keeping_connect_retries() {
        let (calls, svc) = flaky(2, 503, Some("7"));
        let svc = RetryLayer::new(fast().retry_statuses(false)).layer(svc);
        let res = svc
            .oneshot(Request::new(Body::from("payload")))
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "answered as it came");
        assert_eq!(res.headers()["retry-after"], "7");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = service_fn(move |_req: Request<Body>| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    return Err::<Response<Body>, BoxError>(Box::new(ConnectError::new(
                        std::io::Error::other("refused"),
                    )));
                }
                Ok(Response::new(Body::empty()))
            }
        });
        let svc = RetryLayer::new(fast().retry_statuses(false)).layer(svc);
        let res = svc.oneshot(Request::new(Body::from("payload"))).await;
        assert_eq!(res.unwrap().status(), 200);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "connect errors still retried"
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_retries() {
        let (calls, svc) = flaky(100, 503, None);
        let svc = RetryLayer::new(fast()).layer(svc);
        let res = svc
            .oneshot(Request::new(Body::from("payload")))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_request_can_set_its_own_retry_count() {
        use crate::client::MaxRetriesOverride;
        for (configured, own, calls_expected) in [(3, 1, 2), (3, 0, 1), (0, 2, 3)] {
            let (calls, svc) = flaky(100, 503, None);
            let svc = RetryLayer::new(fast().max_retries(configured)).layer(svc);
            let mut req = Request::new(Body::from("payload"));
            req.extensions_mut().insert(MaxRetriesOverride(own));
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status(), 503);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                calls_expected,
                "configured {configured}, own {own}"
            );
        }
    }

    #[tokio::test]
    async fn does_not_retry_other_statuses_or_when_disabled() {
        let (calls, svc) = flaky(1, 400, None);
        let svc = RetryLayer::new(fast()).layer(svc);
        let res = svc
            .oneshot(Request::new(Body::from("payload")))
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (calls, svc) = flaky(1, 503, None);
        let svc = RetryLayer::new(RetryConfig::disabled()).layer(svc);
        let res = svc
            .oneshot(Request::new(Body::from("payload")))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn streaming_request_body_is_not_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = service_fn(move |_req: Request<Body>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, BoxError>(res)
            }
        });
        let svc = RetryLayer::new(fast()).layer(svc);
        let body = Body::new(http_body_util::Full::new(bytes::Bytes::from_static(b"x")));
        let res = svc.oneshot(Request::new(body)).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_connect_errors_not_other_errors() {
        for (err, expected) in [
            (Some(true), 3usize),  // connect error: retried until success
            (Some(false), 1usize), // other error: not retried
        ] {
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let svc = service_fn(move |_req: Request<Body>| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        return Err::<Response<Body>, BoxError>(if err == Some(true) {
                            Box::new(ConnectError::new(std::io::Error::other("refused")))
                        } else {
                            Box::new(TimeoutError::new(TimeoutKind::Total, None))
                        });
                    }
                    Ok(Response::new(Body::empty()))
                }
            });
            let svc = RetryLayer::new(fast()).layer(svc);
            let _ = svc.oneshot(Request::new(Body::from("payload"))).await;
            assert_eq!(calls.load(Ordering::SeqCst), expected);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let (calls, svc) = flaky(1, 429, Some("5"));
        let svc = RetryLayer::new(fast()).layer(svc);
        let task = tokio::spawn(svc.oneshot(Request::new(Body::from("payload"))));
        // Let the first attempt run; the retry must wait for the Retry-After.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(4900)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "retried before Retry-After elapsed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(task.await.unwrap().unwrap().status(), 200);
    }
}
