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

mod body;
mod future;
mod layer;
mod service;

pub use body::TimeoutBody;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use service::Timeout;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;
    use crate::BoxError;
    use crate::error::{TimeoutError, TimeoutKind};
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body::Frame;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::Layer;
    use tower::{ServiceExt, service_fn};
    use tower_service::Service;

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
    async fn a_request_can_set_its_own_total_timeout() {
        use crate::client::TimeoutOverride;
        let layer = |total| {
            TimeoutLayer::new().total(total).layer(server(
                Duration::from_secs(5),
                "application/json",
                0,
                Duration::ZERO,
            ))
        };
        // Longer than the layer's: the slow answer arrives.
        let mut req = Request::new(Body::empty());
        req.extensions_mut()
            .insert(TimeoutOverride(Duration::from_secs(10)));
        let res = layer(Duration::from_secs(1)).oneshot(req).await;
        assert!(res.is_ok(), "{:?}", res.err());
        // Shorter than the layer's: it times out.
        let mut req = Request::new(Body::empty());
        req.extensions_mut()
            .insert(TimeoutOverride(Duration::from_secs(1)));
        let err = layer(Duration::from_secs(60))
            .oneshot(req)
            .await
            .unwrap_err();
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
