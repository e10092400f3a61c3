//! The fleet follower: reads another process's flight from the shared store, the head
//! first and then the body frames as they are published, and notices a leader that
//! died (its lease gone with no end published).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use http_body::Frame;

use super::head;
use super::seal::Seal;
use crate::BoxError;
use crate::cache::config::Shared;
use crate::cache::engine::{CacheEngine, CacheError, FleetEvent, FleetLease};
use crate::cache::flight::{Head, SharedResponseFailed, TeeBody};
use crate::cache::lookup::refused;

/// The first pause between two empty reads; it doubles up to [`MAX_POLL`].
const MIN_POLL: Duration = Duration::from_millis(2);
/// The longest pause between two empty reads.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Why a followed flight gave nothing more.
#[derive(Debug)]
pub(super) enum Stop {
    /// The leader failed, or died (its lease is gone without an end).
    Failed,
    /// The store failed for longer than a lease.
    Engine(CacheError),
    /// Nothing was published for longer than the wait allowed.
    Stalled,
    /// An event's signature was refused: the log is not the fleet's.
    Refused,
}

/// A cursor into another process's flight.
pub(super) struct Follow<E> {
    shared: Arc<Shared<E>>,
    key: Arc<str>,
    lease: FleetLease,
    after: u64,
    buf: VecDeque<FleetEvent>,
    /// How long the store may fail before the follower gives up.
    lease_len: Duration,
    /// How long the leader may publish nothing while it holds its lease.
    max_idle: Duration,
    /// Opens signed events (a signing layer accepts no other).
    seal: Option<Seal>,
}

impl<E: CacheEngine> Follow<E> {
    pub(super) fn new(
        shared: Arc<Shared<E>>,
        key: Arc<str>,
        lease: FleetLease,
        lease_len: Duration,
        max_idle: Duration,
        seal: Option<Seal>,
    ) -> Self {
        Follow {
            shared,
            key,
            lease,
            after: 0,
            buf: VecDeque::new(),
            lease_len,
            max_idle,
            seal,
        }
    }

    /// The next event of the flight; [`Stop`] when there will be none.
    pub(super) async fn next(&mut self) -> Result<FleetEvent, Stop> {
        let Some(fleet) = self.shared.engine.fleet() else {
            return Err(Stop::Engine(CacheError::Unsupported("fleet")));
        };
        let mut pause = MIN_POLL;
        let mut idle_since = tokio::time::Instant::now();
        let mut failing_since = None;
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Ok(e);
            }
            match fleet.read(&self.key, &self.lease, self.after).await {
                Ok(read) if read.events.is_empty() => {
                    failing_since = None;
                    if !read.alive && !read.more {
                        tracing::debug!(key = &*self.key, "fleet leader gone before its end");
                        return Err(Stop::Failed);
                    }
                    if idle_since.elapsed() > self.max_idle {
                        return Err(Stop::Stalled);
                    }
                }
                Ok(read) => {
                    failing_since = None;
                    for event in read.events {
                        self.after += 1;
                        let event = match &self.seal {
                            None => event,
                            Some(seal) => match seal.open(self.after, event) {
                                Ok(event) => event,
                                Err(e) => {
                                    let m = &self.shared.metrics;
                                    let c = &m.fleet_events_rejected_signature;
                                    refused(c, "fleet event", &self.key, e);
                                    return Err(Stop::Refused);
                                }
                            },
                        };
                        self.buf.push_back(event);
                    }
                    pause = MIN_POLL;
                    idle_since = tokio::time::Instant::now();
                    continue;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > self.lease_len {
                        return Err(Stop::Engine(e));
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Waits for the head: `Ok` with it, or why there is none.
    pub(super) async fn head(&mut self) -> Result<Head, Stop> {
        match self.next().await? {
            FleetEvent::Head(h) => head::decode(&h).ok_or_else(|| {
                Stop::Engine(CacheError::backend("a fleet head that does not decode"))
            }),
            // A log that does not start with a head is not one this layer can follow
            // (a signing leader's, followed without signing): call upstream alone
            // rather than take over a flight that is not failing.
            _ => Err(Stop::Refused),
        }
    }

    /// The rest of the flight as a body: its frames, ending cleanly on its end and with
    /// [`SharedResponseFailed`] if the leader failed or died, or the store failed.
    pub(super) fn into_body(self) -> TeeBody {
        let stream = futures_util::stream::unfold(Some(self), |state| async move {
            let mut follow = state?;
            match follow.next().await {
                Ok(FleetEvent::Data(d)) => Some((Ok(Frame::data(d)), Some(follow))),
                Ok(FleetEvent::End) => None,
                Ok(FleetEvent::Head(_) | FleetEvent::Failed) | Err(_) => {
                    let err: BoxError = SharedResponseFailed.into();
                    Some((Err(err), None))
                }
            }
        });
        Box::pin(http_body_util::StreamBody::new(stream))
    }
}

impl<E> std::fmt::Debug for Follow<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("key", &self.key)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}
