//! [`ResponseFuture`]: waits for the response head under the total timeout.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::body::{Mode, TimeoutBody};
use super::is_event_stream;
use crate::BoxError;
use crate::error::{TimeoutError, TimeoutKind};

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

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, total: Option<Duration>, stream_idle: Option<Duration>) -> Self {
        ResponseFuture {
            inner,
            sleep: total.map(|d| Box::pin(tokio::time::sleep(d))),
            total,
            stream_idle,
        }
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
                Poll::Ready(Ok(res.map(|inner| TimeoutBody::new(inner, sleep, mode))))
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
