//! The request body handed to the inner service and the response body returned.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use mistral_tower::cache::RequestBody;
//!
//! // A buffered request body can be turned back into bytes (to rebuild a replayable body).
//! let body: RequestBody<Full<Bytes>> = RequestBody::full(Bytes::from_static(b"{}"));
//! assert_eq!(body.try_clone().unwrap().into_full().unwrap(), "{}");
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::flight::{Flight, Joined, Reader, Recorder};
use crate::BoxError;

/// The request body the inner service receives.
///
/// Either the whole body, buffered by the cache (the usual case: replayable with
/// [`try_clone`](RequestBody::try_clone), convertible with
/// [`into_full`](RequestBody::into_full)), or, when the body was over the cache's
/// limit or not read at all, the prefix already read followed by the rest of the
/// original body. Request trailers of a buffered body are dropped.
pub struct RequestBody<B> {
    kind: ReqKind<B>,
}

enum ReqKind<B> {
    Full {
        data: Option<Bytes>,
    },
    Chained {
        prefix: Option<Bytes>,
        rest: Pin<Box<B>>,
    },
}

impl<B> RequestBody<B> {
    /// A buffered body holding `data`.
    pub fn full(data: Bytes) -> Self {
        RequestBody {
            kind: ReqKind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// A streaming body: `prefix` (already read) followed by the rest of `rest`.
    pub fn chained(prefix: Bytes, rest: B) -> Self {
        Self::chained_pinned(prefix, Box::pin(rest))
    }

    pub(crate) fn chained_pinned(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        RequestBody {
            kind: ReqKind::Chained {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }

    /// `true` when the whole body is buffered.
    pub fn is_full(&self) -> bool {
        matches!(self.kind, ReqKind::Full { .. })
    }

    /// The buffered bytes, `None` for a streaming body.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            ReqKind::Full { data } => Some(data.as_deref().unwrap_or(&[])),
            ReqKind::Chained { .. } => None,
        }
    }

    /// The buffered bytes, or the body itself back when it is streaming.
    pub fn into_full(self) -> Result<Bytes, Self> {
        match self.kind {
            ReqKind::Full { data } => Ok(data.unwrap_or_default()),
            kind => Err(RequestBody { kind }),
        }
    }

    /// Clones a buffered body (for retries); `None` for a streaming body.
    pub fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            ReqKind::Full { data } => Some(RequestBody {
                kind: ReqKind::Full { data: data.clone() },
            }),
            ReqKind::Chained { .. } => None,
        }
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ReqKind::Full { data } => f
                .debug_struct("RequestBody")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            ReqKind::Chained { prefix, .. } => f
                .debug_struct("RequestBody")
                .field("prefix_len", &prefix.as_ref().map_or(0, Bytes::len))
                .field("streaming", &true)
                .finish(),
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            ReqKind::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ReqKind::Chained { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                rest.as_mut().poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ReqKind::Full { data } => data.is_none(),
            ReqKind::Chained { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ReqKind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReqKind::Chained { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + p);
                if let Some(u) = r.upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}

pin_project! {
    /// The response body of [`CacheService`](super::CacheService): a replayed entry, a
    /// body shared from an in-flight request, the inner body being recorded, or the
    /// inner body passed through.
    pub struct ResponseBody<B> {
        #[pin]
        kind: RespKind<B>,
    }
}

pin_project! {
    #[project = RespProj]
    enum RespKind<B> {
        Replay { frames: std::vec::IntoIter<Bytes> },
        Once { frame: Option<Bytes> },
        Flight { reader: Reader },
        Pass { #[pin] inner: B },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn replay(frames: Vec<Bytes>) -> Self {
        ResponseBody {
            kind: RespKind::Replay {
                frames: frames.into_iter(),
            },
        }
    }
    /// Replays one frame, like [`replay`](Self::replay) of a one-frame `Vec`.
    pub(crate) fn once(frame: Bytes) -> Self {
        ResponseBody {
            kind: RespKind::Once { frame: Some(frame) },
        }
    }
    pub(crate) fn follow(joined: Joined) -> Self {
        ResponseBody {
            kind: RespKind::Flight {
                reader: Reader::follower(joined),
            },
        }
    }
    /// The leader's body: `rec` moves into `flight`, which any reader may then drive.
    pub(crate) fn tee(flight: Arc<Flight>, rec: Recorder) -> Self {
        ResponseBody {
            kind: RespKind::Flight {
                reader: Reader::leader(flight, rec),
            },
        }
    }
    pub(crate) fn pass(inner: B) -> Self {
        ResponseBody {
            kind: RespKind::Pass { inner },
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            RespKind::Replay { .. } | RespKind::Once { .. } => "replay",
            RespKind::Flight { reader } if reader.is_leader() => "tee",
            RespKind::Flight { .. } => "follow",
            RespKind::Pass { .. } => "pass",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            RespProj::Replay { frames } => Poll::Ready(frames.next().map(|f| Ok(Frame::data(f)))),
            RespProj::Once { frame } => Poll::Ready(frame.take().map(|f| Ok(Frame::data(f)))),
            RespProj::Flight { reader } => reader.poll_frame(cx),
            RespProj::Pass { inner } => inner.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RespKind::Replay { frames } => frames.len() == 0,
            RespKind::Once { frame } => frame.is_none(),
            RespKind::Flight { reader } => reader.is_end_stream(),
            RespKind::Pass { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RespKind::Replay { frames } => {
                SizeHint::with_exact(frames.as_slice().iter().map(|f| f.len() as u64).sum())
            }
            RespKind::Once { frame } => {
                SizeHint::with_exact(frame.as_ref().map_or(0, |f| f.len() as u64))
            }
            RespKind::Flight { reader } => reader.size_hint(),
            RespKind::Pass { inner } => inner.size_hint(),
        }
    }
}
