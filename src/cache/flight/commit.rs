//! The commit of a completed flight: the entry encoded from the recorded answer, or
//! nothing when the answer must not be stored.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};

use super::state::Head;
use crate::cache::entry::{Encoder, EntryKind};
use crate::cache::head::content_length;
use crate::cache::sign::EntrySecrets;
use crate::cache::usage::SavedTokens;
use crate::sse;

/// What an entry records besides the answer: where it came from and its times.
#[derive(Debug)]
pub(crate) struct EntryMeta<'a> {
    /// The request's namespace (`x-cache-namespace` or the layer's).
    pub(crate) namespace: &'a str,
    pub(crate) method: &'a Method,
    /// Path and query.
    pub(crate) path: &'a str,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: Option<u64>,
    /// Sign the entry with these secrets' current one.
    pub(crate) secrets: Option<&'a EntrySecrets>,
}

/// The entry for the recorded answer (with the tokens its `usage` counts, see
/// [`SavedTokens`]), or `None` when it must not be stored: no head, an
/// event stream that did not end cleanly (see [`sse::completed_cleanly`]), or a body
/// whose length differs from its `Content-Length`.
pub(crate) fn encode(
    key: &str,
    head: Option<&Head>,
    frames: &[Bytes],
    meta: &EntryMeta<'_>,
) -> Option<Bytes> {
    let head = head?;
    let (content_length, one_frame) = match head.kind {
        EntryKind::Sse => {
            if !sse::completed_cleanly(frames.iter().map(|f| &f[..])) {
                tracing::debug!(
                    key,
                    "stream ended without `data: [DONE]` or reported an error; not stored"
                );
                return None;
            }
            (None, false)
        }
        // A complete body is stored as one frame.
        _ => {
            let len: usize = frames.iter().map(Bytes::len).sum();
            let bodiless = *meta.method == Method::HEAD
                || head.status == StatusCode::NO_CONTENT
                || head.status == StatusCode::NOT_MODIFIED;
            if bodiless {
                (None, true)
            } else if content_length(&head.headers).is_some_and(|n| n != len as u64) {
                // The body ended short of (or past) its declared length: a
                // truncated answer, never stored.
                tracing::debug!(key, "body length differs from Content-Length; not stored");
                return None;
            } else {
                (Some(len), true)
            }
        }
    };
    // The tokens a hit on this entry saves, read once here rather than on every hit.
    let saved = SavedTokens::from_answer(frames, head.kind == EntryKind::Sse)
        .and_then(|s| s.to_header_value());
    let encoder = Encoder {
        kind: head.kind,
        status: head.status,
        headers: &head.headers,
        content_length,
        saved_tokens: saved.as_ref().map(HeaderValue::as_bytes),
        frames,
        one_frame,
        created_ms: meta.created_ms,
        expires_ms: meta.expires_ms,
        namespace: meta.namespace.as_bytes(),
        method: meta.method.as_str().as_bytes(),
        path: meta.path.as_bytes(),
    };
    Some(match meta.secrets {
        Some(secrets) => secrets.seal(encoder.encode_buf(true)),
        None => encoder.encode(),
    })
}
