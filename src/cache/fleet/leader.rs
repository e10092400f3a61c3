//! The fleet leader: holds the lease (renewing it), publishes the head and every body
//! frame as they reach its caller, then the end, and releases the lease (at once on a
//! failure, which followers read as the leader gone).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::head;
use super::seal::Seal;
use crate::BoxError;
use crate::cache::Chain;
use crate::cache::config::Shared;
use crate::cache::engine::{CacheEngine, FleetEvent, FleetLease};
use crate::cache::flight::{Head, TeeBody};

/// Events published in one write at most.
const BATCH: usize = 256;

/// How long a finished flight keeps its lease, so that requests arriving before its
/// entry is written follow the finished log instead of calling upstream.
const LINGER: Duration = Duration::from_secs(5);

/// The leader's handle: events sent here are published in order by a task. Dropping it
/// (or every body holding it) before an end or failure publishes a failure.
#[derive(Debug)]
pub(crate) struct Publisher {
    tx: mpsc::UnboundedSender<FleetEvent>,
}

impl Publisher {
    /// Starts the task publishing for the flight `lease` of `key` (needs a tokio runtime:
    /// without one, nothing is published and the lease simply expires).
    pub(super) fn start<E: CacheEngine>(
        shared: Arc<Shared<E>>,
        key: Arc<str>,
        lease: FleetLease,
        lease_len: Duration,
        seal: Option<Seal>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(publish(shared, key, lease, lease_len, seal, rx));
        }
        Publisher { tx }
    }

    /// Publishes the response head.
    pub(crate) fn head(&self, head: &Head) {
        let _ = self.tx.send(FleetEvent::Head(head::encode(head)));
    }

    /// The leader's upstream body, publishing every data frame, up to `limit` bytes (past
    /// it the flight fails for the fleet, as it does for this process).
    pub(crate) fn wrap(self, body: TeeBody, limit: usize) -> TeeBody {
        let mut body = PublishBody {
            inner: body,
            tx: Some(self.tx),
            size: 0,
            limit,
        };
        // A body already at its end may never be polled (the recorder commits it now).
        if body.inner.is_end_stream() {
            body.send(FleetEvent::End);
        }
        Box::pin(body)
    }
}

async fn publish<E: CacheEngine>(
    shared: Arc<Shared<E>>,
    key: Arc<str>,
    lease: FleetLease,
    lease_len: Duration,
    seal: Option<Seal>,
    mut rx: mpsc::UnboundedReceiver<FleetEvent>,
) {
    let Some(fleet) = shared.engine.fleet() else {
        return;
    };
    // The log outlives the lease, so slow followers can finish reading it.
    let ttl = lease_len.saturating_mul(3);
    let every = (lease_len / 3).max(Duration::from_millis(10));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut seq = 1u64;
    let mut ended = false;
    loop {
        let first = tokio::select! {
            ev = rx.recv() => ev,
            _ = renew.tick() => {
                match fleet.renew(&key, &lease, lease_len, ttl).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        tracing::debug!(key = &*key, "fleet lease lost; no longer publishing");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(key = &*key, error = %Chain(&e), "fleet lease renewal failed");
                        continue;
                    }
                }
            }
        };
        // The body was dropped (or the call failed) before its end.
        let mut batch = vec![first.unwrap_or(FleetEvent::Failed)];
        while batch.len() < BATCH
            && !batch.last().is_some_and(FleetEvent::is_terminal)
            && let Ok(e) = rx.try_recv()
        {
            batch.push(e);
        }
        // A failure is not published: the lease is removed at once, which followers
        // read as "gone without an end" (they take over, or end their body with an
        // error), and a request arriving next leads a new flight instead of following
        // this one.
        if batch.last() == Some(&FleetEvent::Failed) {
            tracing::debug!(key = &*key, "fleet flight failed; releasing its lease");
            break;
        }
        let sealed: Vec<FleetEvent>;
        let events = match &seal {
            None => &batch[..],
            Some(seal) => {
                sealed = (seq..).zip(&batch).map(|(n, e)| seal.seal(n, e)).collect();
                &sealed[..]
            }
        };
        match fleet.publish(&key, &lease, seq, events, ttl).await {
            Ok(true) => seq += batch.len() as u64,
            Ok(false) => {
                tracing::debug!(key = &*key, "fleet lease lost; no longer publishing");
                break;
            }
            Err(e) => {
                tracing::debug!(key = &*key, error = %Chain(&e), "fleet publish failed; giving up the lease");
                break;
            }
        }
        if batch.last() == Some(&FleetEvent::End) {
            ended = true;
            break;
        }
    }
    let linger = ended.then(|| LINGER.min(lease_len));
    if let Err(e) = fleet.release(&key, &lease, linger).await {
        tracing::debug!(key = &*key, error = %Chain(&e), "fleet lease release failed; it will expire");
    }
}

/// The upstream body, publishing what it yields.
struct PublishBody {
    inner: TeeBody,
    tx: Option<mpsc::UnboundedSender<FleetEvent>>,
    size: usize,
    limit: usize,
}

impl PublishBody {
    fn send(&mut self, e: FleetEvent) {
        let terminal = e.is_terminal();
        if let Some(tx) = &self.tx {
            let _ = tx.send(e);
        }
        if terminal {
            self.tx = None;
        }
    }
}

impl Body for PublishBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        match &polled {
            None => this.send(FleetEvent::End),
            Some(Err(_)) => this.send(FleetEvent::Failed),
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref()
                    && this.tx.is_some()
                {
                    this.size += d.len();
                    if this.size > this.limit {
                        this.send(FleetEvent::Failed);
                    } else {
                        this.send(FleetEvent::Data(d.clone()));
                    }
                }
                if this.inner.is_end_stream() {
                    this.send(FleetEvent::End);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
