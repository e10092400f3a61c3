//! The stored entry: a versioned, self-describing binary encoding of a response.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{CacheEntry, EntryKind};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("content-type", "application/json".parse().unwrap());
//! let entry = CacheEntry::new(EntryKind::Json, http::StatusCode::OK, headers)
//!     .with_frames(vec![Bytes::from_static(b"{\"ok\":true}")])
//!     .with_times(1_700_000_000_000, Some(1_700_000_060_000))
//!     .with_request("default", "POST", "/v1/chat/completions");
//! let bytes = entry.encode();
//! let back = CacheEntry::decode(&bytes).unwrap();
//! assert_eq!(back.body(), "{\"ok\":true}");
//! assert_eq!(back.namespace(), "default");
//! assert!(CacheEntry::decode(&bytes.slice(..bytes.len() - 1)).is_err());
//! ```
//!
//! # Format (versions 1 and 2)
//!
//! All integers are big-endian. Version 1 is an unsigned entry; version 2 is the same
//! fields followed by a signature (written by a layer with
//! [`CacheLayer::sign_entries`](super::CacheLayer::sign_entries)).
//!
//! | field | size |
//! |---|---|
//! | magic `MTCE` | 4 |
//! | format version (`1` unsigned, `2` signed) | 1 |
//! | kind (`0` = JSON / any complete body, `1` = SSE) | 1 |
//! | flags (reserved, `0`) | 1 |
//! | status | 2 |
//! | created, unix milliseconds | 8 |
//! | expires, unix milliseconds (`0` = never) | 8 |
//! | namespace, method, path-and-query | u16 length + bytes each |
//! | header count | u16 |
//! | per header: name (u16 length + bytes), value (u32 length + bytes) | |
//! | frame count | u32 |
//! | per frame: u32 length + bytes | |
//! | checksum of everything before it | 8 |
//! | version 2 only: HMAC-SHA256 of everything before it, checksum included | 32 |
//!
//! The checksum is a fast 64-bit non-cryptographic hash: it detects truncation and
//! accidental corruption, not tampering. The signature detects tampering: see
//! [`EntrySecrets`](super::EntrySecrets). [`CacheEntry::decode`] reads both versions
//! and checks the checksum, never the signature. Request headers and credentials are never
//! stored; hop-by-hop headers, `set-cookie`, `age`, `x-cache`, `x-cache-key` and
//! `x-cache-saved-tokens` are dropped from the response headers. The cache layer stores
//! the tokens of the answer's `usage` as its own `x-cache-saved-tokens` header (see
//! [`SavedTokens`](super::SavedTokens)).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

const MAGIC: &[u8; 4] = b"MTCE";
/// The fewest bytes a stored header takes: two lengths and a one-byte name.
const MIN_HEADER: usize = 2 + 1 + 4;
/// The entry format version written by this crate for unsigned entries.
pub const FORMAT_VERSION: u8 = 1;
/// The entry format version of a signed entry: version 1 followed by a
/// [`SIGNATURE_LEN`]-byte HMAC-SHA256 tag.
pub const SIGNED_FORMAT_VERSION: u8 = 2;
/// The length of the signature at the end of a signed entry.
pub const SIGNATURE_LEN: usize = 32;
/// The checksum's length.
const CHECKSUM_LEN: usize = 8;

/// `(signed part, tag)` of a signed entry (version [`SIGNED_FORMAT_VERSION`] and
/// long enough to hold a tag), `None` for anything else.
pub(crate) fn split_signed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let signed = data.len() >= 5 + CHECKSUM_LEN + SIGNATURE_LEN
        && &data[..4] == MAGIC
        && data[4] == SIGNED_FORMAT_VERSION;
    signed.then(|| data.split_at(data.len() - SIGNATURE_LEN))
}

/// What kind of response an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A complete body (usually JSON), replayed as one frame.
    Json,
    /// A server-sent-event stream, replayed frame by frame.
    Sse,
}

/// Why bytes could not be decoded as a [`CacheEntry`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not an entry written by this crate.
    #[error("not a cache entry (bad magic)")]
    BadMagic,
    /// Written by another version of the format.
    #[error("unsupported entry format version {0}")]
    Version(u8),
    /// Cut short.
    #[error("truncated cache entry")]
    Truncated,
    /// The checksum does not match.
    #[error("cache entry checksum mismatch")]
    Checksum,
    /// A field holds an impossible value.
    #[error("malformed cache entry: {0}")]
    Malformed(&'static str),
}

/// A stored response: status, headers, body frames and metadata.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    kind: EntryKind,
    status: StatusCode,
    headers: HeaderMap,
    frames: Frames,
    created_ms: u64,
    expires_ms: Option<u64>,
    namespace: Bytes,
    method: Bytes,
    path: Bytes,
    /// Decoded from a signed encoding (version 2).
    signed: bool,
}

/// The body frames: one frame (every JSON entry) is kept without a `Vec`.
#[derive(Debug, Clone)]
pub(crate) enum Frames {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Frames {
    fn as_slice(&self) -> &[Bytes] {
        match self {
            Frames::One(b) => std::slice::from_ref(b),
            Frames::Many(v) => v,
        }
    }
}

fn as_str(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

impl CacheEntry {
    /// An entry with no body, created at time 0 and never expiring.
    pub fn new(kind: EntryKind, status: StatusCode, headers: HeaderMap) -> Self {
        CacheEntry {
            kind,
            status,
            headers,
            frames: Frames::Many(Vec::new()),
            created_ms: 0,
            expires_ms: None,
            namespace: Bytes::new(),
            method: Bytes::new(),
            path: Bytes::new(),
            signed: false,
        }
    }

    /// Sets the body frames (one frame for a JSON body, one per received frame for SSE).
    pub fn with_frames(mut self, frames: Vec<Bytes>) -> Self {
        self.frames = Frames::Many(frames);
        self
    }

    /// Sets the creation and expiry times, in unix milliseconds.
    pub fn with_times(mut self, created_ms: u64, expires_ms: Option<u64>) -> Self {
        self.created_ms = created_ms;
        self.expires_ms = expires_ms;
        self
    }

    /// Records the namespace and the request's method and path (never headers).
    pub fn with_request(
        mut self,
        namespace: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        self.namespace = Bytes::from(namespace.into());
        self.method = Bytes::from(method.into());
        self.path = Bytes::from(path.into());
        self
    }

    /// JSON (complete body) or SSE.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
    /// The stored status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The stored response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }
    /// The body frames as received.
    pub fn frames(&self) -> &[Bytes] {
        self.frames.as_slice()
    }
    /// The whole body (frames concatenated).
    pub fn body(&self) -> Bytes {
        match self.frames() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut b = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                for f in many {
                    b.extend_from_slice(f);
                }
                b.freeze()
            }
        }
    }
    /// The body length in bytes.
    pub fn body_len(&self) -> usize {
        self.frames().iter().map(Bytes::len).sum()
    }
    /// When the entry was stored, unix milliseconds.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    /// When the entry expires, unix milliseconds (`None` = never).
    pub fn expires_ms(&self) -> Option<u64> {
        self.expires_ms
    }
    /// `true` when the entry has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
    /// The namespace the entry was stored under.
    pub fn namespace(&self) -> &str {
        as_str(&self.namespace)
    }
    /// The request method that produced the entry.
    pub fn method(&self) -> &str {
        as_str(&self.method)
    }
    /// The request path and query that produced the entry.
    pub fn path(&self) -> &str {
        as_str(&self.path)
    }

    /// `true` when the entry was decoded from a signed encoding (format version
    /// [`SIGNED_FORMAT_VERSION`]); whether the signature is valid is for
    /// [`EntrySecrets::verify`](super::EntrySecrets::verify) to say.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// Takes the headers and frames out of the entry.
    pub fn into_parts(self) -> (StatusCode, HeaderMap, Vec<Bytes>) {
        let frames = match self.frames {
            Frames::One(b) => vec![b],
            Frames::Many(v) => v,
        };
        (self.status, self.headers, frames)
    }

    /// Takes the status, headers and frames out (without building a `Vec` for one frame).
    pub(crate) fn into_hit_parts(self) -> (StatusCode, HeaderMap, Frames) {
        (self.status, self.headers, self.frames)
    }

    /// Encodes the entry, unsigned (format version [`FORMAT_VERSION`]; see
    /// [`EntrySecrets::sign`](super::EntrySecrets::sign) for a signed one).
    pub fn encode(&self) -> Bytes {
        self.encoder().encode()
    }

    /// An encoder over this entry's parts.
    pub(crate) fn encoder(&self) -> Encoder<'_> {
        Encoder {
            kind: self.kind,
            status: self.status,
            headers: &self.headers,
            content_length: None,
            saved_tokens: None,
            frames: self.frames(),
            one_frame: false,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            namespace: &self.namespace,
            method: &self.method,
            path: &self.path,
        }
    }

    /// Decodes an entry (either version; a signed entry's signature is not checked
    /// here, see [`EntrySecrets::verify`](super::EntrySecrets::verify)). The body frames and header values share `data`'s memory
    /// (no copy).
    pub fn decode(data: &Bytes) -> Result<CacheEntry, DecodeError> {
        Self::decode_with_spare(data, 0)
    }

    /// [`decode`](Self::decode) without verifying the checksum: every structural check
    /// is made. For fuzzing the decoder past the checksum, and for recovery tools.
    #[doc(hidden)]
    pub fn decode_unverified(data: &Bytes) -> Result<CacheEntry, DecodeError> {
        Self::decode_inner(data, 0, false)
    }

    /// [`decode`](Self::decode), leaving room in the header map for `spare` more headers
    /// (the cache adds `x-cache` and `age` to a hit without growing the map).
    pub(crate) fn decode_with_spare(data: &Bytes, spare: usize) -> Result<CacheEntry, DecodeError> {
        Self::decode_inner(data, spare, true)
    }

    /// [`decode_with_spare`](Self::decode_with_spare) of bytes this process encoded
    /// itself and kept in memory since (see [`MemoryEngine`](super::MemoryEngine)):
    /// every structural check is made, the checksum is not recomputed.
    pub(crate) fn decode_trusted(data: &Bytes, spare: usize) -> Result<CacheEntry, DecodeError> {
        Self::decode_inner(data, spare, false)
    }

    fn decode_inner(data: &Bytes, spare: usize, verify: bool) -> Result<CacheEntry, DecodeError> {
        if data.len() < 4 || &data[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if data.len() < 5 {
            return Err(DecodeError::Truncated);
        }
        let tail = match data[4] {
            FORMAT_VERSION => CHECKSUM_LEN,
            SIGNED_FORMAT_VERSION => CHECKSUM_LEN + SIGNATURE_LEN,
            v => return Err(DecodeError::Version(v)),
        };
        // Magic, version and checksum (and tag) at least (found by fuzzing: 12 bytes
        // made the payload end before the version byte, and the reader underflow).
        if data.len() < 5 + tail {
            return Err(DecodeError::Truncated);
        }
        let end = data.len() - tail;
        let (payload, sum) = (&data[..end], &data[end..end + CHECKSUM_LEN]);
        if verify && checksum(payload) != u64::from_be_bytes(sum.try_into().expect("8 bytes")) {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader { data, pos: 5, end };
        let kind = match r.u8()? {
            0 => EntryKind::Json,
            1 => EntryKind::Sse,
            _ => return Err(DecodeError::Malformed("kind")),
        };
        let _flags = r.u8()?;
        let status =
            StatusCode::from_u16(r.u16()?).map_err(|_| DecodeError::Malformed("status"))?;
        let created_ms = r.u64()?;
        let expires_ms = Some(r.u64()?).filter(|&e| e != 0);
        let namespace = r.string()?;
        let method = r.string()?;
        let path = r.string()?;
        // Declared counts are checked against the bytes left before they size anything:
        // a header takes at least `MIN_HEADER` bytes, a frame at least its length.
        let n = r.u16()? as usize;
        if n > r.remaining() / MIN_HEADER {
            return Err(DecodeError::Truncated);
        }
        let mut headers = HeaderMap::try_with_capacity(n + spare)
            .map_err(|_| DecodeError::Malformed("header count"))?;
        for _ in 0..n {
            let len = r.u16()? as usize;
            let name = HeaderName::from_bytes(r.slice(len)?)
                .map_err(|_| DecodeError::Malformed("header name"))?;
            let len = r.u32()? as usize;
            let value = HeaderValue::from_maybe_shared(r.bytes(len)?)
                .map_err(|_| DecodeError::Malformed("header value"))?;
            headers
                .try_append(name, value)
                .map_err(|_| DecodeError::Malformed("header count"))?;
        }
        let n = r.u32()? as usize;
        if n > r.remaining() / 4 {
            return Err(DecodeError::Truncated);
        }
        let frames = if n == 1 {
            let len = r.u32()? as usize;
            Frames::One(r.bytes(len)?)
        } else {
            // Empty frames carry nothing and are dropped, so every kept frame took at
            // least 5 input bytes: the `Vec` is at most ~6x the input, and never grows.
            let mut frames = Vec::with_capacity(n.min(r.remaining() / 5));
            for _ in 0..n {
                let len = r.u32()? as usize;
                let frame = r.bytes(len)?;
                if !frame.is_empty() {
                    frames.push(frame);
                }
            }
            Frames::Many(frames)
        };
        if r.pos != r.end {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok(CacheEntry {
            kind,
            status,
            headers,
            frames,
            created_ms,
            expires_ms,
            namespace,
            method,
            path,
            signed: tail != CHECKSUM_LEN,
        })
    }
}

/// Encodes an entry from borrowed parts (the cache layer encodes straight from the
/// recorded flight, without building a [`CacheEntry`] or cloning its headers).
pub(crate) struct Encoder<'a> {
    pub(crate) kind: EntryKind,
    pub(crate) status: StatusCode,
    pub(crate) headers: &'a HeaderMap,
    /// Stored as the `Content-Length` header in place of any the map holds (where the
    /// first one is, otherwise last), like `HeaderMap::insert` before encoding.
    pub(crate) content_length: Option<usize>,
    /// Stored as the `x-cache-saved-tokens` header, after the others.
    pub(crate) saved_tokens: Option<&'a [u8]>,
    pub(crate) frames: &'a [Bytes],
    /// Store `frames` concatenated as one frame (a complete body received in pieces).
    pub(crate) one_frame: bool,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) namespace: &'a [u8],
    pub(crate) method: &'a [u8],
    pub(crate) path: &'a [u8],
}

impl Encoder<'_> {
    /// The encoded entry (format version [`FORMAT_VERSION`]), in one allocation.
    pub(crate) fn encode(&self) -> Bytes {
        self.encode_buf(false).freeze()
    }

    /// The encoded entry, with its checksum; `signed`: as version
    /// [`SIGNED_FORMAT_VERSION`], with room left for the tag the caller appends.
    pub(crate) fn encode_buf(&self, signed: bool) -> BytesMut {
        let body: usize = self.frames.iter().map(Bytes::len).sum();
        let est = 64
            + if signed { SIGNATURE_LEN } else { 0 }
            + 26
            + self.namespace.len()
            + self.method.len()
            + self.path.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| 6 + k.as_str().len() + v.len())
                .sum::<usize>()
            + 4 * self.frames.len()
            + self.saved_tokens.map_or(0, |s| 26 + s.len())
            + body;
        // A buffer of an entry the memory engine evicted, when one fits.
        let mut b = crate::cache::recycle::take(est);
        b.put_slice(MAGIC);
        b.put_u8(if signed {
            SIGNED_FORMAT_VERSION
        } else {
            FORMAT_VERSION
        });
        b.put_u8(match self.kind {
            EntryKind::Json => 0,
            EntryKind::Sse => 1,
        });
        b.put_u8(0);
        b.put_u16(self.status.as_u16());
        b.put_u64(self.created_ms);
        b.put_u64(self.expires_ms.unwrap_or(0));
        for s in [self.namespace, self.method, self.path] {
            let s = &s[..s.len().min(u16::MAX as usize)];
            b.put_u16(s.len() as u16);
            b.put_slice(s);
        }
        // The header count is patched in once the headers are written.
        let count_at = b.len();
        b.put_u16(0);
        let mut count = 0usize;
        let mut digits = [0u8; 20];
        let cl = self.content_length.map(|n| decimal(n, &mut digits));
        let mut cl_written = false;
        let mut put = |b: &mut BytesMut, k: &str, v: &[u8]| {
            if count < u16::MAX as usize {
                count += 1;
                b.put_u16(k.len() as u16);
                b.put_slice(k.as_bytes());
                b.put_u32(v.len() as u32);
                b.put_slice(v);
            }
        };
        for (k, v) in self.headers.iter().filter(|(k, _)| is_storable_header(k)) {
            match cl {
                Some(cl) if k == http::header::CONTENT_LENGTH => {
                    if !cl_written {
                        cl_written = true;
                        put(&mut b, k.as_str(), cl);
                    }
                }
                _ => put(&mut b, k.as_str(), v.as_bytes()),
            }
        }
        if let Some(cl) = cl
            && !cl_written
        {
            put(&mut b, http::header::CONTENT_LENGTH.as_str(), cl);
        }
        if let Some(saved) = self.saved_tokens {
            put(&mut b, "x-cache-saved-tokens", saved);
        }
        b[count_at..count_at + 2].copy_from_slice(&(count as u16).to_be_bytes());
        if self.one_frame {
            b.put_u32(1);
            b.put_u32(body as u32);
            self.frames.iter().for_each(|f| b.put_slice(f));
        } else {
            b.put_u32(self.frames.len() as u32);
            for f in self.frames {
                b.put_u32(f.len() as u32);
                b.put_slice(f);
            }
        }
        let sum = checksum(&b);
        b.put_u64(sum);
        b
    }
}

/// `n` in decimal ASCII, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `false` for headers that must not be stored: hop-by-hop, `set-cookie`, and the
/// cache's own `age` / `x-cache` / `x-cache-key` / `x-cache-saved-tokens` (an upstream
/// that is itself a cache; the saved tokens are stored from [`Encoder::saved_tokens`]).
pub(crate) fn is_storable_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "set-cookie"
            | "set-cookie2"
            | "age"
            | "x-cache"
            | "x-cache-key"
            | "x-cache-saved-tokens"
    )
}

struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    end: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }
    fn slice(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let s = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
    fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let b = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.slice(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.slice(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.slice(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.slice(8)?.try_into().expect("8")))
    }
    fn string(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()? as usize;
        let b = self.bytes(len)?;
        std::str::from_utf8(&b).map_err(|_| DecodeError::Malformed("string"))?;
        Ok(b)
    }
}

/// A fast 64-bit checksum: four independent multiply-rotate lanes over 8-byte words.
fn checksum(data: &[u8]) -> u64 {
    const K: [u64; 4] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
    ];
    let mut lanes = K;
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8"));
            *lane = (*lane ^ w).wrapping_mul(K[i] | 1).rotate_left(29);
        }
    }
    let mut h = (data.len() as u64).wrapping_mul(K[0]);
    for (i, lane) in lanes.iter().enumerate() {
        h = (h ^ lane.wrapping_mul(K[(i + 1) % 4])).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(K[1]).rotate_left(23);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(K[2]);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CacheEntry {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert("x-custom", HeaderValue::from_static("1"));
        headers.insert("set-cookie", HeaderValue::from_static("secret=1"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        CacheEntry::new(EntryKind::Sse, StatusCode::OK, headers)
            .with_frames(vec![
                Bytes::from_static(b"data: 1\n\n"),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
            .with_times(10, Some(20))
            .with_request("ns", "POST", "/v1/x?y=1")
    }

    #[test]
    fn round_trip_drops_unstorable_headers() {
        let e = CacheEntry::decode(&sample().encode()).unwrap();
        assert_eq!(e.kind(), EntryKind::Sse);
        assert_eq!(e.frames().len(), 2);
        assert_eq!(e.frames()[1], "data: [DONE]\n\n");
        assert_eq!(e.headers()["x-custom"], "1");
        assert!(e.headers().get("set-cookie").is_none());
        assert!(e.headers().get("transfer-encoding").is_none());
        assert_eq!((e.created_ms(), e.expires_ms()), (10, Some(20)));
        assert!(e.is_expired(20) && !e.is_expired(19));
        assert_eq!(
            (e.namespace(), e.method(), e.path()),
            ("ns", "POST", "/v1/x?y=1")
        );
    }

    #[test]
    fn encoder_replaces_content_length_like_insert_and_joins_frames() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("content-length", HeaderValue::from_static("99"));
        h.append("content-length", HeaderValue::from_static("98"));
        h.append("x-b", HeaderValue::from_static("2"));
        let frames = [Bytes::from_static(b"ab"), Bytes::from_static(b"cde")];
        for (present, h) in [(true, h.clone()), (false, HeaderMap::new())] {
            let got = Encoder {
                kind: EntryKind::Json,
                status: StatusCode::OK,
                headers: &h,
                content_length: Some(5),
                saved_tokens: None,
                frames: &frames,
                one_frame: true,
                created_ms: 1,
                expires_ms: Some(2),
                namespace: b"ns",
                method: b"POST",
                path: b"/p",
            }
            .encode();
            let mut expected_headers = h.clone();
            expected_headers.insert("content-length", HeaderValue::from(5u64));
            let expected = CacheEntry::new(EntryKind::Json, StatusCode::OK, expected_headers)
                .with_frames(vec![Bytes::from_static(b"abcde")])
                .with_times(1, Some(2))
                .with_request("ns", "POST", "/p")
                .encode();
            assert_eq!(got, expected, "content-length present: {present}");
            let back = CacheEntry::decode(&got).unwrap();
            assert_eq!(back.headers()["content-length"], "5");
            assert_eq!(back.frames().len(), 1);
            // Trusted decoding makes the same structural checks, without the checksum.
            let trusted = CacheEntry::decode_trusted(&got, 0).unwrap();
            assert_eq!(trusted.body(), "abcde");
            assert!(CacheEntry::decode_trusted(&got.slice(..got.len() - 9), 0).is_err());
        }
        assert_eq!(decimal(0, &mut [0; 20]), b"0");
        assert_eq!(
            decimal(usize::MAX, &mut [0; 20]),
            usize::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                CacheEntry::decode(&bytes.slice(..len)).is_err(),
                "len {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut v = bytes.to_vec();
            v[i] ^= 0x10;
            assert!(CacheEntry::decode(&Bytes::from(v)).is_err(), "flip at {i}");
        }
        let mut v = bytes.to_vec();
        v[4] = 3;
        assert_eq!(
            CacheEntry::decode(&Bytes::from(v)).unwrap_err(),
            DecodeError::Version(3)
        );
    }
    /// The 41-byte entry from issue 16: a valid checksum over a header count of 0xFFFF
    /// with no bytes behind it (it used to panic in `HeaderMap::with_capacity`).
    const ISSUE_16_ENTRY: &str =
        "4d54434501000000c800000000000000000000000000000000000000000000ffff7aa44c7e68584f86";

    fn unhex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    /// An entry with no strings, `headers` as given and `body` after them, checksummed.
    fn raw(header_count: u16, headers: &[u8], body: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_slice(MAGIC);
        b.put_slice(&[FORMAT_VERSION, 1, 0]);
        b.put_u16(200);
        b.put_u64(0);
        b.put_u64(0);
        b.put_slice(&[0; 6]);
        b.put_u16(header_count);
        b.put_slice(headers);
        b.put_slice(body);
        let sum = checksum(&b);
        b.put_u64(sum);
        b.freeze()
    }

    #[test]
    fn issue_16_entry_is_an_error_not_a_panic() {
        let bytes = unhex(ISSUE_16_ENTRY);
        assert_eq!(bytes.len(), 41);
        assert_eq!(
            CacheEntry::decode(&bytes).unwrap_err(),
            DecodeError::Truncated
        );
        assert!(CacheEntry::decode_with_spare(&bytes, 2).is_err());
        assert!(CacheEntry::decode_trusted(&bytes, 2).is_err());
    }

    #[test]
    fn entries_shorter_than_magic_version_and_checksum_are_truncated() {
        // Found by the `entry_decode` fuzz target: 12 bytes (a checksum over the magic
        // alone) left the payload ending before the version byte.
        let template = b"MTCE\x01\x01\x00\x00\xc8\x00\x00\x00\x00";
        for len in 0..template.len() {
            let bytes = Bytes::copy_from_slice(&template[..len]);
            assert!(CacheEntry::decode(&bytes).is_err(), "len {len}");
            assert!(CacheEntry::decode_trusted(&bytes, 2).is_err(), "len {len}");
        }
        let crash = Bytes::from_static(b"MTCE\x01\x01\x00\x00\xc8MT\x00");
        assert_eq!(
            CacheEntry::decode_trusted(&crash, 0).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn more_headers_than_a_header_map_holds_is_malformed() {
        // 40,000 one-byte names with empty values: every byte is there, but a
        // `HeaderMap` holds at most 32,768 entries (`append` used to panic).
        let one = [0u8, 1, b'a', 0, 0, 0, 0];
        let headers = one.repeat(40_000);
        let bytes = raw(40_000, &headers, &0u32.to_be_bytes());
        assert_eq!(
            CacheEntry::decode(&bytes).unwrap_err(),
            DecodeError::Malformed("header count")
        );
        // Within the limit, the same shape decodes.
        let bytes = raw(1_000, &one.repeat(1_000), &0u32.to_be_bytes());
        assert_eq!(CacheEntry::decode(&bytes).unwrap().headers().len(), 1_000);
    }

    #[test]
    fn frame_count_is_bounded_by_the_bytes_left() {
        // A frame count the input cannot hold is rejected before anything is sized.
        let mut body = u32::MAX.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 64]);
        assert_eq!(
            CacheEntry::decode(&raw(0, &[], &body)).unwrap_err(),
            DecodeError::Truncated
        );
        // 200,000 empty frames (800 KB of lengths) keep nothing: no 6.4 MB `Vec`.
        let n = 200_000u32;
        let mut body = n.to_be_bytes().to_vec();
        body.extend(std::iter::repeat_n(0u8, 4 * n as usize));
        let bytes = raw(0, &[], &body);
        let e = CacheEntry::decode(&bytes).unwrap();
        assert!(e.frames().is_empty());
        let Frames::Many(v) = &e.frames else {
            panic!("many frames")
        };
        assert!(v.capacity() * size_of::<Bytes>() <= 7 * bytes.len());
        // One-byte frames: the `Vec` is sized for them, and is under 7x the input.
        let mut body = n.to_be_bytes().to_vec();
        for _ in 0..n {
            body.extend_from_slice(&[0, 0, 0, 1, b'x']);
        }
        let bytes = raw(0, &[], &body);
        let e = CacheEntry::decode(&bytes).unwrap();
        assert_eq!(e.frames().len(), n as usize);
        let Frames::Many(v) = &e.frames else {
            panic!("many frames")
        };
        assert_eq!(v.capacity(), n as usize, "sized once, never grown");
        assert!(v.capacity() * size_of::<Bytes>() <= 7 * bytes.len());
    }

    #[test]
    fn random_bytes_after_a_valid_prefix_never_panic() {
        let mut rng = fastrand::Rng::with_seed(16);
        let good = sample().encode();
        for _ in 0..20_000 {
            let mut v = good[..rng.usize(..good.len())].to_vec();
            v.extend((0..rng.usize(..64)).map(|_| rng.u8(..)));
            // Re-checksum so the structure, not the checksum, is what gets tested.
            if v.len() >= 12 {
                let end = v.len() - 8;
                let sum = checksum(&v[..end]);
                v[end..].copy_from_slice(&sum.to_be_bytes());
            }
            let _ = CacheEntry::decode(&Bytes::from(v));
        }
    }
}
