//! [`ResponseFuture`]: the future returned by [`CacheService`](super::CacheService).
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, MemoryEngine, ResponseFuture};
//! use tower::{Layer, Service};
//! # async fn demo() {
//! let inner = tower::service_fn(|_req: http::Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
//! });
//! let mut svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
//! // The error is the inner service's (here `Infallible`).
//! let fut: ResponseFuture<_, std::convert::Infallible> =
//!     svc.call(http::Request::new(http_body_util::Empty::<bytes::Bytes>::new()));
//! let _response = fut.await.unwrap();
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::body::ResponseBody;
use crate::BoxError;

type Output<B, E> = Result<Response<ResponseBody<B>>, E>;
type Boxed<B, E> = Pin<Box<dyn Future<Output = Output<B, E>> + Send>>;

/// The response future of [`CacheService`](super::CacheService).
///
/// A named wrapper around a private enum, so its variants can change without breaking
/// users. A hit on an engine that answers synchronously (see
/// [`CacheEngine::try_get_now`](super::CacheEngine::try_get_now)) is decided inside
/// `call` and returned as an already-completed future, without allocating; every other
/// path (misses, single-flight, engines that do I/O, bypasses) runs as one boxed future.
///
/// `E` is the inner service's error: the cache adds none of its own (a request body that
/// fails while it is buffered is answered with a `400`).
pub struct ResponseFuture<B, E = BoxError> {
    kind: Kind<B, E>,
}

enum Kind<B, E> {
    /// Answered in `call` (a hit, or an `only-if-cached` miss); `None` once taken.
    Ready { res: Option<Output<B, E>> },
    /// Everything that waits: the engine, the inner service, another request.
    Pending { fut: Boxed<B, E> },
}

// No field is structurally pinned: the ready answer is moved out, and the pending
// future is already boxed.
impl<B, E> Unpin for ResponseFuture<B, E> {}

impl<B, E> ResponseFuture<B, E> {
    pub(crate) fn ready(res: Output<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Ready { res: Some(res) },
        }
    }

    pub(crate) fn pending(fut: Boxed<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Pending { fut },
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Ready { res: Some(_) } => "ready",
            Kind::Ready { res: None } => "done",
            Kind::Pending { .. } => "pending",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Output<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready { res } => {
                Poll::Ready(res.take().expect("ResponseFuture polled after completion"))
            }
            Kind::Pending { fut } => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_future_is_send_and_unpin_whatever_the_body() {
        fn assert_send_unpin<T: Send + Unpin>() {}
        // A body that is neither Unpin nor Sync.
        type NotUnpin = http_body_util::StreamBody<
            std::pin::Pin<
                Box<
                    dyn futures_core::Stream<
                            Item = Result<http_body::Frame<bytes::Bytes>, BoxError>,
                        > + Send,
                >,
            >,
        >;
        assert_send_unpin::<ResponseFuture<NotUnpin>>();
        assert_send_unpin::<ResponseFuture<std::marker::PhantomPinned>>();
    }
}
