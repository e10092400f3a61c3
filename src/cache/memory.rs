//! STUB: owned by the cache work.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::{CacheEngine, CacheError};

/// An in-memory engine bounded by bytes.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    map: Mutex<HashMap<String, Bytes>>,
}

impl MemoryEngine {
    /// An engine holding at most `max_bytes` of values.
    pub fn new(max_bytes: u64) -> Self {
        let _ = max_bytes;
        MemoryEngine::default()
    }
}

impl CacheEngine for MemoryEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.map
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or(CacheError::Miss)
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.map.lock().unwrap().insert(key.to_owned(), data);
        Ok(())
    }
}
