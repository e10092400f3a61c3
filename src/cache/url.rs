//! STUB: owned by the engines work.

use super::{BoxEngine, CacheError};

/// Builds an engine from a URL such as `memory://`, `file://path`, `redis://...`.
pub async fn engine_from_url(url: &str) -> Result<BoxEngine, CacheError> {
    Err(CacheError::Config(format!("unsupported engine URL: {url}")))
}
