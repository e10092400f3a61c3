//! The properties the fuzz targets check, shared with `tests/fuzz_corpus.rs`, which
//! replays each target's seed corpus on stable.
#![allow(dead_code)]

use bytes::Bytes;
use mistral_tower::cache::{CacheEntry, canonical_json};
use mistral_tower::sse::{SseEvent, SseParser};

/// Events and whether the parser overflowed, for `input` fed in `chunks`.
fn sse_run(limit: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
    let mut p = SseParser::with_max_event_size(limit);
    let mut events = Vec::new();
    for c in chunks {
        events.extend(p.feed(c));
    }
    (events, p.is_overflowed())
}

/// SSE: the same events (and the same overflow) whole, split at pseudo-random points,
/// and byte by byte. Byte 0 sets a small line/event limit so it is reached; byte 1
/// seeds the split.
pub(crate) fn sse_split(data: &[u8]) {
    let [l, seed, input @ ..] = data else {
        return;
    };
    let limit = 8 + usize::from(*l);
    let whole = sse_run(limit, &[input]);
    let mut chunks = Vec::new();
    let (mut i, mut k) = (0, usize::from(*seed));
    while i < input.len() {
        let n = 1 + k % 9;
        let end = (i + n).min(input.len());
        chunks.push(&input[i..end]);
        k = k.wrapping_mul(31).wrapping_add(usize::from(input[i]));
        i = end;
    }
    assert_eq!(
        whole,
        sse_run(limit, &chunks),
        "split at pseudo-random points"
    );
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(whole, sse_run(limit, &bytes), "byte by byte");
}

/// Entry decoder: never panics; an entry that decodes re-encodes to one that decodes
/// to the same response. The checksum is also skipped, so the structure is reached.
pub(crate) fn entry_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let _ = CacheEntry::decode(&bytes);
    let Ok(entry) = CacheEntry::decode_unverified(&bytes) else {
        return;
    };
    let again = CacheEntry::decode(&entry.encode()).expect("a re-encoded entry decodes");
    assert_eq!(again.kind(), entry.kind());
    assert_eq!(again.status(), entry.status());
    assert_eq!(again.body(), entry.body());
    assert_eq!(
        (again.created_ms(), again.expires_ms()),
        (entry.created_ms(), entry.expires_ms())
    );
    assert_eq!(
        (again.namespace(), again.method(), again.path()),
        (entry.namespace(), entry.method(), entry.path())
    );
}

/// Canonical key: never panics; the canonical form is canonical (idempotent) and means
/// what the input means to serde_json (last of duplicate names wins), so reordering
/// members never changes which duplicate wins.
pub(crate) fn canonical_key(data: &[u8]) {
    let Some(canon) = canonical_json(data) else {
        return;
    };
    assert_eq!(
        canonical_json(&canon).as_deref(),
        Some(&canon[..]),
        "the canonical form is its own canonical form"
    );
    if let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<serde_json::Value>(data),
        serde_json::from_slice::<serde_json::Value>(&canon),
    ) {
        assert_eq!(a, b, "the canonical form means the same");
    }
}

/// The CLI's size and duration parsers, the upstream URL check and the engine URL
/// options (through `memory://`, which opens nothing): never panic.
#[cfg(feature = "server")]
pub(crate) fn parsers(data: &[u8]) {
    use futures_util::FutureExt as _;
    use mistral_tower::server::__fuzz::{parse_duration, parse_size};
    use mistral_tower::server::Config;

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(s)
        && d.subsec_nanos() == 0
    {
        assert_eq!(parse_duration(&d.as_secs().to_string()), Ok(d), "{s:?}");
    }
    if let Ok(n) = parse_size(s) {
        assert_eq!(parse_size(&n.to_string()), Ok(n), "{s:?}");
    }
    let mut config = Config::default();
    config.upstream = s.to_owned();
    let _ = config.validate();
    for scheme in ["memory://", "tiered+memory://"] {
        let _ = mistral_tower::cache::engine_from_url(&format!("{scheme}{s}")).now_or_never();
    }
}
