//! A cache engine on PostgreSQL: one table of key, value and expiry, through a connection pool.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, PostgresEngine};
//!
//! # async fn run() -> Result<(), mistral_tower::cache::CacheError> {
//! let engine = PostgresEngine::new("postgres://postgres@127.0.0.1:5432/test")?
//!     .with_table("llm_cache")?
//!     .with_timeout(Duration::from_secs(2));
//! // Delete expired rows every minute, until `_sweeper` is dropped.
//! let _sweeper = engine.spawn_sweeper(Duration::from_secs(60));
//! engine.set_with_ttl("k", Bytes::from_static(b"v"), Some(Duration::from_secs(3600))).await?;
//! assert_eq!(engine.get("k").await?, "v");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use super::contract::{CacheEngine, CacheError};
use super::postgres_fleet::FleetSql;
use crate::cache::Chain;

/// A [`CacheEngine`] on a PostgreSQL table.
///
/// The table (default `mistral_tower_cache`) is created on first use if it is
/// missing:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS mistral_tower_cache (
///     key        text PRIMARY KEY,
///     value      bytea NOT NULL,
///     expires_at timestamptz NULL,
///     created_at timestamptz NOT NULL DEFAULT now()
/// );
/// CREATE INDEX IF NOT EXISTS mistral_tower_cache_expires_idx
///     ON mistral_tower_cache (expires_at) WHERE expires_at IS NOT NULL;
/// ```
///
/// `set` is an upsert; `get` ignores rows whose `expires_at` has passed (by the
/// database clock); [`PostgresEngine::spawn_sweeper`] deletes them in the
/// background. The pool (deadpool-postgres over tokio-postgres, without TLS)
/// connects lazily: building an engine never fails because the server is down,
/// each operation fails instead (the cache layer treats that as a miss). Every
/// operation, including waiting for a connection, is bounded by a timeout
/// (default 1 s) and reports [`CacheError::Timeout`].
///
/// Cheap to clone: clones share the pool. `Debug` shows user, hosts, database
/// and table, never the password.
#[derive(Clone)]
pub struct PostgresEngine {
    pool: Pool,
    table: Arc<Table>,
    timeout: Duration,
    describe: Arc<str>,
}

struct Table {
    name: String,
    ready: OnceCell<()>,
    create: String,
    get: String,
    set: String,
    delete: String,
    keys: String,
    sweep: String,
    fleet: FleetSql,
}

impl Table {
    fn new(name: &str) -> Result<Self, CacheError> {
        validate_identifier(name)?;
        // Validated as [A-Za-z_][A-Za-z0-9_]*, quoted anyway so case is kept.
        let t = format!("\"{name}\"");
        let idx = format!("\"{name}_expires_idx\"");
        let fleet = FleetSql::new(name);
        Ok(Table {
            name: name.to_owned(),
            ready: OnceCell::new(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 key text PRIMARY KEY, \
                 value bytea NOT NULL, \
                 expires_at timestamptz NULL, \
                 created_at timestamptz NOT NULL DEFAULT now()); \
                 CREATE INDEX IF NOT EXISTS {idx} ON {t} (expires_at) \
                 WHERE expires_at IS NOT NULL; {}",
                fleet.create
            ),
            get: format!(
                "SELECT value FROM {t} WHERE key = $1 \
                 AND (expires_at IS NULL OR expires_at > now())"
            ),
            set: format!(
                "INSERT INTO {t} (key, value, expires_at, created_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3), now()) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                 expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            keys: format!(
                "SELECT key FROM {t} WHERE expires_at IS NULL OR expires_at > now() ORDER BY key"
            ),
            sweep: format!("DELETE FROM {t} WHERE expires_at <= now()"),
            fleet,
        })
    }
}

/// Accepts `[A-Za-z_][A-Za-z0-9_]*` up to 48 characters (so the derived index
/// name stays within PostgreSQL's 63-byte identifier limit).
fn validate_identifier(name: &str) -> Result<(), CacheError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 48;
    if ok {
        Ok(())
    } else {
        Err(CacheError::Config(format!(
            "invalid PostgreSQL table name {name:?}: use letters, digits and '_' \
             (not starting with a digit), at most 48 characters"
        )))
    }
}

impl PostgresEngine {
    /// The default table name, `mistral_tower_cache`.
    pub const DEFAULT_TABLE: &'static str = "mistral_tower_cache";
    /// The default per-operation timeout, 1 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default maximum number of pooled connections.
    pub const DEFAULT_POOL_SIZE: usize = 16;

    /// An engine for the database at `url`: a libpq-style URL
    /// (`postgres://user:password@host:port/dbname`, `postgresql://...`) or
    /// key-value string (`host=... user=... dbname=...`), as accepted by
    /// [`tokio_postgres::Config`]. TLS is not supported (`sslmode=require`
    /// fails on connect).
    ///
    /// This does not connect. Fails with [`CacheError::Config`] when the URL
    /// does not parse.
    pub fn new(url: &str) -> Result<Self, CacheError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| CacheError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        Self::from_config(config)
    }

    /// An engine from a parsed [`tokio_postgres::Config`] with a pool of
    /// [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE) connections.
    ///
    /// Connecting is bounded by the operation timeout (a `connect_timeout` in
    /// the configuration applies as well).
    pub fn from_config(config: tokio_postgres::Config) -> Result<Self, CacheError> {
        let describe = describe_config(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(Self::DEFAULT_POOL_SIZE)
            .build()
            .map_err(|e| CacheError::Config(format!("cannot build PostgreSQL pool: {e}")))?;
        let mut engine = Self::from_pool(pool)?;
        engine.describe = Arc::from(describe);
        Ok(engine)
    }

    /// An engine on an existing pool (for example one your application already
    /// shares).
    pub fn from_pool(pool: Pool) -> Result<Self, CacheError> {
        Ok(PostgresEngine {
            pool,
            table: Arc::new(Table::new(Self::DEFAULT_TABLE)?),
            timeout: Self::DEFAULT_TIMEOUT,
            describe: Arc::from("pool"),
        })
    }

    /// Uses the table `name` (created if missing). Fails with
    /// [`CacheError::Config`] unless `name` is a plain identifier
    /// (`[A-Za-z_][A-Za-z0-9_]*`, at most 48 characters).
    pub fn with_table(mut self, name: &str) -> Result<Self, CacheError> {
        self.table = Arc::new(Table::new(name)?);
        Ok(self)
    }

    /// Sets the per-operation timeout (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The per-operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Creates the table and its index if they are missing. Operations do this
    /// by themselves on first use; call it to fail early.
    pub async fn create_table(&self) -> Result<(), CacheError> {
        self.timed(async {
            let client = self.client().await?;
            self.ensure_table(&client).await
        })
        .await
    }

    /// Deletes every expired row now and returns how many were deleted (and the
    /// expired rows of single-flight across processes, not counted).
    pub async fn sweep_expired(&self) -> Result<u64, CacheError> {
        self.timed(async {
            let client = self.ready_client().await?;
            client
                .batch_execute(&self.table.fleet.sweep)
                .await
                .map_err(CacheError::backend)?;
            client
                .execute(self.table.sweep.as_str(), &[])
                .await
                .map_err(CacheError::backend)
        })
        .await
    }

    pub(super) fn fleet_sql(&self) -> &FleetSql {
        &self.table.fleet
    }

    /// Starts a task that calls [`sweep_expired`](Self::sweep_expired) every
    /// `interval` (errors are logged with `tracing` and retried next time).
    /// The task stops when the returned handle is dropped.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn spawn_sweeper(&self, interval: Duration) -> SweeperHandle {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match engine.sweep_expired().await {
                    Ok(n) => {
                        tracing::debug!(deleted = n, table = %engine.table.name, "swept expired cache rows")
                    }
                    Err(e) => {
                        tracing::warn!(error = %Chain(&e), table = %engine.table.name, "cache sweep failed")
                    }
                }
            }
        });
        SweeperHandle { task }
    }

    pub(super) async fn timed<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, CacheError>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, CacheError> {
        self.pool.get().await.map_err(CacheError::backend)
    }

    async fn ensure_table(&self, client: &deadpool_postgres::Object) -> Result<(), CacheError> {
        self.table
            .ready
            .get_or_try_init(|| async {
                match client.batch_execute(&self.table.create).await {
                    Ok(()) => Ok(()),
                    // Another process created it at the same moment.
                    Err(e)
                        if e.code().is_some_and(|c| {
                            *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                                || *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE
                                || *c == tokio_postgres::error::SqlState::DUPLICATE_OBJECT
                        }) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(CacheError::backend(e)),
                }
            })
            .await
            .map(|_| ())
    }

    pub(super) async fn ready_client(&self) -> Result<deadpool_postgres::Object, CacheError> {
        let client = self.client().await?;
        self.ensure_table(&client).await?;
        Ok(client)
    }
}

fn describe_config(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "user={:?} hosts={:?} ports={:?} dbname={:?}",
        config.get_user(),
        hosts,
        config.get_ports(),
        config.get_dbname()
    )
}

impl fmt::Debug for PostgresEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEngine")
            .field("server", &self.describe)
            .field("table", &self.table.name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CacheEngine for PostgresEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.timed(async {
            let client = self.ready_client().await?;
            let stmt = client
                .prepare_cached(&self.table.get)
                .await
                .map_err(CacheError::backend)?;
            let row = client
                .query_opt(&stmt, &[&key])
                .await
                .map_err(CacheError::backend)?;
            match row {
                Some(row) => {
                    let v: Vec<u8> = row.try_get(0).map_err(CacheError::backend)?;
                    Ok(Bytes::from(v))
                }
                None => Err(CacheError::Miss),
            }
        })
        .await
    }

    /// Single-flight across processes (see `postgres_fleet.rs`).
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
        let secs: Option<f64> = ttl.map(|d| d.as_secs_f64());
        self.timed(async {
            let client = self.ready_client().await?;
            let stmt = client
                .prepare_cached(&self.table.set)
                .await
                .map_err(CacheError::backend)?;
            client
                .execute(&stmt, &[&key, &data.as_ref(), &secs])
                .await
                .map_err(CacheError::backend)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.timed(async {
            let client = self.ready_client().await?;
            let stmt = client
                .prepare_cached(&self.table.delete)
                .await
                .map_err(CacheError::backend)?;
            client
                .execute(&stmt, &[&key])
                .await
                .map_err(CacheError::backend)?;
            Ok(())
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        self.timed(async {
            let client = self.ready_client().await?;
            let rows = client
                .query(self.table.keys.as_str(), &[])
                .await
                .map_err(CacheError::backend)?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(CacheError::backend))
                .collect()
        })
        .await
    }
}

/// Stops the sweeper task started by [`PostgresEngine::spawn_sweeper`] when
/// dropped.
#[derive(Debug)]
pub struct SweeperHandle {
    task: JoinHandle<()>,
}

impl SweeperHandle {
    /// Stops the sweeper now (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for SweeperHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_table_names() {
        for ok in ["mistral_tower_cache", "_t", "T1", "a"] {
            assert!(validate_identifier(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1t",
            "t-1",
            "t;drop table x",
            "a.b",
            "\"q\"",
            "é",
            &"x".repeat(49),
        ] {
            assert!(
                matches!(validate_identifier(bad), Err(CacheError::Config(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn debug_hides_password_and_build_is_lazy() {
        let e = PostgresEngine::new("postgres://me:hunter2@127.0.0.1:1/db").unwrap();
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("me") && dbg.contains("db"), "{dbg}");
        // Nothing listens on port 1: the operation fails, the build did not.
        let err = e.get("k").await.unwrap_err();
        assert!(
            matches!(err, CacheError::Backend(_) | CacheError::Timeout(_)),
            "{err:?}"
        );
    }
}
