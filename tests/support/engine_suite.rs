//! The engine contract suite: generic checks every `CacheEngine` must pass, plus
//! helpers to find the test servers from the environment.
//!
//! Reach it as `support::engine_suite` after `mod support;`.

use std::time::Duration;

use bytes::Bytes;
use mistral_tower::cache::{CacheEngine, CacheError};

/// What an engine supports beyond `get`/`set`.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// `set_with_ttl` makes entries disappear.
    pub ttl: bool,
    /// `delete` is implemented.
    pub delete: bool,
    /// `keys` is implemented.
    pub keys: bool,
}

impl Caps {
    pub const ALL: Caps = Caps {
        ttl: true,
        delete: true,
        keys: true,
    };
}

/// Runs every check of the contract against `engine`.
///
/// The engine must be private to this call (its own prefix, table or
/// directory): the checks list and delete keys.
pub async fn contract<E: CacheEngine>(name: &str, engine: &E, caps: Caps) {
    get_after_set(engine).await;
    miss_is_miss(engine).await;
    overwrite(engine).await;
    empty_value(engine).await;
    binary_value(engine).await;
    large_value(engine).await;
    allowed_key_characters(engine).await;
    concurrent_writers_leave_one_whole_value(engine).await;
    if caps.delete {
        delete(engine).await;
    }
    if caps.keys {
        keys(engine).await;
    }
    if caps.ttl {
        ttl_expiry(engine).await;
    }
    println!("contract passed: {name}");
}

fn tag() -> String {
    format!("{:08x}", fastrand::u32(..))
}

pub async fn get_after_set<E: CacheEngine>(e: &E) {
    let k = format!("get-after-set-{}", tag());
    e.set(&k, Bytes::from_static(b"hello")).await.expect("set");
    assert_eq!(e.get(&k).await.expect("get after set"), "hello");
}

pub async fn miss_is_miss<E: CacheEngine>(e: &E) {
    let k = format!("never-written-{}", tag());
    match e.get(&k).await {
        Err(CacheError::Miss) => {}
        other => panic!("get of an absent key must be CacheError::Miss, got {other:?}"),
    }
}

pub async fn overwrite<E: CacheEngine>(e: &E) {
    let k = format!("overwrite-{}", tag());
    e.set(&k, Bytes::from_static(b"first value, longer"))
        .await
        .unwrap();
    e.set(&k, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(e.get(&k).await.unwrap(), "second");
}

pub async fn empty_value<E: CacheEngine>(e: &E) {
    let k = format!("empty-{}", tag());
    e.set(&k, Bytes::new()).await.expect("set empty value");
    let v = e
        .get(&k)
        .await
        .expect("an empty value is a hit, not a miss");
    assert!(v.is_empty(), "got {} bytes", v.len());
}

pub async fn binary_value<E: CacheEngine>(e: &E) {
    let k = format!("binary-{}", tag());
    // Every byte value, twice, in both orders (NUL, CR, LF, 0xFF, invalid UTF-8 ...).
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend((0..=255u8).rev());
    e.set(&k, Bytes::from(v.clone())).await.unwrap();
    assert_eq!(e.get(&k).await.unwrap().as_ref(), v.as_slice());
}

pub async fn large_value<E: CacheEngine>(e: &E) {
    let k = format!("large-{}", tag());
    let v: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i * 7 % 251) as u8).collect();
    e.set(&k, Bytes::from(v.clone())).await.expect("set 1 MiB");
    let got = e.get(&k).await.expect("get 1 MiB");
    assert_eq!(got.len(), v.len());
    assert!(got.as_ref() == v.as_slice(), "1 MiB value differs");
}

pub async fn allowed_key_characters<E: CacheEngine>(e: &E) {
    let all = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    let t = tag();
    let keys = [
        format!("{all}{t}"),
        format!("{t}{all}"),
        format!("{t}.json"),
        format!("-{t}_"),
        format!("{t}..{t}"),
        format!("{t}."),
        // The shape the cache layer uses: 64 lowercase hex characters.
        format!("{t}{}", "0123456789abcdef".repeat(4))[..64].to_owned(),
    ];
    for (i, k) in keys.iter().enumerate() {
        e.set(k, Bytes::from(format!("value {i}")))
            .await
            .unwrap_or_else(|err| panic!("set {k:?}: {err}"));
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            e.get(k)
                .await
                .unwrap_or_else(|err| panic!("get {k:?}: {err}")),
            format!("value {i}"),
            "key {k:?}"
        );
    }
    // Keys starting with '.' (including "." and ".."): an engine may refuse
    // them (the file engine does, as they name hidden or parent entries), but
    // only with InvalidKey on both set and get, never by storing elsewhere.
    for k in [
        format!(".{t}"),
        format!("..{t}"),
        ".".to_owned(),
        "..".to_owned(),
    ] {
        match e.set(&k, Bytes::from_static(b"dot")).await {
            Ok(()) => assert_eq!(
                e.get(&k)
                    .await
                    .unwrap_or_else(|err| panic!("get {k:?}: {err}")),
                "dot",
                "key {k:?}"
            ),
            Err(CacheError::InvalidKey(_)) => assert!(
                matches!(e.get(&k).await, Err(CacheError::InvalidKey(_))),
                "key {k:?} refused by set but not by get"
            ),
            Err(err) => panic!("set {k:?}: {err}"),
        }
    }
}

pub async fn concurrent_writers_leave_one_whole_value<E: CacheEngine>(e: &E) {
    let k = format!("contended-{}", tag());
    // Values large enough to be written in several chunks by most backends.
    let values: Vec<Bytes> = (0..8u8)
        .map(|i| Bytes::from(vec![b'a' + i; 256 * 1024 + usize::from(i)]))
        .collect();
    let writes = values.iter().map(|v| e.set(&k, v.clone()));
    for r in futures_util::future::join_all(writes).await {
        r.expect("concurrent set");
    }
    let got = e.get(&k).await.expect("get after concurrent writes");
    assert!(
        values.contains(&got),
        "value after concurrent writes is not one of the written values (len {}, first byte {:?})",
        got.len(),
        got.first()
    );
}

pub async fn delete<E: CacheEngine>(e: &E) {
    let k = format!("delete-{}", tag());
    e.set(&k, Bytes::from_static(b"x")).await.unwrap();
    e.delete(&k).await.expect("delete");
    assert!(
        e.get(&k).await.unwrap_err().is_miss(),
        "deleted key still there"
    );
    e.delete(&k)
        .await
        .expect("deleting an absent key is not an error");
}

pub async fn keys<E: CacheEngine>(e: &E) {
    let t = tag();
    let (a, b) = (format!("keys-a-{t}"), format!("keys-b-{t}"));
    e.set(&a, Bytes::from_static(b"1")).await.unwrap();
    e.set(&b, Bytes::from_static(b"2")).await.unwrap();
    let listed = e.keys().await.expect("keys");
    assert!(
        listed.contains(&a) && listed.contains(&b),
        "keys() lacks {a} or {b}: {listed:?}"
    );
    e.delete(&a).await.unwrap();
    let listed = e.keys().await.expect("keys");
    assert!(!listed.contains(&a), "deleted key still listed");
    assert!(listed.contains(&b));
}

pub async fn ttl_expiry<E: CacheEngine>(e: &E) {
    let t = tag();
    let (short, long, none) = (
        format!("ttl-short-{t}"),
        format!("ttl-long-{t}"),
        format!("ttl-none-{t}"),
    );
    e.set_with_ttl(
        &long,
        Bytes::from_static(b"L"),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    e.set_with_ttl(&none, Bytes::from_static(b"N"), None)
        .await
        .unwrap();
    e.set_with_ttl(
        &short,
        Bytes::from_static(b"S"),
        Some(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    // Poll until the short entry is gone; bounded, never timed.
    let mut expired = false;
    for _ in 0..150 {
        match e.get(&short).await {
            Err(CacheError::Miss) => {
                expired = true;
                break;
            }
            Ok(v) => assert_eq!(v, "S"),
            Err(err) => panic!("get during TTL poll: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        expired,
        "an entry with a 1 s TTL was still there after 15 s of polling"
    );
    assert_eq!(
        e.get(&long).await.expect("a 1 h TTL entry is still there"),
        "L"
    );
    assert_eq!(
        e.get(&none)
            .await
            .expect("an entry without TTL is still there"),
        "N"
    );
}

// ---------------------------------------------------------------------------
// Environment

pub use super::require_services;

/// The value of `var`, or prints `skipped: VAR not set` and returns `None`
/// (panics instead when services are required).
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if require_services() {
                panic!("{var} not set, and MISTRAL_TOWER_REQUIRE_SERVICES=1");
            }
            println!("skipped: {var} not set");
            None
        }
    }
}

/// `MISTRAL_TOWER_S3_URL`, provided credentials are set too (`AWS_ACCESS_KEY_ID`,
/// or `anonymous=true` in the URL): without them the AWS client would ask the
/// instance-metadata endpoint, which tests must never contact.
pub fn s3_url_or_skip() -> Option<String> {
    let url = env_or_skip("MISTRAL_TOWER_S3_URL")?;
    if !url.contains("anonymous=true") {
        env_or_skip("AWS_ACCESS_KEY_ID")?;
    }
    Some(url)
}

/// Checks that `engine` answers (a miss on a random key counts); otherwise
/// prints `skipped: cannot reach WHAT: ERR` and returns `false` (panics when
/// services are required).
pub async fn reachable_or_skip<E: CacheEngine>(engine: &E, what: &str) -> bool {
    let probe = format!("reachability-probe-{}", tag());
    let mut last = None;
    // A few tries: the first operation also connects.
    for _ in 0..3 {
        match engine.get(&probe).await {
            Ok(_) | Err(CacheError::Miss) => return true,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = last.map(|e| e.to_string()).unwrap_or_default();
    if require_services() {
        panic!("cannot reach {what}: {err} (MISTRAL_TOWER_REQUIRE_SERVICES=1)");
    }
    println!("skipped: cannot reach {what}: {err}");
    false
}

/// A name unique to this test run: process id plus random bits.
pub fn unique(label: &str) -> String {
    format!(
        "mt_{label}_{}_{:06x}",
        std::process::id(),
        fastrand::u32(..0xff_ffff)
    )
}

/// Adds `key=value` to a URL's query string.
pub fn add_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// Appends `/segment` to a URL's path (before its query string).
pub fn add_path(url: &str, segment: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{}/{segment}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{segment}", url.trim_end_matches('/')),
    }
}

/// Deletes every key the engine lists (cleanup after a test).
pub async fn clear<E: CacheEngine>(e: &E) {
    if let Ok(keys) = e.keys().await {
        for k in keys {
            let _ = e.delete(&k).await;
        }
    }
}
