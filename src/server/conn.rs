//! Serves client connections with limits: a deadline for each request head, an idle
//! timeout between requests, and a cap on open connections.
//!
//! `axum::serve` keeps a connection open for as long as the client wants, silent or
//! half-sent; a few hundred such connections exhaust the process's file descriptors
//! (issue 16). Here every connection is watched:
//!
//! - a new connection must deliver its first request head within
//!   [`Limits::header_read_timeout`], and so must every later request from its first
//!   byte on;
//! - a kept-alive connection with no request in flight is closed after
//!   [`Limits::idle_timeout`] without a byte from the client;
//! - beyond [`Limits::max_connections`] open connections, a new one is answered
//!   `503` with `Connection: close` and closed;
//! - beyond [`Limits::max_per_ip`] open connections from one client address, a new
//!   one from that address is refused the same way, so one client holding silent
//!   connections (a slowloris) cannot take every slot from the others.
//!
//! A request in flight (its response not yet fully sent, a stream included) is never
//! cut by these deadlines.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The connection limits of a listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest time from a connection's start (or a later request's first byte) to
    /// its complete request head.
    pub(crate) header_read_timeout: Duration,
    /// Longest silence of a kept-alive connection between requests.
    pub(crate) idle_timeout: Duration,
    /// Most connections open at once; more are answered `503` and closed.
    pub(crate) max_connections: usize,
    /// Most connections open at once from one client address (`0`: no such limit).
    pub(crate) max_per_ip: usize,
}

/// Open connections by client address, for [`Limits::max_per_ip`].
#[derive(Debug, Default)]
struct PerIp {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// Counts one more connection from `ip`: `Err` when it already has `max`,
    /// `Ok(None)` (nothing counted) when there is no per-address limit.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Result<Option<IpSlot>, ()> {
        if max == 0 {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return Err(());
        }
        *n += 1;
        Ok(Some(IpSlot {
            per_ip: self.clone(),
            ip,
        }))
    }
}

/// One open connection counted against its address; uncounted when dropped.
#[derive(Debug)]
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Connection counters, rendered with the proxy's metrics.
#[derive(Debug, Default)]
pub(crate) struct ConnMetrics {
    open: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl ConnMetrics {
    /// The Prometheus text of these counters.
    pub(crate) fn render(&self, out: &mut String) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mistral_cache_client_connections Client connections open now.\n\
             # TYPE mistral_cache_client_connections gauge\n\
             mistral_cache_client_connections {}",
            load(&self.open)
        );
        let _ = writeln!(
            out,
            "# HELP mistral_cache_client_connections_total Client connections accepted, and refused over --max-connections.\n\
             # TYPE mistral_cache_client_connections_total counter\n\
             mistral_cache_client_connections_total{{outcome=\"accepted\"}} {}\n\
             mistral_cache_client_connections_total{{outcome=\"rejected\"}} {}",
            load(&self.accepted),
            load(&self.rejected)
        );
        let _ = writeln!(
            out,
            "# HELP mistral_cache_client_connection_timeouts_total Client connections closed for a slow request head or idleness.\n\
             # TYPE mistral_cache_client_connection_timeouts_total counter\n\
             mistral_cache_client_connection_timeouts_total{{reason=\"header\"}} {}\n\
             mistral_cache_client_connection_timeouts_total{{reason=\"idle\"}} {}",
            load(&self.header_timeouts),
            load(&self.idle_timeouts)
        );
    }
}

/// Connections over the cap answered `503` at once; more are closed unanswered.
const REJECTING: usize = 64;

/// "Not set" for the millisecond timestamps of [`ConnState`].
const NONE: u64 = u64::MAX;

/// What the watchdog of one connection needs to know, shared with its I/O and its
/// service. Times are milliseconds since `start`.
#[derive(Debug)]
struct ConnState {
    start: Instant,
    /// Requests whose response is not fully sent yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    served: AtomicU64,
    /// When the last response ended (`0` for a new connection).
    idle_since: AtomicU64,
    /// The first byte read since then ([`NONE`]: none yet).
    first_byte: AtomicU64,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// When the connection must be closed if nothing changes, and why; `None` while a
    /// request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<(u64, Reason)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let first_byte = self.first_byte.load(Ordering::Acquire);
        Some(if self.served.load(Ordering::Acquire) == 0 {
            (ms(limits.header_read_timeout), Reason::Header)
        } else if first_byte != NONE {
            (
                first_byte.saturating_add(ms(limits.header_read_timeout)),
                Reason::Header,
            )
        } else {
            (
                self.idle_since
                    .load(Ordering::Acquire)
                    .saturating_add(ms(limits.idle_timeout)),
                Reason::Idle,
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Header,
    Idle,
}

/// Serves `service` on `listener` with `limits` until `shutdown` completes, then
/// stops accepting and waits for the open connections to finish (the caller bounds
/// that wait).
pub(crate) async fn serve<S, B, F>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    metrics: Arc<ConnMetrics>,
    shutdown: F,
) -> io::Result<()>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    // Connections being answered 503: bounded too, so a flood beyond the cap is closed
    // at once rather than held a moment each.
    let rejecting = Arc::new(Semaphore::new(REJECTING));
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was
                    // accepted: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One address first, so a client over its share takes no global slot.
        let ip_slot = per_ip.take(peer.ip(), limits.max_per_ip);
        let permit = match ip_slot {
            Ok(_) => permits.clone().try_acquire_owned().ok(),
            Err(()) => None,
        };
        let (Some(permit), Ok(ip_slot)) = (permit, ip_slot) else {
            let rejected = metrics.rejected.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged on the 1st, 2nd, 4th, 8th... refusal, not once per connection.
            if rejected.is_power_of_two() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    max_connections_per_ip = limits.max_per_ip,
                    rejected,
                    "too many open connections; answering 503 (see --max-connections and \
                     --max-connections-per-ip)"
                );
            }
            if let Ok(slot) = rejecting.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    reject(stream).await;
                    drop(slot);
                });
            }
            continue;
        };
        metrics.accepted.fetch_add(1, Ordering::Relaxed);
        metrics.open.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
        });
        let io = TokioIo::new(Watched {
            inner: stream,
            state: state.clone(),
        });
        let svc = TowerToHyperService::new(Tracked {
            inner: service.clone(),
            state: state.clone(),
        });
        let conn = graceful.watch(builder.serve_connection(io, svc).into_owned());
        let metrics = metrics.clone();
        tokio::spawn(async move {
            {
                // Borrowed by the select, so the connection is closed (dropped) at the end
                // of this block: after a timeout is counted, so a client that sees the
                // close and then reads the metrics finds it.
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "client connection ended with an error");
                        }
                    }
                    reason = watchdog(&state, limits) => {
                        let counter = match reason {
                            Reason::Header => &metrics.header_timeouts,
                            Reason::Idle => &metrics.idle_timeouts,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(?reason, "closing a client connection");
                    }
                }
            }
            metrics.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            drop(ip_slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Completes when the connection has outlived its deadline.
///
/// Requests starting and ending do not wake it (that would cost a wake-up and a timer
/// per request): it sleeps until the deadline it computed, but never longer than the
/// shorter timeout, and computes it again. That is never late: a deadline only moves
/// earlier when a request head's first byte arrives on an idle connection, and then to
/// that byte plus the header timeout, after the watchdog's next look.
async fn watchdog(state: &ConnState, limits: Limits) -> Reason {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
    let look_again = ms(limits.header_read_timeout)
        .min(ms(limits.idle_timeout))
        .max(1);
    loop {
        let now = state.now_ms();
        let wake = match state.deadline(&limits) {
            Some((at, reason)) if now >= at => return reason,
            Some((at, _)) => at.min(now.saturating_add(look_again)),
            // A request in flight has no deadline; look again later.
            None => now.saturating_add(look_again),
        };
        tokio::time::sleep(Duration::from_millis(wake - now)).await;
    }
}

/// Answers a connection over the limit: `503`, then close.
async fn reject(mut stream: TcpStream) {
    const BODY: &str = "{\"object\":\"error\",\"message\":\"mistral-cache: too many open connections, retry later\",\"type\":\"overloaded\",\"code\":\"too_many_connections\"}";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, briefly, so closing does not reset the
        // connection before it reads the answer.
        let mut buf = [0u8; 4096];
        loop {
            if tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await? == 0 {
                return Ok::<_, io::Error>(());
            }
        }
    })
    .await;
}

pin_project_lite::pin_project! {
    /// The client socket, noting the first byte of each request head.
    struct Watched {
        #[pin]
        inner: TcpStream,
        state: Arc<ConnState>,
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before
            && this.state.in_flight.load(Ordering::Acquire) == 0
            && this.state.first_byte.load(Ordering::Acquire) == NONE
        {
            let now = this.state.now_ms();
            this.state.first_byte.store(now, Ordering::Release);
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts a request in flight from its head until its response body is done.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: Arc<ConnState>) -> Self {
        state.served.fetch_add(1, Ordering::AcqRel);
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.idle_since.store(now, Ordering::Release);
        self.0.first_byte.store(NONE, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service of one connection: the shared one, with each request counted in
/// flight until its response body ends or is dropped.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S, B> tower::Service<http::Request<hyper::body::Incoming>> for Tracked<S>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
{
    type Response = http::Response<GuardedBody<B>>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = InFlight::new(self.state.clone());
        TrackedFuture {
            inner: self.inner.call(req.map(Body::new)),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`]: the inner one's response, its body holding
    /// the request's [`InFlight`] guard (no boxing: this runs for every request).
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
{
    type Output = Result<http::Response<GuardedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx))?;
        let guard = this
            .guard
            .take()
            .expect("TrackedFuture polled after completion");
        Poll::Ready(Ok(res.map(|inner| GuardedBody {
            inner,
            _guard: guard,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's [`InFlight`] guard.
    struct GuardedBody<B> {
        #[pin]
        inner: B,
        _guard: InFlight,
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for GuardedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
