//! A response cache as tower middleware: [`CacheLayer`] and its engines.
//!
//! STUB module docs: owned by the cache work.

mod engine;
mod file;
mod layer;
mod memory;

pub use engine::{BoxEngine, CacheEngine, CacheError, DynCacheEngine};
pub use file::FileEngine;
pub use layer::CacheLayer;
pub use memory::MemoryEngine;

// ---- shared engines (owned by the engines work; keep these lines stable) ----
mod tiered;
mod url;
pub use tiered::TieredEngine;
pub use url::engine_from_url;
#[cfg(feature = "s3")]
mod object_store;
#[cfg(feature = "s3")]
pub use self::object_store::ObjectStoreEngine;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresEngine, SweeperHandle};
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisEngine;
