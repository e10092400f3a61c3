//! A cache engine written by hand, wired into a `CacheLayer` in front of a local service.
//!
//! Runs offline: `cargo run --example custom_engine`.
//!
//! The engine stores each entry as one object in a "bucket" (here a directory standing in
//! for an S3 bucket). An S3 engine has exactly the same shape:
//!
//! ```text
//! impl CacheEngine for S3Engine {
//!     async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
//!         match self.client.get_object().bucket(&self.bucket).key(self.object(key)).send().await {
//!             Ok(out) => Ok(out.body.collect().await.map_err(CacheError::backend)?.into_bytes()),
//!             Err(e) if is_no_such_key(&e) => Err(CacheError::Miss),   // absent => Miss
//!             Err(e) => Err(CacheError::backend(e)),                   // anything else => failure
//!         }
//!     }
//!     async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
//!         self.client.put_object().bucket(&self.bucket).key(self.object(key))
//!             .body(data.into()).send().await.map_err(CacheError::backend)?;
//!         Ok(())
//!     }
//! }
//! ```
//!
//! The one rule: `get` returns `CacheError::Miss` for an absent key. Any other error is
//! counted as an engine failure and the request goes upstream anyway (fail-open).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mistral_tower::cache::{CacheEngine, CacheError, CacheLayer, RequestBody};
use tower::{ServiceBuilder, ServiceExt};

/// A bucket of objects: one file per key under a prefix, like `s3://bucket/prefix/<key>`.
#[derive(Debug, Clone)]
struct BucketEngine {
    bucket: PathBuf,
    prefix: String,
}

impl BucketEngine {
    fn object(&self, key: &str) -> Result<PathBuf, CacheError> {
        // Keys from the layer are hex digests; refuse anything that could escape.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CacheError::InvalidKey(key.to_owned()));
        }
        Ok(self.bucket.join(format!("{}{key}", self.prefix)))
    }
}

impl CacheEngine for BucketEngine {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        match tokio::fs::read(self.object(key)?).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CacheError::Miss),
            Err(e) => Err(CacheError::backend(e)),
        }
    }

    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        let path = self.object(key)?;
        // Write then rename, so a reader never sees half an object.
        let tmp = path.with_extension(format!("tmp{}", fastrand::u64(..)));
        tokio::fs::write(&tmp, &data)
            .await
            .map_err(CacheError::backend)?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(CacheError::backend)
    }

    // Optional: `set_with_ttl`, `delete` and `keys` have defaults. The layer writes its
    // own expiry time into every entry, so an engine without TTL support stays correct.
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let bucket = std::env::temp_dir().join(format!("mistral-tower-bucket-{}", std::process::id()));
    tokio::fs::create_dir_all(&bucket).await?;
    let engine = BucketEngine {
        bucket: bucket.clone(),
        prefix: "cache-".into(),
    };

    // The "upstream": any tower service over http requests. It sees a `RequestBody`,
    // already buffered by the cache.
    let upstream = tower::service_fn(|req: http::Request<RequestBody<Full<Bytes>>>| async move {
        let prompt = req.into_body().collect().await?.to_bytes();
        println!("  upstream called with {} bytes", prompt.len());
        tokio::time::sleep(Duration::from_millis(200)).await; // a slow model
        let res = http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"choices":[{"message":{"content":"Hello!"}}]}"#,
            )))?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(res)
    });

    let layer = CacheLayer::new(engine).ttl(Duration::from_secs(3600));
    let svc = ServiceBuilder::new().layer(layer.clone()).service(upstream);

    for body in [
        r#"{"model":"mistral-small-latest","messages":[{"role":"user","content":"Hi"}]}"#,
        // Same request, other field order and whitespace: same key.
        r#"{ "messages": [ { "content": "Hi", "role": "user" } ], "model": "mistral-small-latest" }"#,
    ] {
        let req = http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", "Bearer demo-key")
            .body(Full::new(Bytes::from(body)))?;
        let res = svc.clone().oneshot(req).await?;
        let status = res.headers()["x-cache"].to_str()?.to_owned();
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "x-cache: {status:5} body: {}",
            String::from_utf8_lossy(&body)
        );
        // The store runs in the background (this engine's `set` is asynchronous).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = layer.metrics();
    println!("hits={} misses={} stores={}", m.hits, m.misses, m.stores);

    tokio::fs::remove_dir_all(&bucket).await?;
    Ok(())
}
