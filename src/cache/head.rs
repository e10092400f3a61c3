//! Reading HTTP heads: the declared body length and the event-stream content type.

use http::{HeaderMap, header};

/// The `Content-Length` header as a number, if present and valid.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `true` when `Content-Length` or the body's size hint already says it is over `limit`.
pub(crate) fn declared_over<B: http_body::Body>(
    headers: &HeaderMap,
    body: &B,
    limit: usize,
) -> bool {
    content_length(headers).is_some_and(|n| n > limit as u64)
        || body.size_hint().lower() > limit as u64
}

/// `true` for a `text/event-stream` answer.
pub(crate) fn is_sse(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .get(..17)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
    })
}
