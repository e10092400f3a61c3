//! STUB: owned by the cache work.

/// Caches responses of the inner service in an engine.
#[derive(Debug, Clone)]
pub struct CacheLayer<E> {
    engine: E,
}

impl<E> CacheLayer<E> {
    /// A layer over this engine with the default settings.
    pub fn new(engine: E) -> Self {
        CacheLayer { engine }
    }
    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }
}
