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
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::flight::{Flight, LeaderGuard, Next};
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

/// Finishes a recorded response: builds the entry from the flight and stores it.
pub(crate) trait Commit: Send + Sync + 'static {
    /// Called once the body ended cleanly; the flight is already complete.
    fn commit(&self, key: String, flight: Arc<Flight>);
}

/// The leader's upstream body, type-erased so it can be handed to a task.
pub(crate) type TeeBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

/// Tees the leader's body into its flight and commits on a clean end of stream.
///
/// If the leader's caller drops the body before its end while followers are reading
/// the same flight, the rest of the upstream body is read on a spawned task so the
/// followers still get (and the cache still stores) the complete answer.
pub(crate) struct Recorder {
    pub(crate) body: Option<TeeBody>,
    pub(crate) guard: Option<LeaderGuard>,
    pub(crate) commit: Arc<dyn Commit>,
    pub(crate) size: usize,
    pub(crate) limit: usize,
}

impl Recorder {
    fn record(&mut self, data: &Bytes) {
        let Some(g) = &self.guard else { return };
        self.size += data.len();
        if self.size > self.limit {
            tracing::debug!(key = %g.key, "response over the cache size limit, not stored");
            self.guard = None; // fails and removes the flight
            return;
        }
        g.flight.push(data.clone());
    }

    pub(crate) fn finish_now(&mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(g) = self.guard.take() {
            let (key, flight) = g.disarm();
            flight.complete();
            self.commit.commit(key, flight);
        }
    }

    fn fail(&mut self) {
        self.guard = None;
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(body.as_mut().poll_frame(cx)) {
            None => {
                self.body = None;
                self.finish();
                Poll::Ready(None)
            }
            Some(Ok(frame)) => {
                let ended = body.is_end_stream();
                if let Some(d) = frame.data_ref() {
                    self.record(d);
                }
                if ended {
                    self.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                self.body = None;
                self.fail();
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let Some(g) = &self.guard else { return };
        // The guard, the flight table and at least one follower hold the flight.
        if self.body.is_none() || Arc::strong_count(&g.flight) <= 2 {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::debug!(key = %g.key, "leader dropped its body; finishing it for the followers");
        let mut rest = Recorder {
            body: self.body.take(),
            guard: self.guard.take(),
            commit: self.commit.clone(),
            size: self.size,
            limit: self.limit,
        };
        handle.spawn(async move {
            while let Some(Ok(_)) = std::future::poll_fn(|cx| rest.poll_frame(cx)).await {}
        });
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
        Follow { flight: Arc<Flight>, next: usize },
        Tee { rec: Recorder },
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
    pub(crate) fn empty() -> Self {
        Self::replay(Vec::new())
    }
    pub(crate) fn follow(flight: Arc<Flight>) -> Self {
        ResponseBody {
            kind: RespKind::Follow { flight, next: 0 },
        }
    }
    pub(crate) fn tee(rec: Recorder) -> Self {
        ResponseBody {
            kind: RespKind::Tee { rec },
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
            RespKind::Follow { .. } => "follow",
            RespKind::Tee { .. } => "tee",
            RespKind::Pass { .. } => "pass",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// The error a follower's body ends with when the shared upstream body failed.
#[derive(Debug, thiserror::Error)]
#[error("the shared upstream response failed before its end")]
pub struct SharedResponseFailed;

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
            RespProj::Follow { flight, next } => match ready!(flight.poll_frame(*next, cx)) {
                Next::Frame(f) => {
                    *next += 1;
                    Poll::Ready(Some(Ok(Frame::data(f))))
                }
                Next::End => Poll::Ready(None),
                Next::Failed => Poll::Ready(Some(Err(SharedResponseFailed.into()))),
            },
            RespProj::Tee { rec } => rec.poll_frame(cx),
            RespProj::Pass { inner } => inner.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RespKind::Replay { frames } => frames.len() == 0,
            RespKind::Once { frame } => frame.is_none(),
            RespKind::Follow { flight, next } => flight.is_end(*next),
            RespKind::Tee { rec } => rec.body.as_ref().is_none_or(|b| b.is_end_stream()),
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
            RespKind::Follow { .. } => SizeHint::new(),
            RespKind::Tee { rec } => rec
                .body
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()),
            RespKind::Pass { inner } => inner.size_hint(),
        }
    }
}
