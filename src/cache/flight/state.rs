//! One flight: the response head and frames published by the leader, its outcome, the
//! wakers of its readers, and the slot holding the upstream body.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Frame;

use crate::cache::entry::EntryKind;

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
pub(super) struct State {
    pub(super) head: Option<Head>,
    pub(super) frames: Vec<Bytes>,
    pub(super) outcome: Outcome,
    pub(super) wakers: Vec<Waker>,
    /// Response bodies reading this flight (the leader's included).
    pub(super) readers: usize,
    /// Requests that joined the flight and wait for its head (they have no body yet).
    pub(super) waiting: usize,
    /// `true` while the leader's response body exists.
    pub(super) leader: bool,
    /// Frames for the leader only, read by another reader after everything published:
    /// trailers, and the data past the size limit (the flight failed, the leader's own
    /// answer goes on).
    pub(super) stash: VecDeque<Frame<Bytes>>,
}

/// The state and the waiters of a flight. Also the waker given to the upstream body, so
/// that whichever reader polled it, every waiting reader is woken.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Counts the wake-ups, so a reader that polled the upstream can tell it was woken
    /// while it still held the recorder.
    pub(super) epoch: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn notify(&self) {
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
/// The leader's upstream body (`U`, its recorder) lives here, not in the leader's
/// response body: any reader that has read everything published polls it and publishes
/// what it gets, so a leader whose client stops reading does not stall its followers.
pub(crate) struct Flight<U> {
    pub(super) shared: Arc<Shared>,
    pub(super) recorder: Mutex<Option<U>>,
}

impl<U> std::fmt::Debug for Flight<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("state", &self.shared.state)
            .finish_non_exhaustive()
    }
}

impl<U> Default for Flight<U> {
    fn default() -> Self {
        Flight::new()
    }
}

impl<U> Flight<U> {
    pub(super) fn new() -> Self {
        Flight {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    head: None,
                    frames: Vec::new(),
                    outcome: Outcome::Running,
                    wakers: Vec::new(),
                    readers: 0,
                    waiting: 0,
                    leader: false,
                    stash: VecDeque::new(),
                }),
                epoch: AtomicU64::new(0),
            }),
            recorder: Mutex::new(None),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    pub(super) fn lock_recorder(&self) -> MutexGuard<'_, Option<U>> {
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

/// Registers the task of `cx` to be woken by the flight (once).
pub(super) fn register(wakers: &mut Vec<Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}
