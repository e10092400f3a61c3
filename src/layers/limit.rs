//! Client-side rate and concurrency limits whose state is shared by every clone of
//! the stack (the Go client's `WithRateLimiter`).
//!
//! tower's own `RateLimit` keeps its window per service instance, so each clone of
//! an erased stack would get its own budget; [`RateLimitLayer`] keeps one window
//! behind an `Arc` instead. [`ConcurrencyLimitLayer`] is tower's, whose semaphore is
//! already shared by clones.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::layers::limit::{ConcurrencyLimitLayer, RateLimitLayer};
//!
//! // At most 5 requests per second, and 2 in flight.
//! let rate = RateLimitLayer::new(5, Duration::from_secs(1));
//! let concurrency = ConcurrencyLimitLayer::new(2);
//! # let _ = (rate, concurrency);
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

pub use tower::limit::{ConcurrencyLimit, ConcurrencyLimitLayer};

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    used: u64,
}

#[derive(Debug)]
struct Shared {
    limit: u64,
    per: Duration,
    window: Mutex<Window>,
}

impl Shared {
    /// Takes one slot, or says when the next window opens.
    fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let start = *w.start.get_or_insert(now);
        if now >= start + self.per {
            w.start = Some(now);
            w.used = 0;
        }
        if w.used < self.limit {
            w.used += 1;
            Ok(())
        } else {
            Err(w.start.unwrap_or(now) + self.per)
        }
    }
}

/// Allows at most `n` requests per period across every clone of the stack.
///
/// A slot is taken in `poll_ready`; when the window is used up, `poll_ready`
/// waits for the next one.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// `n` requests per `per` (`n` of 0 is treated as 1).
    pub fn new(n: u64, per: Duration) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limit: n.max(1),
                per,
                window: Mutex::new(Window {
                    start: None,
                    used: 0,
                }),
            }),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
            reserved: false,
            sleep: None,
        }
    }
}

/// The service built by [`RateLimitLayer`].
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
    reserved: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone> Clone for RateLimit<S> {
    /// A clone shares the window but not a slot reserved by `poll_ready`.
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            reserved: false,
            sleep: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.shared.limit)
            .field("per", &self.shared.per)
            .field("reserved", &self.reserved)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.reserved {
            if let Some(sleep) = self.sleep.as_mut()
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            match self.shared.try_acquire(Instant::now()) {
                Ok(()) => {
                    self.reserved = true;
                    self.sleep = None;
                }
                Err(until) => match self.sleep.as_mut() {
                    Some(s) => s.as_mut().reset(until),
                    None => self.sleep = Some(Box::pin(tokio::time::sleep_until(until))),
                },
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> S::Future {
        self.reserved = false;
        self.inner.call(req)
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_window() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc =
            RateLimitLayer::new(2, Duration::from_secs(10)).layer(service_fn(move |_: ()| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(()) }
            }));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            tasks.push(tokio::spawn(svc.clone().oneshot(())));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn concurrency_limit_is_shared_by_clones() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let (f, m) = (in_flight.clone(), max_seen.clone());
        let svc = ConcurrencyLimitLayer::new(2).layer(service_fn(move |_: ()| {
            let (f, m) = (f.clone(), m.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        }));
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(max_seen.load(Ordering::SeqCst), 2);
    }
}
