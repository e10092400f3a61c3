//! Property tests of the cache key: field order and formatting never matter, values do.

use http::{HeaderMap, Method, Uri};
use mistral_tower::cache::{DefaultKeyFn, KeyFn, KeyInput, canonical_json};
use proptest::prelude::*;
use serde_json::Value;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_\\\\\"é]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Serializes `v` with object members in a random order and random whitespace between
/// tokens (strings and numbers are written exactly as serde_json writes them).
fn scramble(v: &Value, rng: &mut fastrand::Rng, out: &mut String) {
    let ws = |rng: &mut fastrand::Rng, out: &mut String| {
        for _ in 0..rng.usize(0..3) {
            out.push([' ', '\n', '\t', '\r'][rng.usize(0..4)]);
        }
    };
    ws(rng, out);
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    ws(rng, out);
                    out.push(',');
                }
                scramble(item, rng, out);
            }
            ws(rng, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            rng.shuffle(&mut members);
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                out.push_str(&serde_json::to_string(k).unwrap());
                ws(rng, out);
                out.push(':');
                scramble(item, rng, out);
            }
            ws(rng, out);
            out.push('}');
        }
        leaf => out.push_str(&serde_json::to_string(leaf).unwrap()),
    }
    ws(rng, out);
}

fn key(body: &[u8]) -> String {
    let method = Method::POST;
    let uri = Uri::from_static("/v1/chat/completions");
    let headers = HeaderMap::new();
    DefaultKeyFn.key(&KeyInput {
        method: &method,
        uri: &uri,
        headers: &headers,
        body,
        namespace: "",
        tenant: b"",
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn field_order_and_whitespace_do_not_change_the_key(v in arb_json(), s1: u64, s2: u64) {
        let (mut a, mut b) = (String::new(), String::new());
        scramble(&v, &mut fastrand::Rng::with_seed(s1), &mut a);
        scramble(&v, &mut fastrand::Rng::with_seed(s2), &mut b);
        prop_assert_eq!(canonical_json(a.as_bytes()), canonical_json(b.as_bytes()));
        prop_assert_eq!(key(a.as_bytes()), key(b.as_bytes()));
        // The canonical form is valid JSON for the same value (both parsed by serde_json,
        // whose float parsing is not exact, so compare parse to parse).
        let canon = canonical_json(a.as_bytes()).unwrap();
        prop_assert_eq!(
            serde_json::from_slice::<Value>(&canon).unwrap(),
            serde_json::from_str::<Value>(&a).unwrap()
        );
    }

    #[test]
    fn different_values_give_different_keys(v in arb_json(), w in arb_json(), seed: u64) {
        prop_assume!(v != w);
        let (mut a, mut b) = (String::new(), String::new());
        let mut rng = fastrand::Rng::with_seed(seed);
        scramble(&v, &mut rng, &mut a);
        scramble(&w, &mut rng, &mut b);
        prop_assert_ne!(key(a.as_bytes()), key(b.as_bytes()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = canonical_json(&bytes);
        prop_assert_eq!(key(&bytes).len(), 64);
    }
}

#[test]
fn invalid_json_is_hashed_raw_and_distinct_from_json() {
    assert_ne!(key(b"{\"a\":1"), key(b"{\"a\":1 "));
    assert_ne!(key(b"not json"), key(b"not  json"));
    assert_eq!(key(b"{\"a\":1}"), key(b" {\"a\" : 1}\n"));
}

/// A deliberately simple reference for the version-1 canonical form: a recursive
/// descent that builds each value's canonical bytes and sorts object members (stably)
/// by the raw bytes of their keys. `None` for invalid JSON, and for a member name not
/// spelled as serde_json spells it.
mod reference {
    pub(super) fn canonical(input: &[u8]) -> Option<Vec<u8>> {
        let mut p = P { s: input, i: 0 };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        (p.i == input.len()).then_some(v)
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while matches!(self.s.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                self.i += 1;
            }
        }

        fn eat(&mut self, b: u8) -> bool {
            let ok = self.s.get(self.i) == Some(&b);
            if ok {
                self.i += 1;
            }
            ok
        }

        fn value(&mut self, depth: u32) -> Option<Vec<u8>> {
            match *self.s.get(self.i)? {
                b'{' => self.object(depth + 1),
                b'[' => self.array(depth + 1),
                b'"' => self.string().map(|(raw, _)| raw),
                b't' => self.lit(b"true"),
                b'f' => self.lit(b"false"),
                b'n' => self.lit(b"null"),
                b'-' | b'0'..=b'9' => self.number(),
                _ => None,
            }
        }

        fn lit(&mut self, l: &[u8]) -> Option<Vec<u8>> {
            self.s[self.i..].starts_with(l).then(|| {
                self.i += l.len();
                l.to_vec()
            })
        }

        fn digits(&mut self) -> bool {
            let b = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            self.i > b
        }

        fn number(&mut self) -> Option<Vec<u8>> {
            let b = self.i;
            self.eat(b'-');
            if !self.eat(b'0') && !self.digits() {
                return None;
            }
            if self.eat(b'.') && !self.digits() {
                return None;
            }
            if self.eat(b'e') || self.eat(b'E') {
                let _ = self.eat(b'+') || self.eat(b'-');
                if !self.digits() {
                    return None;
                }
            }
            Some(self.s[b..self.i].to_vec())
        }

        /// The string token as written (with quotes) and its content.
        fn string(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
            let b = self.i;
            self.i += 1;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => break,
                    b'\\' => {
                        match *self.s.get(self.i + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                            b'u' => {
                                let hex = self.s.get(self.i + 2..self.i + 6)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return None;
                                }
                                self.i += 4;
                            }
                            _ => return None,
                        }
                        self.i += 2;
                    }
                    _ => self.i += 1,
                }
            }
            self.i += 1;
            let raw = self.s[b..self.i].to_vec();
            let content = self.s[b + 1..self.i - 1].to_vec();
            Some((raw, content))
        }

        fn array(&mut self, depth: u32) -> Option<Vec<u8>> {
            if depth > 128 {
                return None;
            }
            self.i += 1;
            let mut out = b"[".to_vec();
            self.ws();
            if !self.eat(b']') {
                loop {
                    out.extend(self.value(depth)?);
                    self.ws();
                    if self.eat(b']') {
                        break;
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    out.push(b',');
                    self.ws();
                }
            }
            out.push(b']');
            Some(out)
        }

        fn object(&mut self, depth: u32) -> Option<Vec<u8>> {
            if depth > 128 {
                return None;
            }
            self.i += 1;
            let mut members: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            self.ws();
            if !self.eat(b'}') {
                loop {
                    if self.s.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let (raw, key) = self.string()?;
                    if !canonical_name(&raw) {
                        return None;
                    }
                    self.ws();
                    if !self.eat(b':') {
                        return None;
                    }
                    self.ws();
                    let mut m = raw;
                    m.push(b':');
                    m.extend(self.value(depth)?);
                    members.push((key, m));
                    self.ws();
                    if self.eat(b'}') {
                        break;
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    self.ws();
                }
            }
            members.sort_by(|a, b| a.0.cmp(&b.0)); // stable
            let mut out = b"{".to_vec();
            for (i, (_, m)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(m);
            }
            out.push(b'}');
            Some(out)
        }
    }

    /// Whether a member name token (with its quotes) is spelled exactly as serde_json
    /// writes the name it decodes to (names spelled otherwise make the body hash raw).
    pub(super) fn canonical_name(raw: &[u8]) -> bool {
        serde_json::from_slice::<String>(raw)
            .is_ok_and(|name| serde_json::to_vec(&name).unwrap() == raw)
    }

    /// The version-1 key of a POST `/v1/chat/completions` without namespace or tenant.
    pub(super) fn key(body: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut put = |f: &[u8]| {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f);
        };
        put(b"mistral-tower/key/v1");
        put(b"POST");
        put(b"/v1/chat/completions");
        put(b"");
        put(b"");
        match canonical(body).filter(|_| !body.is_empty()) {
            Some(c) => {
                put(b"json");
                put(&c);
            }
            None => {
                put(b"raw");
                put(body);
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Random JSON-ish text: valid documents with varied formatting, key orders, escapes,
/// unicode, numbers, duplicate and shared-prefix keys, and (with `break_it`) a random
/// corruption.
fn gen_json(rng: &mut fastrand::Rng, depth: u32, out: &mut Vec<u8>) {
    const KEYS: [&str; 22] = [
        "a",
        "b",
        "role",
        "content",
        "model",
        "messages",
        "abcdefghij",
        "abcdefghia",
        "abcdefgh",
        "",
        "\\u0041",
        "\\\"q",
        "é",
        "k\\n",
        // Other spellings of names above, or of each other (issue 16).
        "A",
        "\\u00e9",
        "/",
        "\\/",
        "k\\u000a",
        "\\u001f",
        "\\u001F",
        "\u{1}",
    ];
    const STRINGS: [&str; 9] = [
        "",
        "plain",
        "with \\\"quotes\\\" and \\\\",
        "tab\\tnew\\nline",
        "\\ud83d\\ude00",
        "Café 東京 —",
        "\\/\\b\\f\\r",
        "\u{1}raw control",
        "0123456789abcdef0123456789",
    ];
    const NUMBERS: [&str; 8] = [
        "0",
        "-0",
        "1",
        "-12.5",
        "1.50e+3",
        "2E-7",
        "123456789012",
        "0.0",
    ];
    let ws = |rng: &mut fastrand::Rng, out: &mut Vec<u8>| {
        if rng.u8(..4) == 0 {
            for _ in 0..rng.usize(1..3) {
                out.push(b" \n\r\t"[rng.usize(..4)]);
            }
        }
    };
    ws(rng, out);
    let kind = if depth >= 5 {
        rng.u8(2..6)
    } else {
        rng.u8(0..6)
    };
    match kind {
        0 => {
            out.push(b'{');
            let max = if rng.bool() { 4 } else { 24 };
            let n = rng.usize(0..max);
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                ws(rng, out);
                let key = if rng.u8(..3) == 0 {
                    format!("k{}", rng.usize(0..40))
                } else {
                    KEYS[rng.usize(..KEYS.len())].to_owned()
                };
                out.extend_from_slice(format!("\"{key}\"").as_bytes());
                ws(rng, out);
                out.push(b':');
                gen_json(rng, depth + 1, out);
            }
            ws(rng, out);
            out.push(b'}');
        }
        1 => {
            out.push(b'[');
            let n = rng.usize(0..5);
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                gen_json(rng, depth + 1, out);
            }
            ws(rng, out);
            out.push(b']');
        }
        2 | 3 => {
            let mut s = STRINGS[rng.usize(..STRINGS.len())].repeat(rng.usize(1..4));
            if rng.u8(..4) == 0 {
                s.push_str(&"x".repeat(rng.usize(0..40)));
            }
            out.extend_from_slice(format!("\"{s}\"").as_bytes());
        }
        4 => out.extend_from_slice(NUMBERS[rng.usize(..NUMBERS.len())].as_bytes()),
        _ => out.extend_from_slice([&b"true"[..], b"false", b"null"][rng.usize(..3)]),
    }
    ws(rng, out);
}

fn corrupt(rng: &mut fastrand::Rng, doc: &mut Vec<u8>) {
    if doc.is_empty() {
        return;
    }
    match rng.u8(..4) {
        0 => doc.truncate(rng.usize(..doc.len())),
        1 => {
            let i = rng.usize(..doc.len());
            doc[i] = b"{}[]\",:\\ x0u-.e"[rng.usize(..15)];
        }
        2 => {
            let i = rng.usize(..=doc.len());
            doc.insert(i, b"{}[]\",:\\ x0"[rng.usize(..11)]);
        }
        _ => {
            let i = rng.usize(..doc.len());
            doc.remove(i);
        }
    }
}

#[test]
fn canonical_form_and_key_match_the_reference() {
    let mut rng = fastrand::Rng::with_seed(0x6b65_7973);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..20_000 {
        let mut doc = Vec::new();
        gen_json(&mut rng, 0, &mut doc);
        if case % 3 == 0 {
            corrupt(&mut rng, &mut doc);
        }
        let want = reference::canonical(&doc);
        match &want {
            Some(_) => valid += 1,
            None => invalid += 1,
        }
        assert_eq!(
            canonical_json(&doc),
            want,
            "{:?}",
            String::from_utf8_lossy(&doc)
        );
        assert_eq!(
            key(&doc),
            reference::key(&doc),
            "{:?}",
            String::from_utf8_lossy(&doc)
        );
    }
    assert!(
        valid > 10_000 && invalid > 2_000,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn edge_cases_match_the_reference() {
    let deep = |n: usize, open: &str, close: &str| (open.repeat(n) + &close.repeat(n)).into_bytes();
    let mut docs: Vec<Vec<u8>> = vec![deep(128, "[", "]"), deep(129, "[", "]")];
    // Deep objects need a value at the bottom.
    docs.push(format!("{}1{}", "{\"a\":".repeat(128), "}".repeat(128)).into_bytes());
    docs.push(format!("{}1{}", "{\"a\":".repeat(129), "}".repeat(129)).into_bytes());
    for s in [
        "",
        " ",
        "{}",
        " { } ",
        "[]",
        "\"\"",
        "0",
        "-",
        "1.",
        "1e",
        "01",
        "{\"b\":1,\"a\":2,\"a\":1}",
        "{\"b\" : { \"d\":1 , \"c\":2 } , \"a\" : [ {\"z\":0,\"y\":1} ] }\n",
        "{\"z\":1,\"y\":{\"x\":\"\\u00e9\",\"w\":\"\\\"\"},\"a\":\"\\\\\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"\\u12\"}",
        "\"abc",
        "\"\\",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{} {}",
        "{\"\u{7f}\":\"\u{0}\"}",
        "{\"k\":\"0123456789abcdef0123456789abcdef\\\"0123456789\"}",
    ] {
        docs.push(s.as_bytes().to_vec());
    }
    // Long reverse-ordered objects (merge sort path) at the top and nested, with
    // whitespace or not.
    let many: Vec<String> = (0..60)
        .rev()
        .map(|i| format!("\"k{i:02}\" : {i}"))
        .collect();
    docs.push(format!("{{{}}}", many.join(",")).into_bytes());
    docs.push(format!("[ {{{}}} ]", many.join(" , ")).into_bytes());
    docs.push(b"{\"a\":1,\"b\":2}\xff".to_vec());
    docs.push(b"{\"\xff\xfe\":1,\"\x01\":2}".to_vec());
    for doc in docs {
        assert_eq!(
            canonical_json(&doc),
            reference::canonical(&doc),
            "{:?}",
            String::from_utf8_lossy(&doc)
        );
        assert_eq!(
            key(&doc),
            reference::key(&doc),
            "{:?}",
            String::from_utf8_lossy(&doc)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scrambled_values_match_the_reference(v in arb_json(), seed: u64) {
        let mut a = String::new();
        scramble(&v, &mut fastrand::Rng::with_seed(seed), &mut a);
        prop_assert_eq!(canonical_json(a.as_bytes()), reference::canonical(a.as_bytes()));
        prop_assert_eq!(key(a.as_bytes()), reference::key(a.as_bytes()));
    }

    #[test]
    fn arbitrary_bytes_match_the_reference(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert_eq!(canonical_json(&bytes), reference::canonical(&bytes));
        prop_assert_eq!(key(&bytes), reference::key(&bytes));
    }
}

// ---------------------------------------------------------------------------
// Issue 16: names spelled differently but decoding alike must not share a key.

#[test]
fn escaped_names_that_alias_never_share_a_key() {
    for (a, b) in [
        (r#"{"\/":1,"/":2}"#, r#"{"/":2,"\/":1}"#),
        (r#"{"\u0041":1,"A":2}"#, r#"{"A":2,"\u0041":1}"#),
        (r#"{"é":1,"\u00e9":2}"#, r#"{"\u00e9":2,"é":1}"#),
        (r#"{"x":{"\/":1,"/":2}}"#, r#"{"x":{"/":2,"\/":1}}"#),
    ] {
        assert_ne!(key(a.as_bytes()), key(b.as_bytes()), "{a} vs {b}");
    }
    // Names spelled as serde_json spells them still sort: order does not matter.
    assert_eq!(
        key(br#"{"q\"":1,"a\\b":2,"t\n":3}"#),
        key(br#"{"t\n":3,"a\\b":2,"q\"":1}"#)
    );
}

/// A member value in [`gen_aliasing`]: a number or a nested object.
#[derive(Clone, Debug)]
enum Val {
    Num(u8),
    Obj(Vec<(&'static str, Val)>),
}

/// Spellings of a few names: each group decodes to one name.
const ALIASES: [&[&str]; 4] = [
    &["/", "\\/", "\\u002f", "\\u002F"],
    &["A", "\\u0041"],
    &["é", "\\u00e9", "\\u00E9"],
    &["\\n", "\\u000a", "\\u000A"],
];

fn gen_aliasing(rng: &mut fastrand::Rng, depth: u32) -> Vec<(&'static str, Val)> {
    (0..rng.usize(1..5))
        .map(|_| {
            let group = ALIASES[rng.usize(..ALIASES.len())];
            let name = group[rng.usize(..group.len())];
            let val = if depth < 2 && rng.u8(..4) == 0 {
                Val::Obj(gen_aliasing(rng, depth + 1))
            } else {
                Val::Num(rng.u8(..3))
            };
            (name, val)
        })
        .collect()
}

fn write_obj(members: &[(&str, Val)], out: &mut String) {
    out.push('{');
    for (i, (name, val)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{name}\":"));
        match val {
            Val::Num(n) => out.push_str(&n.to_string()),
            Val::Obj(m) => write_obj(m, out),
        }
    }
    out.push('}');
}

/// What a parser keeping the last (or first) of duplicate names sees.
fn meaning(members: &[(&str, Val)], last_wins: bool) -> Value {
    let mut map = serde_json::Map::new();
    for (name, val) in members {
        let name: String = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        let val = match val {
            Val::Num(n) => Value::from(*n),
            Val::Obj(m) => meaning(m, last_wins),
        };
        if last_wins || !map.contains_key(&name) {
            map.insert(name, val);
        }
    }
    Value::Object(map)
}

#[test]
fn equal_keys_mean_equal_documents_with_aliased_and_duplicate_names() {
    let mut rng = fastrand::Rng::with_seed(16);
    let mut docs = Vec::new();
    for _ in 0..3_000 {
        let members = gen_aliasing(&mut rng, 0);
        // The same members in another order, too: the case the sort could get wrong.
        let mut shuffled = members.clone();
        rng.shuffle(&mut shuffled);
        docs.push(members);
        docs.push(shuffled);
    }
    let mut by_key: std::collections::HashMap<String, (String, Value, Value)> =
        std::collections::HashMap::new();
    let mut shared = 0;
    for members in &docs {
        let mut text = String::new();
        write_obj(members, &mut text);
        let (last, first) = (meaning(members, true), meaning(members, false));
        assert_eq!(
            canonical_json(text.as_bytes()),
            reference::canonical(text.as_bytes()),
            "{text}"
        );
        match by_key.entry(key(text.as_bytes())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let (other, l, f) = e.get();
                assert_eq!((l, f), (&last, &first), "{text} and {other} share a key");
                shared += 1;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((text, last, first));
            }
        }
    }
    assert!(shared > 500, "only {shared} documents shared a key");
}

// ------------------------------------------- the index of byte-identical repeats

mod raw_index {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use mistral_tower::cache::{CacheLayer, MemoryEngine, RequestBody};
    use tower::{Layer, Service, ServiceExt};

    const BODY: &str =
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;

    fn counted(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<RequestBody<Full<Bytes>>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
            let n = calls.fetch_add(1, SeqCst);
            async move {
                let res = Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!("{{\"n\":{n}}}"))))
                    .unwrap();
                Ok::<_, Infallible>(res)
            }
        })
    }

    fn req(body: &str, auth: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut b = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", auth);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    /// Sends `r`, returns `x-cache` and the body.
    async fn send<S>(svc: &S, r: Request<Full<Bytes>>) -> (String, String)
    where
        S: Service<
                Request<Full<Bytes>>,
                Response = Response<mistral_tower::cache::ResponseBody<Full<Bytes>>>,
                Error = Infallible,
            > + Clone,
    {
        let res = svc.clone().oneshot(r).await.unwrap();
        let x = res.headers()["x-cache"].to_str().unwrap().to_owned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (x, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn byte_identical_repeats_reuse_the_key_and_anything_else_derives_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
        let svc = layer.layer(counted(calls.clone()));
        let a = || req(BODY, "Bearer a", &[]);
        assert_eq!(send(&svc, a()).await.0, "MISS");
        // The first hit derives the key and enters the request in the index; the
        // repeats after it take the key from there.
        for i in 0..3 {
            assert_eq!(send(&svc, a()).await, ("HIT".into(), "{\"n\":0}".into()));
            assert_eq!(layer.metrics().raw_key_reuses, i);
        }
        let reuses = layer.metrics().raw_key_reuses;

        // One changed byte that keeps the canonical form (whitespace, member order):
        // the key is derived, and it is the same key, so still a hit.
        let spaced = BODY.replacen(':', " : ", 1);
        let reordered =
            r#"{"temperature":0.5,"messages":[{"content":"hi","role":"user"}],"model":"m"}"#;
        for body in [spaced.as_str(), reordered] {
            assert_eq!(
                send(&svc, req(body, "Bearer a", &[])).await,
                ("HIT".into(), "{\"n\":0}".into())
            );
        }
        assert_eq!(layer.metrics().raw_key_reuses, reuses);

        // Same bytes under another tenant or namespace, or one changed value: another
        // key, so a miss; none of them reuses a's key.
        let changed = BODY.replace("0.5", "0.6");
        let others = [
            req(BODY, "Bearer b", &[]),
            req(BODY, "Bearer a", &[("x-cache-namespace", "other")]),
            req(&changed, "Bearer a", &[]),
        ];
        for (i, r) in others.into_iter().enumerate() {
            assert_eq!(send(&svc, r).await.0, "MISS", "case {i}");
        }
        assert_eq!(calls.load(SeqCst), 4);
        assert_eq!(layer.metrics().raw_key_reuses, reuses);
        // And a is still served from the index.
        assert_eq!(send(&svc, a()).await.0, "HIT");
        assert_eq!(layer.metrics().raw_key_reuses, reuses + 1);
    }

    #[tokio::test]
    async fn a_reused_key_still_obeys_ttl_and_directives() {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let clock = {
            let now = now.clone();
            move || now.load(SeqCst)
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = CacheLayer::new(MemoryEngine::new(1 << 20))
            .ttl(Duration::from_secs(10))
            .clock(clock);
        let svc = layer.layer(counted(calls.clone()));
        let a = |h: &[(&str, &str)]| req(BODY, "Bearer a", h);
        assert_eq!(send(&svc, a(&[])).await.0, "MISS");
        assert_eq!(send(&svc, a(&[])).await.0, "HIT");
        assert_eq!(send(&svc, a(&[])).await.0, "HIT");
        assert_eq!(layer.metrics().raw_key_reuses, 1);
        // max-age: the reused key finds an entry that is too old for this request.
        now.fetch_add(5_000, SeqCst);
        assert_eq!(
            send(&svc, a(&[("x-cache-control", "max-age=2")])).await.0,
            "MISS"
        );
        assert_eq!(calls.load(SeqCst), 2);
        // no-cache skips the read whatever the key's origin.
        assert_eq!(
            send(&svc, a(&[("x-cache-control", "no-cache")])).await.0,
            "REFRESH"
        );
        assert_eq!(calls.load(SeqCst), 3);
        assert_eq!(send(&svc, a(&[])).await, ("HIT".into(), "{\"n\":2}".into()));
        // Past the TTL the entry is gone even though the index still names its key.
        now.fetch_add(11_000, SeqCst);
        assert_eq!(
            send(&svc, a(&[("x-cache-control", "only-if-cached")]))
                .await
                .0,
            "MISS"
        );
        assert_eq!(calls.load(SeqCst), 3, "only-if-cached never calls upstream");
        assert_eq!(send(&svc, a(&[])).await.0, "MISS");
        assert_eq!(calls.load(SeqCst), 4);
    }

    #[tokio::test]
    async fn the_index_is_off_with_a_custom_key_function_or_a_zero_budget() {
        let custom = CacheLayer::new(MemoryEngine::new(1 << 20)).key_fn(
            |input: &mistral_tower::cache::KeyInput<'_>| format!("len{}", input.body.len()),
        );
        let off = CacheLayer::new(MemoryEngine::new(1 << 20)).raw_key_index(0);
        for layer in [custom, off] {
            let svc = layer.layer(counted(Arc::new(AtomicUsize::new(0))));
            assert_eq!(send(&svc, req(BODY, "Bearer a", &[])).await.0, "MISS");
            for _ in 0..3 {
                assert_eq!(send(&svc, req(BODY, "Bearer a", &[])).await.0, "HIT");
            }
            assert_eq!(layer.metrics().raw_key_reuses, 0);
        }
    }
}
