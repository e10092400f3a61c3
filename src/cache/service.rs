//! [`CacheService`]: answers from the engine or forwards to the inner service and records.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use tower::{Layer, ServiceExt};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
//! let svc = layer.layer(tower::service_fn(|_req: http::Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
//! }));
//! for expected in ["MISS", "HIT"] {
//!     let req = http::Request::post("/v1/x").body(Full::new(Bytes::from("{}"))).unwrap();
//!     let res = svc.clone().oneshot(req).await.unwrap();
//!     assert_eq!(res.headers()["x-cache"], expected);
//!     assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
//! }
//! # });
//! ```

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::buffer::{Buffer, Buffered};
use super::config::{Config, Shared};
use super::control::{CacheMode, CacheStatus, RequestControl};
use super::engine::CacheEngine;
use super::future::ResponseFuture;
use super::head::declared_over;
use super::lookup::{Key, decode_entry, read_now};
use super::metrics::Metrics;
use super::miss::{Keyed, Res, forward, run};
use super::respond::{
    body_failed, directive_error, fresh_hit, only_if_cached_miss, replay_only_miss,
};
use crate::BoxError;

/// The service built by [`CacheLayer`](super::CacheLayer). See the [module docs](super).
pub struct CacheService<S, E> {
    inner: S,
    config: Arc<Config>,
    shared: Arc<Shared<E>>,
}

impl<S, E> CacheService<S, E> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>, shared: Arc<Shared<E>>) -> Self {
        CacheService {
            inner,
            config,
            shared,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the cache service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// A snapshot of the counters shared with the layer and its other services.
    pub fn metrics(&self) -> super::metrics::MetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

impl<S: Clone, E> Clone for CacheService<S, E> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, E: fmt::Debug> fmt::Debug for CacheService<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("engine", &self.shared.engine)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, E, B, ResBody> Service<Request<B>> for CacheService<S, E>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: CacheEngine,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Everything that can be decided without waiting (buffering a body that is
        // already there, the key, a read from an engine that answers synchronously) is
        // done here: a hit is returned as a ready future and the inner service is left
        // untouched (still ready for the next call).
        let state = match start(&self.config, &self.shared, req) {
            Start::Done(res) => return ResponseFuture::ready(Ok(res)),
            Start::Continue(state) => state,
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::pending(Box::pin(finish(
            inner,
            self.config.clone(),
            self.shared.clone(),
            state,
        )))
    }
}

/// What `call` could not finish without waiting.
enum State<B> {
    /// Not cached: forward as is.
    Forward { parts: Parts, body: RequestBody<B> },
    /// The body has not fully arrived yet.
    Buffering {
        parts: Parts,
        ctl: RequestControl,
        body: Pin<Box<B>>,
        buf: Buffer,
    },
    /// Keyed, and no usable entry was found without waiting.
    Keyed(Keyed),
}

/// The outcome of the part of a request that does not wait.
// A short-lived return value; boxing `State` would allocate on every miss.
#[allow(clippy::large_enum_variant)]
enum Start<B, ResBody> {
    /// Answered by the cache.
    Done(Response<ResponseBody<ResBody>>),
    Continue(State<B>),
}

/// The outcome of keying a buffered request.
// As `Start`: short-lived, not boxed.
#[allow(clippy::large_enum_variant)]
enum Lookup<ResBody> {
    /// Answered from the engine (a hit, or the `504` of `only-if-cached`).
    Done(Response<ResponseBody<ResBody>>),
    Miss(Keyed),
}

/// The synchronous part of a request: control headers, bypass, buffering (if the body
/// is already there), key, and a read from an engine that answers synchronously.
fn start<E, B, ResBody>(cfg: &Config, shared: &Shared<E>, req: Request<B>) -> Start<B, ResBody>
where
    E: CacheEngine,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let m = &shared.metrics;
    let mut ctl = match RequestControl::take(&mut parts.headers, cfg.honor_cache_control) {
        Ok(ctl) => ctl,
        Err(e) => return Start::Done(directive_error(&e)),
    };

    if ctl.no_store
        || !cfg.cacheable.is_cacheable(&parts)
        || !ctl.apply_storage(cfg.cacheable.storage(&parts), cfg.ttl)
    {
        if ctl.only_if_cached {
            // Nothing can be read for this request: never call upstream.
            Metrics::inc(&m.misses);
            return Start::Done(only_if_cached_miss());
        }
        Metrics::inc(&m.bypasses);
        tracing::debug!(method = %parts.method, path = parts.uri.path(), "cache bypass");
        let body = RequestBody::chained(Bytes::new(), body);
        return Start::Continue(State::Forward { parts, body });
    }
    let mut body = Box::pin(body);
    let mut buf = Buffer::new(cfg.max_request_body);
    let buffered = if declared_over(&parts.headers, &*body, cfg.max_request_body) {
        Poll::Ready(Ok(Buffered::Over(Bytes::new())))
    } else {
        // A body that is already there (the usual case for a buffered client body) is
        // read now; otherwise the future goes on (the body is polled again with the
        // task's waker).
        buf.poll(body.as_mut(), &mut Context::from_waker(Waker::noop()))
    };
    match buffered {
        Poll::Ready(Ok(Buffered::Full(bytes))) => match keyed(cfg, shared, parts, ctl, bytes) {
            Lookup::Done(res) => Start::Done(res),
            Lookup::Miss(k) => Start::Continue(State::Keyed(k)),
        },
        Poll::Ready(Ok(Buffered::Over(prefix))) => {
            let (parts, body) = over_limit(m, parts, prefix, body);
            Start::Continue(State::Forward { parts, body })
        }
        Poll::Ready(Err(e)) => Start::Done(body_failed(e)),
        Poll::Pending => Start::Continue(State::Buffering {
            parts,
            ctl,
            body,
            buf,
        }),
    }
}

/// A request whose body is over the buffering limit: forwarded with the prefix read so
/// far followed by the rest.
fn over_limit<B>(
    m: &Metrics,
    parts: Parts,
    prefix: Bytes,
    rest: Pin<Box<B>>,
) -> (Parts, RequestBody<B>) {
    Metrics::inc(&m.bypasses);
    tracing::debug!(
        path = parts.uri.path(),
        "request body over the cache limit; bypass"
    );
    (parts, RequestBody::chained_pinned(prefix, rest))
}

/// Keys the buffered request and answers it if the engine has a fresh entry and can
/// say so without waiting.
fn keyed<E, ResBody>(
    cfg: &Config,
    shared: &Shared<E>,
    parts: Parts,
    ctl: RequestControl,
    bytes: Bytes,
) -> Lookup<ResBody>
where
    E: CacheEngine,
{
    let namespace = ctl.namespace.as_deref().unwrap_or(&cfg.namespace);
    let key = Key::new(cfg, &shared.metrics, &parts, namespace, &bytes);

    let read = !ctl.no_cache && cfg.mode != CacheMode::WriteOnly;
    let mut lookup = read;
    let k = key.as_str(); // validated once
    let now = if read {
        read_now(&shared.engine, k)
    } else {
        None
    };
    if let Some((res, trusted)) = now {
        lookup = false;
        let m = &shared.metrics;
        if let Some(entry) = decode_entry(m, cfg, k, res, trusted)
            && let Some(res) = fresh_hit(cfg, &ctl, m, k, entry)
        {
            key.remember(cfg, &parts, namespace, &bytes);
            return Lookup::Done(res);
        }
        if let Some(res) = replay_only_miss(cfg, &ctl, m, k) {
            return Lookup::Done(res);
        }
    }
    Lookup::Miss(Keyed {
        parts,
        ctl,
        bytes,
        key,
        lookup,
    })
}

/// The part of a request that waits: the rest of the body, the engine, upstream,
/// another request of the same flight.
async fn finish<S, E, B, ResBody>(
    inner: S,
    cfg: Arc<Config>,
    shared: Arc<Shared<E>>,
    state: State<B>,
) -> Res<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    E: CacheEngine,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let keyed_req = match state {
        State::Forward { parts, body } => {
            return forward(inner, parts, body, CacheStatus::Bypass).await;
        }
        State::Keyed(k) => k,
        State::Buffering {
            parts,
            ctl,
            mut body,
            mut buf,
        } => match poll_fn(|cx| buf.poll(body.as_mut(), cx)).await {
            Ok(Buffered::Full(bytes)) => match keyed(&cfg, &shared, parts, ctl, bytes) {
                Lookup::Done(res) => return Ok(res),
                Lookup::Miss(k) => k,
            },
            Ok(Buffered::Over(prefix)) => {
                let (parts, body) = over_limit(&shared.metrics, parts, prefix, body);
                return forward(inner, parts, body, CacheStatus::Bypass).await;
            }
            Err(e) => return Ok(body_failed(e)),
        },
    };
    run(inner, cfg, shared, keyed_req).await
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    use tower_layer::Layer;

    use std::future::Future;

    use super::*;
    use crate::cache::{CacheLayer, MemoryEngine, X_CACHE};

    fn post(body: &'static str) -> Request<Full<Bytes>> {
        Request::post("/v1/x")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    #[tokio::test]
    async fn memory_hit_is_ready_in_call_and_leaves_inner_alone() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inner = tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
        });
        let mut svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        let res = svc.ready().await.unwrap().call(post("{}")).await.unwrap();
        assert_eq!(res.headers()[X_CACHE], "MISS");
        res.into_body().collect().await.unwrap();

        let mut fut = svc.ready().await.unwrap().call(post("{ }"));
        assert!(format!("{fut:?}").contains("ready"), "{fut:?}");
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(res)) = Pin::new(&mut fut).poll(&mut cx) else {
            panic!("a memory hit must be ready on the first poll")
        };
        assert_eq!(res.headers()[X_CACHE], "HIT");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn tiered_memory_front_hit_is_ready_in_call() {
        use crate::cache::TieredEngine;
        let engine = TieredEngine::new(MemoryEngine::new(1 << 20), MemoryEngine::new(1 << 20));
        let inner = tower::service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
        let mut svc = CacheLayer::new(engine).layer(inner);
        let res = svc.ready().await.unwrap().call(post("{}")).await.unwrap();
        assert_eq!(res.headers()[X_CACHE], "MISS");
        res.into_body().collect().await.unwrap();
        tokio::task::yield_now().await; // the store into both tiers
        let mut fut = svc.ready().await.unwrap().call(post("{}"));
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(res)) = Pin::new(&mut fut).poll(&mut cx) else {
            panic!("a hit in the memory front must be ready on the first poll")
        };
        assert_eq!(res.headers()[X_CACHE], "HIT");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }

    #[tokio::test]
    async fn a_failing_request_body_is_answered_in_band() {
        use http_body_util::BodyExt as _;
        let inner = tower::service_fn(|_req: Request<RequestBody<_>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        let failing = http_body_util::StreamBody::new(futures_util::stream::iter([Err::<
            http_body::Frame<Bytes>,
            BoxError,
        >(
            "broken".into(),
        )]));
        let req = Request::post("/v1/x").body(failing.boxed()).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::BAD_REQUEST);
        let limited = http_body_util::Limited::new(Full::new(Bytes::from_static(b"{}")), 1);
        let req = Request::post("/v1/x")
            .body(limited.map_err(Into::into).boxed())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// A body that is pending on its first poll (waking its task), then yields `data`.
    struct Late {
        data: Option<Bytes>,
        polled: bool,
    }

    impl Body for Late {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            if !self.polled {
                self.polled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
        }
    }

    #[tokio::test]
    async fn body_arriving_later_is_buffered_by_the_future() {
        let inner = tower::service_fn(|req: Request<RequestBody<Late>>| async move {
            let b = req.into_body().into_full().ok().unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(b)))
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        for expected in ["MISS", "HIT"] {
            let body = Late {
                data: Some(Bytes::from_static(b"{\"a\":1}")),
                polled: false,
            };
            let req = Request::post("/v1/x").body(body).unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(res.headers()[X_CACHE], expected);
            assert_eq!(
                res.into_body().collect().await.unwrap().to_bytes(),
                "{\"a\":1}"
            );
        }
    }
}
