//! Client-side rate and concurrency limits whose state is shared by every clone of
//! the stack (the Go client's `WithRateLimiter`).
//!
//! tower's own `RateLimit` keeps its window per service instance, so each clone of
//! an erased stack would get its own budget; [`RateLimitLayer`] keeps one window
//! behind an `Arc` instead. [`ConcurrencyLimitLayer`] shares one semaphore between
//! clones like tower's, but holds the permit until the response *body* ends or is
//! dropped, so a long stream counts as in flight for its whole life.
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
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

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
        // A period too long to add to an instant never ends.
        if start.checked_add(self.per).is_some_and(|end| now >= end) {
            w.start = Some(now);
            w.used = 0;
        }
        if w.used < self.limit {
            w.used += 1;
            Ok(())
        } else {
            let start = w.start.unwrap_or(now);
            Err(start
                .checked_add(self.per)
                .unwrap_or_else(|| start + Duration::from_secs(30 * 365 * 86_400)))
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

type AcquireFuture = Pin<Box<dyn Future<Output = OwnedSemaphorePermit> + Send>>;

/// Allows at most `n` requests in flight across every clone of the stack; a
/// request is in flight from `poll_ready` until its response body ends or is
/// dropped (or until it fails).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    semaphore: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    /// At most `n` requests in flight (`n` of 0 is treated as 1).
    pub fn new(n: usize) -> Self {
        ConcurrencyLimitLayer {
            semaphore: Arc::new(Semaphore::new(n.max(1))),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            semaphore: self.semaphore.clone(),
            permit: None,
            acquire: Mutex::new(None),
        }
    }
}

/// The service built by [`ConcurrencyLimitLayer`].
pub struct ConcurrencyLimit<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    // A Mutex only to make the service `Sync`; it is reached through `&mut self`.
    acquire: Mutex<Option<AcquireFuture>>,
}

impl<S: Clone> Clone for ConcurrencyLimit<S> {
    /// A clone shares the semaphore but not a permit acquired by `poll_ready`.
    fn clone(&self) -> Self {
        ConcurrencyLimit {
            inner: self.inner.clone(),
            semaphore: self.semaphore.clone(),
            permit: None,
            acquire: Mutex::new(None),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ConcurrencyLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("available", &self.semaphore.available_permits())
            .field("has_permit", &self.permit.is_some())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Req, B> Service<Req> for ConcurrencyLimit<S>
where
    S: Service<Req, Response = Response<B>>,
    B: HttpBody,
{
    type Response = Response<PermitBody<B>>;
    type Error = S::Error;
    type Future = PermitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if self.permit.is_none() {
            let slot = self.acquire.get_mut().unwrap_or_else(|p| p.into_inner());
            let fut = slot.get_or_insert_with(|| Box::pin(acquire(self.semaphore.clone())));
            match fut.as_mut().poll(cx) {
                Poll::Ready(permit) => {
                    *slot = None;
                    self.permit = Some(permit);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        PermitFuture {
            inner: self.inner.call(req),
            permit: self.permit.take(),
        }
    }
}

async fn acquire(semaphore: Arc<Semaphore>) -> OwnedSemaphorePermit {
    match semaphore.acquire_owned().await {
        Ok(permit) => permit,
        Err(_) => unreachable!("the concurrency semaphore is never closed"),
    }
}

pin_project! {
    /// The response future of [`ConcurrencyLimit`]: hands the permit to the body.
    pub struct PermitFuture<F> {
        #[pin]
        inner: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> fmt::Debug for PermitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for PermitFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody,
{
    type Output = Result<Response<PermitBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        let permit = this.permit.take();
        Poll::Ready(res.map(|r| {
            r.map(|inner| {
                let permit = if inner.is_end_stream() { None } else { permit };
                PermitBody { inner, permit }
            })
        }))
    }
}

pin_project! {
    /// A response body holding a concurrency permit until it ends or is dropped.
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B> fmt::Debug for PermitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitBody")
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: HttpBody> HttpBody for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let res = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        if res.is_none() || matches!(res, Some(Err(_))) || this.inner.is_end_stream() {
            this.permit.take();
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

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
                Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
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

    #[tokio::test(start_paused = true)]
    async fn permit_is_held_until_the_body_ends_or_is_dropped() {
        use http_body_util::BodyExt;
        let svc = ConcurrencyLimitLayer::new(1).layer(service_fn(|_: ()| async {
            let body = http_body_util::Full::new(bytes::Bytes::from_static(b"data"));
            Ok::<_, Infallible>(Response::new(body))
        }));
        let res = svc.clone().oneshot(()).await.unwrap();
        // the body is still unread: the only permit is taken
        let blocked = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(())).await;
        assert!(blocked.is_err());
        res.into_body().collect().await.unwrap();
        let res = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(()))
            .await
            .expect("permit released at end of body")
            .unwrap();
        drop(res);
        tokio::time::timeout(Duration::from_secs(5), svc.oneshot(()))
            .await
            .expect("permit released when the body is dropped")
            .unwrap();
    }
}
