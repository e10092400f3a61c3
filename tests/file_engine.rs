//! The file engine's hot tier (what `file://` URLs build): hits come from memory without
//! leaving the runtime thread, yet an entry deleted, replaced or expired on disk (by
//! `mistral-cache purge`, another process or another replica sharing the directory) is
//! never served from memory; entries survive a reopen and keys still cannot escape.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mistral_tower::cache::{CacheEngine, CacheError, CacheLayer, FileEngine, engine_from_url};
use tower::{Layer, ServiceExt};

const KEY: &str = "6c0d3c2b7f1e4a5d9e8f00112233445566778899aabbccddeeff001122334455";

fn hot(dir: &std::path::Path) -> FileEngine {
    FileEngine::new(dir).unwrap().with_hot_tier(1 << 20)
}

/// Polls `fut` once: `Some` if it finished without waiting (no blocking-pool hop).
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[tokio::test]
async fn hot_hit_answers_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    FileEngine::new(dir.path())
        .unwrap()
        .set(KEY, Bytes::from_static(b"v1"))
        .await
        .unwrap();
    let e = hot(dir.path());
    assert_eq!(e.get(KEY).await.unwrap(), "v1", "first read fills the tier");
    let got = poll_once(e.get(KEY)).expect("a hot hit completes on its first poll");
    assert_eq!(got.unwrap(), "v1");
    e.set("written", Bytes::from_static(b"w")).await.unwrap();
    let got = poll_once(e.get("written")).expect("a write fills the tier too");
    assert_eq!(got.unwrap(), "w");
}

#[tokio::test]
async fn delete_by_another_process_is_never_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let e = hot(dir.path());
    e.set(KEY, Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(e.get(KEY).await.unwrap(), "v");
    // Another process (`mistral-cache purge`) has its own engine on the same directory.
    hot(dir.path()).delete(KEY).await.unwrap();
    assert!(e.get(KEY).await.unwrap_err().is_miss());
    // Removed by hand, after a read that filled the tier.
    e.set(KEY, Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(e.get(KEY).await.unwrap(), "v");
    std::fs::remove_file(e.path_for(KEY).unwrap()).unwrap();
    assert!(e.get(KEY).await.unwrap_err().is_miss());
}

#[tokio::test]
async fn replacement_by_another_replica_is_read_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = hot(dir.path());
    let other = hot(dir.path());
    e.set(KEY, Bytes::from_static(b"old-value")).await.unwrap();
    assert_eq!(e.get(KEY).await.unwrap(), "old-value");
    // Same length, written right after: only the file's identity tells them apart.
    other
        .set(KEY, Bytes::from_static(b"new-value"))
        .await
        .unwrap();
    assert_eq!(e.get(KEY).await.unwrap(), "new-value");
    // An edit in place (not how the engine writes, but a tool might) is seen too.
    let path = e.path_for(KEY).unwrap();
    let mut raw = std::fs::read(&path).unwrap();
    raw.extend_from_slice(b"-edited");
    std::fs::write(&path, raw).unwrap();
    assert_eq!(e.get(KEY).await.unwrap(), "new-value-edited");
}

#[tokio::test]
async fn expiry_is_honoured_by_the_hot_tier() {
    let dir = tempfile::tempdir().unwrap();
    let e = hot(dir.path());
    e.set_with_ttl(
        KEY,
        Bytes::from_static(b"v"),
        Some(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    e.set_with_ttl(
        "long",
        Bytes::from_static(b"l"),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(e.get(KEY).await.unwrap_err().is_miss());
    assert!(
        !e.path_for(KEY).unwrap().exists(),
        "the expired file is removed"
    );
    assert_eq!(e.get("long").await.unwrap(), "l");
}

#[tokio::test]
async fn entries_survive_a_reopen_and_keys_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    {
        let e = hot(&root);
        e.set(KEY, Bytes::from_static(b"durable")).await.unwrap();
    }
    // A new process: an empty hot tier, the same directory.
    let e = hot(&root);
    assert_eq!(e.get(KEY).await.unwrap(), "durable");
    assert_eq!(
        FileEngine::new(&root).unwrap().get(KEY).await.unwrap(),
        "durable"
    );
    assert_eq!(e.keys().await.unwrap(), vec![KEY.to_owned()]);
    for bad in ["", "..", "../x", "a/b", "/etc/passwd", ".tmp-1", "a\0b"] {
        assert!(
            matches!(e.get(bad).await, Err(CacheError::InvalidKey(_))),
            "{bad:?}"
        );
        assert!(matches!(
            e.set(bad, Bytes::from_static(b"x")).await,
            Err(CacheError::InvalidKey(_))
        ));
        assert!(matches!(
            e.delete(bad).await,
            Err(CacheError::InvalidKey(_))
        ));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Through the cache layer on the engine `file://` builds: a hit, then a purge by
/// another process's engine, and the next identical request reaches the inner service.
#[tokio::test]
async fn layer_on_the_default_file_url_sees_a_purge() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let engine = engine_from_url(&url).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_req: Request<_>| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!("{{\"answer\":{n}}}"))))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::new(engine);
    let svc = layer.layer(inner);
    assert_eq!(
        send(&svc).await,
        ("MISS".into(), Bytes::from(r#"{"answer":1}"#))
    );
    // The entry is written after the answer (on the blocking pool); until then a repeat
    // shares the finished flight. Wait (bounded) until the write is over.
    for _ in 0..500 {
        if layer.metrics().stores == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(layer.metrics().stores, 1, "the entry was written");
    assert_eq!(
        send(&svc).await,
        ("HIT".into(), Bytes::from(r#"{"answer":1}"#))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // `mistral-cache purge` from another process: its own engine on the directory.
    let purger = engine_from_url(&url).await.unwrap();
    let keys = purger.keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    for key in keys {
        purger.delete(&key).await.unwrap();
    }
    let (x, body) = send(&svc).await;
    assert_eq!((x.as_str(), &body[..]), ("MISS", &br#"{"answer":2}"#[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn send<S, B>(svc: &S) -> (String, Bytes)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let req = Request::post("http://127.0.0.1/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[]}"#,
        )))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let x = res.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (x, body)
}
