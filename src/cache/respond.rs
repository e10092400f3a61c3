//! The answers the cache gives by itself: a hit, a follower's share of an in-flight
//! answer, the `504` of `only-if-cached`, and the `400`/`413` of a request body that
//! failed while it was buffered.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::body::ResponseBody;
use super::config::Config;
use super::control::{CacheMode, CacheStatus, DirectiveError, RequestControl, X_CACHE};
use super::entry::{CacheEntry, Frames};
use super::flight::{Head, Joined};
use super::metrics::Metrics;
use super::usage::X_CACHE_KEY;
use crate::BoxError;

/// Marks an answer with the key it is stored under ([`X_CACHE_KEY`]), when the key is
/// a digest: 32 to 128 lowercase hex digits (the default key always is; a custom key
/// function's key may hold request material, and is then not sent).
pub(crate) fn mark_key(headers: &mut HeaderMap, key: &str) {
    let digest = (32..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if digest && let Ok(v) = HeaderValue::from_str(key) {
        headers.insert(X_CACHE_KEY, v);
    }
}

/// Puts the headers of a hit on `key` in `headers`: `x-cache: HIT`, the key (see
/// [`mark_key`]) and `age`, here `0` ([`hit_response`] sets each hit's own). Every entry
/// [`decode_entry`](super::lookup::decode_entry) hands out has them.
pub(crate) fn hit_headers(headers: &mut HeaderMap, key: &str) {
    headers.insert(X_CACHE, CacheStatus::Hit.header_value());
    mark_key(headers, key);
    headers.insert(header::AGE, HeaderValue::from_static("0"));
}

pub(crate) fn hit_response<ResBody>(
    entry: CacheEntry,
    now_ms: u64,
    m: &Metrics,
) -> Response<ResponseBody<ResBody>> {
    let age = now_ms.saturating_sub(entry.created_ms()) / 1000;
    // `x-cache` and the key are in place already (see `hit_headers`).
    let (status, mut headers, frames) = entry.into_hit_parts();
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let age = match SMALL.get(age as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(age),
    };
    headers.insert(header::AGE, age);
    Metrics::inc(&m.hits);
    let body = match frames {
        Frames::One(f) => {
            Metrics::add(&m.bytes_served, f.len() as u64);
            ResponseBody::once(f)
        }
        Frames::Many(frames) => {
            Metrics::add(&m.bytes_served, frames.iter().map(|f| f.len() as u64).sum());
            ResponseBody::replay(frames)
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

pub(crate) fn only_if_cached_miss<ResBody>() -> Response<ResponseBody<ResBody>> {
    json_error(
        StatusCode::GATEWAY_TIMEOUT,
        CacheStatus::Miss,
        ONLY_IF_CACHED_MISS_BODY,
    )
}

/// The body of the 504 answered to `only-if-cached` (or in replay-only mode) on a miss:
/// a JSON error in the flat `{object, message, type, code}` envelope that LLM APIs and
/// their SDKs parse, so the caller sees why instead of an empty error.
const ONLY_IF_CACHED_MISS_BODY: &str = r#"{"object":"error","message":"no cached answer for this request (only-if-cached or replay-only cache)","type":"cache_miss","param":null,"code":"only_if_cached"}"#;

/// The hit response if `entry` is fresh enough for this request.
pub(crate) fn fresh_hit<ResBody>(
    cfg: &Config,
    ctl: &RequestControl,
    m: &Metrics,
    key: &str,
    entry: CacheEntry,
) -> Option<Response<ResponseBody<ResBody>>> {
    let now = cfg.clock.now_ms();
    let fresh = !entry.is_expired(now)
        && ctl
            .max_age
            .is_none_or(|max| now.saturating_sub(entry.created_ms()) <= max.saturating_mul(1000));
    if !fresh {
        return None;
    }
    tracing::debug!(key, "cache hit");
    Some(hit_response(entry, now, m))
}

/// The `504` of `only-if-cached` (or replay-only mode) when nothing usable was found.
pub(crate) fn replay_only_miss<ResBody>(
    cfg: &Config,
    ctl: &RequestControl,
    m: &Metrics,
    key: &str,
) -> Option<Response<ResponseBody<ResBody>>> {
    if ctl.only_if_cached || cfg.mode == CacheMode::ReplayOnly {
        Metrics::inc(&m.misses);
        tracing::debug!(key, "cache miss with only-if-cached; 504");
        let mut res = only_if_cached_miss();
        mark_key(res.headers_mut(), key);
        return Some(res);
    }
    None
}

pub(crate) fn follower_response<ResBody>(
    joined: Joined,
    head: Head,
    status: CacheStatus,
    key: &str,
) -> Response<ResponseBody<ResBody>> {
    let mut res = Response::new(ResponseBody::follow(joined));
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers;
    res.headers_mut().insert(X_CACHE, status.header_value());
    mark_key(res.headers_mut(), key);
    res
}

/// The answer to a request whose body failed while the cache buffered it (the inner
/// service is not called): `413` when the failure is a body-size limit
/// (`http_body_util::Limited`, as under tower-http's `RequestBodyLimitLayer`), `408`
/// when it is an I/O timeout (`std::io::ErrorKind::TimedOut`: the client stopped
/// sending), `400` otherwise, each with a JSON error like the `504` of
/// `only-if-cached`.
pub(crate) fn body_failed<ResBody>(err: BoxError) -> Response<ResponseBody<ResBody>> {
    tracing::debug!(error = %err, "request body failed while buffered; answered by the cache");
    let mut status = StatusCode::BAD_REQUEST;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            status = StatusCode::PAYLOAD_TOO_LARGE;
            break;
        }
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            status = StatusCode::REQUEST_TIMEOUT;
            break;
        }
        current = e.source();
    }
    let body = match status {
        StatusCode::PAYLOAD_TOO_LARGE => REQUEST_BODY_TOO_LARGE_BODY,
        StatusCode::REQUEST_TIMEOUT => REQUEST_BODY_TIMEOUT_BODY,
        _ => REQUEST_BODY_FAILED_BODY,
    };
    json_error(status, CacheStatus::Bypass, body)
}

const REQUEST_BODY_FAILED_BODY: &str = r#"{"object":"error","message":"the request body could not be read","type":"invalid_request_error","param":null,"code":"400"}"#;
const REQUEST_BODY_TOO_LARGE_BODY: &str = r#"{"object":"error","message":"the request body is over the size limit","type":"invalid_request_error","param":null,"code":"413"}"#;
const REQUEST_BODY_TIMEOUT_BODY: &str = r#"{"object":"error","message":"the client stopped sending the request body","type":"request_timeout","param":null,"code":"408"}"#;

/// The `400` answered for a cache directive that does not parse.
pub(crate) fn directive_error<ResBody>(err: &DirectiveError) -> Response<ResponseBody<ResBody>> {
    json_error(StatusCode::BAD_REQUEST, CacheStatus::Bypass, err.body())
}

/// A JSON error answered by the cache itself.
fn json_error<ResBody>(
    status: StatusCode,
    x_cache: CacheStatus,
    body: impl Into<Bytes>,
) -> Response<ResponseBody<ResBody>> {
    let body: Bytes = body.into();
    let len = body.len();
    let mut res = Response::new(ResponseBody::once(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(X_CACHE, x_cache.header_value());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}
