//! The recorder: the leader's upstream body, teed into its flight and committed on a
//! clean end of stream.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{state, table};
use crate::BoxError;

/// Finishes a recorded response: builds the entry from the flight and stores it.
pub(crate) trait Commit: Send + Sync + 'static {
    /// Called once the body ended cleanly; the flight is already complete.
    fn commit(&self, key: Arc<str>, flight: Arc<Flight>);
}

/// A flight whose upstream body is a [`Recorder`].
pub(crate) type Flight = state::Flight<Recorder>;
/// The table of such flights.
pub(crate) type Flights = table::Flights<Recorder>;
/// The guard of such a flight's leader.
pub(crate) type LeaderGuard = table::LeaderGuard<Recorder>;

/// The leader's upstream body, type-erased so it can be handed to a task.
pub(crate) type TeeBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

/// Tees the leader's upstream body into its flight and commits on a clean end of stream.
///
/// It lives in the [`Flight`], and whichever reader of the flight (the leader's body or
/// a follower's) has read everything published polls it (see
/// the reader module).
pub(crate) struct Recorder {
    body: Option<TeeBody>,
    guard: Option<LeaderGuard>,
    commit: Arc<dyn Commit>,
    size: usize,
    limit: usize,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("reading", &self.body.is_some())
            .field("recording", &self.guard.is_some())
            .field("size", &self.size)
            .finish()
    }
}

impl Recorder {
    /// Records `body` for the flight of `guard`, committing with `commit` on a clean end
    /// of stream unless the answer grows over `limit` bytes. A body that is already at
    /// its end commits now.
    pub(crate) fn new(
        body: TeeBody,
        guard: LeaderGuard,
        commit: Arc<dyn Commit>,
        limit: usize,
    ) -> Self {
        let ended = body.is_end_stream();
        let mut rec = Recorder {
            body: Some(body),
            guard: Some(guard),
            commit,
            size: 0,
            limit,
        };
        if ended {
            rec.finish();
        }
        rec
    }

    /// `true` while the upstream body is still to be read.
    pub(crate) fn is_reading(&self) -> bool {
        self.body.is_some()
    }

    /// `true` while the answer is still being recorded for the flight.
    pub(crate) fn is_recording(&self) -> bool {
        self.guard.is_some()
    }

    /// The key of the flight, while recording.
    pub(crate) fn key(&self) -> Option<&Arc<str>> {
        self.guard.as_ref().map(|g| g.key())
    }

    /// The upstream body's size hint, while it is read.
    pub(crate) fn size_hint(&self) -> Option<SizeHint> {
        self.body.as_ref().map(|b| b.size_hint())
    }

    /// Publishes `data` to the flight; `false` when it was not (the flight failed, or
    /// fails now because the answer is over the size limit).
    fn record(&mut self, data: &Bytes) -> bool {
        let Some(g) = &self.guard else { return false };
        self.size += data.len();
        if self.size > self.limit {
            tracing::debug!(key = %g.key(), "response over the cache size limit, not stored");
            self.guard = None; // fails and removes the flight
            return false;
        }
        g.flight().push(data.clone());
        true
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

    /// The next upstream frame, and whether it was published to the flight.
    #[allow(clippy::type_complexity)]
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Frame<Bytes>, bool), BoxError>>> {
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
                let published = frame.data_ref().is_some_and(|d| self.record(d));
                if ended {
                    self.finish();
                }
                Poll::Ready(Some(Ok((frame, published))))
            }
            Some(Err(e)) => {
                self.body = None;
                self.fail();
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}
