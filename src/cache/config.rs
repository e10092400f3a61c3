//! The settings of a [`CacheLayer`](super::CacheLayer) and the state every service
//! built from it shares (engine, single-flight table, counters).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::control::{CacheMode, Cacheable, DefaultCacheable};
use super::flight::Flights;
use super::key::{DEFAULT_RAW_INDEX_BYTES, DefaultKeyFn, KeyFn, RawIndex};
use super::metrics::Metrics;
use super::sign::EntrySecrets;

/// A source of the current time in unix milliseconds (injectable for tests).
///
/// Closures `Fn() -> u64` implement this trait.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl<F> Clock for F
where
    F: Fn() -> u64 + Send + Sync + 'static,
{
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// How requests are separated between users.
#[derive(Clone)]
pub(crate) enum Tenant {
    /// Scope by a hash of the `Authorization` header (the default).
    Authorization,
    /// A fixed scope (a digest of a secret).
    Fixed([u8; 32]),
    /// One scope for everybody.
    Shared,
}

/// The layer-wide settings (immutable once services are built).
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) ttl: Option<Duration>,
    pub(crate) namespace: String,
    pub(crate) mode: CacheMode,
    pub(crate) cacheable: Arc<dyn Cacheable>,
    /// `true` while `cacheable` is [`DefaultCacheable`] (the client replaces it).
    pub(crate) default_cacheable: bool,
    /// Read the standard request `Cache-Control` as directives too.
    pub(crate) honor_cache_control: bool,
    pub(crate) key_fn: Arc<dyn KeyFn>,
    /// `true` while `key_fn` is [`DefaultKeyFn`] (its key is then derived on the stack).
    pub(crate) default_key: bool,
    /// Byte-identical repeats and their default keys (`None`: off).
    pub(crate) raw_index: Option<Arc<RawIndex>>,
    pub(crate) tenant: Tenant,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) get_timeout: Duration,
    pub(crate) set_timeout: Duration,
    pub(crate) flight_wait: Option<Duration>,
    /// Single-flight across processes through the engine's fleet capability.
    pub(crate) fleet: bool,
    /// The fleet leader's lease: how soon a dead leader is noticed.
    pub(crate) fleet_lease: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    /// Sign written entries and refuse read ones without a valid signature.
    pub(crate) secrets: Option<Arc<EntrySecrets>>,
}

impl Config {
    pub(crate) fn new() -> Self {
        Config {
            ttl: None,
            namespace: String::new(),
            mode: CacheMode::ReadWrite,
            cacheable: Arc::new(DefaultCacheable),
            default_cacheable: true,
            honor_cache_control: false,
            key_fn: Arc::new(DefaultKeyFn),
            default_key: true,
            raw_index: Some(Arc::new(RawIndex::new(DEFAULT_RAW_INDEX_BYTES))),
            tenant: Tenant::Authorization,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            get_timeout: DEFAULT_GET_TIMEOUT,
            set_timeout: DEFAULT_SET_TIMEOUT,
            flight_wait: Some(DEFAULT_FLIGHT_WAIT),
            fleet: true,
            fleet_lease: DEFAULT_FLEET_LEASE,
            clock: Arc::new(SystemClock),
            secrets: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenant = match self.tenant {
            Tenant::Authorization => "authorization",
            Tenant::Fixed(_) => "fixed (secret)",
            Tenant::Shared => "shared",
        };
        f.debug_struct("Config")
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .field("honor_cache_control", &self.honor_cache_control)
            .field("tenant", &tenant)
            .field("max_request_body", &self.max_request_body)
            .field("max_response_body", &self.max_response_body)
            .field("get_timeout", &self.get_timeout)
            .field("set_timeout", &self.set_timeout)
            .field("flight_wait", &self.flight_wait)
            .field("entry_secrets", &self.secrets)
            .field("fleet", &self.fleet)
            .field("fleet_lease", &self.fleet_lease)
            .finish_non_exhaustive()
    }
}

/// Default request body limit: 4 MiB.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 4 << 20;
/// Default response body limit: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 16 << 20;
/// Default time an engine `get` may take before it counts as a miss: 1 s.
pub const DEFAULT_GET_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time an engine `set` may take (in the background) before it is abandoned: 10 s.
pub const DEFAULT_SET_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a follower waits for the leader's response head: 120 s.
pub const DEFAULT_FLIGHT_WAIT: Duration = Duration::from_secs(120);
/// Default lease of a fleet leader (see [`CacheLayer::fleet_lease`](super::CacheLayer::fleet_lease)): 10 s.
pub const DEFAULT_FLEET_LEASE: Duration = Duration::from_secs(10);

/// The state every service built from one layer shares: engine, flights, metrics.
#[derive(Debug)]
pub(crate) struct Shared<E> {
    pub(crate) engine: E,
    pub(crate) flights: Arc<Flights>,
    pub(crate) metrics: Metrics,
    /// Skips the engine while it keeps failing.
    pub(crate) breaker: super::breaker::Breaker,
}
