//! [`Timeout`]: the service applying the timeouts.

use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower_service::Service;

use super::{ResponseFuture, TimeoutBody};
use crate::BoxError;
use crate::client::TimeoutOverride;

/// The service built by [`TimeoutLayer`](super::TimeoutLayer).
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    total: Option<Duration>,
    stream_idle: Option<Duration>,
}

impl<S> Timeout<S> {
    pub(super) fn new(inner: S, total: Option<Duration>, stream_idle: Option<Duration>) -> Self {
        Timeout {
            inner,
            total,
            stream_idle,
        }
    }
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
        // A call's own timeout (`RequestOptions::timeout`) replaces the layer's.
        let total = req
            .extensions()
            .get::<TimeoutOverride>()
            .map_or(self.total, |t| Some(t.0));
        ResponseFuture::new(self.inner.call(req), total, self.stream_idle)
    }
}
