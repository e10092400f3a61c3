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
