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
//! let fut: ResponseFuture<_> = svc.call(http::Request::new(http_body_util::Empty::<bytes::Bytes>::new()));
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

type Inner<B> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, BoxError>> + Send>>;

/// The response future of [`CacheService`](super::CacheService).
///
/// A named wrapper, so its implementation (currently one boxed future covering the hit,
/// miss, follower and bypass paths) can change without breaking users.
pub struct ResponseFuture<B> {
    inner: Inner<B>,
}

impl<B> ResponseFuture<B> {
    pub(crate) fn new(inner: Inner<B>) -> Self {
        ResponseFuture { inner }
    }
}

impl<B> fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B> Future for ResponseFuture<B> {
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
