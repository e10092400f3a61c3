//! Signed entries (`CacheLayer::sign_entries`, `--entry-secret`): an entry that is
//! unsigned, modified or forged in the store is a miss, counted, never served, and
//! overwritten; rotation accepts old secrets; the secrets never show in `Debug`.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use mistral_tower::cache::{
    CacheEngine, CacheEntry, CacheError, CacheLayer, EntrySecrets, MemoryEngine, SignatureError,
    TieredEngine,
};
use tower::{Service, ServiceExt};

use support::{body_string, post, x_cache};

const SECRET: &str = "current-entry-secret-0123456789";
const OLD_SECRET: &str = "previous-entry-secret-0123456789";
const OTHER_SECRET: &str = "someone-elses-secret-0123456789";
const ANSWER: &str = r#"{"id":"cmpl-1","answer":"the real one"}"#;

/// A shared store as another process sees it (Redis, S3, PostgreSQL): bytes in,
/// bytes out, nothing kept in the layer's process memory.
#[derive(Default)]
struct SharedStore(Mutex<HashMap<String, Bytes>>);

impl SharedStore {
    fn only_key(&self) -> String {
        let map = self.0.lock().unwrap();
        assert_eq!(map.len(), 1, "one entry stored");
        map.keys().next().unwrap().clone()
    }
    fn bytes(&self, key: &str) -> Bytes {
        self.0.lock().unwrap()[key].clone()
    }
    fn put(&self, key: &str, data: Bytes) {
        self.0.lock().unwrap().insert(key.to_owned(), data);
    }
}

impl CacheEngine for SharedStore {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or(CacheError::Miss)
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.put(key, data);
        Ok(())
    }
}

/// An upstream that answers [`ANSWER`] and counts its calls.
fn upstream(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<mistral_tower::cache::RequestBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                    .unwrap(),
            )
        }
    })
}

/// Sends the one request of these tests through `layer`; returns `x-cache` and the body.
async fn ask<E: CacheEngine + Clone>(
    layer: &CacheLayer<E>,
    calls: &Arc<AtomicUsize>,
) -> (String, String) {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream(calls.clone()));
    let res = svc
        .oneshot(post(
            "/v1/chat/completions",
            r#"{"model":"m","messages":[]}"#,
        ))
        .await
        .unwrap();
    let status = x_cache(&res);
    (status, body_string(res.into_body()).await)
}

/// The stored entry with its body replaced (as someone with write access to the store
/// would), re-encoded unsigned.
fn rewritten(stored: &Bytes, body: &str) -> CacheEntry {
    let e = CacheEntry::decode(stored).unwrap();
    CacheEntry::new(e.kind(), e.status(), e.headers().clone())
        .with_frames(vec![Bytes::from(body.to_owned())])
        .with_times(e.created_ms(), e.expires_ms())
        .with_request(e.namespace(), e.method(), e.path())
}

/// After a refusal: the store holds a fresh entry signed with `secret`, served as a hit.
async fn overwritten_and_served<E: CacheEngine + Clone>(
    layer: &CacheLayer<E>,
    calls: &Arc<AtomicUsize>,
    stored: Bytes,
    secret: &str,
) {
    assert_eq!(EntrySecrets::new(secret).verify(&stored), Ok(()));
    assert_eq!(CacheEntry::decode(&stored).unwrap().body(), ANSWER);
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        ask(layer, calls).await,
        ("HIT".to_owned(), ANSWER.to_owned())
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "a hit calls no upstream"
    );
}

#[tokio::test]
async fn a_tampered_byte_is_a_counted_miss_and_is_overwritten() {
    let store = Arc::new(SharedStore::default());
    let layer = CacheLayer::new(store.clone()).sign_entries(SECRET);
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(ask(&layer, &calls).await.0, "MISS");
    assert_eq!(ask(&layer, &calls).await.0, "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // One byte of the body flipped in the store.
    let key = store.only_key();
    let mut v = store.bytes(&key).to_vec();
    let at = v.windows(8).position(|w| w == b"real one").unwrap();
    v[at] ^= 0x01;
    store.put(&key, Bytes::from(v.clone()));

    let (status, body) = ask(&layer, &calls).await;
    assert_eq!((status.as_str(), body.as_str()), ("MISS", ANSWER));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "upstream called again");
    let m = layer.metrics();
    assert_eq!(m.entries_rejected_signature, 1);
    assert_eq!(
        m.corrupt_entries, 0,
        "refused for its signature, not decoded"
    );
    let stored = store.bytes(&key);
    assert_ne!(stored, v, "the tampered entry was overwritten");
    overwritten_and_served(&layer, &calls, stored, SECRET).await;
}

#[tokio::test]
async fn an_entry_forged_with_another_secret_is_a_miss() {
    let store = Arc::new(SharedStore::default());
    let layer = CacheLayer::new(store.clone()).sign_entries(SECRET);
    let calls = Arc::new(AtomicUsize::new(0));
    ask(&layer, &calls).await;
    let key = store.only_key();
    // A well-formed, signed entry (valid checksum), signed with the wrong secret.
    let forged = EntrySecrets::new(OTHER_SECRET).sign(&rewritten(&store.bytes(&key), "forged"));
    store.put(&key, forged.clone());
    // A layer that does not sign would serve it: the test is about the signature.
    let unsigned = CacheLayer::new(store.clone());
    assert_eq!(
        ask(&unsigned, &calls).await,
        ("HIT".to_owned(), "forged".to_owned())
    );

    let (status, body) = ask(&layer, &calls).await;
    assert_eq!((status.as_str(), body.as_str()), ("MISS", ANSWER));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.metrics().entries_rejected_signature, 1);
    overwritten_and_served(&layer, &calls, store.bytes(&key), SECRET).await;
}

#[tokio::test]
async fn an_unsigned_entry_is_a_miss_with_signing_on_and_served_with_it_off() {
    let store = Arc::new(SharedStore::default());
    let calls = Arc::new(AtomicUsize::new(0));
    // Written before signing was turned on (or by a writer without the secret).
    let unsigned = CacheLayer::new(store.clone());
    assert_eq!(ask(&unsigned, &calls).await.0, "MISS");
    let key = store.only_key();
    assert!(!CacheEntry::decode(&store.bytes(&key)).unwrap().is_signed());
    // Even an unsigned entry with a valid checksum and a chosen body.
    store.put(&key, rewritten(&store.bytes(&key), "planted").encode());

    let layer = CacheLayer::new(store.clone()).sign_entries(SECRET);
    let (status, body) = ask(&layer, &calls).await;
    assert_eq!((status.as_str(), body.as_str()), ("MISS", ANSWER));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.metrics().entries_rejected_signature, 1);
    overwritten_and_served(&layer, &calls, store.bytes(&key), SECRET).await;

    // Signing off again: the signed entry is still served.
    assert_eq!(
        ask(&unsigned, &calls).await,
        ("HIT".to_owned(), ANSWER.to_owned())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rotation_serves_entries_signed_with_an_accepted_old_secret_only() {
    let store = Arc::new(SharedStore::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let old = CacheLayer::new(store.clone()).sign_entries(OLD_SECRET);
    assert_eq!(ask(&old, &calls).await.0, "MISS");
    let key = store.only_key();
    let signed_with_old = store.bytes(&key);

    // Rotated: the old secret is still accepted.
    let rotated = CacheLayer::new(store.clone()).sign_entries_with(SECRET, [OLD_SECRET]);
    assert_eq!(
        ask(&rotated, &calls).await,
        ("HIT".to_owned(), ANSWER.to_owned())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(rotated.metrics().entries_rejected_signature, 0);

    // Old secret dropped: refused, and rewritten with the current secret.
    let current_only = CacheLayer::new(store.clone()).sign_entries(SECRET);
    assert_eq!(ask(&current_only, &calls).await.0, "MISS");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(current_only.metrics().entries_rejected_signature, 1);
    let rewritten = store.bytes(&key);
    assert_ne!(rewritten, signed_with_old);
    assert_eq!(
        EntrySecrets::new(OLD_SECRET).verify(&rewritten),
        Err(SignatureError::Invalid)
    );
    overwritten_and_served(&current_only, &calls, rewritten, SECRET).await;

    // New writes of a rotated layer use the current secret.
    store.0.lock().unwrap().clear();
    assert_eq!(ask(&rotated, &calls).await.0, "MISS");
    assert_eq!(EntrySecrets::new(SECRET).verify(&store.bytes(&key)), Ok(()));
}

#[tokio::test]
async fn memory_entries_the_layer_wrote_are_served_and_outside_writes_are_verified() {
    let calls = Arc::new(AtomicUsize::new(0));
    let memory = Arc::new(MemoryEngine::new(1 << 20));
    let layer = CacheLayer::new(memory.clone()).sign_entries(SECRET);
    assert_eq!(ask(&layer, &calls).await.0, "MISS");
    assert_eq!(ask(&layer, &calls).await.0, "HIT");
    let key = memory.keys().await.unwrap().pop().unwrap();
    assert_eq!(
        EntrySecrets::new(SECRET).verify(&memory.get_sync(&key).unwrap()),
        Ok(())
    );

    // Written into the same memory by code other than the layer: verified.
    let forged =
        EntrySecrets::new(OTHER_SECRET).sign(&rewritten(&memory.get_sync(&key).unwrap(), "forged"));
    memory.set_sync(&key, forged, None);
    assert_eq!(ask(&layer, &calls).await.0, "MISS");
    assert_eq!(layer.metrics().entries_rejected_signature, 1);

    // Written by another layer on the same memory engine that does not sign: refused.
    memory.delete(&key).await.unwrap();
    let unsigned = CacheLayer::new(memory.clone());
    assert_eq!(ask(&unsigned, &calls).await.0, "MISS");
    assert_eq!(ask(&layer, &calls).await.0, "MISS");
    assert_eq!(layer.metrics().entries_rejected_signature, 2);
    assert_eq!(ask(&layer, &calls).await.0, "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_tiered_memory_front_filled_from_a_forged_back_is_verified() {
    let calls = Arc::new(AtomicUsize::new(0));
    let back = Arc::new(SharedStore::default());
    let tiered = Arc::new(TieredEngine::new(MemoryEngine::new(1 << 20), back.clone()));
    let layer = CacheLayer::new(tiered.clone()).sign_entries(SECRET);
    assert_eq!(ask(&layer, &calls).await.0, "MISS");
    assert_eq!(ask(&layer, &calls).await.0, "HIT");

    // Forged in the shared back; this replica's front forgets its copy.
    let key = back.only_key();
    back.put(
        &key,
        EntrySecrets::new(OTHER_SECRET).sign(&rewritten(&back.bytes(&key), "forged")),
    );
    tiered.l1().delete(&key).await.unwrap();
    let (status, body) = ask(&layer, &calls).await;
    assert_eq!((status.as_str(), body.as_str()), ("MISS", ANSWER));
    assert_eq!(layer.metrics().entries_rejected_signature, 1);
    // The front was filled with the forged bytes, then overwritten by the miss.
    overwritten_and_served(&layer, &calls, back.bytes(&key), SECRET).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn debug_output_never_shows_the_secrets() {
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20)).sign_entries_with(SECRET, [OLD_SECRET]);
    let text = format!(
        "{layer:?} {:?}",
        EntrySecrets::new(SECRET).accept(OLD_SECRET)
    );
    assert!(
        !text.contains("entry-secret") && !text.contains("0123456789"),
        "{text}"
    );
    assert!(text.contains("<redacted>"), "{text}");
}

/// The proxy binary with `MISTRAL_CACHE_ENTRY_SECRET` on the file engine: a byte
/// flipped in the cache file on disk makes the next request a miss.
#[cfg(feature = "server")]
mod proxy {
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use mistral_tower::cache::{CacheEngine, FileEngine};
    use mistral_tower::testing::{FakeMistral, FakeResponse};

    use super::SECRET;

    const GUARD: Duration = Duration::from_secs(10);
    const CHAT: &str =
        r#"{"model":"mistral-small-latest","messages":[{"role":"user","content":"hi"}]}"#;

    fn bin() -> String {
        std::env::var("MISTRAL_CACHE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mistral-cache").to_owned())
    }

    /// `mistral-cache serve` on a free port, killed on drop.
    struct Proxy {
        child: Child,
        addr: SocketAddr,
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start(upstream: &str, engine: &str) -> Proxy {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .env("MISTRAL_CACHE_ENGINE", engine)
            .env("MISTRAL_CACHE_ENTRY_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .env_remove("MISTRAL_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end (a closed pipe would fail the proxy's log writes).
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx.recv_timeout(GUARD).expect("the proxy did not start");
            assert!(!line.contains(SECRET), "secret logged: {line}");
            if line.contains("mistral-cache listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .unwrap();
                break addr.parse().unwrap();
            }
        };
        Proxy { child, addr }
    }

    /// Runs an administration command with the secret in the environment (or not).
    fn admin(args: &[&str], secret: bool) -> String {
        let mut cmd = Command::new(bin());
        cmd.args(args).env("RUST_LOG", "warn");
        if secret {
            cmd.env("MISTRAL_CACHE_ENTRY_SECRET", SECRET);
        } else {
            cmd.env_remove("MISTRAL_CACHE_ENTRY_SECRET");
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains(SECRET));
        stdout
    }

    async fn chat(proxy: &Proxy) -> (String, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = http::Request::post(format!("http://{}/v1/chat/completions", proxy.addr))
            .header("authorization", "Bearer k")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(CHAT.as_bytes())))
            .unwrap();
        let res = tokio::time::timeout(GUARD, client.request(req))
            .await
            .unwrap()
            .unwrap();
        let status = super::x_cache(&res);
        let body = tokio::time::timeout(GUARD, res.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn metric(proxy: &Proxy, name: &str) -> u64 {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = http::Request::get(format!("http://{}/_mistral-cache/metrics", proxy.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = tokio::time::timeout(GUARD, client.request(req))
            .await
            .unwrap()
            .unwrap();
        let text = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }

    /// The written entry's key, once the proxy has stored it (writes finish after
    /// the response).
    async fn stored_key(files: &FileEngine) -> String {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(k) = files.keys().await.unwrap().pop() {
                    return k;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_byte_flipped_in_the_cache_file_makes_the_next_request_a_miss() {
        let fake = FakeMistral::start().await;
        for _ in 0..2 {
            fake.push(FakeResponse::chat("the real answer"));
        }
        let dir = tempfile::tempdir().unwrap();
        let engine = format!("file://{}", dir.path().display());
        let files = FileEngine::new(dir.path()).unwrap();
        let proxy = start(&fake.url(), &engine);

        let (status, first) = chat(&proxy).await;
        assert_eq!(status, "MISS");
        let key = stored_key(&files).await;
        assert_eq!(chat(&proxy).await, ("HIT".to_owned(), first.clone()));
        assert_eq!(fake.total_calls(), 1);

        // Flip one byte of the stored answer in the file on disk.
        let path = files.path_for(&key).unwrap();
        let mut raw = std::fs::read(&path).unwrap();
        let at = raw.windows(4).position(|w| w == b"real").unwrap();
        raw[at] = b'R';
        std::fs::write(&path, &raw).unwrap();
        let out = admin(&["inspect", "--engine", &engine, &key], true);
        assert!(out.contains("signature invalid"), "{out}");
        let out = admin(&["stats", "--engine", &engine, "--json"], true);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["signature_invalid"], 1, "{out}");

        let (status, body) = chat(&proxy).await;
        assert_eq!(status, "MISS");
        assert_eq!(body, first, "the tampered answer is never served");
        assert_eq!(fake.total_calls(), 2, "upstream called again");
        assert_eq!(
            metric(&proxy, "mistral_cache_entries_rejected_signature_total").await,
            1
        );
        // The miss rewrote the file with a correctly signed entry.
        tokio::time::timeout(GUARD, async {
            while std::fs::read(&path).unwrap() == raw {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(chat(&proxy).await, ("HIT".to_owned(), first));
        let out = admin(&["inspect", "--engine", &engine, &key], true);
        assert!(out.contains("signature:  valid"), "{out}");
        let out = admin(&["inspect", "--engine", &engine, &key], false);
        assert!(out.contains("signature:  signed (not checked"), "{out}");
    }
}
