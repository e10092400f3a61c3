//! The reader: a response body's cursor into a flight, which also drives the upstream
//! body when it has read everything published.

use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::recorder::{Flight, Recorder};
use super::state::{Outcome, register};
use super::table::Joined;
use crate::BoxError;
use crate::cache::entry::EntryKind;
use crate::sse;

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// The error a follower's body ends with when the shared upstream body failed.
#[derive(Debug, thiserror::Error)]
#[error("the shared upstream response failed before its end")]
pub struct SharedResponseFailed;

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
    pub(crate) fn follower(joined: Joined<Recorder>) -> Self {
        let flight = joined.flight().clone();
        flight.lock().readers += 1;
        drop(joined); // counted as a reader before it stops counting as waiting
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
            if !rec.is_reading() {
                drop(slot);
                match flight.lock().outcome {
                    Outcome::Failed if self.leader => return self.failed(),
                    // Set with the end of the body, under the recorder's lock.
                    Outcome::Running => return Poll::Pending,
                    _ => continue,
                }
            }
            if !self.leader && !rec.is_recording() {
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
                // The flight failed under this reader's hold on the recorder. The
                // leader's reader outlives a failed flight: woken by the failure, it may
                // have found the recorder still held and gone back to waiting for it, so
                // wake it again. (A completed flight needs no second wake: every reader
                // sees `Complete` before it looks at the recorder.)
                Poll::Ready(Some(Err(e))) => {
                    drop(slot);
                    flight.shared.notify();
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
            Ok(slot) => slot.as_ref().map(Recorder::size_hint),
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
        // - requests joined it and wait for its head (they have no body yet: the
        //   flight's `waiting` count), so they get (and the cache stores) the whole
        //   answer; or
        // - it is an event stream that already delivered its whole answer (a clean
        //   `data: [DONE]`) and only the end of the body is missing: SDKs close the
        //   connection as soon as they read `[DONE]`, often before the upstream's final
        //   chunk arrives, and such an answer must still be stored. Bounded by
        //   `sse::DRAIN_AFTER_DONE`: an upstream that never ends is dropped, and not stored.
        // Otherwise the upstream body is dropped (a client that stops a generation stops
        // paying for it) and the flight fails: nothing is stored.
        if !rec.is_recording() || !rec.is_reading() {
            return;
        }
        let (followers, answered) = {
            let st = self.flight.lock();
            let followers = st.waiting > 0;
            let answered = !followers
                && st.head.as_ref().is_some_and(|h| h.kind == EntryKind::Sse)
                && sse::completed_cleanly(st.frames.iter().map(|f| &f[..]));
            (followers, answered)
        };
        if !followers && !answered {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(key) = rec.key() {
            tracing::debug!(
                key = %key,
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
                let _ = tokio::time::timeout(sse::DRAIN_AFTER_DONE, drain).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use http_body::Body;

    use super::*;
    use crate::cache::flight::{Commit, Flights, Role};

    struct NoCommit;
    impl Commit for NoCommit {
        fn commit(&self, _: Arc<str>, _: Arc<Flight>) {}
    }

    /// Pending on its first poll, an error on the next.
    struct FailsSecond(usize);
    impl Body for FailsSecond {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0 += 1;
            if self.0 == 1 {
                Poll::Pending
            } else {
                Poll::Ready(Some(Err("upstream failed".into())))
            }
        }
    }

    /// A reader polled by its own waker, at once, inside whatever wakes it: the
    /// tightest interleaving a multi-threaded runtime can produce.
    struct PolledOnWake {
        reader: Mutex<Reader>,
        wakes: AtomicUsize,
        failed: Mutex<Option<bool>>,
    }
    impl Wake for PolledOnWake {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            let waker = Waker::from(self.clone());
            let mut cx = Context::from_waker(&waker);
            let Ok(mut reader) = self.reader.try_lock() else {
                return;
            };
            if let Poll::Ready(r) = reader.poll_frame(&mut cx) {
                *self.failed.lock().unwrap() = Some(matches!(r, Some(Err(_))));
            }
        }
    }

    /// The follower's reader reads the upstream body's error, which fails the flight and
    /// wakes the leader's reader while the follower still holds the recorder: the
    /// leader's reader finds it held and waits. It must be woken again, or its caller
    /// hangs (seen as followers of a dead fleet leader that never ended).
    #[test]
    fn a_leader_woken_while_a_follower_reads_the_failure_is_woken_again() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(guard) = flights.join_or_lead("k", true) else {
            panic!("first is the leader")
        };
        let Role::Follower(joined) = flights.join_or_lead("k", true) else {
            panic!("second follows")
        };
        let flight = guard.flight().clone();
        let rec = Recorder::new(Box::pin(FailsSecond(0)), guard, Arc::new(NoCommit), 1 << 20);
        let leader = Arc::new(PolledOnWake {
            reader: Mutex::new(Reader::leader(flight, rec)),
            wakes: AtomicUsize::new(0),
            failed: Mutex::new(None),
        });
        // The leader's reader polls the upstream first: pending.
        leader.wake_by_ref();
        assert_eq!(*leader.failed.lock().unwrap(), None);
        // The follower's reader polls it next and gets the error.
        let mut follower = Reader::follower(joined);
        let noop = Waker::noop();
        let polled = follower.poll_frame(&mut Context::from_waker(noop));
        assert!(matches!(polled, Poll::Ready(Some(Err(_)))));
        assert_eq!(
            *leader.failed.lock().unwrap(),
            Some(true),
            "the leader's reader ends with the failure ({} wakes)",
            leader.wakes.load(Ordering::SeqCst)
        );
    }
}
