//! Request timeouts that know about streams: a `total` timeout for headers and the
//! whole body of ordinary responses, and a `stream idle` timeout between the body
//! frames of `text/event-stream` responses.
//!
//! A long stream is never cut by the total timeout: once the headers of an SSE
//! response arrive, only the idle timeout applies.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::layers::timeout::TimeoutLayer;
//!
//! let layer = TimeoutLayer::new()
//!     .total(Duration::from_secs(300))
//!     .stream_idle(Duration::from_secs(60));
//! # let _ = layer;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::error::{TimeoutError, TimeoutKind};

/// Applies the total and stream idle timeouts (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    total: Option<Duration>,
    stream_idle: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer with no timeout set.
    pub fn new() -> Self {
        TimeoutLayer::default()
    }
    /// The total timeout: response headers and, for non-SSE responses, the whole body.
    pub fn total(mut self, d: Duration) -> Self {
        self.total = Some(d);
        self
    }
    /// The longest pause between two body frames of an SSE response.
    pub fn stream_idle(mut self, d: Duration) -> Self {
        self.stream_idle = Some(d);
        self
    }
    /// Sets or clears the total timeout.
    pub fn set_total(mut self, d: Option<Duration>) -> Self {
        self.total = d;
        self
    }
    /// Sets or clears the stream idle timeout.
    pub fn set_stream_idle(mut self, d: Option<Duration>) -> Self {
        self.stream_idle = d;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            total: self.total,
            stream_idle: self.stream_idle,
        }
    }
}

/// The service built by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    total: Option<Duration>,
    stream_idle: Option<Duration>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Timeout<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<TimeoutBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: self.total.map(|d| Box::pin(tokio::time::sleep(d))),
            total: self.total,
            stream_idle: self.stream_idle,
        }
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<Sleep>>>,
        total: Option<Duration>,
        stream_idle: Option<Duration>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("total", &self.total)
            .field("stream_idle", &self.stream_idle)
            .finish_non_exhaustive()
    }
}

/// Whether a response is a server-sent event stream.
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<TimeoutBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => {
                let (mode, sleep) = if is_event_stream(res.headers()) {
                    (
                        Mode::Idle(*this.stream_idle),
                        this.stream_idle.map(|d| Box::pin(tokio::time::sleep(d))),
                    )
                } else {
                    (Mode::Deadline(*this.total), this.sleep.take())
                };
                Poll::Ready(Ok(res.map(|inner| TimeoutBody {
                    inner,
                    sleep,
                    mode,
                    done: false,
                })))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => {
                if let Some(sleep) = this.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                    return Poll::Ready(Err(Box::new(TimeoutError::new(
                        TimeoutKind::Total,
                        *this.total,
                    ))));
                }
                Poll::Pending
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Idle(Option<Duration>),
    Deadline(Option<Duration>),
}

pin_project! {
    /// A response body under a timeout: the rest of the total deadline for ordinary
    /// responses, the idle timeout between frames for event streams.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        sleep: Option<Pin<Box<Sleep>>>,
        mode: Mode,
        done: bool,
    }
}

impl<B> fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<B> HttpBody for TimeoutBody<B>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Mode::Idle(Some(d)), Some(sleep)) = (*this.mode, this.sleep.as_mut()) {
                    sleep.as_mut().reset(Instant::now() + d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(sleep) = this.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                    *this.done = true;
                    let err = match *this.mode {
                        Mode::Idle(d) => TimeoutError::new(TimeoutKind::StreamIdle, d),
                        Mode::Deadline(d) => TimeoutError::new(TimeoutKind::Total, d),
                    };
                    return Poll::Ready(Some(Err(Box::new(err))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use tower::{ServiceExt, service_fn};

    /// A body that yields a frame every `gap`, `n` times.
    fn paced_body(n: usize, gap: Duration) -> Body {
        let s = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"data: x\n\n"))),
                i + 1,
            ))
        });
        Body::new(http_body_util::StreamBody::new(s))
    }

    fn server(
        header_delay: Duration,
        content_type: &'static str,
        n: usize,
        gap: Duration,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = impl Send>
    + Clone {
        service_fn(move |_req: Request<Body>| async move {
            tokio::time::sleep(header_delay).await;
            let mut res = Response::new(paced_body(n, gap));
            res.headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
            Ok::<_, BoxError>(res)
        })
    }

    fn kind(e: &BoxError) -> TimeoutKind {
        e.downcast_ref::<TimeoutError>()
            .expect("a timeout error")
            .kind()
    }

    #[tokio::test(start_paused = true)]
    async fn total_timeout_covers_headers() {
        let svc = TimeoutLayer::new()
            .total(Duration::from_secs(1))
            .layer(server(
                Duration::from_secs(5),
                "application/json",
                0,
                Duration::ZERO,
            ));
        let err = svc.oneshot(Request::new(Body::empty())).await.unwrap_err();
        assert_eq!(kind(&err), TimeoutKind::Total);
    }

    #[tokio::test(start_paused = true)]
    async fn total_timeout_covers_json_body() {
        let svc = TimeoutLayer::new()
            .total(Duration::from_secs(1))
            .layer(server(
                Duration::ZERO,
                "application/json",
                10,
                Duration::from_millis(300),
            ));
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        let err = res.into_body().collect().await.unwrap_err();
        assert_eq!(kind(&err), TimeoutKind::Total);
    }

    #[tokio::test(start_paused = true)]
    async fn long_stream_not_cut_by_total_timeout() {
        // 20 frames 300 ms apart: 6 s in total, far over the 1 s total timeout,
        // but each gap is under the 1 s idle timeout.
        let svc = TimeoutLayer::new()
            .total(Duration::from_secs(1))
            .stream_idle(Duration::from_secs(1))
            .layer(server(
                Duration::ZERO,
                "text/event-stream; charset=utf-8",
                20,
                Duration::from_millis(300),
            ));
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 20 * 9);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_idle_timeout_fires_on_a_stall() {
        let svc = TimeoutLayer::new()
            .total(Duration::from_secs(100))
            .stream_idle(Duration::from_secs(1))
            .layer(server(
                Duration::ZERO,
                "text/event-stream",
                3,
                Duration::from_secs(2),
            ));
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        let err = res.into_body().collect().await.unwrap_err();
        assert_eq!(kind(&err), TimeoutKind::StreamIdle);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeouts_configured_means_none() {
        let svc = TimeoutLayer::new().layer(server(
            Duration::from_secs(1000),
            "application/json",
            2,
            Duration::from_secs(1000),
        ));
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        assert!(res.into_body().collect().await.is_ok());
    }
}
