//! [`ClientBuilder`]: configuration and assembly of the tower stack.

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use http_body::Body as HttpBody;
use tower::ServiceBuilder;
use tower::util::{BoxCloneSyncService, MapRequest};
use tower_layer::Layer;
use tower_service::Service;

use super::HttpService;
use crate::cache::{CacheEngine, CacheLayer, RequestBody};
use crate::cacheable::MistralCacheable;
use crate::layers::{
    AuthLayer, ConcurrencyLimitLayer, RateLimitLayer, RetryConfig, RetryLayer, TimeoutLayer,
    TraceLayer,
};
use crate::transport::{HttpTransport, TransportConfig};
use crate::{Body, BoxError, Error};

/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.mistral.ai";

type BoxLayerFn = Box<dyn FnOnce(HttpService) -> HttpService + Send + Sync>;
/// Builds the cache slot's service; gets the API key to scope cache entries by
/// (`None` when callers' own `Authorization` headers reach the cache).
type BoxCacheFn = Box<dyn FnOnce(HttpService, Option<&str>) -> HttpService + Send + Sync>;

/// Configures a [`Client`](crate::Client).
///
/// Defaults: base URL `https://api.mistral.ai`, total timeout 300 s, connect
/// timeout 10 s, stream idle timeout 120 s, 2 retries with exponential backoff and
/// full jitter, no rate or concurrency limit.
pub struct ClientBuilder {
    api_key: Option<String>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
    retry: RetryConfig,
    rate_limit: Option<(u64, Duration)>,
    concurrency_limit: Option<usize>,
    layers: Vec<BoxLayerFn>,
    cache: Option<BoxCacheFn>,
    service: Option<HttpService>,
    transport: TransportConfig,
    user_agent: Option<String>,
    keep_request_authorization: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            api_key: None,
            base_url: None,
            timeout: Some(Duration::from_secs(300)),
            connect_timeout: Some(Duration::from_secs(10)),
            stream_idle_timeout: Some(Duration::from_secs(120)),
            retry: RetryConfig::default(),
            rate_limit: None,
            concurrency_limit: None,
            layers: Vec::new(),
            cache: None,
            service: None,
            transport: TransportConfig::default(),
            user_agent: None,
            keep_request_authorization: false,
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.resolved_base_url())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("layers", &self.layers.len())
            .field("cache", &self.cache.is_some())
            .field("custom_service", &self.service.is_some())
            .field(
                "keep_request_authorization",
                &self.keep_request_authorization,
            )
            .finish()
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ClientBuilder {
    /// A builder with the defaults (same as [`Client::builder`](crate::Client::builder)).
    pub fn new() -> Self {
        ClientBuilder::default()
    }

    /// A builder configured from `MISTRAL_API_KEY` (required) and `MISTRAL_BASE_URL`
    /// (optional).
    pub fn from_env() -> Result<Self, Error> {
        let key = env_var("MISTRAL_API_KEY").ok_or_else(|| {
            Error::config("MISTRAL_API_KEY is not set: export your Mistral API key")
        })?;
        let mut b = ClientBuilder::default().api_key(key);
        if let Some(url) = env_var("MISTRAL_BASE_URL") {
            b = b.base_url(url);
        }
        Ok(b)
    }

    pub(crate) fn resolved_base_url(&self) -> String {
        self.base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim()
            .trim_end_matches('/')
            .to_owned()
    }

    /// The API key, sent as a sensitive `Authorization: Bearer` header.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The base URL (default `https://api.mistral.ai`); a path prefix is kept.
    pub fn base_url(mut self, url: impl AsRef<str>) -> Self {
        self.base_url = Some(url.as_ref().to_owned());
        self
    }

    /// Total timeout of a request: response headers and, for non-streaming
    /// responses, the whole body. Streams are bounded by
    /// [`stream_idle_timeout`](Self::stream_idle_timeout) instead. Default 300 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Removes the total timeout.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Time allowed to establish a TCP connection. Default 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Longest pause between two chunks of a stream. Default 120 s.
    pub fn stream_idle_timeout(mut self, d: Duration) -> Self {
        self.stream_idle_timeout = Some(d);
        self
    }

    /// Maximum number of retries (0 disables retries). Default 2.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry = self.retry.max_retries(n);
        self
    }

    /// The whole retry configuration.
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.retry = config;
        self
    }

    /// Disables retries.
    pub fn no_retry(self) -> Self {
        self.max_retries(0)
    }

    /// At most `n` requests per `per`, shared by every clone of the client.
    pub fn rate_limit(mut self, n: u64, per: Duration) -> Self {
        self.rate_limit = Some((n, per));
        self
    }

    /// At most `n` requests in flight, shared by every clone of the client; a
    /// request counts until its response body ends or is dropped (a stream for its
    /// whole life).
    pub fn concurrency_limit(mut self, n: usize) -> Self {
        self.concurrency_limit = Some(n);
        self
    }

    /// The `User-Agent` header (default `mistral-tower/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Settings of the built-in transport (pool, HTTP/2). The connect timeout set
    /// with [`connect_timeout`](Self::connect_timeout) wins over the one here.
    pub fn transport_config(mut self, config: TransportConfig) -> Self {
        let connect = self.connect_timeout;
        self.transport = config;
        self.connect_timeout = connect;
        self
    }

    /// Keep an `Authorization` header already on the request and only add the
    /// configured key when there is none (used by the proxy).
    pub fn keep_request_authorization(mut self, yes: bool) -> Self {
        self.keep_request_authorization = yes;
        self
    }

    /// Adds a user layer outside every built-in layer. The first layer added is
    /// the outermost, as with `tower::ServiceBuilder`.
    ///
    /// The layer wraps a [`HttpService`]; its service may return any
    /// `http_body::Body<Data = Bytes>` and any error convertible to [`BoxError`].
    pub fn layer<L, S, B>(mut self, layer: L) -> Self
    where
        L: Layer<HttpService, Service = S> + Send + Sync + 'static,
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.layers
            .push(Box::new(move |inner| erase(layer.layer(inner))));
        self
    }

    /// Puts any layer in the cache slot (outside the limits and retries, inside the
    /// user layers), as is. One slot: the last of `cache`, `cache_layer` and
    /// `cache_slot_layer` wins.
    pub fn cache_slot_layer<L, S, B>(mut self, layer: L) -> Self
    where
        L: Layer<HttpService, Service = S> + Send + Sync + 'static,
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.cache = Some(Box::new(move |inner, _key| erase(layer.layer(inner))));
        self
    }

    /// Caches responses in `engine` with the default [`CacheLayer`] settings (the Go
    /// client's `NewCached(client, engine)`).
    ///
    /// Only generation operations are stored (chat, FIM, embeddings, moderations,
    /// classifications, OCR, audio transcription; agents completions for at most
    /// [`DEFAULT_AGENTS_TTL`](crate::cacheable::DEFAULT_AGENTS_TTL)), never management
    /// calls (models, files, batch, fine-tuning, conversations, agents, libraries), and
    /// the model listing only when the call sets its own
    /// [`ttl`](crate::RequestOptions::ttl): see [`crate::cacheable`].
    ///
    /// Entries are scoped to the configured API key (only a digest of it is kept),
    /// so two clients with different keys never share entries.
    pub fn cache<E: CacheEngine>(self, engine: E) -> Self {
        self.cache_layer(CacheLayer::new(engine))
    }

    /// Puts a configured [`CacheLayer`] in the cache slot: outside the limits,
    /// retries and timeouts, so a hit costs no rate-limit slot and no network.
    ///
    /// The `Authorization` header is added inside the cache, so when an API key is
    /// configured (and [`keep_request_authorization`](Self::keep_request_authorization)
    /// is off) the layer is scoped to that key with
    /// [`CacheLayer::tenant_secret`]. To choose the scope yourself, use
    /// [`cache_slot_layer`](Self::cache_slot_layer).
    ///
    /// Unless the layer has a [`cacheable`](CacheLayer::cacheable) predicate of its
    /// own, [`MistralCacheable`] decides what is stored (as with [`cache`](Self::cache)).
    pub fn cache_layer<E: CacheEngine>(mut self, layer: CacheLayer<E>) -> Self {
        self.cache = Some(Box::new(move |inner, key| {
            let layer = layer.cacheable_or(MistralCacheable::default());
            let layer = match key {
                Some(key) => layer.tenant_secret(key.trim()),
                None => layer,
            };
            erase(layer.layer(MapRequest::new(
                inner,
                from_cache_request as fn(Request<RequestBody<Body>>) -> Request<Body>,
            )))
        }));
        self
    }

    /// Replaces the built-in transport (a custom HTTP client, a test double).
    /// Every layer still applies on top of it; the connect timeout and transport
    /// settings are then the service's business.
    pub fn service<S, B>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.service = Some(erase(service));
        self
    }

    /// Builds only the erased stack (every layer and the transport), for callers
    /// that send raw `http::Request`s (the proxy).
    pub fn build_service(self) -> Result<HttpService, Error> {
        let mut auth = AuthLayer::new(&self.resolved_base_url())?
            .keep_request_authorization(self.keep_request_authorization);
        if let Some(key) = &self.api_key {
            auth = auth.api_key(key)?;
        }
        if let Some(ua) = &self.user_agent {
            let v = HeaderValue::try_from(ua.as_str())
                .map_err(|_| Error::config("invalid User-Agent"))?;
            auth = auth.user_agent(Some(v));
        }
        let transport = match self.service {
            Some(s) => s,
            None => BoxCloneSyncService::new(HttpTransport::new(TransportConfig {
                connect_timeout: self.connect_timeout,
                ..self.transport
            })),
        };
        let timeouts = TimeoutLayer::new()
            .set_total(self.timeout)
            .set_stream_idle(self.stream_idle_timeout);
        let core = ServiceBuilder::new()
            .option_layer(self.rate_limit.map(|(n, per)| RateLimitLayer::new(n, per)))
            .layer(RetryLayer::new(self.retry))
            .layer(TraceLayer::new())
            .map_response(map_timeout_body as fn(_) -> _)
            .layer(timeouts)
            .layer(auth)
            .service(transport);
        let mut service: HttpService = BoxCloneSyncService::new(core);
        if let Some(n) = self.concurrency_limit {
            // outermost of the built-in layers; its body holds the permit
            service = erase(ConcurrencyLimitLayer::new(n).layer(service));
        }
        if let Some(cache) = self.cache {
            // With keep_request_authorization the callers' own Authorization reaches
            // the cache, which then scopes entries by it (its default).
            let key = if self.keep_request_authorization {
                None
            } else {
                self.api_key.as_deref()
            };
            service = cache(service, key);
        }
        for layer in self.layers.into_iter().rev() {
            service = layer(service);
        }
        Ok(service)
    }
}

/// Turns the cache layer's request back into the stack's: a buffered body stays
/// buffered (so retries can replay it), a streaming one is wrapped.
fn from_cache_request(req: Request<RequestBody<Body>>) -> Request<Body> {
    req.map(|b| match b.into_full() {
        Ok(bytes) => Body::full(bytes),
        Err(streaming) => Body::new(streaming),
    })
}

fn map_timeout_body(res: Response<crate::layers::timeout::TimeoutBody<Body>>) -> Response<Body> {
    res.map(Body::new)
}

fn map_body<B>(res: Response<B>) -> Response<Body>
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    res.map(Body::new)
}

/// Erases any compatible service into a [`HttpService`].
fn erase<S, B>(service: S) -> HttpService
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_err(Into::<BoxError>::into as fn(S::Error) -> BoxError)
            .map_response(map_body::<B> as fn(Response<B>) -> Response<Body>)
            .service(service),
    )
}
