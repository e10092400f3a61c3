//! A cache engine on Redis: a single server (also over TLS) or a Redis Cluster.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, RedisEngine};
//!
//! # async fn run() -> Result<(), mistral_tower::cache::CacheError> {
//! let engine = RedisEngine::new("redis://127.0.0.1:6379")?
//!     .with_prefix("my-app:")
//!     .with_timeout(Duration::from_millis(250));
//! engine.set_with_ttl("k", Bytes::from_static(b"v"), Some(Duration::from_secs(60))).await?;
//! assert_eq!(engine.get("k").await?, "v");
//!
//! // A cluster: list a few nodes, the client discovers the rest.
//! let cluster = RedisEngine::cluster(["redis://127.0.0.1:7101", "redis://127.0.0.1:7102"])?;
//! # let _ = cluster;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use tokio::sync::OnceCell;

use super::contract::{CacheEngine, CacheError};

/// A [`CacheEngine`] on a Redis server or a Redis Cluster.
///
/// Values are stored as plain Redis strings under `prefix + key` (default prefix
/// `mistral-tower:`); [`set_with_ttl`](CacheEngine::set_with_ttl) uses
/// `SET key value PX ttl`, so Redis drops expired entries by itself. A single
/// server is reached through a [`ConnectionManager`], which reconnects by itself
/// after the server restarts; a cluster through the `cluster-async` client, which
/// follows slot moves. The connection is opened lazily on the first operation, so
/// building an engine never fails because the server is down: each operation
/// then fails (and the cache layer treats that as a miss). Every operation is
/// bounded by a timeout (default 500 ms) and reports [`CacheError::Timeout`].
///
/// Cheap to clone: clones share the connection. `Debug` shows the server
/// addresses with any password replaced by `***`.
#[derive(Clone)]
pub struct RedisEngine {
    backend: Arc<Backend>,
    prefix: Arc<str>,
    timeout: Duration,
}

struct Backend {
    kind: Kind,
    /// The URLs with passwords masked, for `Debug`.
    redacted: Vec<String>,
    /// The URLs as given (with credentials), to rebuild the client.
    urls: Vec<String>,
    /// A PEM root certificate to trust for TLS, instead of the built-in roots.
    root_cert: Option<Vec<u8>>,
}

enum Kind {
    Single {
        client: redis::Client,
        conn: OnceCell<ConnectionManager>,
    },
    Cluster {
        conn: OnceCell<ClusterConnection>,
    },
}

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn config_err(e: redis::RedisError) -> CacheError {
    CacheError::Config(format!("invalid Redis URL: {e}"))
}

/// A Redis error as a cache error: the client's own timeouts count as
/// [`CacheError::Timeout`].
fn redis_err(e: redis::RedisError, timeout: Duration) -> CacheError {
    if e.is_timeout() {
        CacheError::Timeout(timeout)
    } else {
        CacheError::backend(e)
    }
}

/// The timeout given to the Redis client itself: a little longer than the
/// engine's, which therefore fires first.
fn inner_timeout(timeout: Duration) -> Duration {
    timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_millis(100))
}

fn tls_certs(root_cert: Option<&[u8]>) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: root_cert.map(<[u8]>::to_vec),
    }
}

fn cluster_client(
    urls: &[String],
    root_cert: Option<&[u8]>,
    timeout: Duration,
) -> Result<ClusterClient, CacheError> {
    // The client's own timeouts are longer than the engine's, so a hung server
    // ends in the engine's clean `CacheError::Timeout`.
    let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
        .connection_timeout(inner_timeout(timeout))
        .response_timeout(inner_timeout(timeout))
        .retries(2);
    if root_cert.is_some() {
        builder = builder.certs(tls_certs(root_cert));
    }
    builder.build().map_err(config_err)
}

impl Backend {
    fn single(url: &str, root_cert: Option<Vec<u8>>) -> Result<Self, CacheError> {
        let client = match &root_cert {
            None => redis::Client::open(url),
            Some(pem) => redis::Client::build_with_tls(url, tls_certs(Some(pem))),
        }
        .map_err(config_err)?;
        Ok(Backend {
            kind: Kind::Single {
                client,
                conn: OnceCell::new(),
            },
            redacted: vec![redact_url(url)],
            urls: vec![url.to_owned()],
            root_cert,
        })
    }

    fn cluster(urls: Vec<String>, root_cert: Option<Vec<u8>>) -> Result<Self, CacheError> {
        // Validate the URLs now; the client used is built on first use.
        cluster_client(&urls, root_cert.as_deref(), RedisEngine::DEFAULT_TIMEOUT)?;
        Ok(Backend {
            kind: Kind::Cluster {
                conn: OnceCell::new(),
            },
            redacted: urls.iter().map(|u| redact_url(u)).collect(),
            urls,
            root_cert,
        })
    }
}

impl RedisEngine {
    /// The default key prefix, `mistral-tower:`.
    pub const DEFAULT_PREFIX: &'static str = "mistral-tower:";
    /// The default per-operation timeout, 500 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// An engine on the single server at `url`:
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS.
    ///
    /// This does not connect: the connection is opened on the first operation
    /// and re-opened by the client after failures. Fails with
    /// [`CacheError::Config`] when the URL is malformed.
    pub fn new(url: &str) -> Result<Self, CacheError> {
        Ok(Self::from_backend(Backend::single(url, None)?))
    }

    /// An engine on a Redis Cluster reached through the given seed node URLs
    /// (`redis://host:port` each; the client discovers the other nodes).
    pub fn cluster<I, S>(nodes: I) -> Result<Self, CacheError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = nodes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if urls.is_empty() {
            return Err(CacheError::Config("no Redis Cluster node given".into()));
        }
        Ok(Self::from_backend(Backend::cluster(urls, None)?))
    }

    fn from_backend(backend: Backend) -> Self {
        RedisEngine {
            backend: Arc::new(backend),
            prefix: Arc::from(Self::DEFAULT_PREFIX),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Trusts this PEM root certificate (for example a private CA) for
    /// `rediss://` connections, instead of the built-in web PKI roots. Call it
    /// right after construction: it replaces the (not yet opened) connection.
    pub fn with_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, CacheError> {
        let pem = Some(pem.into());
        let urls = self.backend.urls.clone();
        let backend = match self.backend.kind {
            Kind::Single { .. } => Backend::single(&urls[0], pem)?,
            Kind::Cluster { .. } => Backend::cluster(urls, pem)?,
        };
        self.backend = Arc::new(backend);
        Ok(self)
    }

    /// Sets the key prefix (default [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX)).
    /// Use distinct prefixes to share one Redis between applications or
    /// environments.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Sets the per-operation timeout (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)). It also bounds connecting, so
    /// a server that is down costs at most this long per operation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The per-operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `true` when this engine talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend.kind, Kind::Cluster { .. })
    }

    fn full_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    async fn conn(&self) -> Result<Conn, CacheError> {
        match &self.backend.kind {
            Kind::Single { client, conn } => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(inner_timeout(self.timeout))
                    .set_response_timeout(inner_timeout(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(1_000);
                let m = conn
                    .get_or_try_init(|| ConnectionManager::new_with_config(client.clone(), config))
                    .await
                    .map_err(|e| redis_err(e, self.timeout))?;
                Ok(Conn::Single(m.clone()))
            }
            Kind::Cluster { conn } => {
                let timeout = self.timeout;
                let backend = &self.backend;
                let c = conn
                    .get_or_try_init(|| async move {
                        let client =
                            cluster_client(&backend.urls, backend.root_cert.as_deref(), timeout)?;
                        client
                            .get_async_connection()
                            .await
                            .map_err(|e| redis_err(e, timeout))
                    })
                    .await?;
                Ok(Conn::Cluster(c.clone()))
            }
        }
    }

    /// Runs `op` under the operation timeout.
    pub(super) async fn timed<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, CacheError>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }

    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, CacheError> {
        let c = self.conn().await?;
        let r = match c {
            Conn::Single(mut m) => cmd.query_async(&mut m).await,
            Conn::Cluster(mut m) => cmd.query_async(&mut m).await,
        };
        r.map_err(|e| redis_err(e, self.timeout))
    }

    async fn scan_node<C: ClusterRoute>(
        conn: &mut C,
        pattern: &str,
        prefix_len: usize,
        route: Option<&RoutingInfo>,
        out: &mut Vec<String>,
        timeout: Duration,
    ) -> Result<(), CacheError> {
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<Vec<u8>>) = conn
                .run(&cmd, route)
                .await
                .and_then(|v| redis::from_redis_value(&v))
                .map_err(|e| redis_err(e, timeout))?;
            for k in batch {
                // Single-flight's locks, fences and streams are not entries.
                if let Some(rest) = k.get(prefix_len..)
                    && let Ok(s) = std::str::from_utf8(rest)
                    && !s.starts_with(super::redis_fleet::FLEET_KEYS)
                {
                    out.push(s.to_owned());
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Sends a command either normally or to one node of a cluster.
trait ClusterRoute {
    fn run(
        &mut self,
        cmd: &redis::Cmd,
        route: Option<&RoutingInfo>,
    ) -> impl Future<Output = redis::RedisResult<redis::Value>> + Send;
}

impl ClusterRoute for ConnectionManager {
    async fn run(
        &mut self,
        cmd: &redis::Cmd,
        _route: Option<&RoutingInfo>,
    ) -> redis::RedisResult<redis::Value> {
        cmd.query_async(self).await
    }
}

impl ClusterRoute for ClusterConnection {
    async fn run(
        &mut self,
        cmd: &redis::Cmd,
        route: Option<&RoutingInfo>,
    ) -> redis::RedisResult<redis::Value> {
        match route {
            Some(r) => self.route_command(cmd, r.clone()).await,
            None => cmd.query_async(self).await,
        }
    }
}

/// Escapes glob metacharacters for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The masters of a cluster as `(host, port)`, from `CLUSTER NODES`.
fn parse_cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags = fields[2];
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        // "host:port@cport[,hostname]"
        let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
        if let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
            && !host.is_empty()
        {
            out.push((host.to_owned(), port));
        }
    }
    out
}

/// Replaces the password in a URL with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if userinfo.is_empty() => String::new(),
                None => format!("{userinfo}:***"),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEngine")
            .field("urls", &self.backend.redacted)
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CacheEngine for RedisEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.full_key(key));
        let v: Option<Vec<u8>> = self.timed(self.query(&cmd)).await?;
        v.map(Bytes::from).ok_or(CacheError::Miss)
    }

    /// Single-flight across processes (see `redis_fleet.rs`).
    fn fleet(&self) -> Option<&dyn super::SharedFlight> {
        Some(self)
    }

    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.set_with_ttl(key, data, None).await
    }

    async fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let full = self.full_key(key);
        let mut cmd;
        match ttl {
            // Already expired: make sure no older value is served.
            Some(ttl) if ttl.is_zero() => {
                cmd = redis::cmd("DEL");
                cmd.arg(full);
            }
            Some(ttl) => {
                let ms = ttl.as_millis().max(1);
                let ms = u64::try_from(ms).unwrap_or(u64::MAX / 2);
                cmd = redis::cmd("SET");
                cmd.arg(full).arg(data.as_ref()).arg("PX").arg(ms);
            }
            None => {
                cmd = redis::cmd("SET");
                cmd.arg(full).arg(data.as_ref());
            }
        }
        self.timed(self.query::<redis::Value>(&cmd)).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.full_key(key));
        self.timed(self.query::<redis::Value>(&cmd)).await?;
        Ok(())
    }

    /// Lists keys under the prefix with `SCAN` (on every master for a cluster), without
    /// the keys of single-flight across processes (`fleet:{…}`, see `redis_fleet.rs`).
    /// This walks the whole keyspace: meant for administration, not hot paths,
    /// and bounded by ten times the operation timeout.
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let prefix_len = self.prefix.len();
        // Connecting is bounded like any operation, the walk more generously.
        let conn = self.timed(self.conn()).await?;
        let timeout = self.timeout;
        let fut = async {
            let mut out = Vec::new();
            match conn {
                Conn::Single(mut m) => {
                    Self::scan_node(&mut m, &pattern, prefix_len, None, &mut out, timeout).await?;
                }
                Conn::Cluster(mut c) => {
                    let nodes: String = redis::cmd("CLUSTER")
                        .arg("NODES")
                        .query_async(&mut c)
                        .await
                        .map_err(|e| redis_err(e, timeout))?;
                    let masters = parse_cluster_masters(&nodes);
                    if masters.is_empty() {
                        return Err(CacheError::backend("CLUSTER NODES listed no master"));
                    }
                    for (host, port) in masters {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host,
                            port,
                        });
                        Self::scan_node(
                            &mut c,
                            &pattern,
                            prefix_len,
                            Some(&route),
                            &mut out,
                            timeout,
                        )
                        .await?;
                    }
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        };
        let limit = self.timeout * 10;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact_url("redis://host:1"), "redis://host:1");
        let e = RedisEngine::new("redis://u:hunter2@127.0.0.1:1/").unwrap();
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("u:***@127.0.0.1:1"), "{dbg}");
        let c = RedisEngine::cluster(["redis://:hunter2@h:1"]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn parses_cluster_nodes() {
        let nodes = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,hostname4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,hostname2 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
aaaa 127.0.0.1:30009@31009 master,fail - 0 0 1 disconnected
";
        assert_eq!(
            parse_cluster_masters(nodes),
            vec![
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }

    #[test]
    fn escapes_glob() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[tokio::test]
    async fn closed_port_fails_per_operation_not_at_build() {
        // Port 1 is never a Redis server here.
        let e = RedisEngine::new("redis://127.0.0.1:1")
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let err = e.get("k").await.unwrap_err();
        assert!(
            matches!(err, CacheError::Backend(_) | CacheError::Timeout(_)),
            "{err:?}"
        );
    }
}
