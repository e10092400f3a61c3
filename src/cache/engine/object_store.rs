//! A cache engine on object storage: S3 and S3-compatible stores (MinIO, R2,
//! Ceph), or any other [`ObjectStore`] (GCS, Azure, local files, in memory).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEngine, ObjectStoreEngine};
//! use object_store::memory::InMemory;
//!
//! # tokio_test_block_on(async {
//! let engine = ObjectStoreEngine::new(Arc::new(InMemory::new()), "llm-cache");
//! engine.set("k", Bytes::from_static(b"v")).await?;
//! assert_eq!(engine.get("k").await?, "v");
//! # Ok::<_, mistral_tower::cache::CacheError>(()) }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! S3 (credentials, region and endpoint from the usual `AWS_*` variables, or
//! set on the builder):
//!
//! ```no_run
//! use object_store::aws::AmazonS3Builder;
//! use mistral_tower::cache::ObjectStoreEngine;
//!
//! # fn run() -> Result<(), mistral_tower::cache::CacheError> {
//! let s3 = AmazonS3Builder::from_env()
//!     .with_bucket_name("my-cache")
//!     .with_endpoint("http://127.0.0.1:9000") // MinIO, moto, ...
//!     .with_allow_http(true);
//! let engine = ObjectStoreEngine::s3(s3, "mistral-tower")?;
//! # let _ = engine; Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use super::contract::{CacheEngine, CacheError};

const MAGIC: &[u8; 4] = b"MTC1";
const HEADER_LEN: usize = 12;

/// A [`CacheEngine`] on any [`ObjectStore`], usually S3.
///
/// Each entry is one object at `<prefix>/<key>`. Object stores have no
/// per-object TTL, so the engine stores the expiry itself, in a 12-byte header
/// at the start of every object it writes:
///
/// | bytes | content |
/// |-------|---------|
/// | 0..4  | magic `MTC1` |
/// | 4..12 | expiry as milliseconds since the Unix epoch, big-endian `u64`; `0` = never |
///
/// followed by the value. `get` checks the expiry against this machine's clock
/// and answers [`CacheError::Miss`] for an expired entry (it does not delete
/// it). An object without the header (not written by this engine) is a backend
/// error, which the cache layer treats as a miss. To actually free the space,
/// pair the engine with a **bucket lifecycle rule** that expires objects under
/// the prefix after your longest TTL, for example with the AWS CLI:
///
/// ```text
/// aws s3api put-bucket-lifecycle-configuration --bucket my-cache --lifecycle-configuration \
///   '{"Rules":[{"ID":"expire-llm-cache","Status":"Enabled",
///     "Filter":{"Prefix":"mistral-tower/"},"Expiration":{"Days":7}}]}'
/// ```
///
/// A `PUT` replaces an object atomically, so concurrent writers of one key
/// leave one whole value. Every operation is bounded by a timeout (default 5 s)
/// and reports [`CacheError::Timeout`].
///
/// Cheap to clone. `Debug` shows the store's own description and the prefix;
/// `object_store`'s S3 client does not print credentials.
#[derive(Clone)]
pub struct ObjectStoreEngine {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    timeout: Duration,
}

impl ObjectStoreEngine {
    /// The default per-operation timeout, 5 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// An engine storing entries in `store` under `prefix` (`""` for the root;
    /// `/` separates levels).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        ObjectStoreEngine {
            store,
            prefix: Path::from(prefix),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// An engine on S3 built from `builder` (bucket, region, endpoint,
    /// credentials...; start from [`AmazonS3Builder::from_env`] to read the
    /// `AWS_*` variables). Path-style requests are used unless the builder
    /// enables virtual-hosted style.
    pub fn s3(builder: AmazonS3Builder, prefix: &str) -> Result<Self, CacheError> {
        let store = builder
            .build()
            .map_err(|e| CacheError::Config(format!("invalid S3 configuration: {e}")))?;
        Ok(Self::new(Arc::new(store), prefix))
    }

    /// Sets the per-operation timeout (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The prefix entries are stored under.
    pub fn prefix(&self) -> &str {
        self.prefix.as_ref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn path(&self, key: &str) -> Result<Path, CacheError> {
        validate_key(key)?;
        Ok(self.prefix.child(key))
    }

    async fn timed<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, CacheError>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }
}

/// Keys become one path segment: `[A-Za-z0-9._-]`, not `.` or `..`, at most
/// 512 bytes.
fn validate_key(key: &str) -> Result<(), CacheError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CacheError::InvalidKey(key.to_owned()))
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The header for an entry expiring after `ttl` (none: never).
fn header(ttl: Option<Duration>) -> Bytes {
    let expiry = match ttl {
        None => 0,
        Some(ttl) => {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            now_millis().saturating_add(ms).max(1)
        }
    };
    let mut h = BytesMut::with_capacity(HEADER_LEN);
    h.put_slice(MAGIC);
    h.put_u64(expiry);
    h.freeze()
}

/// Splits a stored object into its value, or `Miss` when expired.
fn decode(mut object: Bytes) -> Result<Bytes, CacheError> {
    if object.len() < HEADER_LEN || &object[..4] != MAGIC {
        return Err(CacheError::backend(
            "object was not written by ObjectStoreEngine (missing MTC1 header)",
        ));
    }
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&object[4..HEADER_LEN]);
    let expiry = u64::from_be_bytes(expiry);
    if expiry != 0 && expiry <= now_millis() {
        return Err(CacheError::Miss);
    }
    Ok(object.split_off(HEADER_LEN))
}

impl fmt::Debug for ObjectStoreEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreEngine")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CacheEngine for ObjectStoreEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        let path = self.path(key)?;
        self.timed(async {
            let object = match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map_err(CacheError::backend)?,
                Err(object_store::Error::NotFound { .. }) => return Err(CacheError::Miss),
                Err(e) => return Err(CacheError::backend(e)),
            };
            decode(object)
        })
        .await
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
        let path = self.path(key)?;
        let payload = PutPayload::from_iter([header(ttl), data]);
        self.timed(async {
            self.store
                .put(&path, payload)
                .await
                .map_err(CacheError::backend)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let path = self.path(key)?;
        self.timed(async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(CacheError::backend(e)),
            }
        })
        .await
    }

    /// Lists the keys under the prefix (expired entries included: expiry is
    /// only known after reading an object). Bounded by ten times the
    /// operation timeout.
    async fn keys(&self) -> Result<Vec<String>, CacheError> {
        let limit = self.timeout * 10;
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let fut = async {
            let mut keys = Vec::new();
            let mut list = self.store.list(prefix);
            while let Some(meta) = list.try_next().await.map_err(CacheError::backend)? {
                let Some(mut parts) = meta.location.prefix_match(&self.prefix) else {
                    continue;
                };
                // Only direct children are entries.
                if let (Some(name), None) = (parts.next(), parts.next()) {
                    keys.push(name.as_ref().to_owned());
                }
            }
            keys.sort();
            Ok(keys)
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_expiry() {
        let value = Bytes::from_static(b"hello");
        let mut obj = BytesMut::new();
        obj.put(header(None));
        obj.put(value.clone());
        assert_eq!(decode(obj.freeze()).unwrap(), value);

        let mut obj = BytesMut::new();
        obj.put(header(Some(Duration::from_secs(3600))));
        obj.put(value.clone());
        assert_eq!(decode(obj.freeze()).unwrap(), value);

        // An expiry in the past.
        let mut obj = BytesMut::new();
        obj.put_slice(MAGIC);
        obj.put_u64(1);
        obj.put(value.clone());
        assert!(decode(obj.freeze()).unwrap_err().is_miss());

        assert!(matches!(
            decode(Bytes::from_static(b"no header here")),
            Err(CacheError::Backend(_))
        ));
        assert!(matches!(decode(Bytes::new()), Err(CacheError::Backend(_))));
    }

    #[test]
    fn rejects_keys_that_are_not_one_segment() {
        for bad in ["", ".", "..", "a/b", "a b", "ä", "a%2F"] {
            assert!(
                matches!(validate_key(bad), Err(CacheError::InvalidKey(_))),
                "{bad}"
            );
        }
        for ok in ["a", "A.b_c-9", "...", "0123abcdef"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
    }

    #[tokio::test]
    async fn in_memory_store_lists_only_own_entries() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let a = ObjectStoreEngine::new(store.clone(), "a/x");
        let b = ObjectStoreEngine::new(store.clone(), "a");
        a.set("k1", Bytes::from_static(b"1")).await.unwrap();
        b.set("k2", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(a.keys().await.unwrap(), vec!["k1".to_owned()]);
        assert_eq!(b.keys().await.unwrap(), vec!["k2".to_owned()]);
        let root = ObjectStoreEngine::new(store, "");
        root.set("k3", Bytes::from_static(b"3")).await.unwrap();
        assert_eq!(root.keys().await.unwrap(), vec!["k3".to_owned()]);
        assert_eq!(root.get("k3").await.unwrap(), "3");
    }
}
