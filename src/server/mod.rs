//! `mistral-cache`, the caching proxy: serves the Mistral API on a local port and
//! forwards to the real API through the crate's own stack (cache layer, retry,
//! timeouts, transport).
//!
//! Any client works unchanged against it (the official Python and TypeScript SDKs,
//! LangChain, `curl`), streaming included; a repeated deterministic request is
//! answered from the cache. The `mistral-cache` binary is a thin command-line
//! wrapper over this module (see [`main`]).
//!
//! # Example
//!
//! Build the proxy in front of an upstream, with an in-memory cache, and use its
//! router like any axum app (here for the health endpoint; [`Proxy::run`] serves
//! it on a listener, and [`serve`] binds [`Config::listen`] itself):
//!
//! ```
//! use mistral_tower::server::{Config, Proxy};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut config = Config::default(); // 127.0.0.1:8080 -> https://api.mistral.ai, file engine
//! config.upstream = "http://127.0.0.1:7000".into();
//! config.engine = "memory://".into();
//! let proxy = Proxy::new(config).await?;
//!
//! let req = http::Request::get("/_mistral-cache/healthz").body(axum::body::Body::empty())?;
//! let res = proxy.router().oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//! assert!(proxy.render_metrics().contains("mistral_cache_hits_total 0"));
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! # Endpoints
//!
//! - every method and path is forwarded upstream; `POST` to the paths of
//!   [`CachedRoutes`] (chat, FIM, embeddings, classifiers, moderations, OCR, agents,
//!   audio transcriptions)
//!   goes through the cache, with `x-cache` in the answer;
//! - `GET /_mistral-cache/healthz` and `GET /_mistral-cache/metrics` (Prometheus
//!   text), or `/healthz` and `/metrics` on [`Config::admin_listen`] when set.
//!
//! # Savings ledger
//!
//! `/metrics` counts what this process served from the cache since it started.
//! [`Proxy::run`] also keeps a savings ledger: every [`Config::ledger_interval`] (when
//! it changed) and at a graceful shutdown it writes the hits and the prompt and
//! completion tokens it served, per model and tenant, into its engine as one record
//! per [`Config::instance`], continued after a restart; `mistral-cache stats` sums
//! the records of every replica on the store ("served from the cache").

mod admin;
mod cli;
mod config;
mod conn;
mod duration;
mod ledger;
mod list;
mod metrics;
mod prices;
mod proxy;
mod stack;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{HeaderValue, header};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use config::parse_cache_mode;
pub use config::{ADMIN_PREFIX, AccessLog, CacheMode, CachedRoutes, Config, DEFAULT_CACHED_PATHS};
use duration::parse_duration;
pub use ledger::DEFAULT_LEDGER_INTERVAL;

/// The command line's parsers, for the fuzz targets in `fuzz/` only: not public API,
/// and free to change in any release.
#[doc(hidden)]
pub mod __fuzz {
    use std::time::Duration;

    /// `--max-request-body`'s parser.
    pub fn parse_size(input: &str) -> Result<usize, String> {
        super::cli::parse_size(input)
    }

    /// `--ttl`'s parser.
    pub fn parse_duration(input: &str) -> Result<Duration, String> {
        super::duration::parse_duration(input)
    }
}
pub use metrics::{
    CacheState, Metrics, MetricsSnapshot, SavedCount, UpstreamErrorKind, Usage, tenant_label,
    usage_from_body,
};
pub use prices::{Price, PriceTable};

use crate::cache::{BoxEngine, CacheEngine, CacheError};
use crate::client::HttpService;
use config::redact_url;
use proxy::ProxyState;

/// The `mistral-cache` command line, the binary's `main`: parses the process arguments
/// (`serve`, the default, `stats`, `purge`, `inspect`; every flag can also be set with
/// a `MISTRAL_CACHE_*` environment variable, see `mistral-cache --help`), runs the
/// command and returns its exit code.
pub fn main() -> std::process::ExitCode {
    cli::main()
}

/// Why the proxy could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listen address could not be bound (port taken, no permission...).
    #[error(
        "cannot listen on {addr}: {source} (is another mistral-cache or another program using this port? choose another one with --listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The engine URL is invalid or the engine could not be built.
    #[error("cannot open the cache engine {url}: {source}")]
    Engine {
        /// The engine URL, password hidden.
        url: String,
        /// The underlying error.
        #[source]
        source: CacheError,
    },
    /// The engine was built but does not answer.
    #[error(
        "the cache engine {url} is unreachable: {source} (start it, fix --engine, or pass --engine-optional to run without it)"
    )]
    EngineUnreachable {
        /// The engine URL, password hidden.
        url: String,
        /// The underlying error.
        #[source]
        source: CacheError,
    },
    /// The client stack could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(#[source] crate::Error),
    /// An administration command failed (no such entry, unsupported operation...).
    #[error("{0}")]
    Admin(String),
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds a listener, with an error that says what to do when the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// How long the engine probe at start-up may take.
const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the engine named by `url` (see
/// [`engine_from_url`](crate::cache::engine_from_url)) and checks that it answers.
pub async fn open_engine(url: &str) -> Result<BoxEngine, ServerError> {
    let engine =
        crate::cache::engine_from_url(url)
            .await
            .map_err(|source| ServerError::Engine {
                url: redact_url(url),
                source,
            })?;
    probe_engine(&engine)
        .await
        .map_err(|source| ServerError::EngineUnreachable {
            url: redact_url(url),
            source,
        })?;
    Ok(engine)
}

async fn probe_engine(engine: &BoxEngine) -> Result<(), CacheError> {
    match tokio::time::timeout(ENGINE_PROBE_TIMEOUT, engine.get("mistral-cache-probe")).await {
        Err(_) => Err(CacheError::Timeout(ENGINE_PROBE_TIMEOUT)),
        Ok(Ok(_) | Err(CacheError::Miss)) => Ok(()),
        Ok(Err(e)) => Err(e),
    }
}

/// A configured proxy: the client stack, the cache and the counters, ready to
/// serve on listeners ([`Proxy::run`]) or to be used as an axum
/// [`Router`] ([`Proxy::router`]).
#[derive(Debug, Clone)]
pub struct Proxy {
    config: Arc<Config>,
    state: Arc<ProxyState>,
    cache: Option<stack::CacheHandle>,
    connections: Arc<conn::ConnMetrics>,
    /// Where [`Proxy::run`] keeps the savings ledger (`None`: no ledger).
    ledger: Option<ledger::LedgerConfig>,
}

impl Proxy {
    /// Builds the stack and opens the engine. Fails when the configuration is
    /// invalid or the engine cannot be opened or reached (unless
    /// [`Config::engine_optional`], in which case the proxy forwards uncached).
    pub async fn new(config: Config) -> Result<Proxy, ServerError> {
        config.validate()?;
        let prices = match &config.prices {
            Some(path) => PriceTable::load(path).map_err(ServerError::Config)?,
            None => PriceTable::built_in(),
        };
        let metrics = Arc::new(Metrics::with_prices(prices));

        let mut builder = crate::Client::builder()
            .base_url(&config.upstream)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .stream_idle_timeout(config.stream_idle_timeout)
            .retry(config.retry_config())
            .transport_config(crate::transport::TransportConfig {
                pool_idle_timeout: Some(config.upstream_pool_idle_timeout),
                pool_max_idle_per_host: config.upstream_pool_max_idle,
                ..Default::default()
            })
            .user_agent(concat!("mistral-cache/", env!("CARGO_PKG_VERSION")))
            .keep_request_authorization(true);
        if let Some(key) = &config.api_key {
            builder = builder.api_key(key.clone());
        }
        let http = builder.build_service().map_err(ServerError::Client)?;
        let direct = timed(http, metrics.clone());

        let url = redact_url(&config.engine);
        let engine = crate::cache::engine_from_url(&config.engine).await;
        if engine.is_ok() {
            // What a crashed writer left behind in a file engine's directory.
            admin::remove_stale_temp_files(&config.engine);
        }
        let engine = match engine {
            Ok(engine) => match probe_engine(&engine).await {
                Ok(()) => Some(engine),
                Err(source) if config.engine_optional => {
                    // Keep it: the cache layer fails open, and uses the engine again
                    // as soon as it answers.
                    tracing::warn!(
                        engine = %url,
                        error = %source,
                        "the cache engine is unreachable; starting anyway (--engine-optional), requests are forwarded uncached until it answers"
                    );
                    Some(engine)
                }
                Err(source) => return Err(ServerError::EngineUnreachable { url, source }),
            },
            Err(source) if config.engine_optional => {
                tracing::warn!(
                    engine = %url,
                    error = %source,
                    "cannot open the cache engine; running without a cache (--engine-optional)"
                );
                None
            }
            Err(source) => return Err(ServerError::Engine { url, source }),
        };
        let writes = !matches!(config.mode, CacheMode::ReadOnly | CacheMode::ReplayOnly);
        let ledger = match (&engine, config.ledger_interval) {
            (Some(engine), Some(interval)) if writes && !interval.is_zero() => {
                Some(ledger::LedgerConfig {
                    engine: engine.clone(),
                    instance: config
                        .instance
                        .clone()
                        .unwrap_or_else(|| ledger::default_instance(config.listen)),
                    secrets: config::entry_secrets(
                        config.entry_secret.as_deref(),
                        &config.previous_entry_secrets,
                    )?,
                    interval,
                })
            }
            _ => None,
        };
        let (cached, cache) = match engine {
            Some(engine) => {
                let (svc, handle) = stack::cached_service(engine, &config, direct.clone());
                (Some(svc), Some(handle))
            }
            None => (None, None),
        };
        let state = Arc::new(ProxyState {
            cached,
            direct,
            routes: config.cached_routes.clone(),
            metrics,
            request_body_idle: config.stream_idle_timeout,
            access_log: config.access_log,
        });
        Ok(Proxy {
            config: Arc::new(config),
            state,
            cache,
            connections: Arc::default(),
            ledger,
        })
    }

    /// The configuration this proxy runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The proxy's counters (also served as Prometheus text).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The Prometheus text of [`Proxy::metrics`], with the cache layer's own
    /// counters (stores, engine errors, corrupt entries).
    pub fn render_metrics(&self) -> String {
        let cache = self.cache.as_ref().map(stack::CacheHandle::metrics);
        let mut text = self.state.metrics.render(cache);
        crate::cache::breaker::render_prometheus(&cache.unwrap_or_default(), &mut text);
        self.connections.render(&mut text);
        text
    }

    /// The router of the API port, which [`Proxy::run`] serves: forwards everything,
    /// and serves `/_mistral-cache/healthz` and `/_mistral-cache/metrics` unless
    /// [`Config::admin_listen`] is set. Every request goes through tower-http's
    /// `CatchPanicLayer` (a panic is a `500` in the API's error shape, not a dropped
    /// connection), `SetSensitiveRequestHeadersLayer` (`Authorization` and
    /// `Proxy-Authorization` never reach a log or a compression table) and `TraceLayer`
    /// (one `DEBUG` span per request; the access log line is the proxy's own).
    pub fn router(&self) -> Router {
        self.routes()
            .layer(trace_layer())
            .layer(sensitive_headers_layer())
            .layer(catch_panic_layer())
    }

    /// [`Proxy::router`] without its tower-http layers.
    fn routes(&self) -> Router {
        let mut router = Router::new();
        if self.config.admin_listen.is_none() {
            router = self.add_admin_routes(router, ADMIN_PREFIX);
        }
        router
            .fallback(proxy::forward)
            .with_state(self.state.clone())
    }

    /// The router of the admin port: `/healthz` and `/metrics` (also under
    /// [`ADMIN_PREFIX`]).
    pub fn admin_router(&self) -> Router {
        let router = self.add_admin_routes(Router::new(), "");
        self.add_admin_routes(router, ADMIN_PREFIX)
            .with_state(self.state.clone())
    }

    fn add_admin_routes(
        &self,
        router: Router<Arc<ProxyState>>,
        prefix: &str,
    ) -> Router<Arc<ProxyState>> {
        let cache_enabled = self.cache.is_some();
        let me = self.clone();
        router
            .route(
                &format!("{prefix}/healthz"),
                get(move || async move {
                    let body = serde_json::json!({
                        "status": "ok",
                        "cache": if cache_enabled { "enabled" } else { "disabled" },
                    });
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        body.to_string(),
                    )
                }),
            )
            .route(
                &format!("{prefix}/metrics"),
                get(move || {
                    let text = me.render_metrics();
                    async move {
                        (
                            [(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static(
                                    "text/plain; version=0.0.4; charset=utf-8",
                                ),
                            )],
                            text,
                        )
                            .into_response()
                    }
                }),
            )
    }

    /// Serves on `listener` (and the admin routes on `admin`, if given) until
    /// `shutdown` completes; then stops accepting, lets in-flight requests and
    /// streams finish for at most [`Config::shutdown_timeout`], flushes
    /// pending cache writes and writes the savings ledger a last time (see
    /// [`Config::ledger_interval`]).
    pub async fn run<F>(
        self,
        listener: tokio::net::TcpListener,
        admin: Option<tokio::net::TcpListener>,
        shutdown: F,
    ) -> Result<(), ServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let grace = self.config.shutdown_timeout;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs_f64(),
                "shutting down: no new connections, waiting for in-flight requests"
            );
            let _ = tx.send(true);
        });
        let signalled = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|fired| *fired).await;
        };

        if let Ok(addr) = listener.local_addr() {
            tracing::info!(
                listen = %addr,
                upstream = %self.config.upstream,
                engine = %redact_url(&self.config.engine),
                cache = self.cache.is_some(),
                "mistral-cache listening"
            );
        }
        let ledger = self
            .ledger
            .clone()
            .map(|l| ledger::LedgerTask::start(l, self.state.metrics.clone()));
        // The router's answers, with API paths dispatched without its matching and
        // boxing (BENCHMARKS.md, "Issue 13": the router costs ≈ 7k instructions per
        // proxy hit), under the same tower-http layers as `Proxy::router`, served by
        // the proxy's own accept loop (header-read and idle timeouts, a connection cap).
        // Served with the body type the layers give (not re-boxed into axum's). The
        // trace layer's spans and events are all at DEBUG: when that level is off for
        // tower-http as the proxy starts (the default), the layer is left out rather
        // than run for nothing (it reads the clock on every request and body frame).
        let api = ApiService {
            state: self.state.clone(),
            router: self.routes(),
            admin_routes: self.config.admin_listen.is_none(),
        };
        let layers = ServiceBuilder::new()
            .layer(catch_panic_layer())
            .layer(sensitive_headers_layer());
        let api = if tracing::enabled!(target: "tower_http::trace", Level::DEBUG) {
            tower::util::Either::Left(layers.layer(trace_layer()).service(api))
        } else {
            tower::util::Either::Right(layers.service(api))
        };
        let limits = conn::Limits {
            header_read_timeout: self.config.header_read_timeout,
            idle_timeout: self.config.idle_timeout,
            max_connections: self.config.max_connections,
            max_per_ip: self.config.max_connections_per_ip,
        };
        let api = conn::serve(
            listener,
            api,
            limits,
            self.connections.clone(),
            signalled(rx.clone()),
        );
        let admin = match admin {
            Some(l) => {
                if let Ok(addr) = l.local_addr() {
                    tracing::info!(listen = %addr, "admin endpoints listening");
                }
                Some(conn::serve(
                    l,
                    self.admin_router(),
                    limits,
                    self.connections.clone(),
                    signalled(rx.clone()),
                ))
            }
            None => None,
        };
        let servers = async move {
            match admin {
                Some(admin) => {
                    let (a, b) = tokio::join!(api, admin);
                    a.and(b)
                }
                None => api.await,
            }
        };
        let deadline = async {
            signalled(rx.clone()).await;
            tokio::time::sleep(grace).await;
        };
        // The ledger is written as soon as the shutdown is signalled: the drain and
        // the cache flush below may outlast the time the process is given to stop.
        let early_ledger = async {
            signalled(rx.clone()).await;
            if let Some(ledger) = &ledger {
                ledger.sync_now();
            }
            std::future::pending::<()>().await
        };
        let served = tokio::select! {
            res = servers => res,
            () = deadline => {
                tracing::warn!("in-flight requests still running after the shutdown grace period; closing them");
                Ok(())
            }
            () = early_ledger => unreachable!("never completes"),
        };
        if let Err(e) = served {
            if let Some(ledger) = ledger {
                ledger.finish().await;
            }
            return Err(e.into());
        }
        if let Some(cache) = &self.cache {
            let started = Instant::now();
            let pending = cache.pending_writes();
            if cache.flush(grace).await {
                tracing::info!(
                    pending,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "cache writes flushed"
                );
            } else {
                tracing::warn!(
                    pending = cache.pending_writes(),
                    "cache writes still pending after the shutdown grace period"
                );
            }
        }
        if let Some(ledger) = ledger {
            ledger.finish().await;
        }
        tracing::info!("mistral-cache stopped");
        Ok(())
    }
}

/// One `DEBUG` span per request (the access log line is the proxy's own).
fn trace_layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    DefaultMakeSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
> {
    TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        // Upstream 5xx answers are forwarded, not failures of the proxy: the access
        // log records them.
        .on_failure(())
}

/// `Authorization` and `Proxy-Authorization` are marked sensitive (never logged, never
/// indexed by HTTP/2 header compression).
fn sensitive_headers_layer() -> SetSensitiveRequestHeadersLayer {
    SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::PROXY_AUTHORIZATION])
}

/// A panicking handler is a `500` in the API's error shape, not a dropped connection.
fn catch_panic_layer() -> CatchPanicLayer<fn(PanicPayload) -> axum::response::Response> {
    CatchPanicLayer::custom(panic_response as fn(PanicPayload) -> axum::response::Response)
}

type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

/// The answer to a request whose handling panicked: a `500` in the API's error shape.
fn panic_response(payload: PanicPayload) -> axum::response::Response {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %detail, "request handler panicked");
    proxy::error_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the proxy failed while handling this request",
    )
}

/// What the API port serves: [`Proxy::router`]'s routes, with the requests it would
/// hand to its fallback (every path outside [`ADMIN_PREFIX`]) sent straight to the
/// forwarding handler, without the router's matching and boxing (see `BENCHMARKS.md`,
/// "Issue 13", for what that saves); [`Proxy::run`] puts the router's tower-http layers
/// around it.
#[derive(Clone)]
struct ApiService {
    state: Arc<ProxyState>,
    router: Router,
    /// Whether the router serves the admin routes (else it is only the fallback).
    admin_routes: bool,
}

type ForwardFuture = std::pin::Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;

impl tower::Service<axum::extract::Request> for ApiService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        <Router as tower::Service<axum::extract::Request>>::Future,
        futures_util::future::Map<
            ForwardFuture,
            fn(axum::response::Response) -> Result<axum::response::Response, Self::Error>,
        >,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Both the router and the handler are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        use futures_util::FutureExt as _;
        if self.admin_routes && req.uri().path().starts_with(ADMIN_PREFIX) {
            return futures_util::future::Either::Left(tower::Service::call(&mut self.router, req));
        }
        let fut: ForwardFuture = Box::pin(proxy::forward_request(self.state.clone(), req));
        futures_util::future::Either::Right(fut.map(Ok as fn(_) -> _))
    }
}

/// Builds a proxy from `config` and returns its API router (see [`Proxy::router`]).
pub async fn build_app(config: Config) -> Result<Router, ServerError> {
    Ok(Proxy::new(config).await?.router())
}

/// Binds [`Config::listen`] (and [`Config::admin_listen`]), builds the proxy and
/// serves until `shutdown` completes (see [`Proxy::run`]).
pub async fn serve<F>(config: Config, shutdown: F) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let listener = bind(config.listen).await?;
    let admin = match config.admin_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    Proxy::new(config)
        .await?
        .run(listener, admin, shutdown)
        .await
}

/// The future of [`HttpService`].
type StackFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<http::Response<crate::Body>, crate::BoxError>> + Send>,
>;

/// Wraps the client stack so the time to response headers is recorded.
fn timed(http: HttpService, metrics: Arc<Metrics>) -> HttpService {
    let svc = ServiceBuilder::new()
        .map_future(move |fut: StackFuture| {
            let metrics = metrics.clone();
            let start = Instant::now();
            async move {
                let res = fut.await;
                if res.is_ok() {
                    metrics.record_upstream_latency(start.elapsed());
                }
                res
            }
        })
        .service(http);
    BoxCloneSyncService::new(svc)
}
