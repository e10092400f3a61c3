//! The proxy's configuration: what to listen on, where to forward, how to cache.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use http::request::Parts;

use super::ServerError;
pub use crate::cache::CacheMode;
use crate::cache::{Cacheable, EntrySecrets, Storage};
use crate::cacheable::{MistralCacheable, Operation, operation};

/// The API routes the proxy caches by default (all `POST`): the generation
/// operations of [`crate::cacheable::GENERATION_PATHS`], the table the client's cache
/// uses too.
pub const DEFAULT_CACHED_PATHS: &[&str] = crate::cacheable::GENERATION_PATHS;

/// The path prefix of the proxy's own endpoints on the API port
/// (`/_mistral-cache/healthz`, `/_mistral-cache/metrics`); no Mistral API path
/// starts with an underscore.
pub const ADMIN_PREFIX: &str = "/_mistral-cache";

/// Which requests the proxy sends through the cache: `POST` to one of a set of
/// paths (a path ending in `*` matches every path with that prefix), and the model
/// listing `GET /v1/models`, which is stored only when the request sets its own
/// `x-cache-ttl` (see [`crate::cacheable`]). Agents completions are kept for at most
/// [`DEFAULT_AGENTS_TTL`](crate::cacheable::DEFAULT_AGENTS_TTL).
///
/// ```
/// use http::Method;
/// use mistral_tower::server::CachedRoutes;
///
/// let routes = CachedRoutes::default();
/// assert!(routes.matches(&Method::POST, "/v1/chat/completions"));
/// assert!(!routes.matches(&Method::GET, "/v1/chat/completions"));
/// assert!(!routes.matches(&Method::GET, "/v1/files"));
/// assert!(!routes.matches(&Method::POST, "/v1/batch/jobs"));
/// assert!(routes.matches(&Method::GET, "/v1/models"));
///
/// let custom = CachedRoutes::new(["/v1/embeddings", "/v1/custom/*"]).unwrap();
/// assert!(custom.matches(&Method::POST, "/v1/custom/anything"));
/// assert!(!custom.matches(&Method::POST, "/v1/chat/completions"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRoutes {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl CachedRoutes {
    /// Routes from a list of paths (each must start with `/`).
    pub fn new<I, S>(paths: I) -> Result<Self, ServerError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut routes = CachedRoutes {
            exact: Vec::new(),
            prefixes: Vec::new(),
        };
        for path in paths {
            let path = path.as_ref().trim();
            if path.is_empty() {
                continue;
            }
            if !path.starts_with('/') {
                return Err(ServerError::Config(format!(
                    "cached path {path:?} must start with '/'"
                )));
            }
            match path.strip_suffix('*') {
                Some(prefix) => routes.prefixes.push(prefix.to_owned()),
                None => routes.exact.push(path.trim_end_matches('/').to_owned()),
            }
        }
        Ok(routes)
    }

    /// No route is cached: the proxy only forwards.
    pub fn none() -> Self {
        CachedRoutes {
            exact: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Whether a request with this method and path goes through the cache.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if method != Method::POST {
            // The model listing is stored on a request's own opt-in (x-cache-ttl).
            return (!self.exact.is_empty() || !self.prefixes.is_empty())
                && operation(method, path) == Operation::ModelList;
        }
        let trimmed = path.trim_end_matches('/');
        self.exact.iter().any(|p| p == trimmed)
            || self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// The cache layer's predicate in the proxy: the routes chosen, stored as the
/// Mistral operation table says ([`MistralCacheable::storage`](crate::cache::Cacheable::storage)).
impl Cacheable for CachedRoutes {
    fn is_cacheable(&self, parts: &Parts) -> bool {
        self.matches(&parts.method, parts.uri.path())
            && !parts.headers.contains_key(http::header::RANGE)
    }

    fn storage(&self, parts: &Parts) -> Storage {
        MistralCacheable::default().storage(parts)
    }
}

impl Default for CachedRoutes {
    fn default() -> Self {
        CachedRoutes::new(DEFAULT_CACHED_PATHS).expect("default paths are valid")
    }
}

/// Parses a cache mode name: `read-write`, `read-only`, `write-only` or `replay-only`.
pub(crate) fn parse_cache_mode(s: &str) -> Result<CacheMode, String> {
    match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "read-write" | "rw" => Ok(CacheMode::ReadWrite),
        "read-only" | "ro" => Ok(CacheMode::ReadOnly),
        "write-only" | "wo" => Ok(CacheMode::WriteOnly),
        "replay-only" | "replay" => Ok(CacheMode::ReplayOnly),
        other => Err(format!(
            "unknown cache mode {other:?} (read-write, read-only, write-only, replay-only)"
        )),
    }
}

/// Everything [`Proxy::new`](super::Proxy::new) needs. [`Config::default`] is the
/// documented default: `127.0.0.1:8080` → `https://api.mistral.ai` with the file
/// engine at `.mistral/cache`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address of the API port (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Serve `/healthz` and `/metrics` on this separate address instead of under
    /// [`ADMIN_PREFIX`] on the API port.
    pub admin_listen: Option<SocketAddr>,
    /// The upstream base URL (default `https://api.mistral.ai`).
    pub upstream: String,
    /// The cache engine URL (default `file://.mistral/cache`).
    pub engine: String,
    /// Start (and forward uncached) even when the engine cannot be reached.
    pub engine_optional: bool,
    /// API key sent upstream when a client sends no `Authorization` of its own.
    pub api_key: Option<String>,
    /// Lifetime of stored entries (`None`: the cache layer's default, no expiry).
    pub ttl: Option<Duration>,
    /// Cache namespace for every entry this proxy stores and reads.
    pub namespace: Option<String>,
    /// Share entries across API keys (the default scopes entries by a hash of the
    /// client's `Authorization`).
    pub share_across_keys: bool,
    /// Which requests go through the cache.
    pub cached_routes: CachedRoutes,
    /// How the cache is used.
    pub mode: CacheMode,
    /// Also read the standard request `Cache-Control` header as cache directives
    /// (default: only `x-cache-control` is; HTTP libraries send `Cache-Control` on
    /// their own).
    pub honor_cache_control: bool,
    /// Single-flight across replicas through the engine (default on; it applies to
    /// engines that can coordinate processes: Redis, PostgreSQL). See
    /// [`CacheLayer::fleet_flight`](crate::cache::CacheLayer::fleet_flight).
    pub fleet_flight: bool,
    /// Largest request body considered for caching; bigger ones are forwarded uncached.
    pub max_request_body: usize,
    /// Largest response stored in the cache.
    pub max_entry_size: usize,
    /// Total upstream timeout of a non-streaming request.
    pub timeout: Duration,
    /// Timeout to connect to the upstream.
    pub connect_timeout: Duration,
    /// Longest silence allowed inside an upstream stream, and inside a client's
    /// request body (a stalled upload is answered `408`).
    pub stream_idle_timeout: Duration,
    /// Upstream retries of 429/5xx answers (and connection errors), opt-in: `0` (the
    /// default) passes such answers, `Retry-After` included, to the client untouched,
    /// since SDKs retry them themselves and retries at both levels multiply.
    pub max_retries: u32,
    /// Upstream retries of failures that never reached the upstream (connection
    /// refused or reset while connecting, connect timeouts), default 2. Used when
    /// [`max_retries`](Self::max_retries) is `0`.
    pub connect_retries: u32,
    /// How long in-flight requests and streams may run after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Longest time a client has to send a complete request head, from its connection
    /// (or a later request's first byte) on; slower connections are closed (default 30 s).
    pub header_read_timeout: Duration,
    /// Longest silence of a kept-alive client connection between requests (default 60 s).
    pub idle_timeout: Duration,
    /// Most client connections open at once; more are answered `503` and closed
    /// (default 512, within the usual 1024 open-file limit).
    pub max_connections: usize,
    /// Most client connections open at once from one client address; more from it are
    /// answered `503` and closed, so one client holding silent connections cannot
    /// lock the others out. `0` (the default) sets no per-address limit: a local
    /// proxy's clients all come from 127.0.0.1; set it when clients reach the proxy
    /// from several hosts.
    pub max_connections_per_ip: usize,
    /// Most idle upstream connections kept per host (default 32).
    pub upstream_pool_max_idle: usize,
    /// How long an idle upstream connection is kept (default 30 s).
    pub upstream_pool_idle_timeout: Duration,
    /// Which requests are written to the access log (target `mistral_cache::access`).
    pub access_log: AccessLog,
    /// A JSON or TOML file of model prices added to the built-in list prices the
    /// savings metrics use (see [`PriceTable`](super::PriceTable)); read at start-up.
    pub prices: Option<std::path::PathBuf>,
    /// Sign every stored entry with HMAC-SHA256 under this secret and refuse entries
    /// whose signature is missing or wrong (see
    /// [`CacheLayer::sign_entries`](crate::cache::CacheLayer::sign_entries)); at
    /// least 16 bytes.
    pub entry_secret: Option<String>,
    /// Previous entry secrets still accepted on read (rotation); needs
    /// [`entry_secret`](Self::entry_secret).
    pub previous_entry_secrets: Vec<String>,
    /// How often the proxy writes its savings ledger record (what it served from the
    /// cache, for `mistral-cache stats`) into the engine when it changed; it is also
    /// written at a graceful shutdown. Default
    /// [`DEFAULT_LEDGER_INTERVAL`](super::DEFAULT_LEDGER_INTERVAL) (10 s); `None` or
    /// zero: no ledger. Not written in the read-only and replay-only modes.
    pub ledger_interval: Option<Duration>,
    /// The name of this proxy's savings ledger record, which it continues after a
    /// restart; each replica on a shared store needs its own. Default: the host name
    /// and [`listen`](Self::listen), `host@127.0.0.1:8080`.
    pub instance: Option<String>,
}

/// The shortest entry secret accepted.
const MIN_ENTRY_SECRET: usize = 16;

/// The entry secrets of `--entry-secret` and `--previous-entry-secret`, checked:
/// `None` when signing is off.
pub(crate) fn entry_secrets(
    current: Option<&str>,
    previous: &[String],
) -> Result<Option<EntrySecrets>, ServerError> {
    let Some(current) = current else {
        if previous.is_empty() {
            return Ok(None);
        }
        return Err(ServerError::Config(
            "--previous-entry-secret needs --entry-secret (the secret new entries are signed with)"
                .into(),
        ));
    };
    for (flag, secret) in std::iter::once(("--entry-secret", current)).chain(
        previous
            .iter()
            .map(|p| ("--previous-entry-secret", p.as_str())),
    ) {
        if secret.len() < MIN_ENTRY_SECRET {
            return Err(ServerError::Config(format!(
                "{flag}: a secret must be at least {MIN_ENTRY_SECRET} bytes (for example the output of `openssl rand -hex 32`)"
            )));
        }
    }
    Ok(Some(
        previous
            .iter()
            .fold(EntrySecrets::new(current), |s, p| s.accept(p)),
    ))
}

/// Which requests the proxy writes to its access log.
///
/// ```
/// use mistral_tower::server::AccessLog;
/// assert_eq!("errors".parse(), Ok(AccessLog::Errors));
/// assert_eq!("1/100".parse(), Ok(AccessLog::Sample(100)));
/// assert_eq!("all".parse(), Ok(AccessLog::All));
/// assert!("most".parse::<AccessLog>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessLog {
    /// Every request (the default).
    #[default]
    All,
    /// Only errors: status 400 and above, upstream failures, bodies cut short.
    Errors,
    /// Errors, and one in `n` of the other requests, at random.
    Sample(u32),
    /// Nothing.
    Off,
}

impl AccessLog {
    /// Whether a request with this outcome is logged.
    pub fn should_log(self, status: http::StatusCode, error: bool) -> bool {
        let error = error || status.as_u16() >= 400;
        match self {
            AccessLog::All => true,
            AccessLog::Off => false,
            AccessLog::Errors => error,
            AccessLog::Sample(n) => error || n <= 1 || fastrand::u32(..n) == 0,
        }
    }
}

impl std::str::FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "all" | "on" => return Ok(AccessLog::All),
            "errors" | "error" => return Ok(AccessLog::Errors),
            "off" | "none" => return Ok(AccessLog::Off),
            _ => {}
        }
        s.strip_prefix("1/")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .map(AccessLog::Sample)
            .ok_or_else(|| {
                format!("unknown access log setting {s:?} (all, errors, off, or 1/N to sample one request in N plus every error)")
            })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            upstream: "https://api.mistral.ai".to_owned(),
            engine: "file://.mistral/cache".to_owned(),
            engine_optional: false,
            api_key: None,
            ttl: None,
            namespace: None,
            share_across_keys: false,
            cached_routes: CachedRoutes::default(),
            mode: CacheMode::ReadWrite,
            honor_cache_control: false,
            fleet_flight: true,
            max_request_body: 8 * 1024 * 1024,
            max_entry_size: 32 * 1024 * 1024,
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(120),
            max_retries: 0,
            connect_retries: 2,
            shutdown_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_ip: 0,
            upstream_pool_max_idle: 32,
            upstream_pool_idle_timeout: Duration::from_secs(30),
            access_log: AccessLog::All,
            prices: None,
            entry_secret: None,
            previous_entry_secrets: Vec::new(),
            ledger_interval: Some(super::DEFAULT_LEDGER_INTERVAL),
            instance: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("upstream", &self.upstream)
            .field("engine", &redact_url(&self.engine))
            .field("engine_optional", &self.engine_optional)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("share_across_keys", &self.share_across_keys)
            .field("cached_routes", &self.cached_routes)
            .field("mode", &self.mode)
            .field("honor_cache_control", &self.honor_cache_control)
            .field("fleet_flight", &self.fleet_flight)
            .field("max_request_body", &self.max_request_body)
            .field("max_entry_size", &self.max_entry_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_retries", &self.max_retries)
            .field("connect_retries", &self.connect_retries)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("upstream_pool_max_idle", &self.upstream_pool_max_idle)
            .field(
                "upstream_pool_idle_timeout",
                &self.upstream_pool_idle_timeout,
            )
            .field("access_log", &self.access_log)
            .field("prices", &self.prices)
            .field(
                "entry_secret",
                &self.entry_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("previous_entry_secrets", &self.previous_entry_secrets.len())
            .field("ledger_interval", &self.ledger_interval)
            .field("instance", &self.instance)
            .finish()
    }
}

impl Config {
    /// The upstream retries: of 429/5xx answers and connection errors when
    /// [`max_retries`](Self::max_retries) is set, else only of failures that never
    /// reached the upstream ([`connect_retries`](Self::connect_retries)).
    pub(crate) fn retry_config(&self) -> crate::layers::retry::RetryConfig {
        use crate::layers::retry::RetryConfig;
        if self.max_retries > 0 {
            RetryConfig::default().max_retries(self.max_retries)
        } else {
            RetryConfig::default()
                .max_retries(self.connect_retries)
                .retry_statuses(false)
        }
    }

    /// Checks the configuration and returns the first problem in words a user can act on.
    pub fn validate(&self) -> Result<(), ServerError> {
        let uri: http::Uri = self.upstream.parse().map_err(|e| {
            ServerError::Config(format!("invalid upstream URL {:?}: {e}", self.upstream))
        })?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(ServerError::Config(format!(
                    "invalid upstream URL {:?}: it must start with http:// or https://",
                    self.upstream
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(ServerError::Config(format!(
                "invalid upstream URL {:?}: no host",
                self.upstream
            )));
        }
        if uri.query().is_some() {
            return Err(ServerError::Config(format!(
                "invalid upstream URL {:?}: it must not have a query",
                self.upstream
            )));
        }
        if let Some(instance) = &self.instance
            && (instance.trim().is_empty() || instance.len() > 256)
        {
            return Err(ServerError::Config(format!(
                "invalid --instance {instance:?}: a name of 1 to 256 bytes is needed"
            )));
        }
        if self.engine.trim().is_empty() {
            return Err(ServerError::Config(
                "the engine URL is empty (for example file://.mistral/cache or memory://)".into(),
            ));
        }
        if !self.engine.contains("://") {
            return Err(ServerError::Config(format!(
                "invalid engine URL {:?}: expected a URL such as file://.mistral/cache, memory://, redis://host:6379/0",
                redact_url(&self.engine)
            )));
        }
        if let Some(admin) = self.admin_listen
            && admin == self.listen
        {
            return Err(ServerError::Config(format!(
                "--admin-listen {admin} is the same address as --listen"
            )));
        }
        if let Some(key) = &self.api_key
            && (key.trim().is_empty() || key.contains(['\r', '\n']))
        {
            return Err(ServerError::Config(
                "the API key is empty or malformed".into(),
            ));
        }
        if let Some(ns) = &self.namespace
            && (ns.is_empty()
                || !ns
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b)))
        {
            return Err(ServerError::Config(format!(
                "invalid namespace {ns:?}: use letters, digits and . _ - : /"
            )));
        }
        entry_secrets(self.entry_secret.as_deref(), &self.previous_entry_secrets)?;
        if self.ttl == Some(Duration::ZERO) {
            return Err(ServerError::Config(
                "--ttl 0 would store nothing; omit it for no expiry".into(),
            ));
        }
        for (name, d) in [
            ("--timeout", self.timeout),
            ("--connect-timeout", self.connect_timeout),
            ("--stream-idle-timeout", self.stream_idle_timeout),
            ("--header-read-timeout", self.header_read_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(ServerError::Config(format!(
                    "{name} must be greater than 0"
                )));
            }
        }
        if self.max_connections == 0 {
            return Err(ServerError::Config(
                "--max-connections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Hides the password of a URL such as `redis://user:secret@host` for logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_local() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.upstream, "https://api.mistral.ai");
        assert_eq!(c.engine, "file://.mistral/cache");
    }

    #[test]
    fn rejects_bad_values_with_clear_messages() {
        let bad = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(&|c| c.upstream = "ftp://x".into()).contains("http://"));
        assert!(bad(&|c| c.upstream = "not a url".into()).contains("invalid upstream"));
        assert!(bad(&|c| c.engine = "redis-at-home".into()).contains("invalid engine URL"));
        assert!(bad(&|c| c.admin_listen = Some(c.listen)).contains("same address"));
        assert!(bad(&|c| c.namespace = Some("a b".into())).contains("namespace"));
        assert!(bad(&|c| c.ttl = Some(Duration::ZERO)).contains("ttl"));
        assert!(bad(&|c| c.api_key = Some(" ".into())).contains("API key"));
        assert!(bad(&|c| c.entry_secret = Some("short".into())).contains("at least 16"));
        assert!(
            bad(&|c| c.previous_entry_secrets = vec!["0123456789abcdef".into()])
                .contains("needs --entry-secret")
        );
        assert!(
            bad(&|c| {
                c.entry_secret = Some("0123456789abcdef".into());
                c.previous_entry_secrets = vec![String::new()];
            })
            .contains("--previous-entry-secret: a secret must be at least 16")
        );
    }

    #[test]
    fn routes_match_post_and_exact_paths() {
        let r = CachedRoutes::default();
        for p in DEFAULT_CACHED_PATHS {
            assert!(r.matches(&Method::POST, p));
        }
        assert!(r.matches(&Method::POST, "/v1/chat/completions/"));
        assert!(!r.matches(&Method::POST, "/v1/chat/completionsX"));
        assert!(!r.matches(&Method::DELETE, "/v1/chat/completions"));
        assert!(!r.matches(&Method::POST, "/v1/files"));
        assert!(CachedRoutes::new(["v1/x"]).is_err());
        assert!(!CachedRoutes::none().matches(&Method::POST, "/v1/chat/completions"));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("file://.mistral/cache"), "file://.mistral/cache");
        let c = Config {
            api_key: Some("sk-123".into()),
            engine: "postgres://u:pw@db/test".into(),
            entry_secret: Some("entry-secret-current".into()),
            previous_entry_secrets: vec!["entry-secret-previous".into()],
            ..Config::default()
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-123") && !dbg.contains("pw@"), "{dbg}");
        assert!(!dbg.contains("entry-secret-"), "{dbg}");
    }

    #[test]
    fn access_log_policies() {
        let (ok, bad) = (http::StatusCode::OK, http::StatusCode::BAD_GATEWAY);
        assert!(AccessLog::All.should_log(ok, false));
        assert!(!AccessLog::Off.should_log(bad, true));
        assert!(!AccessLog::Errors.should_log(ok, false));
        assert!(AccessLog::Errors.should_log(bad, false));
        assert!(AccessLog::Errors.should_log(ok, true), "a body cut short");
        assert!(AccessLog::Sample(1_000_000).should_log(bad, false));
        let logged = (0..10_000)
            .filter(|_| AccessLog::Sample(10).should_log(ok, false))
            .count();
        assert!((500..2_000).contains(&logged), "{logged} of 10000 at 1/10");
        assert!(AccessLog::Sample(1).should_log(ok, false));
        assert_eq!("1/0".parse::<AccessLog>().ok(), None);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_cache_mode("read-only"), Ok(CacheMode::ReadOnly));
        assert_eq!(parse_cache_mode("replay_only"), Ok(CacheMode::ReplayOnly));
        assert_eq!(parse_cache_mode("RW"), Ok(CacheMode::ReadWrite));
        assert!(parse_cache_mode("sometimes").is_err());
    }
}
