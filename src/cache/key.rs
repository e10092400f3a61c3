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
//! - strings and numbers are kept **byte-exact as written**: escapes are not normalised,
//!   so `"\u0041"` and `"A"` are different keys, and `1.0` differs from `1`. Clients
//!   serialize the same value the same way, so this costs no hits in practice and keeps
//!   the pass allocation-free and exact.
//!
//! A body that is not valid JSON (or nests deeper than 128 levels) is hashed raw, with a
//! different body marker, so it can never collide with a canonicalized body.

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
        let is_json = match input.headers.get(http::header::CONTENT_TYPE) {
            None => true,
            Some(v) => memchr::memmem::find(v.as_bytes(), b"json").is_some(),
        };
        hex(&default_digest(input, is_json))
    }
}

impl<F> KeyFn for F
where
    F: Fn(&KeyInput<'_>) -> String + Send + Sync + 'static,
{
    fn key(&self, input: &KeyInput<'_>) -> String {
        self(input)
    }
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

fn default_digest(input: &KeyInput<'_>, is_json: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    put(&mut h, b"mistral-tower/key/v1");
    put(&mut h, input.method.as_str().as_bytes());
    let pq = input.uri.path_and_query().map_or("/", |pq| pq.as_str());
    put(&mut h, pq.as_bytes());
    put(&mut h, input.namespace.as_bytes());
    put(&mut h, input.tenant);
    let hashed = is_json && !input.body.is_empty() && hash_canonical_json(input.body, &mut h);
    if !hashed {
        put(&mut h, b"raw");
        put(&mut h, input.body);
    }
    h.finalize().into()
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Returns the canonical form of a JSON document (see the [module docs](self)), or
/// `None` when `input` is not valid JSON.
///
/// This allocates the result; the cache itself hashes the canonical form without
/// keeping it.
pub fn canonical_json(input: &[u8]) -> Option<Vec<u8>> {
    let mut scratch = Scratch::default();
    canonicalize(input, &mut scratch).then(|| std::mem::take(&mut scratch.out))
}

/// Canonicalizes `body` and feeds it to `h` (preceded by the `json` marker). Returns
/// `false` (having fed nothing) when the body is not valid JSON.
fn hash_canonical_json(body: &[u8], h: &mut Sha256) -> bool {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    SCRATCH.with(|s| {
        let mut s = match s.try_borrow_mut() {
            Ok(s) => s,
            Err(_) => return false,
        };
        let ok = canonicalize(body, &mut s);
        if ok {
            put(h, b"json");
            put(h, &s.out);
        }
        s.trim();
        ok
    })
}

/// A member of an object being canonicalized: offsets into `Scratch::out`.
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
}

/// Reusable buffers: the canonical output, the member stack and a copy area.
#[derive(Default)]
struct Scratch {
    out: Vec<u8>,
    members: Vec<Member>,
    tmp: Vec<u8>,
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

fn canonicalize(input: &[u8], s: &mut Scratch) -> bool {
    s.out.clear();
    s.members.clear();
    if input.len() > u32::MAX as usize {
        return false;
    }
    let mut p = Parser {
        src: input,
        pos: 0,
        s,
    };
    p.ws();
    if p.value(0).is_err() {
        return false;
    }
    p.ws();
    p.pos == input.len()
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    s: &'a mut Scratch,
}

type R = Result<(), ()>;

impl Parser<'_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
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
            self.s.out.extend_from_slice(lit);
            self.pos += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn number(&mut self) -> R {
        let start = self.pos;
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
        self.s.out.extend_from_slice(&src[start..i]);
        self.pos = i;
        Ok(())
    }

    /// Copies a string token byte-exact (escapes are validated, not rewritten).
    fn string(&mut self) -> R {
        let src = self.src;
        let start = self.pos;
        let mut i = self.pos + 1;
        loop {
            let rel = memchr::memchr2(b'"', b'\\', &src[i..]).ok_or(())?;
            // Raw control characters are not allowed inside JSON strings.
            if src[i..i + rel].iter().any(|&b| b < 0x20) {
                return Err(());
            }
            i += rel;
            if src[i] == b'"' {
                i += 1;
                break;
            }
            // A backslash escape.
            match src.get(i + 1).ok_or(())? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = src.get(i + 2..i + 6).ok_or(())?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(());
                    }
                    i += 6;
                }
                _ => return Err(()),
            }
        }
        self.s.out.extend_from_slice(&src[start..i]);
        self.pos = i;
        Ok(())
    }

    fn array(&mut self, depth: u32) -> R {
        if depth > MAX_DEPTH {
            return Err(());
        }
        self.pos += 1;
        self.s.out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.s.out.push(b']');
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.s.out.push(b',');
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    self.s.out.push(b']');
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
        self.pos += 1;
        self.s.out.push(b'{');
        let body_start = self.s.out.len();
        let base = self.s.members.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.s.out.push(b'}');
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(());
            }
            let start = self.s.out.len() as u32;
            self.string()?;
            let key_end = self.s.out.len() as u32 - 1;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(());
            }
            self.pos += 1;
            self.s.out.push(b':');
            self.ws();
            self.value(depth)?;
            self.s.members.push(Member {
                key_start: start + 1,
                key_end,
                start,
                end: self.s.out.len() as u32,
            });
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.s.out.push(b',');
                    self.ws();
                }
                b'}' => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(()),
            }
        }
        self.sort_members(base, body_start);
        self.s.members.truncate(base);
        self.s.out.push(b'}');
        Ok(())
    }

    /// Reorders the members written since `body_start` by key, in place.
    fn sort_members(&mut self, base: usize, body_start: usize) {
        let Scratch { out, members, tmp } = &mut *self.s;
        let ms = &mut members[base..];
        let key = |m: &Member| &out[m.key_start as usize..m.key_end as usize];
        if ms.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
            return;
        }
        ms.sort_by(|a, b| key(a).cmp(key(b)));
        tmp.clear();
        for (i, m) in ms.iter().enumerate() {
            if i > 0 {
                tmp.push(b',');
            }
            tmp.extend_from_slice(&out[m.start as usize..m.end as usize]);
        }
        out.truncate(body_start);
        out.extend_from_slice(tmp);
    }
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
            "\"\u{1}\"",
        ] {
            assert!(canon(bad).is_none(), "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(canon(&deep).is_none());
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
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/mistral/examples/01-chat-completion.request.json"
        ))
        .unwrap();
        let ours = canonical_json(&body).unwrap();
        // serde_json's Map is a BTreeMap (sorted) without `preserve_order`.
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&ours).unwrap(),
            v
        );
        let theirs = serde_json::to_vec(&v).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap().len(), theirs.len());
    }
}
