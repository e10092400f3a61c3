//! STUB: owned by the cache work.

use std::path::PathBuf;

/// Stores entries as files under a directory.
#[derive(Debug, Clone)]
pub struct FileEngine {
    root: PathBuf,
}

impl FileEngine {
    /// An engine rooted at `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = dir.into();
        std::fs::create_dir_all(&root)?;
        Ok(FileEngine { root })
    }
    /// The root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}
