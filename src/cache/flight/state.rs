//! Single-flight: identical concurrent misses share one upstream call.
//!
//! The first miss for a key becomes the *leader*: it calls the inner service and, if the
//! answer is cacheable, publishes the head and every body frame to a [`Flight`] as they
//! arrive. Identical requests arriving meanwhile become *followers*: they wait for the
//! head (bounded by the layer's `flight_wait`) and then read the frames published so far
//! followed by the rest, so a late joiner of a stream gets the prefix and then the live
//! tail. The upstream body is not owned by the leader's response body but by the flight:
//! whichever reader (leader or follower) has read everything published reads the
//! upstream and publishes what it gets, so a leader whose client stops reading does not
//! stall its followers. If the leader fails before the head (error, non-cacheable answer, dropped
//! future), the flight is marked failed and removed, and each follower starts over: one
//! of them becomes the new leader and the others follow it. A flight that completed stays
//! in the table until its entry has been written, so requests arriving in between are
//! answered from it.
//!
//! # Example
//!
//! The table is internal; see the `single_flight` tests of the layer for its behaviour.
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use std::time::Duration;
//! let _layer = CacheLayer::new(MemoryEngine::new(1 << 20)).flight_wait(Duration::from_secs(30));
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Frame, SizeHint};

use super::body::{Recorder, SharedResponseFailed};
use super::entry::EntryKind;
use super::service::sse_completed_cleanly;
use crate::BoxError;

/// The response head shared with followers.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Running,
    Complete,
    Failed,
}

#[derive(Debug)]
struct State {
    head: Option<Head>,
    frames: Vec<Bytes>,
    outcome: Outcome,
    wakers: Vec<Waker>,
    /// Response bodies reading this flight (the leader's included).
    readers: usize,
    /// `true` while the leader's response body exists.
    leader: bool,
    /// Frames for the leader only, read by another reader after everything published:
    /// trailers, and the data past the size limit (the flight failed, the leader's own
    /// answer goes on).
    stash: VecDeque<Frame<Bytes>>,
}

/// The state and the waiters of a flight. Also the waker given to the upstream body, so
/// that whichever reader polled it, every waiting reader is woken.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Counts the wake-ups, so a reader that polled the upstream can tell it was woken
    /// while it still held the recorder.
    epoch: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        let wakers = std::mem::take(&mut self.lock().wakers);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for w in wakers {
            w.wake();
        }
    }
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify();
    }
}

/// One in-flight upstream call.
///
/// The leader's upstream body (its [`Recorder`]) lives here, not in the leader's response
/// body: any reader that has read everything published polls it and publishes what it
/// gets, so a leader whose client stops reading does not stall its followers.
pub(crate) struct Flight {
    shared: Arc<Shared>,
    recorder: Mutex<Option<Recorder>>,
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("state", &self.shared.state)
            .finish_non_exhaustive()
    }
}

impl Default for Flight {
    fn default() -> Self {
        Flight::new()
    }
}

impl Flight {
    fn new() -> Self {
        Flight {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    head: None,
                    frames: Vec::new(),
                    outcome: Outcome::Running,
                    wakers: Vec::new(),
                    readers: 0,
                    leader: false,
                    stash: VecDeque::new(),
                }),
                epoch: AtomicU64::new(0),
            }),
            recorder: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn lock_recorder(&self) -> MutexGuard<'_, Option<Recorder>> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(wakers: Vec<Waker>) {
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn set_head(&self, head: Head) {
        let wakers = {
            let mut st = self.lock();
            st.head = Some(head);
            std::mem::take(&mut st.wakers)
        };
        Self::wake(wakers);
    }

    pub(crate) fn push(&self, frame: Bytes) {
        let wakers = {
            let mut st = self.lock();
            st.frames.push(frame);
            std::mem::take(&mut st.wakers)
        };
        Self::wake(wakers);
    }

    fn finish(&self, outcome: Outcome) {
        let wakers = {
            let mut st = self.lock();
            if st.outcome != Outcome::Running {
                return;
            }
            st.outcome = outcome;
            std::mem::take(&mut st.wakers)
        };
        Self::wake(wakers);
    }

    pub(crate) fn complete(&self) {
        self.finish(Outcome::Complete);
    }

    pub(crate) fn fail(&self) {
        self.finish(Outcome::Failed);
    }

    /// Runs `f` on the head and the frames recorded so far, under the state lock (for
    /// encoding the entry without copying them first). `f` must not lock the flight.
    pub(crate) fn with_recorded<R>(&self, f: impl FnOnce(Option<&Head>, &[Bytes]) -> R) -> R {
        let st = self.lock();
        f(st.head.as_ref(), &st.frames)
    }

    /// `true` once the leader's body ended cleanly.
    pub(crate) fn is_complete(&self) -> bool {
        self.lock().outcome == Outcome::Complete
    }

    /// Waits for the head, or `None` if the leader failed first.
    pub(crate) async fn wait_head(&self) -> Option<Head> {
        poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(h) = &st.head {
                return Poll::Ready(Some(h.clone()));
            }
            if st.outcome != Outcome::Running {
                return Poll::Ready(None);
            }
            register(&mut st.wakers, cx);
            Poll::Pending
        })
        .await
    }
}

fn register(wakers: &mut Vec<Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// A response body's cursor into a flight: the leader's (which also gets its trailers and,
/// past the size limit, the rest of its own answer) or a follower's.
pub(crate) struct Reader {
    flight: Arc<Flight>,
    next: usize,
    leader: bool,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("next", &self.next)
            .field("leader", &self.leader)
            .finish()
    }
}

impl Reader {
    /// The leader's reader; `rec` (the upstream body) moves into the flight.
    pub(crate) fn leader(flight: Arc<Flight>, rec: Recorder) -> Self {
        {
            let mut st = flight.lock();
            st.readers += 1;
            st.leader = true;
        }
        *flight.lock_recorder() = Some(rec);
        Reader {
            flight,
            next: 0,
            leader: true,
            done: false,
        }
    }

    /// A follower's reader: the frames published so far, then the rest.
    pub(crate) fn follower(flight: Arc<Flight>) -> Self {
        flight.lock().readers += 1;
        Reader {
            flight,
            next: 0,
            leader: false,
            done: false,
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leader
    }

    fn ended(&mut self) -> Polled {
        self.done = true;
        Poll::Ready(None)
    }

    fn failed(&mut self) -> Polled {
        self.done = true;
        Poll::Ready(Some(Err(SharedResponseFailed.into())))
    }

    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Polled {
        if self.done {
            return Poll::Ready(None);
        }
        let flight = self.flight.clone();
        loop {
            // What was published, read under the state lock; the waker is registered
            // under the same lock, so nothing published after this check is missed.
            {
                let mut st = flight.lock();
                if let Some(f) = st.frames.get(self.next) {
                    let f = f.clone();
                    self.next += 1;
                    return Poll::Ready(Some(Ok(Frame::data(f))));
                }
                if self.leader
                    && let Some(f) = st.stash.pop_front()
                {
                    return Poll::Ready(Some(Ok(f)));
                }
                match st.outcome {
                    Outcome::Complete => {
                        drop(st);
                        return self.ended();
                    }
                    Outcome::Failed if !self.leader => {
                        drop(st);
                        return self.failed();
                    }
                    // Running, or failed while the leader's own answer may go on.
                    _ => register(&mut st.wakers, cx),
                }
            }
            // Everything published was read: read the upstream, unless another reader
            // is doing so (it wakes everybody when it publishes, ends or fails, and the
            // upstream body wakes everybody).
            let mut slot = match flight.recorder.try_lock() {
                Ok(slot) => slot,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return Poll::Pending,
            };
            {
                // Another reader may have published between the check and the lock.
                let st = flight.lock();
                if st.frames.len() != self.next || (self.leader && !st.stash.is_empty()) {
                    continue;
                }
                if st.outcome == Outcome::Failed && !self.leader {
                    continue;
                }
            }
            let Some(rec) = slot.as_mut() else {
                // The upstream is read by a task finishing it for the followers.
                if self.leader && flight.lock().outcome == Outcome::Failed {
                    return self.failed();
                }
                return Poll::Pending;
            };
            if rec.body.is_none() {
                drop(slot);
                match flight.lock().outcome {
                    Outcome::Failed if self.leader => return self.failed(),
                    // Set with the end of the body, under the recorder's lock.
                    Outcome::Running => return Poll::Pending,
                    _ => continue,
                }
            }
            if !self.leader && rec.guard.is_none() {
                continue;
            }
            let epoch = flight.shared.epoch.load(Ordering::Acquire);
            let waker = Waker::from(flight.shared.clone());
            let mut ucx = Context::from_waker(&waker);
            match rec.poll_frame(&mut ucx) {
                Poll::Pending => {
                    drop(slot);
                    // Woken while this reader held the recorder: the others that found
                    // it locked meanwhile may have missed it.
                    if flight.shared.epoch.load(Ordering::Acquire) != epoch {
                        flight.shared.notify();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return self.ended(),
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok((frame, published)))) => {
                    if published {
                        self.next += 1;
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    if self.leader {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The leader's alone (trailers, or data past the size limit).
                    drop(slot);
                    {
                        let mut st = flight.lock();
                        if st.leader {
                            st.stash.push_back(frame);
                        }
                    }
                    flight.shared.notify();
                }
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let st = self.flight.lock();
        st.outcome == Outcome::Complete
            && self.next >= st.frames.len()
            && (!self.leader || st.stash.is_empty())
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        if !self.leader {
            return SizeHint::new();
        }
        if self.done {
            return SizeHint::with_exact(0);
        }
        let (unread, outcome) = {
            let st = self.flight.lock();
            let frames: usize = st.frames.iter().skip(self.next).map(Bytes::len).sum();
            let stash: usize = st
                .stash
                .iter()
                .filter_map(|f| f.data_ref().map(Bytes::len))
                .sum();
            ((frames + stash) as u64, st.outcome)
        };
        let upstream = match self.flight.recorder.try_lock() {
            Ok(slot) => slot
                .as_ref()
                .map(|r| r.body.as_ref().map(|b| b.size_hint())),
            Err(_) => None,
        };
        match upstream {
            Some(Some(h)) => {
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + unread);
                if let Some(u) = h.upper() {
                    s.set_upper(u + unread);
                }
                s
            }
            Some(None) if outcome == Outcome::Complete => SizeHint::with_exact(unread),
            _ => {
                let mut s = SizeHint::new();
                s.set_lower(unread);
                s
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let (last, running) = {
            let mut st = self.flight.lock();
            st.readers = st.readers.saturating_sub(1);
            if self.leader {
                st.leader = false;
                st.stash.clear();
            }
            (st.readers == 0, st.outcome == Outcome::Running)
        };
        if !last {
            if running {
                // This reader may have been woken to read the upstream: let another.
                self.flight.shared.notify();
            }
            return;
        }
        let Some(rec) = self.flight.lock_recorder().take() else {
            return;
        };
        // Nobody reads this flight any more. The rest of the upstream body is read on
        // a task when
        // - requests that joined it but have no body yet hold it too (besides this
        //   reader, the recorder's guard and the table), so they get (and the cache
        //   stores) the whole answer; or
        // - it is an event stream that already delivered its whole answer (a clean
        //   `data: [DONE]`) and only the end of the body is missing: SDKs close the
        //   connection as soon as they read `[DONE]`, often before the upstream's final
        //   chunk arrives, and such an answer must still be stored. Bounded by
        //   `DRAIN_AFTER_DONE`: an upstream that never ends is dropped, and not stored.
        // Otherwise the upstream body is dropped (a client that stops a generation stops
        // paying for it) and the flight fails: nothing is stored.
        if rec.guard.is_none() || rec.body.is_none() {
            return;
        }
        let followers = Arc::strong_count(&self.flight) > 3;
        let answered = !followers
            && self.flight.with_recorded(|head, frames| {
                head.is_some_and(|h| h.kind == EntryKind::Sse) && sse_completed_cleanly(frames)
            });
        if !followers && !answered {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(g) = &rec.guard {
            tracing::debug!(
                key = %g.key,
                followers,
                "the last reader dropped its body; reading the rest of the answer"
            );
        }
        let mut rec = rec;
        handle.spawn(async move {
            let drain = async {
                while let Some(Ok(_)) = std::future::poll_fn(|cx| rec.poll_frame(cx)).await {}
            };
            if followers {
                drain.await;
            } else {
                // Dropping `rec` on timeout fails the flight.
                let _ = tokio::time::timeout(DRAIN_AFTER_DONE, drain).await;
            }
        });
    }
}

/// How long the rest of an event stream is read after its client left, once the stream
/// has delivered a clean `data: [DONE]` (see [`Reader`]'s `Drop`).
const DRAIN_AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(10);

/// The role of a request in its flight.
pub(crate) enum Role {
    /// Leads the flight registered under the key (shared with the table).
    Leader(Arc<Flight>, Arc<str>),
    Follower(Arc<Flight>),
}

/// The table of flights by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Seeded like the memory engine's map (see `MemoryEngine::new`).
    map: Mutex<HashMap<Arc<str>, Arc<Flight>, ahash::RandomState>>,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Flight>, ahash::RandomState>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight for `key`, or starts one. A completed flight (whose entry is
    /// still being written) is joined only when `accept_complete`; otherwise (a refresh)
    /// a new flight replaces it.
    pub(crate) fn join_or_lead(&self, key: &str, accept_complete: bool) -> Role {
        let mut map = self.lock();
        if let Some(f) = map.get(key) {
            let outcome = f.lock().outcome;
            if outcome == Outcome::Running || (outcome == Outcome::Complete && accept_complete) {
                return Role::Follower(f.clone());
            }
        }
        let f = Arc::new(Flight::new());
        let key: Arc<str> = Arc::from(key);
        map.insert(key.clone(), f.clone());
        Role::Leader(f, key)
    }

    /// Removes `flight` from the table if it is still the one registered under `key`.
    pub(crate) fn remove(&self, key: &str, flight: &Arc<Flight>) {
        let mut map = self.lock();
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }
}

/// Fails and removes a leader's flight unless disarmed (the leader's future or body was
/// dropped, or the upstream call failed).
pub(crate) struct LeaderGuard {
    pub(crate) flights: Arc<Flights>,
    pub(crate) key: Arc<str>,
    pub(crate) flight: Arc<Flight>,
    pub(crate) armed: bool,
}

impl LeaderGuard {
    pub(crate) fn disarm(mut self) -> (Arc<str>, Arc<Flight>) {
        self.armed = false;
        (self.key.clone(), self.flight.clone())
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if self.armed {
            self.flight.fail();
            self.flights.remove(&self.key, &self.flight);
        }
    }
}

impl std::fmt::Debug for LeaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("key", &self.key)
            .finish()
    }
}
