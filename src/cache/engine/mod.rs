//! Cache engines: the storage contract ([`CacheEngine`]) and its implementations.
//!
//! [`MemoryEngine`] and [`FileEngine`] are always built; [`TieredEngine`] puts one
//! engine in front of another; the Redis, PostgreSQL and S3 engines each sit behind
//! their cargo feature; [`engine_from_url`] picks one from configuration and
//! [`BoxEngine`] holds one chosen at run time.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::engine::{CacheEngine, MemoryEngine};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let engine = MemoryEngine::new(1 << 20);
//! engine.set("k", Bytes::from_static(b"v")).await.unwrap();
//! assert_eq!(engine.get("k").await.unwrap(), "v");
//! # });
//! ```

mod contract;
mod file;
pub mod fleet;
mod memory;
#[cfg(feature = "s3")]
mod object_store;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_fleet;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_fleet;
mod tiered;
mod url;

pub(crate) use contract::Token;
pub use contract::{BoxEngine, CacheEngine, CacheError, DynCacheEngine};
// For wrappers outside this module that forward the fast path (the proxy's tracker).
#[cfg(feature = "server")]
pub(crate) use contract::Resident;
pub use file::{DEFAULT_FILE_CACHE_DIR, FileEngine};
pub use fleet::{Acquired, FleetEvent, FleetLease, FleetRead, SharedFlight};
pub use memory::MemoryEngine;
#[cfg(feature = "s3")]
pub use object_store::ObjectStoreEngine;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresEngine, SweeperHandle};
#[cfg(feature = "redis")]
pub use redis::RedisEngine;
pub use tiered::TieredEngine;
pub use url::engine_from_url;
