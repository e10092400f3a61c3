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
//!
//! // With a hot tier (what `file://` URLs build): hits are answered from memory after
//! // a `stat` shows the file is still the one that was read or written.
//! let hot = FileEngine::new(dir.path()).unwrap().with_hot_tier(16 << 20);
//! assert_eq!(hot.get("0123abcd").await.unwrap(), "v");
//! std::fs::remove_file(dir.path().join("01").join("0123abcd")).unwrap();
//! assert!(hot.get("0123abcd").await.unwrap_err().is_miss());
//! # });
//! ```
//!
//! See [`FileEngine`] for the layout and guarantees.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::super::bounded::Bounded;
use super::contract::{CacheEngine, CacheError, InProcess, Resident, Token};

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
///
/// # Hot tier
///
/// [`FileEngine::with_hot_tier`] (on by default for `file://` URLs, see
/// [`engine_from_url`](super::engine_from_url)) keeps recently read and written values
/// in a memory budget as well, so a hit neither reads the file nor leaves the runtime
/// thread (no `spawn_blocking`): the cache layer answers it inside `Service::call`. The
/// files stay the source of truth, and a value is served from memory only after one
/// `stat` of its file shows the very file it came from (same inode, size and
/// modification time; every write replaces the file by a rename, so a new value is a new
/// inode) and its expiry has not passed. So an entry deleted by `mistral-cache purge` or
/// by hand, replaced by another process or replica sharing the directory, or expired is
/// never served from memory; the next read goes to the file. The cost is one `stat`
/// system call on the runtime thread per hit (metadata the kernel keeps cached), which
/// is also all a hit blocks on: a directory on a slow network file system may want
/// `hot_bytes=0`.
#[derive(Clone)]
pub struct FileEngine {
    root: PathBuf,
    hot: Option<HotTier>,
}

impl fmt::Debug for FileEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileEngine")
            .field("root", &self.root)
            .field("hot_max_bytes", &self.hot.as_ref().map(|h| h.max_bytes))
            .finish()
    }
}

/// What identifies one version of an entry's file: every write renames a new file over
/// the old one (a new inode), and an edit in place changes the size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    ino: (u64, u64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            },
        }
    }
}

/// A value of the hot tier: the bytes of one version of the file, and how to check
/// that the file is still that version.
struct HotValue {
    data: Bytes,
    /// Unix milliseconds, `0` = never (as in the file's header).
    expires: u64,
    stamp: Stamp,
    path: PathBuf,
}

/// The in-memory copies of a [`FileEngine`] (see "Hot tier" there).
#[derive(Clone)]
struct HotTier {
    cache: Arc<Bounded<Box<str>, Arc<HotValue>>>,
    max_bytes: u64,
}

impl HotTier {
    fn new(max_bytes: u64) -> Self {
        HotTier {
            cache: Arc::new(Bounded::new(max_bytes)),
            max_bytes,
        }
    }

    /// The value under `key` if its file is still the version it was read from.
    fn get(&self, key: &str) -> Option<Bytes> {
        let v = self.cache.get(key)?;
        let fresh = (v.expires == 0 || now_ms() < v.expires)
            && fs::metadata(&v.path).is_ok_and(|m| Stamp::of(&m) == v.stamp);
        if fresh {
            Some(v.data.clone())
        } else {
            // Deleted, replaced or expired: the file decides from now on.
            self.cache.remove(key);
            None
        }
    }

    fn insert(&self, key: &str, data: Bytes, expires: u64, stamp: Stamp, path: PathBuf) {
        // One value never takes more than a quarter of the budget.
        if data.len() as u64 > self.max_bytes / 4 {
            self.cache.remove(key);
            return;
        }
        let weight = (key.len() + data.len() + path.as_os_str().len() + 128) as u64;
        // The deadline lets eviction take expired copies first (`get` checks it too).
        let ttl = (expires != 0).then(|| Duration::from_millis(expires.saturating_sub(now_ms())));
        let v = HotValue {
            data,
            expires,
            stamp,
            path,
        };
        self.cache.insert(Box::from(key), Arc::new(v), weight, ttl);
    }
}

/// The cache layer's in-process path: a partial store (a miss here goes on to `get`).
impl InProcess for HotTier {
    fn get_with_trust(&self, key: &str) -> Option<(Bytes, bool)> {
        // Bytes that came from a file are verified by the layer on every read.
        self.get(key).map(|d| (d, false))
    }

    /// Not used for a partial store (the layer writes through `set_with_ttl`); dropping
    /// the copy keeps the rule that memory never holds what the file does not.
    fn set_trusted(&self, key: &str, _data: Bytes, _ttl: Option<Duration>) {
        self.cache.remove(key);
    }
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
        Ok(FileEngine { root, hot: None })
    }

    /// Keeps up to `max_bytes` of recently used values in memory as well (`0`: none), so
    /// hits are answered without reading the file or leaving the runtime thread. See
    /// "Hot tier" on [`FileEngine`] for when a copy is served.
    pub fn with_hot_tier(mut self, max_bytes: u64) -> Self {
        self.hot = (max_bytes > 0).then(|| HotTier::new(max_bytes));
        self
    }

    /// The hot tier's byte budget (`None`: no hot tier).
    pub fn hot_tier_max_bytes(&self) -> Option<u64> {
        self.hot.as_ref().map(|h| h.max_bytes)
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

    /// Reads the value under `path`, with its expiry and the stamp of the file it came
    /// from (taken from the open descriptor, so it names exactly the bytes read).
    fn read(path: &Path) -> Result<(Bytes, u64, Stamp), CacheError> {
        let not_found = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                CacheError::Miss
            } else {
                io_err(e)
            }
        };
        let mut f = fs::File::open(path).map_err(not_found)?;
        let stamp = Stamp::of(&f.metadata().map_err(io_err)?);
        let mut data = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
        f.read_to_end(&mut data).map_err(io_err)?;
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
        Ok((Bytes::from(data).slice(HEADER..), expires, stamp))
    }

    /// Writes a new file for `path` and returns its expiry and stamp.
    fn write(path: &Path, data: &[u8], ttl: Option<Duration>) -> Result<(u64, Stamp), CacheError> {
        let dir = path.parent().expect("sharded path has a parent");
        create_dir(dir).map_err(io_err)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let expires = ttl.map_or(0, |t| {
            now_ms()
                .saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                .max(1)
        });
        let res = (|| {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&expires.to_be_bytes())?;
            f.write_all(data)?;
            f.sync_all()?;
            // After the last write: the rename keeps inode, size and modification time.
            let stamp = Stamp::of(&f.metadata()?);
            drop(f);
            fs::rename(&tmp, path)?;
            Ok(stamp)
        })();
        match res {
            Ok(stamp) => Ok((expires, stamp)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_err(e))
            }
        }
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
        let Some(hot) = &self.hot else {
            return blocking(move || Self::read(&path).map(|(v, ..)| v)).await;
        };
        if let Some(v) = hot.get(key) {
            return Ok(v);
        }
        let p = path.clone();
        let (data, expires, stamp) = blocking(move || Self::read(&p)).await?;
        hot.insert(key, data.clone(), expires, stamp, path);
        Ok(data)
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
        let Some(hot) = &self.hot else {
            return blocking(move || Self::write(&path, &data, ttl).map(drop)).await;
        };
        let (p, d) = (path.clone(), data.clone());
        match blocking(move || Self::write(&p, &d, ttl)).await {
            Ok((expires, stamp)) => {
                hot.insert(key, data, expires, stamp, path);
                Ok(())
            }
            Err(e) => {
                hot.cache.remove(key);
                Err(e)
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let path = self.path_for(key)?;
        if let Some(hot) = &self.hot {
            hot.cache.remove(key);
        }
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

    /// The hot tier, if any, as a partial store: a hit there (after its `stat`) is
    /// answered without a future, a miss there goes on to [`get`](CacheEngine::get).
    fn resident(&self, _: Token) -> Option<Resident<'_>> {
        self.hot.as_ref().map(|h| Resident {
            store: h as &dyn InProcess,
            complete: false,
        })
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
    async fn hot_tier_keeps_what_was_read_or_written_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileEngine::new(dir.path()).unwrap().with_hot_tier(4096);
        let hot = e.hot.as_ref().unwrap();
        e.set("small", Bytes::from_static(b"v")).await.unwrap();
        assert!(hot.cache.contains_key("small"));
        // Over a quarter of the budget: on disk only.
        let big = Bytes::from(vec![b'x'; 2000]);
        e.set("big", big.clone()).await.unwrap();
        assert!(!hot.cache.contains_key("big"));
        assert_eq!(e.get("big").await.unwrap(), big);
        assert!(!hot.cache.contains_key("big"));
        // A read fills it; a delete or a failed check empties it.
        FileEngine::new(dir.path())
            .unwrap()
            .set("other", Bytes::from_static(b"o"))
            .await
            .unwrap();
        assert_eq!(e.get("other").await.unwrap(), "o");
        assert!(hot.cache.contains_key("other"));
        e.delete("other").await.unwrap();
        assert!(!hot.cache.contains_key("other"));
        fs::remove_file(e.path_for("small").unwrap()).unwrap();
        assert!(hot.get_with_trust("small").is_none());
        assert!(!hot.cache.contains_key("small"));
        // The layer's partial-store view never claims a miss, and never trusts file bytes.
        let r = e.resident(Token(())).unwrap();
        assert!(!r.complete);
        e.set("small", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(
            r.store.get_with_trust("small"),
            Some((Bytes::from_static(b"v"), false))
        );
        r.store
            .set_trusted("small", Bytes::from_static(b"other"), None);
        assert!(
            r.store.get_with_trust("small").is_none(),
            "memory never differs from disk"
        );
        assert_eq!(e.get("small").await.unwrap(), "v");
        assert!(
            FileEngine::new(dir.path())
                .unwrap()
                .resident(Token(()))
                .is_none()
        );
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
