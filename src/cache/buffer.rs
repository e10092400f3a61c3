//! Buffering a request body up to a limit, frame by frame, across polls.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::Body;

use crate::BoxError;

/// The outcome of buffering a request body.
pub(crate) enum Buffered {
    /// The whole body, within the limit.
    Full(Bytes),
    /// Over the limit: the prefix read so far (the rest is still in the body).
    Over(Bytes),
}

/// Reads a request body up to a limit, frame by frame, across polls.
pub(crate) struct Buffer {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    total: usize,
    limit: usize,
}

impl Buffer {
    pub(crate) fn new(limit: usize) -> Self {
        Buffer {
            first: None,
            rest: None,
            total: 0,
            limit,
        }
    }

    fn take(&mut self) -> Bytes {
        match self.rest.take() {
            Some(b) => b.freeze(),
            None => self.first.take().unwrap_or_default(),
        }
    }

    pub(crate) fn poll<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Buffered, BoxError>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            let Some(frame) = ready!(body.as_mut().poll_frame(cx)) else {
                return Poll::Ready(Ok(Buffered::Full(self.take())));
            };
            let Ok(data) = frame.map_err(Into::into)?.into_data() else {
                continue; // trailers are dropped
            };
            self.total += data.len();
            let over = self.total > self.limit;
            match (&mut self.first, &mut self.rest) {
                (None, _) => self.first = Some(data),
                (Some(f), None) => {
                    let cap = if over {
                        self.total
                    } else {
                        self.total.max(2 * f.len())
                    };
                    let mut b = BytesMut::with_capacity(cap);
                    b.extend_from_slice(f);
                    b.extend_from_slice(&data);
                    self.rest = Some(b);
                }
                (Some(_), Some(b)) => b.extend_from_slice(&data),
            }
            if over {
                return Poll::Ready(Ok(Buffered::Over(self.take())));
            }
        }
    }
}
