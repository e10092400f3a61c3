//! Picks and builds a cache engine from a URL, so the engine can come from configuration.
//!
//! See [`engine_from_url`] for the URL forms and options.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{engine_from_url, CacheEngine, CacheLayer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let url = std::env::var("CACHE_URL").unwrap_or_else(|_| "memory://?max_bytes=1048576".into());
//! let engine = engine_from_url(&url).await?;
//! engine.set("k", Bytes::from_static(b"v")).await?;
//! let _layer = CacheLayer::new(engine); // a BoxEngine, usable like any engine
//! # Ok::<_, mistral_tower::cache::CacheError>(()) }).unwrap();
//! ```

use std::time::Duration;

use super::contract::{BoxEngine, CacheError};
use super::file::FileEngine;
use super::memory::MemoryEngine;
use super::tiered::TieredEngine;

const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// Builds an engine from a URL, so the engine can come from configuration.
///
/// | URL | engine | cargo feature |
/// |-----|--------|---------------|
/// | `memory://` or `memory://?max_bytes=67108864` | [`MemoryEngine`] (default 64 MiB) | always |
/// | `file://relative/dir`, `file:///absolute/dir` | [`FileEngine`] with a 64 MiB hot tier | always |
/// | `redis://[user:password@]host[:port][/db]` | [`RedisEngine`](super::RedisEngine), one server | `redis` |
/// | `rediss://...` | the same over TLS | `redis` |
/// | `redis+cluster://[user:password@]host1:port1,host2:port2` | [`RedisEngine`](super::RedisEngine) on a Redis Cluster (`rediss+cluster://` for TLS) | `redis` |
/// | `postgres://user[:password]@host[:port]/db`, `postgresql://...` | [`PostgresEngine`](super::PostgresEngine) | `postgres` |
/// | `s3://bucket/prefix` | [`ObjectStoreEngine`](super::ObjectStoreEngine) on S3 | `s3` |
/// | `tiered+<any of the above>` | [`TieredEngine`]: a [`MemoryEngine`] L1 in front of it | as the inner URL |
///
/// Query options understood by the engines (others are passed to the driver for
/// `redis` and `postgres`, and rejected elsewhere):
///
/// - every networked engine: `timeout=` per-operation timeout, as `500ms`, `2s` or
///   plain milliseconds;
/// - `redis`: `prefix=` key prefix (default `mistral-tower:`), `tls_ca_file=`
///   a PEM root certificate to trust for `rediss://` (a private CA);
/// - `file`: `hot_bytes=` the [hot tier](FileEngine#hot-tier)'s budget (default 64 MiB,
///   `0` turns it off: every read goes to the file);
/// - `postgres`: `table=` table name (default `mistral_tower_cache`);
/// - `s3`: `endpoint=` (for example `http://127.0.0.1:9000`), `region=`,
///   `allow_http=true` (needed for a plain-HTTP endpoint), `anonymous=true`
///   (unsigned requests, for public buckets), `virtual_hosted_style=true`
///   (default: path-style requests); credentials, and any
///   option not given in the URL, come from the usual `AWS_*` environment
///   variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` /
///   `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...);
/// - `tiered+...`: `l1_max_bytes=` (default 64 MiB) and `l1_ttl=`.
///
/// Building never connects: a server that is down makes each operation fail
/// (a miss for the cache layer), not the build.
///
/// Fails with [`CacheError::Config`] for an unknown scheme, a malformed URL or
/// a bad option, and for an engine whose cargo feature is not enabled (the
/// message names the feature).
pub async fn engine_from_url(url: &str) -> Result<BoxEngine, CacheError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| config(format!("not an engine URL (no scheme://): {url:?}")))?;
    let scheme = scheme.to_ascii_lowercase();
    if let Some(inner_scheme) = scheme.strip_prefix("tiered+") {
        let mut parsed = Parsed::new(rest);
        let max_bytes = match parsed.take("l1_max_bytes") {
            Some(v) => parse_u64("l1_max_bytes", &v)?,
            None => DEFAULT_MEMORY_BYTES,
        };
        let l1_ttl = parsed
            .take("l1_ttl")
            .map(|v| parse_duration(&v))
            .transpose()?;
        if inner_scheme.starts_with("tiered") {
            return Err(config("tiered+ URLs cannot nest".into()));
        }
        let l2 = Box::pin(engine_from_url(&format!(
            "{inner_scheme}://{}",
            parsed.rebuild()
        )))
        .await?;
        let mut tiered = TieredEngine::new(MemoryEngine::new(max_bytes), l2);
        if let Some(ttl) = l1_ttl {
            tiered = tiered.with_l1_ttl(ttl);
        }
        return Ok(BoxEngine::new(tiered));
    }
    match scheme.as_str() {
        "memory" => {
            let mut parsed = Parsed::new(rest);
            let max_bytes = match parsed.take("max_bytes") {
                Some(v) => parse_u64("max_bytes", &v)?,
                None => DEFAULT_MEMORY_BYTES,
            };
            parsed.reject_rest("memory")?;
            if !parsed.base.is_empty() && parsed.base != "/" {
                return Err(config(format!(
                    "memory:// takes no host or path, got {:?}",
                    parsed.base
                )));
            }
            Ok(BoxEngine::new(MemoryEngine::new(max_bytes)))
        }
        "file" => {
            let mut parsed = Parsed::new(rest);
            let hot_bytes = match parsed.take("hot_bytes") {
                Some(v) => parse_u64("hot_bytes", &v)?,
                None => DEFAULT_MEMORY_BYTES,
            };
            parsed.reject_rest("file")?;
            let path = percent_decode(&parsed.base)?;
            if path.is_empty() {
                return Err(config(
                    "file:// needs a directory, e.g. file://.mistral/cache".into(),
                ));
            }
            let engine = FileEngine::new(path.as_str())
                .map_err(|e| config(format!("cannot open cache directory {path:?}: {e}")))?
                .with_hot_tier(hot_bytes);
            Ok(BoxEngine::new(engine))
        }
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => redis_from_url(&scheme, rest),
        "postgres" | "postgresql" => postgres_from_url(&scheme, rest),
        "s3" | "s3a" => s3_from_url(rest),
        other => Err(config(format!(
            "unknown cache engine URL scheme {other:?}: expected memory://, file://, redis://, \
             rediss://, redis+cluster://, postgres://, postgresql://, s3:// or tiered+<url>"
        ))),
    }
}

fn config(msg: String) -> CacheError {
    CacheError::Config(msg)
}

#[cfg(not(feature = "redis"))]
fn redis_from_url(scheme: &str, _rest: &str) -> Result<BoxEngine, CacheError> {
    Err(missing_feature(scheme, "redis"))
}

#[cfg(not(feature = "postgres"))]
fn postgres_from_url(scheme: &str, _rest: &str) -> Result<BoxEngine, CacheError> {
    Err(missing_feature(scheme, "postgres"))
}

#[cfg(not(feature = "s3"))]
fn s3_from_url(_rest: &str) -> Result<BoxEngine, CacheError> {
    Err(missing_feature("s3", "s3"))
}

#[cfg(not(all(feature = "redis", feature = "postgres", feature = "s3")))]
fn missing_feature(scheme: &str, feature: &str) -> CacheError {
    config(format!(
        "{scheme}:// cache engine URLs need the `{feature}` cargo feature of mistral-tower \
         (features = [\"{feature}\"])"
    ))
}

#[cfg(feature = "redis")]
fn redis_from_url(scheme: &str, rest: &str) -> Result<BoxEngine, CacheError> {
    use super::redis::RedisEngine;

    let mut parsed = Parsed::new(rest);
    let prefix = parsed.take("prefix");
    let ca_file = parsed.take("tls_ca_file");
    let timeout = parsed
        .take("timeout")
        .map(|v| parse_duration(&v))
        .transpose()?;
    let mut engine = match scheme.strip_suffix("+cluster") {
        None => RedisEngine::new(&format!("{scheme}://{}", parsed.rebuild()))?,
        Some(node_scheme) => {
            let (authority, path) = match parsed.base.find('/') {
                Some(i) => parsed.base.split_at(i),
                None => (parsed.base.as_str(), ""),
            };
            let (userinfo, hosts) = match authority.rsplit_once('@') {
                Some((u, h)) => (format!("{u}@"), h),
                None => (String::new(), authority),
            };
            let query = parsed.query_string();
            let nodes: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("{node_scheme}://{userinfo}{h}{path}{query}"))
                .collect();
            if nodes.is_empty() {
                return Err(config(
                    "redis+cluster:// needs at least one host:port, e.g. \
                     redis+cluster://127.0.0.1:7101,127.0.0.1:7102"
                        .into(),
                ));
            }
            RedisEngine::cluster(nodes)?
        }
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read(&path)
            .map_err(|e| config(format!("cannot read tls_ca_file {path:?}: {e}")))?;
        engine = engine.with_root_certificate(pem)?;
    }
    if let Some(prefix) = prefix {
        engine = engine.with_prefix(prefix);
    }
    if let Some(timeout) = timeout {
        engine = engine.with_timeout(timeout);
    }
    Ok(BoxEngine::new(engine))
}

#[cfg(feature = "postgres")]
fn postgres_from_url(scheme: &str, rest: &str) -> Result<BoxEngine, CacheError> {
    use super::postgres::PostgresEngine;

    let mut parsed = Parsed::new(rest);
    let table = parsed.take("table");
    let timeout = parsed
        .take("timeout")
        .map(|v| parse_duration(&v))
        .transpose()?;
    let mut engine = PostgresEngine::new(&format!("{scheme}://{}", parsed.rebuild()))?;
    if let Some(table) = table {
        engine = engine.with_table(&table)?;
    }
    if let Some(timeout) = timeout {
        engine = engine.with_timeout(timeout);
    }
    Ok(BoxEngine::new(engine))
}

#[cfg(feature = "s3")]
fn s3_from_url(rest: &str) -> Result<BoxEngine, CacheError> {
    use super::object_store::ObjectStoreEngine;
    use object_store::aws::AmazonS3Builder;

    let mut parsed = Parsed::new(rest);
    let (bucket, prefix) = match parsed.base.split_once('/') {
        Some((b, p)) => (b.to_owned(), p.trim_matches('/').to_owned()),
        None => (parsed.base.clone(), String::new()),
    };
    if bucket.is_empty() {
        return Err(config("s3:// needs a bucket: s3://bucket/prefix".into()));
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(percent_decode(&bucket)?);
    if let Some(endpoint) = parsed.take("endpoint") {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = parsed.take("region") {
        builder = builder.with_region(region);
    }
    if let Some(allow) = parsed.take("allow_http") {
        builder = builder.with_allow_http(parse_bool("allow_http", &allow)?);
    }
    if let Some(v) = parsed.take("anonymous") {
        builder = builder.with_skip_signature(parse_bool("anonymous", &v)?);
    }
    if let Some(v) = parsed.take("virtual_hosted_style") {
        builder =
            builder.with_virtual_hosted_style_request(parse_bool("virtual_hosted_style", &v)?);
    }
    let timeout = parsed
        .take("timeout")
        .map(|v| parse_duration(&v))
        .transpose()?;
    parsed.reject_rest("s3")?;
    let mut engine = ObjectStoreEngine::s3(builder, &percent_decode(&prefix)?)?;
    if let Some(timeout) = timeout {
        engine = engine.with_timeout(timeout);
    }
    Ok(BoxEngine::new(engine))
}

/// The part after `scheme://`, split into the base and raw `k=v` query pairs.
struct Parsed {
    base: String,
    /// (decoded key, raw pair as written)
    pairs: Vec<(String, String)>,
}

impl Parsed {
    fn new(rest: &str) -> Self {
        let rest = rest.split('#').next().unwrap_or_default();
        let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let key = p.split('=').next().unwrap_or_default();
                let key = percent_decode(key).unwrap_or_else(|_| key.to_owned());
                (key, p.to_owned())
            })
            .collect();
        Parsed {
            base: base.to_owned(),
            pairs,
        }
    }

    /// Removes option `name` and returns its decoded value (the last one wins).
    fn take(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        self.pairs.retain(|(k, raw)| {
            if k == name {
                let v = raw.split_once('=').map(|(_, v)| v).unwrap_or_default();
                found = Some(percent_decode(v).unwrap_or_else(|_| v.to_owned()));
                false
            } else {
                true
            }
        });
        found
    }

    fn query_string(&self) -> String {
        if self.pairs.is_empty() {
            String::new()
        } else {
            let raw: Vec<&str> = self.pairs.iter().map(|(_, r)| r.as_str()).collect();
            format!("?{}", raw.join("&"))
        }
    }

    /// The base with the options that were not taken.
    fn rebuild(&self) -> String {
        format!("{}{}", self.base, self.query_string())
    }

    fn reject_rest(&self, scheme: &str) -> Result<(), CacheError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((k, _)) => Err(config(format!("unknown option {k:?} in {scheme}:// URL"))),
        }
    }
}

fn percent_decode(s: &str) -> Result<String, CacheError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| config(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| config(format!("percent-encoding is not UTF-8 in {s:?}")))
}

fn parse_u64(name: &str, v: &str) -> Result<u64, CacheError> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| config(format!("option {name}={v:?} is not a whole number")))
}

#[cfg_attr(not(feature = "s3"), allow(dead_code))]
fn parse_bool(name: &str, v: &str) -> Result<bool, CacheError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(config(format!("option {name}={v:?} is not true or false"))),
    }
}

/// `250`, `250ms`, `2s`, `1.5s`, `1m`.
fn parse_duration(v: &str) -> Result<Duration, CacheError> {
    let t = v.trim();
    let bad = || config(format!("bad duration {v:?}: use e.g. 500ms, 2s or 1m"));
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "ms"),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "x", "5h", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_options_are_taken_and_the_rest_kept() {
        let mut p = Parsed::new("h:1/0?prefix=a%3Ab&protocol=resp3&timeout=2s#frag");
        assert_eq!(p.take("prefix").as_deref(), Some("a:b"));
        assert_eq!(p.take("timeout").as_deref(), Some("2s"));
        assert_eq!(p.take("nope"), None);
        assert_eq!(p.rebuild(), "h:1/0?protocol=resp3");
        assert!(p.reject_rest("x").is_err());
        assert!(percent_decode("%zz").is_err());
    }

    fn config_message(r: Result<BoxEngine, CacheError>) -> String {
        match r {
            Err(CacheError::Config(m)) => m,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_scheme_and_bad_options_are_config_errors() {
        let m = config_message(engine_from_url("ftp://x").await);
        assert!(
            m.contains("unknown cache engine URL scheme") && m.contains("ftp"),
            "{m}"
        );
        let m = config_message(engine_from_url("no-scheme").await);
        assert!(m.contains("no scheme"), "{m}");
        let m = config_message(engine_from_url("memory://?max_bytes=lots").await);
        assert!(m.contains("max_bytes"), "{m}");
        let m = config_message(engine_from_url("memory://?maxbytes=1").await);
        assert!(m.contains("unknown option"), "{m}");
        let m = config_message(engine_from_url("tiered+tiered+memory://").await);
        assert!(m.contains("nest"), "{m}");
    }

    #[tokio::test]
    async fn memory_and_tiered_memory_urls_build_working_engines() {
        use crate::cache::CacheEngine;
        use bytes::Bytes;
        for url in [
            "memory://",
            "memory://?max_bytes=1048576",
            "tiered+memory://?l1_max_bytes=1024&l1_ttl=5s&max_bytes=4096",
        ] {
            let e = engine_from_url(url).await.unwrap();
            e.set("k", Bytes::from_static(b"v")).await.unwrap();
            assert_eq!(e.get("k").await.unwrap(), "v", "{url}");
        }
        let e = engine_from_url("tiered+memory://").await.unwrap();
        assert!(format!("{e:?}").contains("TieredEngine"));
    }

    #[tokio::test]
    async fn file_url_builds_a_file_engine() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("c").display());
        let e = engine_from_url(&url).await.unwrap();
        assert!(format!("{e:?}").contains("FileEngine"), "{e:?}");
        assert!(dir.path().join("c").is_dir());
        let m = config_message(engine_from_url("file://").await);
        assert!(m.contains("directory"), "{m}");
        // The hot tier is on by default and answers hits in process; hot_bytes=0 is off.
        use crate::cache::CacheEngine;
        use crate::cache::engine::Token;
        assert!(e.resident(Token(())).is_some_and(|r| !r.complete));
        let off = engine_from_url(&format!("{url}?hot_bytes=0"))
            .await
            .unwrap();
        assert!(off.resident(Token(())).is_none());
        let m = config_message(engine_from_url(&format!("{url}?hot_bytes=lots")).await);
        assert!(m.contains("hot_bytes"), "{m}");
        let m = config_message(engine_from_url(&format!("{url}?hot=1")).await);
        assert!(m.contains("unknown option"), "{m}");
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_urls() {
        let e = engine_from_url("redis://:pw@127.0.0.1:1/0?prefix=p:&timeout=100ms")
            .await
            .unwrap();
        let d = format!("{e:?}");
        assert!(d.contains("RedisEngine"), "{d}");
        let e = engine_from_url("redis+cluster://u:pw@127.0.0.1:1,127.0.0.1:2?timeout=1s")
            .await
            .unwrap();
        assert!(format!("{e:?}").contains("RedisEngine"));
        assert!(engine_from_url("rediss://127.0.0.1:1").await.is_ok());
        let m = config_message(engine_from_url("redis+cluster://").await);
        assert!(m.contains("host:port"), "{m}");
        let m = config_message(engine_from_url("redis://h?timeout=soon").await);
        assert!(m.contains("duration"), "{m}");
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_urls() {
        let e = engine_from_url(
            "postgresql://u:pw@127.0.0.1:1/db?table=t1&timeout=2s&connect_timeout=1",
        )
        .await
        .unwrap();
        assert!(format!("{e:?}").contains("PostgresEngine"));
        let m = config_message(engine_from_url("postgres://h/db?table=bad-name").await);
        assert!(m.contains("table name"), "{m}");
    }

    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn s3_urls() {
        let e = engine_from_url(
            "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1&region=us-east-1&allow_http=true",
        )
        .await
        .unwrap();
        assert!(format!("{e:?}").contains("ObjectStoreEngine"));
        let m = config_message(engine_from_url("s3:///prefix").await);
        assert!(m.contains("bucket"), "{m}");
        let m = config_message(engine_from_url("s3://b?colour=blue").await);
        assert!(m.contains("unknown option"), "{m}");
    }

    #[cfg(not(feature = "redis"))]
    #[tokio::test]
    async fn redis_without_feature_names_the_feature() {
        let m = config_message(engine_from_url("redis://127.0.0.1").await);
        assert!(m.contains("`redis` cargo feature"), "{m}");
    }
}
