//! [`FileEngine`]: entries as files in a sharded directory, written atomically.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, FileEngine};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = FileEngine::new(dir.path()).unwrap();
//! engine.set("0123abcd", Bytes::from_static(b"v")).await.unwrap();
//! assert_eq!(engine.get("0123abcd").await.unwrap(), "v");
//! assert!(dir.path().join("01").join("0123abcd").is_file());
//! assert!(engine.get("../etc/passwd").await.is_err());
//! # });
//! ```
//!
//! See [`FileEngine`] for the layout and guarantees.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::contract::{CacheEngine, CacheError};

const MAGIC: &[u8; 8] = b"MTFE\0\0\0\x01";
const HEADER: usize = 16;

/// The default cache directory, relative to the working directory.
pub const DEFAULT_FILE_CACHE_DIR: &str = ".mistral/cache";

/// Stores entries as files under a directory.
///
/// # Layout
///
/// `<root>/<first two characters of the key>/<key>`. Each file starts with an 8-byte
/// magic `MTFE\0\0\0\x01` and the expiry time (unix milliseconds, big-endian, `0` =
/// never), followed by the value. Writes go to a uniquely named temporary file
/// (`.tmp-<pid>-<random>`) in the same directory, are `fsync`ed and then renamed over
/// the target, so readers (in this or another process) see either the old or the new
/// value, never a torn one; a temporary file left behind by a crash is ignored (and can
/// be removed with [`FileEngine::remove_stale_temp_files`]). On Unix, directories are
/// created `0700` and files `0600`.
///
/// Keys must be 1 to 200 characters of `[A-Za-z0-9_.-]` and must not start with `.`, so
/// no key can name a path outside the root.
#[derive(Debug, Clone)]
pub struct FileEngine {
    root: PathBuf,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn create_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

fn validate(key: &str) -> Result<(), CacheError> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CacheError::InvalidKey(key.chars().take(80).collect()))
    }
}

fn io_err(e: io::Error) -> CacheError {
    CacheError::backend(e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, CacheError> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.spawn_blocking(f).await.map_err(CacheError::backend)?,
        Err(_) => f(),
    }
}

impl FileEngine {
    /// An engine rooted at `dir` (created, `0700` on Unix, if missing).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let root = dir.into();
        create_dir(&root)?;
        Ok(FileEngine { root })
    }

    /// An engine at [`DEFAULT_FILE_CACHE_DIR`] (`.mistral/cache`).
    pub fn open_default() -> io::Result<Self> {
        Self::new(DEFAULT_FILE_CACHE_DIR)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`, after validating the key.
    pub fn path_for(&self, key: &str) -> Result<PathBuf, CacheError> {
        validate(key)?;
        let shard = if key.len() >= 2 { &key[..2] } else { "_" };
        Ok(self.root.join(shard).join(key))
    }

    fn read(path: &Path) -> Result<Bytes, CacheError> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CacheError::Miss),
            Err(e) => return Err(io_err(e)),
        };
        if data.len() < HEADER || &data[..8] != MAGIC {
            // Not written by this engine (or torn by an external tool): a miss that the
            // next write replaces.
            return Err(CacheError::Miss);
        }
        let expires = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
        if expires != 0 && now_ms() >= expires {
            let _ = fs::remove_file(path);
            return Err(CacheError::Miss);
        }
        Ok(Bytes::from(data).slice(HEADER..))
    }

    fn write(path: &Path, data: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let dir = path.parent().expect("sharded path has a parent");
        create_dir(dir).map_err(io_err)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let res = (|| {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            let expires = ttl.map_or(0, |t| {
                now_ms()
                    .saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                    .max(1)
            });
            f.write_all(MAGIC)?;
            f.write_all(&expires.to_be_bytes())?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        Ok(())
    }

    /// Removes temporary files older than `age` left behind by crashed writers. Returns
    /// how many were removed.
    pub fn remove_stale_temp_files(&self, age: Duration) -> io::Result<usize> {
        let mut n = 0;
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                let stale = f.metadata()?.modified()?.elapsed().is_ok_and(|e| e >= age);
                if f.file_name().to_string_lossy().starts_with(".tmp-") && stale {
                    fs::remove_file(f.path())?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

impl CacheEngine for FileEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        let path = self.path_for(key)?;
        blocking(move || Self::read(&path)).await
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
        let path = self.path_for(key)?;
        blocking(move || Self::write(&path, &data, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let path = self.path_for(key)?;
        blocking(move || match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(e)),
            _ => Ok(()),
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        let root = self.root.clone();
        blocking(move || {
            let mut keys = Vec::new();
            for shard in fs::read_dir(&root).map_err(io_err)? {
                let shard = shard.map_err(io_err)?;
                if !shard.file_type().map_err(io_err)?.is_dir() {
                    continue;
                }
                for f in fs::read_dir(shard.path()).map_err(io_err)? {
                    let name = f.map_err(io_err)?.file_name();
                    if let Some(name) = name.to_str()
                        && validate(name).is_ok()
                    {
                        keys.push(name.to_owned());
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path().join("c")).unwrap();
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            ".tmp-1",
            "a\0b",
            "é",
        ] {
            assert!(
                matches!(
                    e.set(bad, Bytes::from_static(b"x")).await,
                    Err(CacheError::InvalidKey(_))
                ),
                "{bad:?}"
            );
            assert!(matches!(e.get(bad).await, Err(CacheError::InvalidKey(_))));
        }
        // Nothing was written outside the root.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn leftover_temp_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path()).unwrap();
        let key = "ab".repeat(32);
        // A writer crashed after writing its temporary file, before the rename.
        let shard = dir.path().join("ab");
        create_dir(&shard).unwrap();
        fs::write(shard.join(".tmp-999-0000000000000001"), b"partial garbage").unwrap();
        assert!(e.get(&key).await.unwrap_err().is_miss());
        assert!(e.keys().await.unwrap().is_empty());
        e.set(&key, Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(e.get(&key).await.unwrap(), "v");
        assert_eq!(e.keys().await.unwrap(), vec![key.clone()]);
        assert_eq!(e.remove_stale_temp_files(Duration::ZERO).unwrap(), 1);
        assert_eq!(e.get(&key).await.unwrap(), "v");
        // A torn target file (not written by the engine) is a miss, then overwritten.
        fs::write(e.path_for(&key).unwrap(), b"MTF").unwrap();
        assert!(e.get(&key).await.unwrap_err().is_miss());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path().join("root")).unwrap();
        e.set("cafe", Bytes::from_static(b"v")).await.unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(e.path_for("cafe").unwrap()), 0o600);
        assert_eq!(mode(dir.path().join("root").join("ca")), 0o700);
        assert_eq!(mode(dir.path().join("root")), 0o700);
    }

    #[tokio::test]
    async fn ttl_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path()).unwrap();
        e.set_with_ttl(
            "k1",
            Bytes::from_static(b"v"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
        e.set_with_ttl(
            "k2",
            Bytes::from_static(b"v"),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(e.get("k1").await.unwrap_err().is_miss());
        assert_eq!(e.get("k2").await.unwrap(), "v");
        e.delete("k2").await.unwrap();
        e.delete("k2").await.unwrap();
        assert!(e.get("k2").await.unwrap_err().is_miss());
    }

    #[tokio::test]
    async fn concurrent_writers_never_tear() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path()).unwrap();
        let a = Bytes::from(vec![b'a'; 100_000]);
        let b = Bytes::from(vec![b'b'; 100_000]);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (e, v) = (e.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
            tasks.push(tokio::spawn(async move {
                e.set("same", v).await.unwrap();
                let got = e.get("same").await.unwrap();
                assert!(got == a_or_b(&got), "torn read");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        fn a_or_b(g: &Bytes) -> Bytes {
            assert!(g.iter().all(|&c| c == g[0]) && g.len() == 100_000);
            g.clone()
        }
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path().join("sa")).unwrap().count(), 1);
    }
}
