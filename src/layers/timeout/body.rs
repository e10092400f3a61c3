//! [`TimeoutBody`]: the response body under the total or the idle timeout.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::BoxError;
use crate::error::{TimeoutError, TimeoutKind};

#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
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

impl<B> TimeoutBody<B> {
    pub(super) fn new(inner: B, sleep: Option<Pin<Box<Sleep>>>, mode: Mode) -> Self {
        TimeoutBody {
            inner,
            sleep,
            mode,
            done: false,
        }
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
