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
//! | `x-cache-control: no-cache` | skip the read, call upstream, store the fresh answer (`x-cache: REFRESH`) |
//! | `x-cache-control: no-store` | neither read nor write (`x-cache: BYPASS`) |
//! | `x-cache-control: max-age=N` | accept only an entry younger than N (seconds, or `30m`, `12h`, ...) |
//! | `x-cache-control: only-if-cached` | answer `504 Gateway Timeout` on a miss, never call upstream |
//! | `x-cache-ttl: N` | store the answer for N (seconds, or `30s`, `10m`, `1h30m`, `7d`; overrides the layer's TTL) |
//! | `x-cache-namespace: NAME` | use this namespace (part of the key; any UTF-8) |
//!
//! Directives combine with commas (`x-cache-control: no-cache, max-age=60`). All three
//! headers are removed before the request is forwarded. A value that does not parse is
//! answered `400 Bad Request` naming the header and the accepted forms (never read as
//! "no TTL" or the default namespace).
//!
//! The standard request `Cache-Control` header is **ignored** (and forwarded as is) by
//! default: HTTP libraries send it as a transport habit (`httpx-sse` sends
//! `Cache-Control: no-store` on every stream), not as an instruction to this cache.
//! With [`CacheLayer::honor_cache_control`](super::CacheLayer::honor_cache_control) its
//! `no-cache`, `no-store`, `only-if-cached` and `max-age` count too (other directives
//! are ignored) and it is consumed by the cache.
//!
//! # Request headers and the key
//!
//! The default key covers the method, path and query, body, namespace and tenant
//! (`Authorization`), not other request headers such as `Accept` or
//! `Accept-Encoding`: on the Mistral API they do not change the answer (streaming is
//! chosen by the body's `stream` field). So that a server which does negotiate never
//! gets one client's answer served to another, an answer is not stored when it is
//! partial (`Content-Range`), content-encoded (`Content-Encoding` other than
//! `identity`), or carries `Vary` naming `*` or any header except `Authorization` and
//! `Accept-Encoding`; and [`DefaultCacheable`] bypasses requests with `Range`. A
//! server that negotiates on a header without saying so in `Vary` needs a custom
//! [`KeyFn`](super::KeyFn) that includes that header.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The request header carrying this cache's directives (`no-cache`, `no-store`,
/// `only-if-cached`, `max-age=N`).
pub const X_CACHE_CONTROL: HeaderName = HeaderName::from_static("x-cache-control");
/// The request header setting the TTL of the stored answer (`3600`, `30m`, `7d`, ...).
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

    /// Reads an `x-cache` header value (case-insensitive); `None` for anything else.
    ///
    /// ```
    /// use mistral_tower::cache::CacheStatus;
    /// assert_eq!(CacheStatus::from_header_value("HIT"), Some(CacheStatus::Hit));
    /// assert_eq!(CacheStatus::from_header_value("stale"), None);
    /// ```
    pub fn from_header_value(value: &str) -> Option<CacheStatus> {
        [
            CacheStatus::Hit,
            CacheStatus::Miss,
            CacheStatus::Coalesced,
            CacheStatus::Bypass,
            CacheStatus::Refresh,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
    }

    pub(crate) fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from_static(self.as_str())
    }
}

/// How long the answer to a cacheable request may be stored, as decided by a
/// [`Cacheable`] predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// The request's `x-cache-ttl`, else the layer's TTL (the default).
    #[default]
    Default,
    /// As [`Storage::Default`], but never longer than this (also when neither sets a
    /// TTL).
    AtMost(Duration),
    /// Only a request that sets its own `x-cache-ttl` uses the cache; any other is
    /// bypassed (read and write). For answers that must never be frozen by accident.
    RequestTtlOnly,
}

/// Decides which requests may use the cache at all, and how long their answers may
/// be kept.
///
/// Closures `Fn(&http::request::Parts) -> bool` implement this trait.
pub trait Cacheable: Send + Sync + 'static {
    /// `true` when the request may be answered from, and stored in, the cache.
    fn is_cacheable(&self, parts: &Parts) -> bool;

    /// How long the answer to a cacheable request may be stored (default:
    /// [`Storage::Default`]).
    fn storage(&self, parts: &Parts) -> Storage {
        let _ = parts;
        Storage::Default
    }
}

/// The default predicate: `GET`, `HEAD` and `POST` requests are cacheable (LLM APIs are
/// POST-heavy); every other method is bypassed, and so is a request carrying `Range`
/// (the key does not include it, so a stored full answer must not answer it).
///
/// It knows nothing of the API behind the layer; for the Mistral API, use
/// [`MistralCacheable`](crate::cacheable::MistralCacheable), which stores generation
/// operations only (the [`Client`](crate::Client) and the proxy do).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultCacheable;

impl Cacheable for DefaultCacheable {
    fn is_cacheable(&self, parts: &Parts) -> bool {
        matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::POST
        ) && !parts.headers.contains_key(http::header::RANGE)
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

/// A directive header whose value does not parse: answered `400`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectiveError {
    header: HeaderName,
    value: String,
    expected: &'static str,
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} request header {:?}: expected {}",
            self.header, self.value, self.expected
        )
    }
}

const EXPECTED_CONTROL: &str = "a comma-separated list of no-cache, no-store, only-if-cached and \
     max-age=N (N in seconds, or with units s, m, h, d, w such as 30m)";
const EXPECTED_TTL: &str = "a duration in seconds (3600) or with units s, m, h, d, w \
     (30s, 10m, 1h30m, 7d), as mistral-cache's --ttl";
const EXPECTED_NAMESPACE: &str = "a non-empty UTF-8 name";

impl DirectiveError {
    fn new(header: HeaderName, value: &HeaderValue, expected: &'static str) -> Self {
        DirectiveError {
            header,
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            expected,
        }
    }

    /// The JSON error body of the `400` answered for this error, in the flat
    /// `{object, message, type, param, code}` envelope of the Mistral API.
    pub(crate) fn body(&self) -> Bytes {
        let body = serde_json::json!({
            "object": "error",
            "message": self.to_string(),
            "type": "invalid_request_error",
            "param": self.header.as_str(),
            "code": "invalid_cache_directive",
        });
        Bytes::from(body.to_string())
    }
}

impl RequestControl {
    /// Reads and removes the cache's request headers: `x-cache-control`, `x-cache-ttl`,
    /// `x-cache-namespace`, and the standard `Cache-Control` when `honor_cache_control`.
    pub(crate) fn take(
        headers: &mut HeaderMap,
        honor_cache_control: bool,
    ) -> Result<RequestControl, DirectiveError> {
        let mut c = RequestControl::default();
        if headers.is_empty() {
            return Ok(c);
        }
        if headers.contains_key(X_CACHE_CONTROL) {
            for v in headers.get_all(X_CACHE_CONTROL) {
                let bad = || DirectiveError::new(X_CACHE_CONTROL, v, EXPECTED_CONTROL);
                let s = v.to_str().map_err(|_| bad())?;
                for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                    if !c.directive(d, true) {
                        return Err(bad());
                    }
                }
            }
            headers.remove(X_CACHE_CONTROL);
        }
        if honor_cache_control && headers.contains_key(http::header::CACHE_CONTROL) {
            // The standard header is read leniently: unknown directives (and values
            // that do not parse) are other caches' business.
            for v in headers.get_all(http::header::CACHE_CONTROL) {
                let Ok(v) = v.to_str() else { continue };
                for d in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                    c.directive(d, false);
                }
            }
            headers.remove(http::header::CACHE_CONTROL);
        }
        if let Some(v) = headers.remove(X_CACHE_TTL) {
            let ttl = v
                .to_str()
                .ok()
                .and_then(|s| parse_duration(s).ok())
                .ok_or_else(|| DirectiveError::new(X_CACHE_TTL, &v, EXPECTED_TTL))?;
            c.ttl = Some(ttl);
        }
        if let Some(v) = headers.remove(X_CACHE_NAMESPACE) {
            // Any UTF-8 (HTTP/2 and most HTTP/1 stacks pass it as bytes) is used as is.
            let ns = std::str::from_utf8(v.as_bytes())
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| DirectiveError::new(X_CACHE_NAMESPACE, &v, EXPECTED_NAMESPACE))?;
            c.namespace = Some(ns.to_owned());
        }
        Ok(c)
    }

    /// Applies one directive; `false` when it is unknown or its value does not parse.
    fn directive(&mut self, d: &str, strict: bool) -> bool {
        let (name, arg) = match d.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (d, None),
        };
        let flag = |known: &str| name.eq_ignore_ascii_case(known) && (!strict || arg.is_none());
        if flag("no-cache") {
            self.no_cache = true;
        } else if flag("no-store") {
            self.no_store = true;
        } else if flag("only-if-cached") {
            self.only_if_cached = true;
        } else if name.eq_ignore_ascii_case("max-age") {
            let secs = if strict {
                arg.and_then(|a| parse_duration(a).ok())
                    .map(|d| d.as_secs())
            } else {
                // `Cache-Control` delta-seconds, as HTTP defines them.
                arg.and_then(|a| a.parse().ok())
            };
            let Some(n) = secs else { return false };
            self.max_age = Some(self.max_age.map_or(n, |m: u64| m.min(n)));
        } else {
            return false;
        }
        true
    }

    /// Applies the predicate's [`Storage`] rule given the layer's TTL; `false` when the
    /// request must bypass the cache.
    pub(crate) fn apply_storage(&mut self, storage: Storage, layer_ttl: Option<Duration>) -> bool {
        match storage {
            Storage::Default => true,
            Storage::AtMost(max) => {
                self.ttl = Some(self.ttl.or(layer_ttl).map_or(max, |t| t.min(max)));
                true
            }
            Storage::RequestTtlOnly => self.ttl.is_some(),
        }
    }
}

/// Parses a duration written as a number of seconds (`3600`) or as one or more
/// `<number><unit>` parts (`30s`, `30m`, `12h`, `7d`, `2w`, `1h30m`): the grammar of
/// the cache directives and of `mistral-cache`'s `--ttl`. Whitespace around the value
/// is ignored; fractions, signs and overflowing values are errors.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_owned());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("duration out of range: {input:?}"));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {input:?}: expected a number such as 3600, 30m, 12h or 7d"
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => {
                return Err(format!(
                    "invalid duration {input:?}: each number needs a unit s, m, h, d or w"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("duration out of range: {input:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {input:?}"))?;
        rest = chars.as_str();
    }
    Ok(Duration::from_secs(total))
}

/// Request headers a stored answer may vary on: `Authorization` is the default tenant
/// scope, and an answer without a content encoding suits every `Accept-Encoding`.
const VARY_ALLOWED: [&str; 2] = ["authorization", "accept-encoding"];

/// `true` when a response must not be stored, because the key cannot tell which
/// requests it answers: `Cache-Control: no-store`; a partial answer (`Content-Range`,
/// as in a `206`); a content-encoded body (the key does not include the request's
/// `Accept-Encoding`, so a client that cannot decode it could get it); or a `Vary`
/// naming `*` or any request header outside the key (only `Authorization` and
/// `Accept-Encoding` are accepted).
pub(crate) fn response_forbids_store(headers: &HeaderMap) -> bool {
    let tokens = |name: http::header::HeaderName| {
        headers
            .get_all(name)
            .into_iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    };
    tokens(http::header::CACHE_CONTROL).any(|d| d.eq_ignore_ascii_case(b"no-store"))
        || headers.contains_key(http::header::CONTENT_RANGE)
        || tokens(http::header::CONTENT_ENCODING).any(|e| !e.eq_ignore_ascii_case(b"identity"))
        || tokens(http::header::VARY).any(|h| {
            !VARY_ALLOWED
                .iter()
                .any(|allowed| h.eq_ignore_ascii_case(allowed.as_bytes()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_strips_directives() {
        let mut h = HeaderMap::new();
        h.append("x-cache-control", "No-Cache, max-age=60".parse().unwrap());
        h.append(
            "x-cache-control",
            "only-if-cached, max-age=\"30\"".parse().unwrap(),
        );
        h.insert("x-cache-ttl", " 120 ".parse().unwrap());
        h.insert("x-cache-namespace", "tests".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        let c = RequestControl::take(&mut h, false).unwrap();
        assert!(c.no_cache && c.only_if_cached && !c.no_store);
        assert_eq!(c.max_age, Some(30));
        assert_eq!(c.ttl, Some(Duration::from_secs(120)));
        assert_eq!(c.namespace.as_deref(), Some("tests"));
        assert_eq!(h.len(), 1, "only authorization is left: {h:?}");
    }

    #[test]
    fn standard_cache_control_is_ignored_unless_honored() {
        let headers = || {
            let mut h = HeaderMap::new();
            h.insert(
                "cache-control",
                "no-store, max-age=5, private".parse().unwrap(),
            );
            h
        };
        let mut h = headers();
        let c = RequestControl::take(&mut h, false).unwrap();
        assert_eq!(c, RequestControl::default());
        assert!(h.contains_key("cache-control"), "forwarded untouched");

        let mut h = headers();
        let c = RequestControl::take(&mut h, true).unwrap();
        assert!(c.no_store);
        assert_eq!(c.max_age, Some(5));
        assert!(h.is_empty(), "consumed when honored");
    }

    #[test]
    fn durations_use_the_ttl_grammar() {
        let ttl = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-cache-ttl", v.parse().unwrap());
            RequestControl::take(&mut h, false).map(|c| c.ttl)
        };
        assert_eq!(ttl("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(ttl("1h30m"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(ttl("7d"), Ok(Some(Duration::from_secs(604_800))));
        for bad in ["1.5", "-1", "", "soon", "10 s", "99999999999999999999"] {
            let err = ttl(bad).unwrap_err();
            assert!(err.to_string().contains("x-cache-ttl"), "{err}");
            assert!(err.to_string().contains("30s, 10m"), "{err}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-cache-control", "max-age=10m".parse().unwrap());
        assert_eq!(
            RequestControl::take(&mut h, false).unwrap().max_age,
            Some(600)
        );
    }

    #[test]
    fn unknown_or_malformed_own_directives_are_errors() {
        for bad in [
            "no-cache, stale-while-revalidate",
            "max-age",
            "max-age=1.5",
            "no-store=1",
            "max-age=-1",
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-cache-control", bad.parse().unwrap());
            let err = RequestControl::take(&mut h, false).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("x-cache-control") && msg.contains("only-if-cached"),
                "{msg}"
            );
        }
    }

    #[test]
    fn namespaces_are_bytes_or_rejected() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-cache-namespace",
            HeaderValue::from_bytes("équipe-α".as_bytes()).unwrap(),
        );
        let c = RequestControl::take(&mut h, false).unwrap();
        assert_eq!(c.namespace.as_deref(), Some("équipe-α"));
        for bad in [&b"\xff\xfe"[..], b"  "] {
            let mut h = HeaderMap::new();
            h.insert("x-cache-namespace", HeaderValue::from_bytes(bad).unwrap());
            let err = RequestControl::take(&mut h, false).unwrap_err();
            assert!(err.to_string().contains("x-cache-namespace"), "{err}");
        }
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            "max-age=18446744073709551615".parse().unwrap(),
        );
        h.insert("x-cache-ttl", "18446744073709551615".parse().unwrap());
        let c = RequestControl::take(&mut h, true).unwrap();
        assert_eq!(c.max_age, Some(u64::MAX));
        assert_eq!(c.ttl, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn storage_rules() {
        let five = Duration::from_secs(5);
        let mut c = RequestControl::default();
        assert!(c.apply_storage(Storage::AtMost(five), None));
        assert_eq!(c.ttl, Some(five), "no TTL at all is capped");
        let mut c = RequestControl::default();
        assert!(c.apply_storage(Storage::AtMost(five), Some(Duration::from_secs(2))));
        assert_eq!(c.ttl, Some(Duration::from_secs(2)));
        assert!(!RequestControl::default().apply_storage(Storage::RequestTtlOnly, Some(five)));
        let mut c = RequestControl {
            ttl: Some(five),
            ..Default::default()
        };
        assert!(c.apply_storage(Storage::RequestTtlOnly, None));
    }

    #[test]
    fn upstream_no_store() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", "private, No-Store".parse().unwrap());
        assert!(response_forbids_store(&h));
        h.insert("cache-control", "max-age=0".parse().unwrap());
        assert!(!response_forbids_store(&h));
    }

    #[test]
    fn answers_the_key_cannot_tell_apart_are_not_stored() {
        let forbids = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            response_forbids_store(&h)
        };
        assert!(!forbids(&[]));
        assert!(forbids(&[("content-range", "bytes 0-1/2")]));
        assert!(forbids(&[("content-encoding", "gzip")]));
        assert!(!forbids(&[("content-encoding", "identity")]));
        assert!(forbids(&[("vary", "*")]));
        assert!(forbids(&[("vary", "Accept-Encoding, Origin")]));
        assert!(!forbids(&[
            ("vary", "Accept-Encoding"),
            ("vary", "authorization")
        ]));
        assert!(!forbids(&[("vary", "")]));
    }
}
