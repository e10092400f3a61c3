//! The storage contract behind [`CacheLayer`](crate::cache::CacheLayer): get and set of bytes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::fleet::SharedFlight;
use crate::BoxError;

/// What went wrong in a [`CacheEngine`] call.
///
/// [`CacheError::Miss`] is not a failure: it is how an engine says "no entry under
/// this key". Every other variant is a failure, which the cache layer treats as a
/// miss on read (fail-open) and logs and counts on write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// No entry is stored under the key (or it has expired).
    #[error("cache miss")]
    Miss,
    /// The backend failed (I/O, network, protocol, ...).
    #[error("cache backend error: {0}")]
    Backend(#[source] BoxError),
    /// The backend did not answer within the engine's operation timeout.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// The key is not acceptable to this engine (for example it could escape a directory).
    #[error("invalid cache key: {0}")]
    InvalidKey(String),
    /// The engine does not support this operation.
    #[error("operation not supported by this cache engine: {0}")]
    Unsupported(&'static str),
    /// The engine could not be configured (bad URL, missing option, ...).
    #[error("cache engine configuration error: {0}")]
    Config(String),
}

impl CacheError {
    /// Wraps any error as [`CacheError::Backend`].
    pub fn backend(err: impl Into<BoxError>) -> Self {
        CacheError::Backend(err.into())
    }

    /// `true` for [`CacheError::Miss`].
    pub fn is_miss(&self) -> bool {
        matches!(self, CacheError::Miss)
    }
}

/// A byte store for cache entries.
///
/// This mirrors the Go library's `CacheEngine`: `get` and `set` of bytes under a
/// string key. **`get` must return [`CacheError::Miss`] when no entry exists** (or
/// the entry expired); any other error means the backend failed. Keys handed to an
/// engine by the cache layer are lowercase hex SHA-256 digests (64 characters), but
/// engines should accept any key made of `[A-Za-z0-9._-]` that does not start with
/// a dot (file-like engines reject `.`-leading keys, which could name hidden or
/// parent entries), and may reject others with [`CacheError::InvalidKey`] on both
/// `get` and `set`.
///
/// Implementors write plain `async fn`s:
///
/// ```
/// use bytes::Bytes;
/// use mistral_tower::cache::{CacheEngine, CacheError};
/// use std::{collections::HashMap, sync::Mutex};
///
/// #[derive(Default)]
/// struct MapEngine(Mutex<HashMap<String, Bytes>>);
///
/// impl CacheEngine for MapEngine {
///     async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
///         self.0.lock().unwrap().get(key).cloned().ok_or(CacheError::Miss)
///     }
///     async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
///         self.0.lock().unwrap().insert(key.to_owned(), data);
///         Ok(())
///     }
/// }
/// ```
///
/// The provided methods have defaults, so a custom engine needs only `get` and
/// `set`. Entries written by the cache layer carry their own expiry time and are
/// checked on read, so an engine without native TTL support stays correct; native
/// TTL (`set_with_ttl`) only frees space sooner.
pub trait CacheEngine: Send + Sync + 'static {
    /// Reads the value stored under `key`, or [`CacheError::Miss`].
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, CacheError>> + Send;

    /// Stores `data` under `key`, replacing any previous value.
    fn set(&self, key: &str, data: Bytes) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Stores `data` under `key` and lets the backend drop it after `ttl` (if it can).
    ///
    /// The default ignores `ttl` and calls [`set`](CacheEngine::set).
    fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send {
        let _ = ttl;
        self.set(key, data)
    }

    /// Removes the entry under `key`. Removing an absent key is not an error.
    ///
    /// The default returns [`CacheError::Unsupported`].
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CacheError>> + Send {
        let _ = key;
        async { Err(CacheError::Unsupported("delete")) }
    }

    /// Lists the stored keys (for administration: stats, purge). Engines that
    /// cannot enumerate return [`CacheError::Unsupported`], the default.
    fn keys(&self) -> impl Future<Output = Result<Vec<String>, CacheError>> + Send {
        async { Err(CacheError::Unsupported("keys")) }
    }

    /// Reads the value under `key` without waiting, for engines that can answer
    /// synchronously (an in-memory engine): `Some` with what [`get`](CacheEngine::get)
    /// would return, or `None` to say "call `get`".
    ///
    /// The cache layer tries this first, so a hit on such an engine is answered inside
    /// `Service::call` with an already-completed future (no boxing, no await). The
    /// default returns `None`; an engine whose reads involve I/O keeps the default.
    fn try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        let _ = key;
        None
    }

    /// The part of this engine kept in this process's memory, which the cache layer
    /// reads and writes without a future (a hit on it is answered inside
    /// `Service::call`, and entries the layer encoded itself skip their checksum).
    ///
    /// **Sealed**: the argument is a token only this crate can name or build, so code
    /// outside the crate can neither call nor override this method; every engine keeps
    /// the default (`None`). [`MemoryEngine`] answers itself, a [`TieredEngine`] its
    /// memory front (a miss there still goes to [`get`](CacheEngine::get)), and
    /// [`BoxEngine`] and `Arc<E>` forward what they wrap.
    ///
    /// [`TieredEngine`]: super::TieredEngine
    /// [`MemoryEngine`]: super::MemoryEngine
    fn resident(&self, token: Token) -> Option<Resident<'_>> {
        let _ = token;
        None
    }

    /// The engine's fleet capability: a lease lock and a frame log per key shared by
    /// every process on the same store, with which identical concurrent misses in
    /// several processes make one upstream call (see [`SharedFlight`]).
    ///
    /// The default is `None`: single-flight then stays per process. The Redis and
    /// PostgreSQL engines return themselves; [`BoxEngine`], `Arc<E>` and
    /// [`TieredEngine`](super::TieredEngine) (its second level) forward it.
    fn fleet(&self) -> Option<&dyn SharedFlight> {
        None
    }
}

/// The sealed part of the engine contract (see [`CacheEngine::resident`]).
mod sealed {
    use std::fmt;
    use std::time::Duration;

    use bytes::Bytes;

    /// Proof that the caller is this crate: outside code can neither name nor build it.
    // Public in a private module: the sealed-method pattern (the type must be public
    // to appear in a public trait, and stays unnameable outside the crate).
    #[allow(unreachable_pub)]
    #[derive(Debug, Clone, Copy)]
    pub struct Token(pub(crate) ());

    /// An engine's in-process store, as seen by the cache layer.
    #[allow(unreachable_pub)]
    #[derive(Clone, Copy)]
    pub struct Resident<'a> {
        /// The store holding the entries.
        pub(crate) store: &'a dyn InProcess,
        /// `true` when it holds every entry of the engine (a miss there is a miss, and
        /// the layer writes into it directly); `false` for a front tier (a miss there
        /// goes on to `get`, and writes go through `set_with_ttl`).
        pub(crate) complete: bool,
    }

    impl fmt::Debug for Resident<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Resident")
                .field("complete", &self.complete)
                .finish_non_exhaustive()
        }
    }

    /// A store in this process's memory that remembers which entries the cache layer
    /// encoded itself (their checksum is then not recomputed on read).
    #[allow(unreachable_pub)]
    pub trait InProcess: Send + Sync {
        /// The entry under `key` and whether the layer stored it with `set_trusted`.
        fn get_with_trust(&self, key: &str) -> Option<(Bytes, bool)>;
        /// Stores an entry the layer has just encoded.
        fn set_trusted(&self, key: &str, data: Bytes, ttl: Option<Duration>);
    }
}

pub(crate) use sealed::{InProcess, Resident, Token};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`CacheEngine`], implemented for every engine.
///
/// You rarely name this trait: use [`BoxEngine`] to hold an engine chosen at run time.
pub trait DynCacheEngine: Send + Sync + 'static {
    /// See [`CacheEngine::get`].
    fn dyn_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, CacheError>>;
    /// See [`CacheEngine::set_with_ttl`].
    fn dyn_set<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
    /// See [`CacheEngine::delete`].
    fn dyn_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), CacheError>>;
    /// See [`CacheEngine::keys`].
    fn dyn_keys(&self) -> BoxFuture<'_, Result<Vec<String>, CacheError>>;
    /// A short description for `Debug` (never credentials).
    fn describe(&self) -> String;
    /// See [`CacheEngine::try_get_now`]. The default returns `None`.
    fn dyn_try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        let _ = key;
        None
    }
    /// See [`CacheEngine::resident`] (sealed). The default returns `None`.
    fn dyn_resident(&self, token: Token) -> Option<Resident<'_>> {
        let _ = token;
        None
    }
    /// See [`CacheEngine::fleet`]. The default returns `None`.
    fn dyn_fleet(&self) -> Option<&dyn SharedFlight> {
        None
    }
}

impl<E: CacheEngine> DynCacheEngine for E {
    fn dyn_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, CacheError>> {
        Box::pin(self.get(key))
    }
    fn dyn_set<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(self.set_with_ttl(key, data, ttl))
    }
    fn dyn_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(self.delete(key))
    }
    fn dyn_keys(&self) -> BoxFuture<'_, Result<Vec<String>, CacheError>> {
        Box::pin(self.keys())
    }
    fn describe(&self) -> String {
        std::any::type_name::<E>().to_owned()
    }
    fn dyn_try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        self.try_get_now(key)
    }
    fn dyn_resident(&self, token: Token) -> Option<Resident<'_>> {
        self.resident(token)
    }
    fn dyn_fleet(&self) -> Option<&dyn SharedFlight> {
        self.fleet()
    }
}

/// An engine chosen at run time: a cheap-to-clone `Arc<dyn DynCacheEngine>` that is
/// itself a [`CacheEngine`].
///
/// ```
/// use mistral_tower::cache::{BoxEngine, CacheLayer, MemoryEngine};
/// let engine = BoxEngine::new(MemoryEngine::new(1 << 20));
/// let _layer = CacheLayer::new(engine);
/// ```
#[derive(Clone)]
pub struct BoxEngine {
    inner: Arc<dyn DynCacheEngine>,
}

impl BoxEngine {
    /// Erases the engine's type.
    pub fn new<E: CacheEngine>(engine: E) -> Self {
        BoxEngine {
            inner: Arc::new(engine),
        }
    }

    /// Wraps an engine that is already shared.
    pub fn from_arc(engine: Arc<dyn DynCacheEngine>) -> Self {
        BoxEngine { inner: engine }
    }
}

impl fmt::Debug for BoxEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxEngine")
            .field(&self.inner.describe())
            .finish()
    }
}

impl CacheEngine for BoxEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.inner.dyn_get(key).await
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.inner.dyn_set(key, data, None).await
    }
    async fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.inner.dyn_set(key, data, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.inner.dyn_delete(key).await
    }
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        self.inner.dyn_keys().await
    }
    fn try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        self.inner.dyn_try_get_now(key)
    }
    fn resident(&self, token: Token) -> Option<Resident<'_>> {
        self.inner.dyn_resident(token)
    }
    fn fleet(&self) -> Option<&dyn SharedFlight> {
        self.inner.dyn_fleet()
    }
}

impl<E: CacheEngine> CacheEngine for Arc<E> {
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, CacheError>> + Send {
        (**self).get(key)
    }
    fn set(&self, key: &str, data: Bytes) -> impl Future<Output = Result<(), CacheError>> + Send {
        (**self).set(key, data)
    }
    fn set_with_ttl(
        &self,
        key: &str,
        data: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send {
        (**self).set_with_ttl(key, data, ttl)
    }
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CacheError>> + Send {
        (**self).delete(key)
    }
    fn keys(&self) -> impl Future<Output = Result<Vec<String>, CacheError>> + Send {
        (**self).keys()
    }
    fn try_get_now(&self, key: &str) -> Option<Result<Bytes, CacheError>> {
        (**self).try_get_now(key)
    }
    fn resident(&self, token: Token) -> Option<Resident<'_>> {
        (**self).resident(token)
    }
    fn fleet(&self) -> Option<&dyn SharedFlight> {
        (**self).fleet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[derive(Default)]
    struct Map(std::sync::Mutex<std::collections::HashMap<String, Bytes>>);

    impl CacheEngine for Map {
        async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .cloned()
                .ok_or(CacheError::Miss)
        }
        async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
            self.0.lock().unwrap().insert(key.to_owned(), data);
            Ok(())
        }
    }

    #[test]
    fn engines_are_send_sync_static() {
        assert_send_sync_static::<BoxEngine>();
        assert_send_sync_static::<Arc<Map>>();
        fn future_is_send<E: CacheEngine>(e: &E) {
            fn is_send<T: Send>(_: T) {}
            is_send(e.get("k"));
            is_send(e.set("k", Bytes::new()));
        }
        future_is_send(&Map::default());
        future_is_send(&BoxEngine::new(Map::default()));
    }

    #[tokio::test]
    async fn erased_engine_forwards_and_defaults_apply() {
        let e = BoxEngine::new(Map::default());
        assert!(e.get("a").await.unwrap_err().is_miss());
        e.set_with_ttl("a", Bytes::from_static(b"1"), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(e.get("a").await.unwrap(), "1");
        assert!(matches!(
            e.delete("a").await,
            Err(CacheError::Unsupported("delete"))
        ));
        assert!(format!("{e:?}").contains("Map"));
        // Engines that do not override `try_get_now` say "call get".
        assert!(e.try_get_now("a").is_none());
        // Nor `fleet`: single-flight stays per process.
        assert!(e.fleet().is_none());
        assert!(Arc::new(Map::default()).fleet().is_none());
    }
}
