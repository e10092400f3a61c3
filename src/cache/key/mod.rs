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
//!
//! # Byte-identical repeats
//!
//! Canonicalizing a body costs more than hashing it. The layer therefore keeps a
//! bounded index (8 MiB by default, see
//! [`CacheLayer::raw_key_index`](super::CacheLayer::raw_key_index)) of requests that
//! hit: a seeded fast hash of every field the default key reads (method, path and
//! query, namespace, tenant scope, `Content-Type`, body) leads to a slot holding a copy
//! of the body, a SHA-256 digest of the other fields and the key. A request whose
//! fields equal a slot's byte for byte reuses its key; any difference, or a custom
//! [`KeyFn`], derives the key as described above, so the index never changes a key.

use std::cell::RefCell;

mod canonical;
mod raw;

use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

use canonical::{Scratch, canonicalize};
pub(crate) use raw::{DEFAULT_RAW_INDEX_BYTES, Probe, RawIndex};

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
    let kind = match input.headers.get(http::header::CONTENT_TYPE) {
        None => BodyKind::Json,
        // The usual value first, without the substring search.
        Some(v) if v.as_bytes() == b"application/json" => BodyKind::Json,
        // a form whose boundary happens to hold `json` is still a form
        Some(v) if super::multipart::is_multipart_form(v) => BodyKind::Form(v),
        Some(v) if memchr::memmem::find(v.as_bytes(), b"json").is_some() => BodyKind::Json,
        Some(_) => BodyKind::Raw,
    };
    let digest = default_digest(input, kind);
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(&digest) {
        pair.copy_from_slice(&HEX_PAIRS[b as usize]);
    }
    HexKey(out)
}

/// `bytes` in lowercase hex.
#[cfg(feature = "server")]
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        let [hi, lo] = HEX_PAIRS[usize::from(b)];
        out.push(char::from(hi));
        out.push(char::from(lo));
    }
    out
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

/// How a body is keyed, from its content type.
#[derive(Clone, Copy)]
enum BodyKind<'a> {
    /// Canonical JSON.
    Json,
    /// Canonical `multipart/form-data` (this content type, for its boundary).
    Form(&'a http::HeaderValue),
    /// The raw bytes.
    Raw,
}

fn default_digest(input: &KeyInput<'_>, kind: BodyKind<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut f = Feed::new(&mut h);
    f.field(b"mistral-tower/key/v1");
    f.field(input.method.as_str().as_bytes());
    let pq = input.uri.path_and_query().map_or("/", |pq| pq.as_str());
    f.field(pq.as_bytes());
    f.field(input.namespace.as_bytes());
    f.field(input.tenant);
    let hashed = match kind {
        BodyKind::Json => !input.body.is_empty() && hash_canonical_json(input.body, &mut f),
        BodyKind::Form(ct) => hash_canonical_multipart(ct, input.body, &mut f),
        BodyKind::Raw => false,
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
/// a malformed form.
fn hash_canonical_multipart(ct: &http::HeaderValue, body: &[u8], f: &mut Feed<'_>) -> bool {
    match super::multipart::canonical_multipart(ct, body) {
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

#[cfg(test)]
mod tests {
    use super::canonical::is_canonical_name;
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
