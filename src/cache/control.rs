//! Per-request cache control (request headers), layer-wide modes, the cacheable
//! predicate and the `x-cache` states.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{CacheMode, CacheStatus, Cacheable, DefaultCacheable};
//!
//! let req = http::Request::delete("/v1/files/1").body(()).unwrap();
//! let (parts, ()) = req.into_parts();
//! assert!(!DefaultCacheable.is_cacheable(&parts));
//! assert_eq!(CacheStatus::Hit.as_str(), "HIT");
//! assert_eq!(CacheMode::default(), CacheMode::ReadWrite);
//! ```
//!
//! # Request headers
//!
//! | header | effect |
//! |---|---|
//! | `Cache-Control: no-cache` | skip the read, call upstream, store the fresh answer (`x-cache: REFRESH`) |
//! | `Cache-Control: no-store` | neither read nor write (`x-cache: BYPASS`) |
//! | `Cache-Control: max-age=N` | accept only an entry younger than N seconds |
//! | `Cache-Control: only-if-cached` | answer `504 Gateway Timeout` on a miss, never call upstream |
//! | `x-cache-ttl: N` | store the answer for N seconds (overrides the layer's TTL) |
//! | `x-cache-namespace: NAME` | use this namespace (part of the key) |
//!
//! All of them are removed before the request is forwarded (the whole `Cache-Control`
//! request header is consumed by the cache).

use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderName};

/// The request header setting the TTL of the stored answer, in seconds.
pub const X_CACHE_TTL: HeaderName = HeaderName::from_static("x-cache-ttl");
/// The request header choosing the namespace.
pub const X_CACHE_NAMESPACE: HeaderName = HeaderName::from_static("x-cache-namespace");
/// The response header reporting what the cache did ([`CacheStatus`]).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// What the layer may do with the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheMode {
    /// Read entries and store fresh answers (the default).
    #[default]
    ReadWrite,
    /// Serve hits, never store.
    ReadOnly,
    /// Never serve hits, always call upstream and store (re-recording).
    WriteOnly,
    /// Serve hits; a miss is answered `504` without calling upstream (offline replay).
    ReplayOnly,
}

/// The value of the `x-cache` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Answered from the cache; upstream was not called.
    Hit,
    /// Answered by upstream after a miss (stored if cacheable).
    Miss,
    /// Answered by an identical request already in flight (one upstream call shared).
    Coalesced,
    /// The cache was not used: the request is not cacheable, carries `no-store`, or its
    /// body is over the limit.
    Bypass,
    /// The read was skipped (`no-cache` or write-only mode); the fresh answer is stored.
    Refresh,
}

impl CacheStatus {
    /// The header value: `HIT`, `MISS`, `COALESCED`, `BYPASS` or `REFRESH`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Coalesced => "COALESCED",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Refresh => "REFRESH",
        }
    }

    pub(crate) fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from_static(self.as_str())
    }
}

/// Decides which requests may use the cache at all.
///
/// Closures `Fn(&http::request::Parts) -> bool` implement this trait.
pub trait Cacheable: Send + Sync + 'static {
    /// `true` when the request may be answered from, and stored in, the cache.
    fn is_cacheable(&self, parts: &Parts) -> bool;
}

/// The default predicate: `GET`, `HEAD` and `POST` requests are cacheable (LLM APIs are
/// POST-heavy); every other method is bypassed.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultCacheable;

impl Cacheable for DefaultCacheable {
    fn is_cacheable(&self, parts: &Parts) -> bool {
        matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::POST
        )
    }
}

impl<F> Cacheable for F
where
    F: Fn(&Parts) -> bool + Send + Sync + 'static,
{
    fn is_cacheable(&self, parts: &Parts) -> bool {
        self(parts)
    }
}

/// The cache directives of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestControl {
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) namespace: Option<String>,
}

impl RequestControl {
    /// Reads and removes the cache's request headers.
    pub(crate) fn take(headers: &mut HeaderMap) -> RequestControl {
        let mut c = RequestControl::default();
        if headers.is_empty() {
            return c;
        }
        if headers.contains_key(http::header::CACHE_CONTROL) {
            for v in headers.get_all(http::header::CACHE_CONTROL) {
                let Ok(v) = v.to_str() else { continue };
                for d in v.split(',') {
                    let d = d.trim();
                    let (name, arg) = match d.split_once('=') {
                        Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                        None => (d, None),
                    };
                    if name.eq_ignore_ascii_case("no-cache") {
                        c.no_cache = true;
                    } else if name.eq_ignore_ascii_case("no-store") {
                        c.no_store = true;
                    } else if name.eq_ignore_ascii_case("only-if-cached") {
                        c.only_if_cached = true;
                    } else if name.eq_ignore_ascii_case("max-age")
                        && let Some(n) = arg.and_then(|a| a.parse().ok())
                    {
                        c.max_age = Some(c.max_age.map_or(n, |m: u64| m.min(n)));
                    }
                }
            }
            headers.remove(http::header::CACHE_CONTROL);
        }
        if let Some(v) = headers.remove(X_CACHE_TTL) {
            c.ttl = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Duration::from_secs);
        }
        if let Some(v) = headers.remove(X_CACHE_NAMESPACE) {
            c.namespace = v.to_str().ok().map(|s| s.trim().to_owned());
        }
        c
    }
}

/// `true` when a response's `Cache-Control` forbids storing it.
pub(crate) fn response_forbids_store(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_strips_directives() {
        let mut h = HeaderMap::new();
        h.append("cache-control", "No-Cache, max-age=60".parse().unwrap());
        h.append(
            "cache-control",
            "only-if-cached, max-age=\"30\"".parse().unwrap(),
        );
        h.insert("x-cache-ttl", " 120 ".parse().unwrap());
        h.insert("x-cache-namespace", "tests".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        let c = RequestControl::take(&mut h);
        assert!(c.no_cache && c.only_if_cached && !c.no_store);
        assert_eq!(c.max_age, Some(30));
        assert_eq!(c.ttl, Some(Duration::from_secs(120)));
        assert_eq!(c.namespace.as_deref(), Some("tests"));
        assert_eq!(h.len(), 1, "only authorization is left: {h:?}");
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            "max-age=18446744073709551615".parse().unwrap(),
        );
        h.insert("x-cache-ttl", "18446744073709551615".parse().unwrap());
        let c = RequestControl::take(&mut h);
        assert_eq!(c.max_age, Some(u64::MAX));
        assert_eq!(c.ttl, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn upstream_no_store() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", "private, No-Store".parse().unwrap());
        assert!(response_forbids_store(&h));
        h.insert("cache-control", "max-age=0".parse().unwrap());
        assert!(!response_forbids_store(&h));
    }
}
