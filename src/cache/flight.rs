//! Single-flight: identical concurrent misses share one upstream call.
//!
//! The first miss for a key becomes the *leader*: it calls the inner service and, if the
//! answer is cacheable, publishes the head and every body frame to a [`Flight`] as they
//! arrive. Identical requests arriving meanwhile become *followers*: they wait for the
//! head (bounded by the layer's `flight_wait`) and then read the frames published so far
//! followed by the rest, so a late joiner of a stream gets the prefix and then the live
//! tail. If the leader fails before the head (error, non-cacheable answer, dropped
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

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::entry::EntryKind;

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
}

/// One in-flight upstream call.
#[derive(Debug)]
pub(crate) struct Flight {
    state: Mutex<State>,
}

/// What a follower reads next.
pub(crate) enum Next {
    Frame(Bytes),
    End,
    Failed,
}

impl Default for Flight {
    fn default() -> Self {
        Flight::new()
    }
}

impl Flight {
    fn new() -> Self {
        Flight {
            state: Mutex::new(State {
                head: None,
                frames: Vec::new(),
                outcome: Outcome::Running,
                wakers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The head, the frames so far and the outcome (for building the entry).
    pub(crate) fn snapshot(&self) -> (Option<Head>, Vec<Bytes>, Outcome) {
        let st = self.lock();
        (st.head.clone(), st.frames.clone(), st.outcome)
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

    /// Polls for frame number `idx`.
    pub(crate) fn poll_frame(&self, idx: usize, cx: &mut Context<'_>) -> Poll<Next> {
        let mut st = self.lock();
        if let Some(f) = st.frames.get(idx) {
            return Poll::Ready(Next::Frame(f.clone()));
        }
        match st.outcome {
            Outcome::Complete => Poll::Ready(Next::End),
            Outcome::Failed => Poll::Ready(Next::Failed),
            Outcome::Running => {
                register(&mut st.wakers, cx);
                Poll::Pending
            }
        }
    }

    /// `true` once complete and `idx` frames were read.
    pub(crate) fn is_end(&self, idx: usize) -> bool {
        let st = self.lock();
        st.outcome == Outcome::Complete && idx >= st.frames.len()
    }
}

fn register(wakers: &mut Vec<Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

/// The role of a request in its flight.
pub(crate) enum Role {
    Leader(Arc<Flight>),
    Follower(Arc<Flight>),
}

/// The table of flights by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
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
        map.insert(key.to_owned(), f.clone());
        Role::Leader(f)
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
    pub(crate) key: String,
    pub(crate) flight: Arc<Flight>,
    pub(crate) armed: bool,
}

impl LeaderGuard {
    pub(crate) fn disarm(mut self) -> (String, Arc<Flight>) {
        self.armed = false;
        (std::mem::take(&mut self.key), self.flight.clone())
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
