//! Cache key derivation: a SHA-256 digest over a canonical form of the request.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{canonical_json, KeyInput, KeyFn, DefaultKeyFn};
//!
//! let a = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
//! let b = br#"{ "messages": [ { "content": "hi", "role": "user" } ], "model": "m" }"#;
//! assert_eq!(canonical_json(a), canonical_json(b));
//!
//! let req = http::Request::post("/v1/chat/completions").body(()).unwrap();
//! let (parts, ()) = req.into_parts();
//! let input = |body: &'static [u8]| KeyInput {
//!     method: &parts.method,
//!     uri: &parts.uri,
//!     headers: &parts.headers,
//!     body,
//!     namespace: "",
//!     tenant: b"",
//! };
//! assert_eq!(DefaultKeyFn.key(&input(a)), DefaultKeyFn.key(&input(b)));
//! assert_eq!(DefaultKeyFn.key(&input(a)).len(), 64);
//! ```
//!
//! # The canonical form (version 1)
//!
//! The digest covers, each length-prefixed (u64 big-endian): the tag
//! `mistral-tower/key/v1`, the method, the path and query, the namespace, the tenant
//! scope, a body marker and the body. For JSON request bodies (`Content-Type` absent or
//! containing `json`) the body is canonicalized in one pass:
//!
//! - insignificant whitespace is removed;
//! - object members are sorted by the raw bytes of their key as written between the
//!   quotes (the sort is stable, so duplicate keys keep their order);
//! - strings and numbers are kept **byte-exact as written** (the pass is lenient about
//!   raw control characters inside strings, which it keeps as they are): escapes are not normalised,
//!   so `"\u0041"` and `"A"` are different keys, and `1.0` differs from `1`. Clients
//!   serialize the same value the same way, so this costs no hits in practice and keeps
//!   the pass allocation-free and exact.
//!
//! A `multipart/form-data` body (an audio transcription, a file upload) is keyed on its
//! content: each part's name, file name, content type and bytes, in a canonical order
//! ([`canonical_multipart`](super::multipart::canonical_multipart)), so neither the
//! random boundary nor the order of the parts changes the key.
//!
//! Member names are compared as written, which is sound only while every name has one
//! spelling: a body with a member name spelled otherwise than serde_json spells it
//! (`"\/"`, `"\u0041"`, a raw control character, invalid UTF-8) is hashed raw, so
//! `{"\/":1,"/":2}` and `{"/":2,"\/":1}` (different values to a last-wins parser)
//! never share a key.
//!
//! A body that is not valid JSON (or nests deeper than 128 levels), or a malformed form,
//! is hashed raw, with a different body marker, so it can never collide with a
//! canonicalized body.

use std::cell::RefCell;

use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

/// Everything the key of a request may depend on.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI (the default key uses its path and query only).
    pub uri: &'a Uri,
    /// The request headers, after the cache's own control headers were removed.
    pub headers: &'a HeaderMap,
    /// The buffered request body.
    pub body: &'a [u8],
    /// The namespace (layer default or `x-cache-namespace`).
    pub namespace: &'a str,
    /// The tenant scope: opaque bytes that separate users. With the default tenant
    /// setting this is the raw `Authorization` value: hash it, never store or log it.
    pub tenant: &'a [u8],
}

/// Derives the engine key of a request.
///
/// The returned key must be made of `[A-Za-z0-9._-]` (engines may reject other keys) and
/// should be short; the default is 64 lowercase hex characters. Closures
/// `Fn(&KeyInput<'_>) -> String` implement this trait.
pub trait KeyFn: Send + Sync + 'static {
    /// The key for this request.
    fn key(&self, input: &KeyInput<'_>) -> String;
}

/// The default key: SHA-256 (hex) of the version-1 canonical form described in the
/// [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultKeyFn;

impl KeyFn for DefaultKeyFn {
    fn key(&self, input: &KeyInput<'_>) -> String {
        default_key_hex(input).as_str().to_owned()
    }
}

/// A key held on the stack: 64 lowercase hex characters.
#[derive(Clone, Copy)]
pub(crate) struct HexKey([u8; 64]);

impl HexKey {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

/// The [`DefaultKeyFn`] key without allocating.
pub(crate) fn default_key_hex(input: &KeyInput<'_>) -> HexKey {
    let is_json = match input.headers.get(http::header::CONTENT_TYPE) {
        None => true,
        // a form whose boundary happens to hold `json` is still a form
        Some(v) if super::multipart::is_multipart_form(v) => false,
        Some(v) => {
            let v = v.as_bytes();
            // The usual value first, without the substring search.
            v == b"application/json" || memchr::memmem::find(v, b"json").is_some()
        }
    };
    let digest = default_digest(input, is_json);
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(&digest) {
        pair.copy_from_slice(&HEX_PAIRS[b as usize]);
    }
    HexKey(out)
}

/// The two lowercase hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

impl<F> KeyFn for F
where
    F: Fn(&KeyInput<'_>) -> String + Send + Sync + 'static,
{
    fn key(&self, input: &KeyInput<'_>) -> String {
        self(input)
    }
}

#[cfg(test)]
fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

/// Feeds the hasher through a small stack buffer, so the short length-prefixed fields
/// of the key cost one hasher call instead of two each. The bytes hashed are exactly
/// the bytes written, in order.
struct Feed<'h> {
    h: &'h mut Sha256,
    buf: [u8; 256],
    len: usize,
}

impl<'h> Feed<'h> {
    fn new(h: &'h mut Sha256) -> Self {
        Feed {
            h,
            buf: [0; 256],
            len: 0,
        }
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            None => {
                self.flush();
                self.h.update(b);
            }
        }
    }

    /// A field preceded by its length (u64 big-endian).
    #[inline]
    fn field(&mut self, field: &[u8]) {
        self.bytes(&(field.len() as u64).to_be_bytes());
        self.bytes(field);
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.h.update(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

fn default_digest(input: &KeyInput<'_>, is_json: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut f = Feed::new(&mut h);
    f.field(b"mistral-tower/key/v1");
    f.field(input.method.as_str().as_bytes());
    let pq = input.uri.path_and_query().map_or("/", |pq| pq.as_str());
    f.field(pq.as_bytes());
    f.field(input.namespace.as_bytes());
    f.field(input.tenant);
    let hashed = if is_json {
        !input.body.is_empty() && hash_canonical_json(input.body, &mut f)
    } else {
        hash_canonical_multipart(input, &mut f)
    };
    if !hashed {
        f.field(b"raw");
        f.bytes(&(input.body.len() as u64).to_be_bytes());
        f.flush();
        f.h.update(input.body);
    }
    f.flush();
    h.finalize().into()
}

/// Feeds the canonical form of a `multipart/form-data` body (see
/// [`super::multipart::canonical_multipart`]: the boundary and the part order do not
/// count), preceded by the `multipart` marker. Returns `false` (having fed nothing) for
/// any other body.
fn hash_canonical_multipart(input: &KeyInput<'_>, f: &mut Feed<'_>) -> bool {
    let Some(ct) = input.headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    if !super::multipart::is_multipart_form(ct) {
        return false;
    }
    match super::multipart::canonical_multipart(ct, input.body) {
        Some(canonical) => {
            f.field(b"multipart");
            f.field(&canonical);
            true
        }
        None => false,
    }
}

/// Returns the canonical form of a JSON document (see the [module docs](self)), or
/// `None` when `input` is not valid JSON or spells a member name in a way that could
/// alias another name (such bodies are hashed raw).
///
/// This allocates the result; the cache itself hashes the canonical form without
/// keeping it.
pub fn canonical_json(input: &[u8]) -> Option<Vec<u8>> {
    let mut scratch = Scratch::default();
    if !canonicalize(input, &mut scratch, false) {
        return None;
    }
    let mut out = std::mem::take(&mut scratch.out);
    out.extend_from_slice(&input[scratch.tail..]);
    Some(out)
}

/// Canonicalizes `body` and feeds it to `f` (preceded by the `json` marker). Returns
/// `false` (having fed nothing) when the body is not valid JSON.
fn hash_canonical_json(body: &[u8], f: &mut Feed<'_>) -> bool {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    SCRATCH.with(|s| {
        let mut s = match s.try_borrow_mut() {
            Ok(s) => s,
            Err(_) => return false,
        };
        let ok = canonicalize(body, &mut s, true);
        if ok {
            // The canonical form is `out` followed by the input from `tail` on (the
            // part that needed no copy).
            let view = View {
                out: &s.out,
                tail: &body[s.tail..],
            };
            f.field(b"json");
            f.bytes(&(view.len() as u64).to_be_bytes());
            f.flush();
            let mut spans = Spans::new(view);
            match s.top {
                // The top-level object's members are fed to the hasher in key order
                // straight from the buffers, without moving them; runs of members
                // that are already adjacent are fed in one call.
                Some(n) => {
                    spans.byte(f, b'{');
                    for (i, m) in s.members[..n].iter().enumerate() {
                        if i > 0 {
                            spans.byte(f, b',');
                        }
                        spans.range(f, m.start as usize, m.end as usize);
                    }
                    spans.byte(f, b'}');
                }
                None => spans.range(f, 0, view.len()),
            }
            spans.finish(f);
        }
        s.trim();
        ok
    })
}

/// The canonical form as two pieces: the reordered/compacted part and the rest of the
/// input, which is already canonical.
#[derive(Clone, Copy)]
struct View<'a> {
    out: &'a [u8],
    tail: &'a [u8],
}

impl View<'_> {
    fn len(&self) -> usize {
        self.out.len() + self.tail.len()
    }

    /// The byte at canonical offset `i`.
    fn at(&self, i: usize) -> Option<u8> {
        match i.checked_sub(self.out.len()) {
            None => self.out.get(i).copied(),
            Some(t) => self.tail.get(t).copied(),
        }
    }
}

/// Feeds ranges of a [`View`] to the hasher, merging adjacent ranges into one call.
struct Spans<'a> {
    view: View<'a>,
    /// The pending range `start..end` of canonical offsets, not yet fed.
    start: usize,
    end: usize,
}

impl<'a> Spans<'a> {
    fn new(view: View<'a>) -> Self {
        Spans {
            view,
            start: 0,
            end: 0,
        }
    }

    /// Feeds the canonical range `a..b` next.
    fn range(&mut self, f: &mut Feed<'_>, a: usize, b: usize) {
        if a != self.end {
            self.finish(f);
            self.start = a;
        }
        self.end = b;
    }

    /// Feeds `byte` next: taken from the view when it follows the pending range there.
    fn byte(&mut self, f: &mut Feed<'_>, byte: u8) {
        if self.view.at(self.end) == Some(byte) {
            self.end += 1;
        } else {
            self.finish(f);
            f.bytes(&[byte]);
            f.flush();
        }
    }

    /// Feeds the pending range.
    fn finish(&mut self, f: &mut Feed<'_>) {
        let (a, b) = (self.start, self.end);
        if a < b {
            let n = self.view.out.len();
            if a < n {
                f.h.update(&self.view.out[a..b.min(n)]);
            }
            if b > n {
                f.h.update(&self.view.tail[a.max(n) - n..b - n]);
            }
        }
        self.start = self.end;
    }
}

/// A member of an object being canonicalized: offsets into the canonical form (see
/// [`View`]).
#[derive(Clone, Copy)]
struct Member {
    /// Start of the key's content (after the opening quote).
    key_start: u32,
    /// End of the key's content (the closing quote).
    key_end: u32,
    /// Start of the member (the opening quote of the key).
    start: u32,
    /// End of the member (after its value).
    end: u32,
    /// The first 8 bytes of the key, big-endian, zero-padded: comparing prefixes orders
    /// keys like comparing their bytes whenever the prefixes differ.
    prefix: u64,
}

/// The sort prefix of the key `src[start..end]` (see [`Member::prefix`]): one 8-byte
/// load with the bytes past the key masked off (a key is always followed by at least
/// `":` and a value, so the load rarely needs the copying fallback).
#[inline]
fn key_prefix(src: &[u8], start: usize, end: usize) -> u64 {
    let n = (end - start).min(8);
    if n == 0 {
        return 0;
    }
    let mask = u64::MAX << (8 * (8 - n));
    match src.get(start..start + 8) {
        Some(w) => u64::from_be_bytes(w.try_into().expect("8 bytes")) & mask,
        None => {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&src[start..start + n]);
            u64::from_be_bytes(b)
        }
    }
}

/// Orders members by key bytes: by prefix, then (on a tie) by the whole key.
#[inline]
fn member_cmp<'k>(
    a: &Member,
    b: &Member,
    key: &impl Fn(&Member) -> &'k [u8],
) -> std::cmp::Ordering {
    match a.prefix.cmp(&b.prefix) {
        std::cmp::Ordering::Equal => key_cmp(key(a), key(b)),
        o => o,
    }
}

/// Reusable buffers: the canonical output, the member stack and a copy area.
#[derive(Default)]
struct Scratch {
    /// The input without insignificant whitespace; nested objects are reordered in
    /// place once complete.
    out: Vec<u8>,
    members: Vec<Member>,
    tmp: Vec<u8>,
    /// `Some(n)`: the top-level object was left in input order and `members[..n]` lists
    /// its members in key order.
    top: Option<usize>,
    /// The canonical form is `out` followed by `input[tail..]`.
    tail: usize,
}

impl Scratch {
    fn trim(&mut self) {
        const KEEP: usize = 1 << 20;
        if self.out.capacity() > KEEP {
            self.out = Vec::new();
        }
        if self.tmp.capacity() > KEEP {
            self.tmp = Vec::new();
        }
        if self.members.capacity() > 4096 {
            self.members = Vec::new();
        }
    }
}

const MAX_DEPTH: u32 = 128;

/// One pass over `input`. The output (`out` followed by `input[tail..]`) is the input
/// with whitespace removed (copied in runs, not token by token, and only as far as
/// needed) and objects reordered by key. With `defer_top`, the top-level object is not
/// moved; its sorted member list is left in `members`.
fn canonicalize(input: &[u8], s: &mut Scratch, defer_top: bool) -> bool {
    s.out.clear();
    s.members.clear();
    s.top = None;
    s.tail = 0;
    if input.len() >= u32::MAX as usize {
        return false;
    }
    s.out.reserve(input.len());
    let mut p = Parser {
        src: input,
        pos: 0,
        flushed: 0,
        defer_top,
        s,
    };
    p.ws();
    if p.value(0).is_err() {
        return false;
    }
    p.ws();
    p.s.tail = p.flushed;
    p.pos == input.len()
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    /// `src[..flushed]` has been copied to `out` (or skipped as whitespace).
    flushed: usize,
    defer_top: bool,
    s: &'a mut Scratch,
}

type R = Result<(), ()>;

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Byte-wise comparison of two (short) keys, without a `memcmp` call for the common
/// case of keys that differ early.
#[inline]
fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` (little-endian) that is `"` or `\`, possibly with
/// false hits *above* a true one: the lowest set bit is always exact.
#[inline]
fn stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))
}

#[inline]
fn word(src: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(src[i..i + 8].try_into().expect("8 bytes"))
}

/// Index of the first `"` or `\` at or after `i`.
///
/// Scans 16 bytes at a time with word-wide (SWAR) arithmetic (no `unsafe`, no
/// intrinsics).
#[inline]
fn find_quote_or_backslash(src: &[u8], mut i: usize) -> Option<usize> {
    while i + 16 <= src.len() {
        let (a, b) = (stops(word(src, i)), stops(word(src, i + 8)));
        if a | b != 0 {
            let bit = if a != 0 {
                a.trailing_zeros()
            } else {
                64 + b.trailing_zeros()
            };
            return Some(i + (bit / 8) as usize);
        }
        i += 16;
    }
    if i + 8 <= src.len() {
        let a = stops(word(src, i));
        if a != 0 {
            return Some(i + (a.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    src.get(i..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|r| i + r)
}

/// Whether a member name is spelled the one way serde_json (and most serializers) spell
/// it: valid UTF-8 without raw control characters, and only the escapes `\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t` and `\u00xx` (lowercase) for the other control characters. Sorting
/// members by the raw bytes of such names never moves two members with the same decoded
/// name past each other (same name, same bytes, and the sort is stable), so the
/// canonical form keeps the meaning for first-wins and last-wins parsers alike. Any other
/// spelling (`\/`, `\u0041`, a raw control character...) could alias another member's
/// name: the body is then hashed raw.
#[inline]
fn is_canonical_name(name: &[u8]) -> bool {
    if name
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        return true; // the usual case
    }
    if std::str::from_utf8(name).is_err() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            0..0x20 => return false,
            b'\\' => match name.get(i + 1) {
                Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let code = match name.get(i + 2..i + 6) {
                        Some([b'0', b'0', hi @ (b'0' | b'1'), lo]) if !lo.is_ascii_uppercase() => {
                            let lo = (*lo as char).to_digit(16);
                            lo.map(|lo| (u32::from(hi - b'0') << 4) | lo)
                        }
                        _ => None,
                    };
                    // Control characters with a short escape must use it.
                    match code {
                        Some(0x08 | 0x09 | 0x0a | 0x0c | 0x0d) | None => return false,
                        Some(_) => i += 6,
                    }
                }
                _ => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// How far an escape `\x` advances, by `x`: 2, 6 for `\u` (then 4 hex digits are
/// checked), 0 for an invalid escape.
const ESCAPE_LEN: [u8; 256] = {
    let mut t = [0u8; 256];
    let simple = b"\"\\/bfnrt";
    let mut i = 0;
    while i < simple.len() {
        t[simple[i] as usize] = 2;
        i += 1;
    }
    t[b'u' as usize] = 6;
    t
};

impl Parser<'_> {
    /// The output offset corresponding to the current input position.
    #[inline]
    fn out_pos(&self) -> usize {
        self.s.out.len() + (self.pos - self.flushed)
    }

    #[inline]
    fn flush(&mut self) {
        if self.pos > self.flushed {
            self.s
                .out
                .extend_from_slice(&self.src[self.flushed..self.pos]);
        }
        self.flushed = self.pos;
    }

    #[inline]
    fn ws(&mut self) {
        if self.src.get(self.pos).is_some_and(|&b| is_ws(b)) {
            self.flush();
            self.pos += 1;
            while self.src.get(self.pos).is_some_and(|&b| is_ws(b)) {
                self.pos += 1;
            }
            self.flushed = self.pos;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn value(&mut self, depth: u32) -> R {
        match self.peek().ok_or(())? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(()),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> R {
        if self.src[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn number(&mut self) -> R {
        let src = self.src;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let b = *i;
            while src.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > b
        };
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
        if src.get(i) == Some(&b'0') {
            i += 1;
        } else if !digits(&mut i) {
            return Err(());
        }
        if src.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(());
            }
        }
        if matches!(src.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(());
            }
        }
        self.pos = i;
        Ok(())
    }

    /// Skips a string token, kept byte-exact (escapes are validated, not rewritten).
    #[inline]
    fn string(&mut self) -> R {
        let src = self.src;
        let mut i = self.pos + 1;
        loop {
            i = find_quote_or_backslash(src, i).ok_or(())?;
            if src[i] == b'"' {
                self.pos = i + 1;
                return Ok(());
            }
            let step = ESCAPE_LEN[*src.get(i + 1).ok_or(())? as usize];
            if step == 6 {
                let hex = src.get(i + 2..i + 6).ok_or(())?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(());
                }
            } else if step == 0 {
                return Err(());
            }
            i += step as usize;
        }
    }

    fn array(&mut self, depth: u32) -> R {
        if depth > MAX_DEPTH {
            return Err(());
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(()),
            }
        }
    }

    fn object(&mut self, depth: u32) -> R {
        if depth > MAX_DEPTH {
            return Err(());
        }
        let open = self.pos;
        self.pos += 1;
        let body_start = self.out_pos();
        let base = self.s.members.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(());
            }
            let start = self.out_pos() as u32;
            let key_in = self.pos + 1;
            self.string()?;
            if !is_canonical_name(&self.src[key_in..self.pos - 1]) {
                return Err(()); // hashed raw: see `is_canonical_name`
            }
            let prefix = key_prefix(self.src, key_in, self.pos - 1);
            let key_end = self.out_pos() as u32 - 1;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(());
            }
            self.pos += 1;
            self.ws();
            self.value(depth)?;
            self.s.members.push(Member {
                key_start: start + 1,
                key_end,
                start,
                end: self.out_pos() as u32,
                prefix,
            });
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => break,
                _ => return Err(()),
            }
        }
        if depth == 1 && self.defer_top {
            // Sort the top-level member list only, reading each key wherever it is
            // (a key never spans a flush).
            self.pos += 1;
            let src = self.src;
            let Scratch { out, members, .. } = &mut *self.s;
            let n = out.len();
            let shift = self.flushed - n;
            sort_by_key(&mut members[base..], |m| {
                let (a, b) = (m.key_start as usize, m.key_end as usize);
                if a < n {
                    &out[a..b]
                } else {
                    &src[a + shift..b + shift]
                }
            });
            self.s.top = Some(self.s.members.len());
            return Ok(());
        }
        if self.flushed <= open {
            // Nothing of this object has been copied out yet (no whitespace, no nested
            // reordered object): sort by reading the input and copy each member once.
            self.pos += 1;
            self.emit_from_input(base, open);
            self.s.members.truncate(base);
            return Ok(());
        }
        self.flush();
        self.pos += 1;
        let Scratch {
            out, members, tmp, ..
        } = &mut *self.s;
        let ms = &mut members[base..];
        if sort_by_key(ms, |m| &out[m.key_start as usize..m.key_end as usize]) {
            tmp.clear();
            for (i, m) in ms.iter().enumerate() {
                if i > 0 {
                    tmp.push(b',');
                }
                tmp.extend_from_slice(&out[m.start as usize..m.end as usize]);
            }
            out[body_start..body_start + tmp.len()].copy_from_slice(tmp);
        }
        self.s.members.truncate(base);
        Ok(())
    }

    /// Sorts the members of the object that opened at input offset `open` (and just
    /// closed) while they are still only in the input, and writes it out in key order.
    fn emit_from_input(&mut self, base: usize, open: usize) {
        let src = self.src;
        let Scratch { out, members, .. } = &mut *self.s;
        // Output offsets map to input offsets by a constant shift while nothing is flushed.
        let shift = self.flushed - out.len();
        let ms = &mut members[base..];
        let moved = sort_by_key(ms, |m| {
            &src[m.key_start as usize + shift..m.key_end as usize + shift]
        });
        if !moved {
            return; // already in order: it is copied lazily with what follows
        }
        out.extend_from_slice(&src[self.flushed..=open]);
        for (i, m) in ms.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&src[m.start as usize + shift..m.end as usize + shift]);
        }
        out.push(b'}');
        self.flushed = self.pos;
    }
}

/// Sorts members by key (stable); `false` when they were already in order.
#[inline]
fn sort_by_key<'k>(ms: &mut [Member], key: impl Fn(&Member) -> &'k [u8]) -> bool {
    if ms
        .windows(2)
        .all(|w| member_cmp(&w[0], &w[1], &key).is_le())
    {
        return false;
    }
    if ms.len() <= 16 {
        // Insertion sort: objects are small.
        for i in 1..ms.len() {
            let m = ms[i];
            let mut j = i;
            while j > 0 && member_cmp(&ms[j - 1], &m, &key).is_gt() {
                ms[j] = ms[j - 1];
                j -= 1;
            }
            ms[j] = m;
        }
    } else {
        ms.sort_by(|a, b| member_cmp(a, b, &key));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Option<String> {
        canonical_json(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn sorts_keys_recursively_and_strips_whitespace() {
        assert_eq!(
            canon(r#" { "b" : [ 1 , { "z":null, "a" : true } ], "a":"x y" } "#).unwrap(),
            r#"{"a":"x y","b":[1,{"a":true,"z":null}]}"#
        );
        assert_eq!(canon("[]").unwrap(), "[]");
        assert_eq!(canon("{}").unwrap(), "{}");
        assert_eq!(canon(r#"{"a":{}}"#).unwrap(), r#"{"a":{}}"#);
    }

    #[test]
    fn keeps_numbers_and_escapes_as_written() {
        assert_eq!(
            canon(r#"{"n":1.50e+3,"s":"\u0041\n\"q\""}"#).unwrap(),
            r#"{"n":1.50e+3,"s":"\u0041\n\"q\""}"#
        );
    }

    #[test]
    fn rejects_invalid_json() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "[1,]",
            "01",
            "1.",
            "-",
            "tru",
            "\"a",
            "{} x",
            "\"\\x\"",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[1 2]",
        ] {
            assert!(canon(bad).is_none(), "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(canon(&deep).is_none());
    }

    #[test]
    fn top_level_order_is_hashed_like_the_moved_form() {
        // The hasher sees the deferred top-level order; it must equal hashing the
        // fully reordered output.
        let body = br#" { "z" : { "b":1, "a":[ {"d":0,"c":1} ] }, "a":"x", "m":null } "#;
        let mut deferred = Sha256::new();
        let mut f = Feed::new(&mut deferred);
        assert!(hash_canonical_json(body, &mut f));
        f.flush();
        let canon = canonical_json(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&canon).unwrap(),
            r#"{"a":"x","m":null,"z":{"a":[{"c":1,"d":0}],"b":1}}"#
        );
        let mut moved = Sha256::new();
        put(&mut moved, b"json");
        put(&mut moved, &canon);
        assert_eq!(deferred.finalize(), moved.finalize());
    }

    #[test]
    fn long_strings_with_escapes() {
        let long = format!(
            r#"{{"b":"{}\"{}","a":"\\\\{}"}}"#,
            "x".repeat(100),
            "y".repeat(40),
            "z".repeat(7)
        );
        let c = canon(&long).unwrap_or_else(|| panic!("{long}"));
        assert!(c.starts_with(r#"{"a":"\\\\zzzzzzz","b":"xxxx"#), "{c}");
        assert!(
            c.ends_with(r#"x\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}"#),
            "{c}"
        );
    }

    #[test]
    fn names_with_another_spelling_make_the_body_hash_raw() {
        for name in [r"\/", r"\u0041", r"\u001F", r"\u000a", "\u{1}", r"\u00e9"] {
            assert!(!is_canonical_name(name.as_bytes()), "{name}");
            assert_eq!(canon(&format!(r#"{{"{name}":1}}"#)), None, "{name}");
        }
        for name in [
            "", "a b", r#"\""#, r"\\", r"\n", r"\u001f", r"\u0000", "é\u{7f}",
        ] {
            assert!(is_canonical_name(name.as_bytes()), "{name}");
        }
        assert!(!is_canonical_name(b"\xff"));
    }

    #[test]
    fn keys_sort_by_their_bytes_beyond_the_prefix() {
        // Shared 8-byte prefixes, prefixes of each other, the lowest byte a name may
        // hold raw (a raw control character makes the body hash raw) and a high byte.
        let keys: [&[u8]; 9] = [
            b"abcdefghZ",
            b"abcdefghA",
            b"abcdefgh",
            b"ab",
            b"ab ",
            b"ab  ",
            b"\xc3\xa9t\xc3\xa9",
            b"a",
            b"",
        ];
        let mut body = b"{".to_vec();
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.push(b'"');
            body.extend_from_slice(k);
            body.extend_from_slice(format!("\":{i}").as_bytes());
        }
        body.push(b'}');
        let mut sorted: Vec<(&[u8], usize)> = keys.iter().copied().zip(0..).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut want = b"{".to_vec();
        for (i, (k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                want.push(b',');
            }
            want.push(b'"');
            want.extend_from_slice(k);
            want.extend_from_slice(format!("\":{v}").as_bytes());
        }
        want.push(b'}');
        assert_eq!(canonical_json(&body).unwrap(), want);
        // Nested (sorted from the input) and more than 16 members (merge sort).
        let many: Vec<String> = (0..40)
            .rev()
            .map(|i| format!("\"k{i:02}xxxxxx{}\":{i}", 40 - i))
            .collect();
        let nested = format!("[{{{}}}]", many.join(","));
        let out = String::from_utf8(canonical_json(nested.as_bytes()).unwrap()).unwrap();
        let mut m = many.clone();
        m.sort();
        assert_eq!(out, format!("[{{{}}}]", m.join(",")));
    }

    #[test]
    fn duplicate_keys_keep_their_order() {
        assert_eq!(
            canon(r#"{"b":1,"a":2,"a":1}"#).unwrap(),
            r#"{"a":2,"a":1,"b":1}"#
        );
    }

    #[test]
    fn example_request_canonicalizes_like_serde_json() {
        let body: &[u8] = include_bytes!("../../../tests/fixtures/chat.request.json");
        let ours = canonical_json(body).unwrap();
        // serde_json's Map is a BTreeMap (sorted) without `preserve_order`.
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&ours).unwrap(),
            v
        );
        let theirs = serde_json::to_vec(&v).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap().len(), theirs.len());
    }

    #[test]
    fn a_multipart_form_is_keyed_on_its_content_not_its_boundary_or_order() {
        let form = |boundary: &str, parts: &[(&str, &str)]| {
            let mut body = String::new();
            for (name, value) in parts {
                body.push_str(&format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                ));
            }
            body.push_str(&format!("--{boundary}--\r\n"));
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}")
                    .parse()
                    .unwrap(),
            );
            (headers, body)
        };
        let key = |(headers, body): &(HeaderMap, String)| {
            let uri: Uri = "/v1/audio/transcriptions".parse().unwrap();
            DefaultKeyFn.key(&KeyInput {
                method: &Method::POST,
                uri: &uri,
                headers,
                body: body.as_bytes(),
                namespace: "",
                tenant: b"",
            })
        };
        let a = form("aaa", &[("model", "v"), ("file_url", "https://x/a.mp3")]);
        let b = form("bbbbbb", &[("file_url", "https://x/a.mp3"), ("model", "v")]);
        let c = form("aaa", &[("model", "v"), ("file_url", "https://x/b.mp3")]);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // a malformed form is hashed raw: still a key, and not the same as a's
        let broken = (a.0.clone(), a.1[..a.1.len() - 4].to_owned());
        assert_ne!(key(&a), key(&broken));
    }
}
