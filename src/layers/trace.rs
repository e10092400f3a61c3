//! Request tracing: one `tracing` span per request with the method, path, status,
//! latency and Mistral correlation id. Never records the API key or bodies.
//!
//! # Example
//!
//! ```
//! use mistral_tower::layers::trace::TraceLayer;
//!
//! let layer = TraceLayer::new();
//! # let _ = layer;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::error::CORRELATION_ID_HEADER;

/// Wraps each request in a `mistral.request` span (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer {
    _priv: (),
}

impl TraceLayer {
    /// The layer.
    pub fn new() -> Self {
        TraceLayer::default()
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// The service built by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Trace<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let span = tracing::debug_span!(
            "mistral.request",
            method = %req.method(),
            path = %req.uri().path(),
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        let inner = {
            let _guard = span.enter();
            self.inner.call(req)
        };
        TraceFuture {
            inner,
            span,
            start: Instant::now(),
        }
    }
}

pin_project! {
    /// The response future of [`Trace`].
    pub struct TraceFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Instant,
    }
}

impl<F> fmt::Debug for TraceFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _guard = this.span.enter();
        let out = ready!(this.inner.poll(cx));
        let latency_ms = this.start.elapsed().as_secs_f64() * 1000.0;
        this.span.record("latency_ms", latency_ms);
        match &out {
            Ok(res) => {
                this.span.record("status", res.status().as_u16());
                if let Some(id) = res
                    .headers()
                    .get(CORRELATION_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    this.span.record("correlation_id", id);
                }
                tracing::debug!(status = res.status().as_u16(), latency_ms, "response");
            }
            Err(e) => tracing::debug!(error = %e, latency_ms, "request failed"),
        }
        Poll::Ready(out)
    }
}
