//! Behaviour of `CacheLayer` around generic HTTP services.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use mistral_tower::BoxError;
use mistral_tower::cache::{
    BoxEngine, CacheEngine, CacheEntry, CacheError, CacheLayer, CacheMode, FileEngine,
    MemoryEngine, RequestBody,
};
use support::{body_string, post, x_cache};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

// ---------------------------------------------------------------- helpers

/// A body fed frame by frame from a channel (`Err` items become error frames).
struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Result<Bytes, BoxError>>,
}

fn channel_body() -> (mpsc::UnboundedSender<Result<Bytes, BoxError>>, ChannelBody) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, ChannelBody { rx })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

type Req = Request<RequestBody<Full<Bytes>>>;

async fn frames<B: Body<Data = Bytes> + Unpin>(mut b: B) -> Result<Vec<Bytes>, B::Error> {
    let mut out = Vec::new();
    while let Some(f) = b.frame().await {
        if let Ok(d) = f?.into_data() {
            out.push(d);
        }
    }
    Ok(out)
}

async fn drain<B: Body<Data = Bytes>>(res: Response<B>)
where
    B::Error: std::fmt::Debug,
{
    res.into_body().collect().await.unwrap();
}

/// An upstream answering `{"call":N}` with a status, counting calls.
fn counting(
    calls: Arc<AtomicUsize>,
    status: StatusCode,
) -> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(move |req: Req| {
        let n = calls.fetch_add(1, SeqCst) + 1;
        async move {
            let _ = req.into_body().collect().await;
            Ok(Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!("{{\"call\":{n}}}"))))
                .unwrap())
        }
    })
}

fn test_clock() -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
    let now = Arc::new(AtomicU64::new(1_800_000_000_000));
    let n2 = now.clone();
    (now, move || n2.load(SeqCst))
}

// ---------------------------------------------------------------- hit / miss

#[tokio::test]
async fn a_hit_does_not_call_the_inner_service() {
    let (mock, mut handle) = tower_test::mock::pair::<Req, Response<Full<Bytes>>>();
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
    let mut svc = layer.layer(mock);

    let first = svc
        .ready()
        .await
        .unwrap()
        .call(post("/v1/chat", r#"{"a":1,"b":2}"#));
    let responder = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.body().as_bytes().unwrap(), br#"{"a":1,"b":2}"#);
        send.send_response(Response::new(Full::new(Bytes::from_static(b"answer"))));
        handle
    });
    let res = first.await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    assert_eq!(body_string(res.into_body()).await, "answer");
    let mut handle = responder.await.unwrap();

    // Same request, other field order and whitespace.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post("/v1/chat", r#"{ "b": 2, "a": 1 }"#))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(res.headers()["age"], "0");
    assert_eq!(body_string(res.into_body()).await, "answer");
    assert!(
        handle.poll_request().is_pending(),
        "inner service was called on a hit"
    );
    let m = layer.metrics();
    assert_eq!((m.hits, m.misses, m.stores, m.bytes_served), (1, 1, 1, 6));
}

#[tokio::test]
async fn hit_keeps_status_headers_and_reports_age() {
    let (now, clock) = test_clock();
    let inner = tower::service_fn(|_req: Req| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::CREATED)
                .header("x-upstream", "yes")
                .header("set-cookie", "session=secret")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .clock(clock)
        .layer(inner);
    drain(svc.clone().oneshot(post("/x", "{}")).await.unwrap()).await;
    now.fetch_add(42_500, SeqCst);
    let res = svc.oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(res.headers()["age"], "42");
    assert_eq!(res.headers()["x-upstream"], "yes");
    assert_eq!(res.headers()["content-length"], "2");
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn key_depends_on_method_path_query_namespace_and_tenant() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    let reqs = || {
        vec![
            post("/v1/a", "{}"),
            Request::get("/v1/a").body(Full::new(Bytes::new())).unwrap(),
            post("/v1/b", "{}"),
            post("/v1/a?x=1", "{}"),
            post("/v1/a?x=2", "{}"),
            post("/v1/a", r#"{"k":1}"#),
            {
                let mut r = post("/v1/a", "{}");
                r.headers_mut()
                    .insert("x-cache-namespace", "other".parse().unwrap());
                r
            },
            {
                let mut r = post("/v1/a", "{}");
                r.headers_mut()
                    .insert("authorization", "Bearer one".parse().unwrap());
                r
            },
            {
                let mut r = post("/v1/a", "{}");
                r.headers_mut()
                    .insert("authorization", "Bearer two".parse().unwrap());
                r
            },
        ]
    };
    for r in reqs() {
        let res = svc.clone().oneshot(r).await.unwrap();
        assert_eq!(x_cache(&res), "MISS");
        drain(res).await;
    }
    assert_eq!(calls.load(SeqCst), 9);
    for r in reqs() {
        let res = svc.clone().oneshot(r).await.unwrap();
        assert_eq!(x_cache(&res), "HIT");
    }
    assert_eq!(calls.load(SeqCst), 9);
}

#[tokio::test]
async fn two_api_keys_make_two_entries_unless_shared() {
    let with_auth = |v: &str| {
        let mut r = post("/v1/chat", "{}");
        r.headers_mut().insert("authorization", v.parse().unwrap());
        r
    };
    let engine = MemoryEngine::new(1 << 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(engine.clone()).layer(counting(calls.clone(), StatusCode::OK));
    drain(
        svc.clone()
            .oneshot(with_auth("Bearer key-1"))
            .await
            .unwrap(),
    )
    .await;
    let res = svc
        .clone()
        .oneshot(with_auth("Bearer key-2"))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "MISS");
    drain(res).await;
    assert_eq!(engine.entry_count(), 2);
    // The raw credential is never stored.
    for k in engine.keys().await.unwrap() {
        let raw = engine.get(&k).await.unwrap();
        assert!(memchr::memmem::find(&raw, b"key-1").is_none());
        assert!(memchr::memmem::find(&raw, b"key-2").is_none());
    }

    let shared = CacheLayer::new(MemoryEngine::new(1 << 20))
        .shared_tenant()
        .layer(counting(calls.clone(), StatusCode::OK));
    drain(
        shared
            .clone()
            .oneshot(with_auth("Bearer key-1"))
            .await
            .unwrap(),
    )
    .await;
    let res = shared.oneshot(with_auth("Bearer key-2")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");

    let a = CacheLayer::new(MemoryEngine::new(1 << 20)).tenant_secret("sk-a");
    let svc_a = a.layer(counting(calls.clone(), StatusCode::OK));
    drain(svc_a.clone().oneshot(post("/v1/chat", "{}")).await.unwrap()).await;
    let res = svc_a.oneshot(with_auth("Bearer ignored")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT", "a fixed tenant ignores Authorization");
}

// ---------------------------------------------------------------- what is stored

#[tokio::test]
async fn errors_and_no_store_answers_are_not_stored() {
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc =
            CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), status));
        for _ in 0..2 {
            let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
            assert_eq!(res.status(), status);
            assert_eq!(x_cache(&res), "MISS");
            body_string(res.into_body()).await;
        }
        assert_eq!(calls.load(SeqCst), 2, "{status} was stored");
    }

    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let inner = tower::service_fn(move |_req: Req| {
        c2.fetch_add(1, SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "private, no-store")
                    .body(Full::new(Bytes::from_static(b"secret")))
                    .unwrap(),
            )
        }
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
    for _ in 0..2 {
        let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
        body_string(res.into_body()).await;
    }
    assert_eq!(calls.load(SeqCst), 2);

    // Inner service errors are passed through and not stored.
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let failing = tower::service_fn(move |_req: Req| {
        n2.fetch_add(1, SeqCst);
        async { Err::<Response<Full<Bytes>>, _>(BoxError::from("upstream down")) }
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(failing);
    for _ in 0..2 {
        let err = svc.clone().oneshot(post("/x", "{}")).await.unwrap_err();
        assert_eq!(err.to_string(), "upstream down");
    }
    assert_eq!(n.load(SeqCst), 2);
}

/// An upstream whose bodies are driven by the test through channels.
#[derive(Clone)]
struct Streaming {
    calls: Arc<AtomicUsize>,
    senders: mpsc::UnboundedSender<mpsc::UnboundedSender<Result<Bytes, BoxError>>>,
    content_type: &'static str,
}

fn streaming(
    content_type: &'static str,
) -> (
    Streaming,
    mpsc::UnboundedReceiver<mpsc::UnboundedSender<Result<Bytes, BoxError>>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Streaming {
            calls: Arc::new(AtomicUsize::new(0)),
            senders: tx,
            content_type,
        },
        rx,
    )
}

impl Service<Req> for Streaming {
    type Response = Response<ChannelBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ChannelBody>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: Req) -> Self::Future {
        self.calls.fetch_add(1, SeqCst);
        let (tx, body) = channel_body();
        self.senders.send(tx).unwrap();
        std::future::ready(Ok(Response::builder()
            .header("content-type", self.content_type)
            .body(body)
            .unwrap()))
    }
}

#[tokio::test]
async fn bodies_ending_in_error_or_dropped_early_are_not_stored() {
    let (up, mut senders) = streaming("application/json");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());

    // 1. The body ends with an error frame.
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(b"{\"partial\":"))).unwrap();
    tx.send(Err("connection reset".into())).unwrap();
    assert!(res.into_body().collect().await.is_err());

    // 2. The caller drops the body before its end.
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(b"{\"partial\":"))).unwrap();
    let mut body = res.into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "{\"partial\":"
    );
    drop(body);
    tx.send(Ok(Bytes::from_static(b"1}"))).ok();
    drop(tx);

    // 3. The upstream stream is cut (sender dropped = clean end of a truncated JSON is
    //    still an end; here we check a cut with an error instead).
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS", "nothing was stored before");
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(b"{\"ok\":true}"))).unwrap();
    drop(tx);
    assert_eq!(body_string(res.into_body()).await, "{\"ok\":true}");
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(up.calls.load(SeqCst), 3);
}

// ---------------------------------------------------------------- SSE

const EVENTS: [&str; 4] = [
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
    ": keep-alive\n\ndata: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
];

#[tokio::test]
async fn sse_is_teed_live_and_replayed_frame_by_frame() {
    let (up, mut senders) = streaming("text/event-stream");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());

    let res = svc
        .clone()
        .oneshot(post("/v1/chat", r#"{"stream":true}"#))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "MISS");
    let tx = senders.recv().await.unwrap();
    let mut body = res.into_body();
    let mut first = Vec::new();
    for ev in EVENTS {
        tx.send(Ok(Bytes::from_static(ev.as_bytes()))).unwrap();
        // Each event reaches the caller before the next one is even produced.
        let f = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("frame was buffered by the cache")
            .unwrap()
            .unwrap();
        first.push(f.into_data().unwrap());
    }
    drop(tx);
    assert!(body.frame().await.is_none());

    let res = svc
        .clone()
        .oneshot(post("/v1/chat", r#"{"stream":true}"#))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let replay = frames(res.into_body()).await.unwrap();
    assert_eq!(replay, first, "replay differs frame by frame");
    assert_eq!(up.calls.load(SeqCst), 1);
}

#[tokio::test]
async fn sse_without_done_or_cut_is_not_stored() {
    let (up, mut senders) = streaming("text/event-stream");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());

    // Ends cleanly but without `data: [DONE]`.
    let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(EVENTS[0].as_bytes())))
        .unwrap();
    drop(tx);
    assert_eq!(frames(res.into_body()).await.unwrap().len(), 1);

    // Cut mid-way by an error.
    let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(EVENTS[0].as_bytes())))
        .unwrap();
    tx.send(Err("reset".into())).unwrap();
    assert!(frames(res.into_body()).await.is_err());

    // `[DONE]` split across two frames still counts.
    let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    let tx = senders.recv().await.unwrap();
    tx.send(Ok(Bytes::from_static(b"data: {}\n\ndata: [DO")))
        .unwrap();
    tx.send(Ok(Bytes::from_static(b"NE]\n\n"))).unwrap();
    drop(tx);
    frames(res.into_body()).await.unwrap();
    let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(
        frames(res.into_body()).await.unwrap(),
        vec![
            Bytes::from_static(b"data: {}\n\ndata: [DO"),
            Bytes::from_static(b"NE]\n\n")
        ]
    );
    assert_eq!(up.calls.load(SeqCst), 3);
}

// ---------------------------------------------------------------- single-flight

#[tokio::test(start_paused = true)]
async fn concurrent_identical_json_misses_make_one_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let inner = tower::service_fn(move |_req: Req| {
        let n = c2.fetch_add(1, SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("answer {n}")))))
        }
    });
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
    let svc = layer.layer(inner);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let res = svc.oneshot(post("/v1/chat", r#"{"q":1}"#)).await.unwrap();
            let st = x_cache(&res).to_owned();
            (st, body_string(res.into_body()).await)
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert_eq!(body, "answer 0");
        statuses.push(st);
    }
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(statuses.iter().filter(|s| *s == "MISS").count(), 1);
    assert_eq!(statuses.iter().filter(|s| *s == "COALESCED").count(), 99);
    let m = layer.metrics();
    assert_eq!((m.misses, m.coalesced, m.stores), (1, 99, 1));
}

#[tokio::test]
async fn concurrent_identical_sse_misses_share_one_live_stream() {
    let (up, mut senders) = streaming("text/event-stream");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());

    let leader = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    let tx = senders.recv().await.unwrap();
    let mut early = Vec::new();
    for _ in 0..50 {
        early.push(tokio::spawn(svc.clone().oneshot(post("/v1/chat", "{}"))));
    }
    let early: Vec<_> = futures_join(early).await;
    tx.send(Ok(Bytes::from_static(EVENTS[0].as_bytes())))
        .unwrap();
    let mut leader_body = leader.into_body();
    let f0 = leader_body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    // Late joiners arrive after the first event was streamed.
    let mut late = Vec::new();
    for _ in 0..49 {
        late.push(tokio::spawn(svc.clone().oneshot(post("/v1/chat", "{}"))));
    }
    let late: Vec<_> = futures_join(late).await;
    for ev in &EVENTS[1..] {
        tx.send(Ok(Bytes::from_static(ev.as_bytes()))).unwrap();
    }
    drop(tx);
    let mut expected = vec![f0];
    expected.extend(frames(leader_body).await.unwrap());
    assert_eq!(expected.len(), EVENTS.len());
    for res in early.into_iter().chain(late) {
        let res = res.unwrap();
        assert_eq!(x_cache(&res), "COALESCED");
        assert_eq!(frames(res.into_body()).await.unwrap(), expected);
    }
    assert_eq!(up.calls.load(SeqCst), 1);
    let res = svc.oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(frames(res.into_body()).await.unwrap(), expected);
}

#[tokio::test]
async fn a_leader_dropping_its_stream_midway_does_not_cut_the_followers() {
    let (up, mut senders) = streaming("text/event-stream");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());
    let leader = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    let tx = senders.recv().await.unwrap();
    let follower = tokio::spawn(svc.clone().oneshot(post("/v1/chat", "{}")));
    tx.send(Ok(Bytes::from_static(EVENTS[0].as_bytes())))
        .unwrap();
    let mut leader_body = leader.into_body();
    leader_body.frame().await.unwrap().unwrap();
    let follower = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(x_cache(&follower), "COALESCED");
    drop(leader_body); // the leader's caller goes away mid-stream
    for ev in &EVENTS[1..] {
        tx.send(Ok(Bytes::from_static(ev.as_bytes()))).unwrap();
    }
    drop(tx);
    let got = tokio::time::timeout(Duration::from_secs(10), frames(follower.into_body()))
        .await
        .unwrap()
        .unwrap();
    let expected: Vec<Bytes> = EVENTS
        .iter()
        .map(|e| Bytes::from_static(e.as_bytes()))
        .collect();
    assert_eq!(got, expected);
    let res = svc.oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT", "the completed stream was stored");
    assert_eq!(frames(res.into_body()).await.unwrap(), expected);
    assert_eq!(up.calls.load(SeqCst), 1);
}

#[tokio::test]
async fn a_stream_dropped_after_done_but_before_its_end_is_stored() {
    // SDKs close the connection as soon as they read `data: [DONE]`, often before the
    // upstream's end of body arrives: the answer is whole and must be stored.
    let (up, mut senders) = streaming("text/event-stream");
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(up.clone());
    let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    let tx = senders.recv().await.unwrap();
    let mut body = res.into_body();
    for ev in EVENTS {
        tx.send(Ok(Bytes::from_static(ev.as_bytes()))).unwrap();
        body.frame().await.unwrap().unwrap();
    }
    drop(body); // the client leaves after `[DONE]`; the upstream has not ended yet
    drop(tx); // now it ends
    let expected: Vec<Bytes> = EVENTS
        .iter()
        .map(|e| Bytes::from_static(e.as_bytes()))
        .collect();
    let mut hit = None;
    for _ in 0..1000 {
        let res = svc.clone().oneshot(post("/v1/chat", "{}")).await.unwrap();
        if x_cache(&res) == "HIT" {
            hit = Some(res);
            break;
        }
        // A second MISS would call the upstream again: wait for the background read.
        assert_ne!(x_cache(&res), "MISS", "the answer was not stored");
        drop(res);
        tokio::task::yield_now().await;
    }
    let res = hit.expect("stored");
    assert_eq!(frames(res.into_body()).await.unwrap(), expected);
    assert_eq!(up.calls.load(SeqCst), 1);

    // Dropped before `[DONE]`: the generation is abandoned and nothing is stored.
    let res = svc.clone().oneshot(post("/v1/other", "{}")).await.unwrap();
    let tx = senders.recv().await.unwrap();
    let mut body = res.into_body();
    tx.send(Ok(Bytes::from_static(EVENTS[0].as_bytes())))
        .unwrap();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert!(
        tx.send(Ok(Bytes::from_static(EVENTS[1].as_bytes())))
            .is_err(),
        "the upstream body was dropped with the client"
    );
    drop(tx);
    let res = svc.oneshot(post("/v1/other", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_fails_followers_still_succeed() {
    // A concrete error type: with `Error = BoxError`, spawning a future that names the
    // service type trips rustc's "`From` is not general enough" (rust-lang/rust#64552).
    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;
    fn answer(n: usize, as_error: bool) -> Result<Response<Full<Bytes>>, Boom> {
        match (n, as_error) {
            (0, true) => Err(Boom),
            (0, false) => Ok(Response::builder()
                .status(500)
                .body(Full::new(Bytes::from_static(b"oops")))
                .unwrap()),
            _ => Ok(Response::new(Full::new(Bytes::from_static(b"fine")))),
        }
    }
    for failure in ["error", "500"] {
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let as_error = failure == "error";
        let inner = tower::service_fn(move |_req: Req| {
            let n = c2.fetch_add(1, SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                answer(n, as_error)
            }
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                match svc.oneshot(post("/x", "{}")).await {
                    Ok(res) if res.status() == 200 => Some(body_string(res.into_body()).await),
                    _ => None,
                }
            }));
        }
        let results = futures_join(tasks).await;
        let ok = results
            .iter()
            .filter(|r| r.as_deref() == Some("fine"))
            .count();
        assert_eq!(ok, 19, "{failure}: only the leader may fail");
        assert_eq!(calls.load(SeqCst), 2, "{failure}: one follower took over");
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_does_not_strand_followers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let inner = tower::service_fn(move |_req: Req| {
        c2.fetch_add(1, SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"fine"))))
        }
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
    let leader = tokio::spawn(svc.clone().oneshot(post("/x", "{}")));
    tokio::task::yield_now().await;
    let follower = tokio::spawn(svc.clone().oneshot(post("/x", "{}")));
    tokio::task::yield_now().await;
    leader.abort();
    let res = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(body_string(res.into_body()).await, "fine");
    assert_eq!(calls.load(SeqCst), 2);
}

// ---------------------------------------------------------------- fail-open

#[derive(Debug, Clone, Copy)]
enum Broken {
    Errors,
    Hangs,
}

impl CacheEngine for Broken {
    async fn get(&self, _key: &str) -> Result<Bytes, CacheError> {
        match self {
            Broken::Errors => Err(CacheError::backend("connection refused")),
            Broken::Hangs => std::future::pending().await,
        }
    }
    async fn set(&self, _key: &str, _data: Bytes) -> Result<(), CacheError> {
        match self {
            Broken::Errors => Err(CacheError::backend("connection refused")),
            Broken::Hangs => std::future::pending().await,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_broken_engine_never_fails_requests() {
    for engine in [Broken::Errors, Broken::Hangs] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = CacheLayer::new(engine);
        let svc = layer.layer(counting(calls.clone(), StatusCode::OK));
        for i in 1..=3 {
            let res = tokio::time::timeout(
                Duration::from_secs(10),
                svc.clone().oneshot(post("/x", "{}")),
            )
            .await
            .expect("request hung on the engine")
            .unwrap();
            assert_eq!(x_cache(&res), "MISS");
            assert_eq!(
                body_string(res.into_body()).await,
                format!("{{\"call\":{i}}}")
            );
            // Let the background store finish or time out.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let m = layer.metrics();
        assert_eq!(m.engine_errors, 3, "{engine:?}");
        assert_eq!(m.store_errors, 3, "{engine:?}");
    }
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_and_is_overwritten() {
    let engine = MemoryEngine::new(1 << 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new(engine.clone());
    let svc = layer.layer(counting(calls.clone(), StatusCode::OK));
    drain(svc.clone().oneshot(post("/x", "{}")).await.unwrap()).await;
    let key = engine.keys().await.unwrap().pop().unwrap();
    let good = engine.get(&key).await.unwrap();
    for bad in [
        Bytes::from_static(b"garbage"),
        good.slice(..good.len() - 3),
        {
            let mut v = good.to_vec();
            v[4] = 99; // another format version
            Bytes::from(v)
        },
    ] {
        engine.set(&key, bad).await.unwrap();
        let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "MISS");
        body_string(res.into_body()).await;
        let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "HIT", "the entry was rewritten");
        CacheEntry::decode(&engine.get(&key).await.unwrap()).unwrap();
    }
    assert_eq!(calls.load(SeqCst), 4);
    assert_eq!(layer.metrics().corrupt_entries, 3);
}

// ---------------------------------------------------------------- per-request control

fn with_header(mut r: Request<Full<Bytes>>, k: &'static str, v: &str) -> Request<Full<Bytes>> {
    r.headers_mut().append(k, v.parse().unwrap());
    r
}

#[tokio::test]
async fn only_if_cached_no_cache_and_no_store() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    let send = |r| svc.clone().oneshot(r);

    let res = send(with_header(
        post("/x", "{}"),
        "x-cache-control",
        "only-if-cached",
    ))
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(res.headers()["content-type"], "application/json");
    let err: serde_json::Value = serde_json::from_str(&body_string(res.into_body()).await).unwrap();
    assert_eq!(err["code"], "only_if_cached");
    assert!(err["message"].as_str().unwrap().contains("only-if-cached"));

    let res = send(with_header(post("/x", "{}"), "x-cache-control", "no-store"))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "BYPASS");
    let res = send(with_header(
        post("/x", "{}"),
        "x-cache-control",
        "only-if-cached",
    ))
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "no-store stored something"
    );

    let res = send(post("/x", "{}")).await.unwrap();
    assert_eq!(body_string(res.into_body()).await, "{\"call\":2}");
    let res = send(with_header(
        post("/x", "{}"),
        "x-cache-control",
        "only-if-cached",
    ))
    .await
    .unwrap();
    assert_eq!(x_cache(&res), "HIT");

    let res = send(with_header(post("/x", "{}"), "x-cache-control", "no-cache"))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "REFRESH");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":3}");
    let res = send(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(
        body_string(res.into_body()).await,
        "{\"call\":3}",
        "refresh was stored"
    );
    // A refresh right after a refresh still calls upstream.
    let res = send(with_header(post("/x", "{}"), "x-cache-control", "no-cache"))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "REFRESH");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":4}");
    assert_eq!(calls.load(SeqCst), 4);
}

/// An engine whose writes take a (paused-time) second, so completed flights linger.
#[derive(Debug, Clone)]
struct SlowWrites(MemoryEngine);

impl CacheEngine for SlowWrites {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.0.set(key, data).await
    }
}

#[tokio::test(start_paused = true)]
async fn answers_are_shared_while_the_entry_is_written_but_not_for_refreshes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new(SlowWrites(MemoryEngine::new(1 << 20)));
    let svc = layer.layer(counting(calls.clone(), StatusCode::OK));
    drain(svc.clone().oneshot(post("/x", "{}")).await.unwrap()).await;
    // The write is still pending: the completed answer is served from the flight.
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":1}");
    // Still within the first write (so the refresh's write surely lands last).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = svc
        .clone()
        .oneshot(with_header(post("/x", "{}"), "x-cache-control", "no-cache"))
        .await
        .unwrap();
    assert_eq!(x_cache(&res), "REFRESH");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":2}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(layer.metrics().stores, 2);
    let res = svc.oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":2}");
}

#[tokio::test]
async fn max_age_and_ttl_use_the_clock() {
    let (now, clock) = test_clock();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .clock(clock)
        .ttl(Duration::from_secs(60))
        .layer(counting(calls.clone(), StatusCode::OK));
    let send = |r| svc.clone().oneshot(r);

    drain(send(post("/x", "{}")).await.unwrap()).await;
    now.fetch_add(30_000, SeqCst);
    let res = send(with_header(
        post("/x", "{}"),
        "x-cache-control",
        "max-age=40",
    ))
    .await
    .unwrap();
    assert_eq!(x_cache(&res), "HIT");
    let res = send(with_header(
        post("/x", "{}"),
        "x-cache-control",
        "max-age=20",
    ))
    .await
    .unwrap();
    assert_eq!(x_cache(&res), "MISS", "entry older than max-age was served");
    body_string(res.into_body()).await;

    // Stored again at t=30 s with the layer TTL of 60 s.
    now.fetch_add(59_000, SeqCst);
    assert_eq!(x_cache(&send(post("/x", "{}")).await.unwrap()), "HIT");
    now.fetch_add(2_000, SeqCst);
    let res = send(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS", "expired entry was served");
    body_string(res.into_body()).await;

    // Absurd values neither overflow nor expire anything.
    let res = send(with_header(
        post("/z", "{}"),
        "x-cache-ttl",
        "18446744073709551615",
    ))
    .await
    .unwrap();
    body_string(res.into_body()).await;
    let res = send(with_header(
        post("/z", "{}"),
        "x-cache-control",
        "max-age=18446744073709551615",
    ))
    .await
    .unwrap();
    assert_eq!(x_cache(&res), "HIT");

    // x-cache-ttl overrides the layer TTL.
    let res = send(with_header(post("/y", "{}"), "x-cache-ttl", "5"))
        .await
        .unwrap();
    body_string(res.into_body()).await;
    now.fetch_add(4_000, SeqCst);
    assert_eq!(x_cache(&send(post("/y", "{}")).await.unwrap()), "HIT");
    now.fetch_add(2_000, SeqCst);
    assert_eq!(x_cache(&send(post("/y", "{}")).await.unwrap()), "MISS");
}

#[tokio::test]
async fn control_headers_are_removed_before_forwarding() {
    let inner = tower::service_fn(|req: Req| async move {
        for h in ["x-cache-control", "x-cache-ttl", "x-cache-namespace"] {
            assert!(req.headers().get(h).is_none(), "{h} was forwarded");
        }
        assert_eq!(req.headers()["x-other"], "kept");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
    let mut r = with_header(post("/x", "{}"), "x-cache-control", "no-cache");
    r = with_header(r, "x-cache-ttl", "5");
    r = with_header(r, "x-cache-namespace", "n");
    r = with_header(r, "x-other", "kept");
    drain(svc.oneshot(r).await.unwrap()).await;
}

#[tokio::test]
async fn modes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = MemoryEngine::new(1 << 20);
    let mk = |mode| {
        CacheLayer::new(engine.clone())
            .mode(mode)
            .layer(counting(calls.clone(), StatusCode::OK))
    };

    let ro = mk(CacheMode::ReadOnly);
    for _ in 0..2 {
        let res = ro.clone().oneshot(post("/x", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "MISS");
        body_string(res.into_body()).await;
    }
    let replay = mk(CacheMode::ReplayOnly);
    let res = replay.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.load(SeqCst), 2);

    let wo = mk(CacheMode::WriteOnly);
    for _ in 0..2 {
        let res = wo.clone().oneshot(post("/x", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "REFRESH");
        body_string(res.into_body()).await;
    }
    let res = replay.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(body_string(res.into_body()).await, "{\"call\":4}");
    let res = ro.oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
}

#[tokio::test]
async fn bodies_over_the_limit_bypass_with_the_full_body() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let inner = tower::service_fn(move |req: Request<RequestBody<ChannelBody>>| {
        let seen = s2.clone();
        async move {
            let b = req.into_body().collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(b);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20)).max_request_body(16);
    let svc = layer.layer(inner);
    for _ in 0..2 {
        let (tx, body) = channel_body();
        for chunk in ["{\"text\":\"", "0123456789", "0123456789", "0123456789\"}"] {
            tx.send(Ok(Bytes::from_static(chunk.as_bytes()))).unwrap();
        }
        drop(tx);
        let res = svc
            .clone()
            .oneshot(Request::post("/x").body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(x_cache(&res), "BYPASS");
    }
    // Declared too large: not read at all by the cache.
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(
        b"{\"a\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
    )))
    .unwrap();
    drop(tx);
    let req = Request::post("/x")
        .header("content-length", "36")
        .body(body)
        .unwrap();
    assert_eq!(x_cache(&svc.clone().oneshot(req).await.unwrap()), "BYPASS");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], "{\"text\":\"012345678901234567890123456789\"}");
    assert_eq!(seen[1], seen[0]);
    assert_eq!(seen[2], "{\"a\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}");
    assert_eq!(layer.metrics().bypasses, 3);
}

#[tokio::test]
async fn the_predicate_decides_what_is_cacheable() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .cacheable(|p: &http::request::Parts| p.uri.path() != "/v1/files")
        .layer(counting(calls.clone(), StatusCode::OK));
    for _ in 0..2 {
        assert_eq!(
            x_cache(&svc.clone().oneshot(post("/v1/files", "{}")).await.unwrap()),
            "BYPASS"
        );
    }
    let del = Request::delete("/v1/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let svc2 =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    assert_eq!(x_cache(&svc2.oneshot(del).await.unwrap()), "BYPASS");
}

#[tokio::test]
async fn a_custom_key_function_replaces_the_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .key_fn(|i: &mistral_tower::cache::KeyInput<'_>| i.uri.path().replace('/', "_"))
        .layer(counting(calls.clone(), StatusCode::OK));
    drain(
        svc.clone()
            .oneshot(post("/v1/a", r#"{"x":1}"#))
            .await
            .unwrap(),
    )
    .await;
    let res = svc.oneshot(post("/v1/a", r#"{"x":2}"#)).await.unwrap();
    assert_eq!(x_cache(&res), "HIT", "the custom key ignores the body");
}

// ---------------------------------------------------------------- composition

#[tokio::test]
async fn works_inside_an_axum_router() {
    use axum::routing::post as axum_post;
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
    let app = axum::Router::new()
        .route(
            "/v1/chat",
            axum_post(move |body: String| {
                let n = c2.fetch_add(1, SeqCst) + 1;
                async move { format!("call {n}: {body}") }
            }),
        )
        // No `HandleErrorLayer`: the cache keeps the router's `Infallible` error.
        .layer(layer.clone());
    for expected in ["MISS", "HIT"] {
        let req = Request::post("/v1/chat")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"q":"hi"}"#))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(x_cache(&res), expected);
        assert_eq!(body_string(res.into_body()).await, r#"call 1: {"q":"hi"}"#);
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[derive(Clone)]
struct RetryOnce(usize);

impl<B, Res, E> tower::retry::Policy<Request<RequestBody<B>>, Res, E> for RetryOnce {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _req: &mut Request<RequestBody<B>>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        (result.is_err() && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }
    fn clone_request(&mut self, req: &Request<RequestBody<B>>) -> Option<Request<RequestBody<B>>> {
        let mut r = Request::new(req.body().try_clone()?);
        *r.method_mut() = req.method().clone();
        *r.uri_mut() = req.uri().clone();
        *r.headers_mut() = req.headers().clone();
        Some(r)
    }
}

#[tokio::test(start_paused = true)]
async fn stacks_outside_retry_and_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let flaky = tower::service_fn(move |req: Req| {
        let n = c2.fetch_add(1, SeqCst);
        async move {
            assert_eq!(req.into_body().collect().await.unwrap().to_bytes(), "{}");
            if n == 0 {
                // Too slow: the timeout fires and the retry layer tries again.
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(tower::retry::RetryLayer::new(RetryOnce(1)))
        .timeout(Duration::from_secs(5))
        .service(flaky);
    let res = svc.clone().oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    assert_eq!(body_string(res.into_body()).await, "ok");
    let res = svc.oneshot(post("/x", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test]
async fn an_engine_chosen_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [
        BoxEngine::new(MemoryEngine::new(1 << 20)),
        BoxEngine::new(FileEngine::new(dir.path()).unwrap()),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = CacheLayer::new(engine).layer(counting(calls.clone(), StatusCode::OK));
        for expected in ["MISS", "HIT"] {
            let res = svc
                .clone()
                .oneshot(post("/x", r#"{"a":[1,2]}"#))
                .await
                .unwrap();
            assert_eq!(x_cache(&res), expected);
            assert_eq!(body_string(res.into_body()).await, "{\"call\":1}");
        }
    }
}

#[tokio::test]
async fn file_engine_entries_decode_for_inspection() {
    let dir = tempfile::tempdir().unwrap();
    let engine = FileEngine::new(dir.path()).unwrap();
    let svc = CacheLayer::new(engine.clone())
        .namespace("ns1")
        .layer(counting(Arc::new(AtomicUsize::new(0)), StatusCode::OK));
    let mut r = post("/v1/chat?x=1", "{}");
    r.headers_mut()
        .insert("authorization", "Bearer sk-secret".parse().unwrap());
    let res = svc.oneshot(r).await.unwrap();
    body_string(res.into_body()).await;
    // The file write finishes in the background.
    let mut keys = Vec::new();
    for _ in 0..1000 {
        keys = engine.keys().await.unwrap();
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].len(), 64);
    let raw = std::fs::read(engine.path_for(&keys[0]).unwrap()).unwrap();
    assert!(memchr::memmem::find(&raw, b"sk-secret").is_none());
    let entry = CacheEntry::decode(&engine.get(&keys[0]).await.unwrap()).unwrap();
    assert_eq!(
        (entry.namespace(), entry.method(), entry.path()),
        ("ns1", "POST", "/v1/chat?x=1")
    );
    assert_eq!(entry.status(), 200);
    assert_eq!(entry.body(), "{\"call\":1}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<CacheLayer<MemoryEngine>>();
    send_sync::<CacheLayer<BoxEngine>>();
    send_sync::<
        mistral_tower::cache::CacheService<
            tower::util::BoxCloneSyncService<Req, Response<Full<Bytes>>, BoxError>,
            FileEngine,
        >,
    >();
    send_sync::<RequestBody<Full<Bytes>>>();
    send::<mistral_tower::cache::ResponseBody<Full<Bytes>>>();
    send::<mistral_tower::cache::ResponseFuture<Full<Bytes>>>();
    send_sync::<CacheEntry>();
    send_sync::<MemoryEngine>();
    send_sync::<FileEngine>();
}

// ---------------------------------------------------------------- in-process fast path

/// A map engine without the in-process fast path: writes go through a future, reads
/// are verified like any engine's.
#[derive(Clone, Default)]
struct PlainMap(Arc<std::sync::Mutex<std::collections::HashMap<String, Bytes>>>);

impl CacheEngine for PlainMap {
    async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
        let map = self.0.lock().unwrap();
        map.get(key).cloned().ok_or(CacheError::Miss)
    }
    async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
        self.0.lock().unwrap().insert(key.to_owned(), data);
        Ok(())
    }
}

type Frames = http_body_util::StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
>;

/// Answers a JSON body in three frames, with a header that must not be stored.
fn three_frames(
    calls: Arc<AtomicUsize>,
) -> impl Service<Req, Response = Response<Frames>, Error = Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(move |_req: Req| {
        calls.fetch_add(1, SeqCst);
        async move {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = ["{\"a\":", "[1,2,", "3]}"]
                .into_iter()
                .map(|s| Ok(Frame::data(Bytes::from_static(s.as_bytes()))))
                .collect();
            Ok(Response::builder()
                .header("content-type", "application/json")
                .header("x-custom", "1")
                .header("set-cookie", "a=b")
                .body(http_body_util::StreamBody::new(futures_util::stream::iter(
                    frames,
                )))
                .unwrap())
        }
    })
}

#[tokio::test]
async fn the_memory_fast_path_stores_the_same_bytes_as_an_engine_written_through_a_future() {
    let memory = MemoryEngine::new(1 << 20);
    let plain = PlainMap::default();
    let boxed = BoxEngine::new(MemoryEngine::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let (_now, clock) = test_clock();
    let clock = Arc::new(clock);
    let svc = |engine: BoxEngine| {
        let c = clock.clone();
        CacheLayer::new(engine)
            .clock(move || c())
            .layer(three_frames(calls.clone()))
    };
    let mut stored = Vec::new();
    for engine in [
        BoxEngine::new(memory.clone()),
        BoxEngine::new(plain.clone()),
        boxed.clone(),
    ] {
        let svc = svc(engine.clone());
        let res = svc.clone().oneshot(post("/x?y=1", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "MISS");
        assert_eq!(body_string(res.into_body()).await, "{\"a\":[1,2,3]}");
        let res = svc.clone().oneshot(post("/x?y=1", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "HIT");
        assert_eq!(res.headers()["content-length"], "13");
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(body_string(res.into_body()).await, "{\"a\":[1,2,3]}");
        let key = match engine.keys().await {
            Ok(mut keys) => keys.pop().unwrap(),
            Err(_) => plain.0.lock().unwrap().keys().next().unwrap().clone(),
        };
        stored.push(engine.get(&key).await.unwrap());
    }
    assert_eq!(calls.load(SeqCst), 3);
    assert_eq!(stored[0], stored[1], "fast path vs generic path");
    assert_eq!(stored[0], stored[2], "fast path through BoxEngine");

    // And it is the entry the public encoder builds from the same answer.
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-custom", "1".parse().unwrap());
    headers.insert("content-length", "13".parse().unwrap());
    let expected = CacheEntry::new(
        mistral_tower::cache::EntryKind::Json,
        StatusCode::OK,
        headers,
    )
    .with_frames(vec![Bytes::from_static(b"{\"a\":[1,2,3]}")])
    .with_times(1_800_000_000_000, None)
    .with_request("", "POST", "/x?y=1")
    .encode();
    assert_eq!(stored[0], expected);
}

#[tokio::test]
async fn a_bit_flip_written_through_set_is_rejected_by_the_memory_fast_path() {
    let memory = MemoryEngine::new(1 << 20);
    for engine in [
        BoxEngine::new(memory.clone()),
        BoxEngine::new(Arc::new(memory.clone())),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = CacheLayer::new(engine.clone());
        let svc = layer.layer(counting(calls.clone(), StatusCode::OK));
        let res = svc.clone().oneshot(post("/flip", "{}")).await.unwrap();
        let first = body_string(res.into_body()).await;
        let key = engine.keys().await.unwrap().pop().unwrap();
        let good = engine.get(&key).await.unwrap();
        // A flip inside the body: only the checksum can tell.
        let mut v = good.to_vec();
        let at = v.len() - 8 - 3;
        v[at] ^= 0x01;
        CacheEntry::decode(&Bytes::from(v.clone())).unwrap_err();
        engine.set(&key, Bytes::from(v)).await.unwrap();
        let res = svc.clone().oneshot(post("/flip", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "MISS");
        assert_ne!(body_string(res.into_body()).await, first);
        assert_eq!(layer.metrics().corrupt_entries, 1);
        // The rewritten entry is served.
        let res = svc.clone().oneshot(post("/flip", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "HIT");
        drain(res).await;
        assert_eq!(calls.load(SeqCst), 2);
        memory.delete(&key).await.unwrap();
    }
}

// ------------------------------------------------ hits on one stored buffer

/// Every header of a response, in order, but `age`.
fn headers_but_age(res: &Response<impl Body>) -> Vec<(String, Vec<u8>)> {
    res.headers()
        .iter()
        .filter(|(n, _)| *n != "age")
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[tokio::test]
async fn repeated_hits_on_one_stored_buffer_each_report_their_own_age() {
    // The memory engine answers every hit with the same buffer, whose decoded entry
    // is remembered between hits: each hit still gets its own age, one of each
    // header the cache adds, and the same body.
    let (now, clock) = test_clock();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .clock(clock)
        .layer(counting(calls.clone(), StatusCode::OK));
    drain(svc.clone().oneshot(post("/age", "{}")).await.unwrap()).await;
    let mut first = None;
    for (advance_ms, age) in [(2_000, "2"), (5_500, "7"), (0, "7"), (100_000, "107")] {
        now.fetch_add(advance_ms, SeqCst);
        let res = svc.clone().oneshot(post("/age", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "HIT");
        assert_eq!(res.headers()["age"], age);
        for name in ["age", "x-cache", "x-cache-key", "content-length"] {
            assert_eq!(res.headers().get_all(name).iter().count(), 1, "{name}");
        }
        let headers = headers_but_age(&res);
        assert_eq!(body_string(res.into_body()).await, r#"{"call":1}"#);
        match &first {
            None => first = Some(headers),
            Some(first) => assert_eq!(&headers, first),
        }
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test]
async fn an_entry_replaced_under_its_key_is_served_as_replaced() {
    let calls = Arc::new(AtomicUsize::new(0));
    for engine in [
        BoxEngine::new(MemoryEngine::new(1 << 20)),
        BoxEngine::new(PlainMap::default()),
    ] {
        calls.store(0, SeqCst);
        let svc = CacheLayer::new(engine).layer(counting(calls.clone(), StatusCode::OK));
        let ask = |req| {
            let svc = svc.clone();
            async move {
                let res = svc.oneshot(req).await.unwrap();
                (x_cache(&res), body_string(res.into_body()).await)
            }
        };
        assert_eq!(ask(post("/r", "{}")).await.0, "MISS");
        for _ in 0..2 {
            assert_eq!(
                ask(post("/r", "{}")).await,
                ("HIT".into(), r#"{"call":1}"#.into())
            );
        }
        let refresh = with_header(post("/r", "{}"), "x-cache-control", "no-cache");
        assert_eq!(ask(refresh).await.0, "REFRESH");
        for _ in 0..2 {
            assert_eq!(
                ask(post("/r", "{}")).await,
                ("HIT".into(), r#"{"call":2}"#.into())
            );
        }
    }
}

#[tokio::test]
async fn one_stored_buffer_under_two_keys_is_marked_with_each_key() {
    // An engine may hand out one buffer for two keys (here, copied by hand): a hit
    // is marked with the key it was read under, never the other's.
    let plain = PlainMap::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(plain.clone()).layer(counting(calls.clone(), StatusCode::OK));
    let key_of = |res: &Response<_>| res.headers()["x-cache-key"].to_str().unwrap().to_owned();
    let a = svc.clone().oneshot(post("/a", "{}")).await.unwrap();
    let key_a = key_of(&a);
    drain(a).await;
    let b = svc.clone().oneshot(post("/b", "{}")).await.unwrap();
    let key_b = key_of(&b);
    drain(b).await;
    assert_ne!(key_a, key_b);
    let res = svc.clone().oneshot(post("/a", "{}")).await.unwrap();
    assert_eq!((x_cache(&res), key_of(&res)), ("HIT".into(), key_a.clone()));
    drain(res).await;
    let stored_a = plain.0.lock().unwrap()[&key_a].clone();
    plain.0.lock().unwrap().insert(key_b.clone(), stored_a);
    for _ in 0..2 {
        let res = svc.clone().oneshot(post("/b", "{}")).await.unwrap();
        assert_eq!((x_cache(&res), key_of(&res)), ("HIT".into(), key_b.clone()));
        assert_eq!(res.headers().get_all("x-cache-key").iter().count(), 1);
        assert_eq!(body_string(res.into_body()).await, r#"{"call":1}"#);
    }
}

// ------------------------------------------------ own directives vs. Cache-Control

#[tokio::test]
async fn the_standard_cache_control_is_ignored_unless_honored() {
    // httpx-sse sends `Cache-Control: no-store` on every stream: by default it is
    // neither a bypass nor consumed (it reaches upstream untouched).
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (c, s) = (calls.clone(), seen.clone());
    let inner = tower::service_fn(move |req: Req| {
        let n = c.fetch_add(1, SeqCst) + 1;
        if req.headers().get("cache-control").is_some() {
            s.fetch_add(1, SeqCst);
        }
        async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{{\"call\":{n}}}"
            )))))
        }
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner.clone());
    for expected in ["MISS", "HIT"] {
        let res = svc
            .clone()
            .oneshot(with_header(post("/x", "{}"), "cache-control", "no-store"))
            .await
            .unwrap();
        assert_eq!(x_cache(&res), expected);
        drain(res).await;
    }
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(seen.load(SeqCst), 1, "forwarded as is");

    let honoring = CacheLayer::new(MemoryEngine::new(1 << 20))
        .honor_cache_control(true)
        .layer(inner);
    for _ in 0..2 {
        let res = honoring
            .clone()
            .oneshot(with_header(post("/x", "{}"), "cache-control", "no-store"))
            .await
            .unwrap();
        assert_eq!(x_cache(&res), "BYPASS");
        drain(res).await;
    }
    assert_eq!(calls.load(SeqCst), 3);
    assert_eq!(seen.load(SeqCst), 1, "consumed when honored");
}

#[tokio::test]
async fn directives_that_do_not_parse_are_a_400_naming_the_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    let cases: [(&'static str, &[u8]); 7] = [
        ("x-cache-ttl", b"1.5"),
        ("x-cache-ttl", b"-1"),
        ("x-cache-ttl", b"forever"),
        ("x-cache-control", b"no-cache, stale-if-error"),
        ("x-cache-control", b"max-age=1.5"),
        ("x-cache-namespace", b"\xff\xfe"),
        ("x-cache-namespace", b" "),
    ];
    for (name, value) in cases {
        let mut req = post("/x", "{}");
        req.headers_mut()
            .insert(name, http::HeaderValue::from_bytes(value).unwrap());
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}: {value:?}");
        let err: serde_json::Value =
            serde_json::from_str(&body_string(res.into_body()).await).unwrap();
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
        assert_eq!(err["code"], "invalid_cache_directive");
    }
    assert_eq!(calls.load(SeqCst), 0, "upstream was called");
    // The forms of --ttl are accepted.
    let res = svc
        .clone()
        .oneshot(with_header(post("/x", "{}"), "x-cache-ttl", "10s"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drain(res).await;
}

#[tokio::test]
async fn a_utf8_namespace_is_its_own_namespace() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    drain(svc.clone().oneshot(post("/x", "{}")).await.unwrap()).await;
    let ns = |name: &str| {
        let mut req = post("/x", "{}");
        req.headers_mut().insert(
            "x-cache-namespace",
            http::HeaderValue::from_bytes(name.as_bytes()).unwrap(),
        );
        req
    };
    let res = svc.clone().oneshot(ns("équipe")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS", "fell back to the default namespace");
    drain(res).await;
    let res = svc.clone().oneshot(ns("équipe")).await.unwrap();
    assert_eq!(x_cache(&res), "HIT");
    drain(res).await;
    let res = svc.oneshot(ns("equipe")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    drain(res).await;
    assert_eq!(calls.load(SeqCst), 3);
}

#[tokio::test]
async fn only_if_cached_never_calls_upstream_even_for_a_bypassed_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc =
        CacheLayer::new(MemoryEngine::new(1 << 20)).layer(counting(calls.clone(), StatusCode::OK));
    let mut req = with_header(post("/x", "{}"), "x-cache-control", "only-if-cached");
    *req.method_mut() = http::Method::DELETE;
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let req = with_header(
        post("/x", "{}"),
        "x-cache-control",
        "only-if-cached, no-store",
    );
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test]
async fn a_predicate_bounds_or_requires_the_ttl() {
    use mistral_tower::cache::{Cacheable, Storage};
    struct Rule;
    impl Cacheable for Rule {
        fn is_cacheable(&self, _: &http::request::Parts) -> bool {
            true
        }
        fn storage(&self, parts: &http::request::Parts) -> Storage {
            match parts.uri.path() {
                "/bounded" => Storage::AtMost(Duration::from_secs(10)),
                "/opt-in" => Storage::RequestTtlOnly,
                _ => Storage::Default,
            }
        }
    }
    let (now, clock) = test_clock();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20))
        .clock(clock)
        .cacheable(Rule)
        .layer(counting(calls.clone(), StatusCode::OK));
    let send = |r| svc.clone().oneshot(r);
    // Bounded: no TTL anywhere, still gone after 10 s.
    drain(send(post("/bounded", "{}")).await.unwrap()).await;
    now.fetch_add(9_000, SeqCst);
    assert_eq!(x_cache(&send(post("/bounded", "{}")).await.unwrap()), "HIT");
    now.fetch_add(2_000, SeqCst);
    let res = send(post("/bounded", "{}")).await.unwrap();
    assert_eq!(x_cache(&res), "MISS");
    drain(res).await;
    // Opt-in: bypassed without x-cache-ttl, cached with it.
    for _ in 0..2 {
        let res = send(post("/opt-in", "{}")).await.unwrap();
        assert_eq!(x_cache(&res), "BYPASS");
        drain(res).await;
    }
    for expected in ["MISS", "HIT"] {
        let res = send(with_header(post("/opt-in", "{}"), "x-cache-ttl", "1m"))
            .await
            .unwrap();
        assert_eq!(x_cache(&res), expected);
        drain(res).await;
    }
}

// ---------------------------------------------------------------------------

/// Adversarial review of `CacheLayer`: answers that must never be stored or served
/// to the wrong request.
mod adversarial {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use mistral_tower::cache::{CacheLayer, MemoryEngine, RequestBody};
    use tower::{Layer, Service, ServiceExt};

    type Req = Request<RequestBody<Full<Bytes>>>;

    /// An inner service answering every request with `make(request headers)`, counting calls.
    fn inner<F>(
        make: F,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
        + Clone
        + Send
        + 'static,
    )
    where
        F: Fn(&http::Method, &HeaderMap) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
    {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = tower::service_fn(move |req: Req| {
            c.fetch_add(1, SeqCst);
            let res = make(req.method(), req.headers());
            async move { Ok::<_, Infallible>(res) }
        });
        (calls, svc)
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri("/v1/resource");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("must finish within 10 s")
    }

    /// Sends `req` and returns (status, x-cache, headers, body).
    async fn send<S>(svc: &S, req: Request<Full<Bytes>>) -> (StatusCode, String, HeaderMap, Bytes)
    where
        S: Service<Request<Full<Bytes>>> + Clone,
        S::Response: Into<Response<mistral_tower::cache::ResponseBody<Full<Bytes>>>>,
        S::Error: std::fmt::Debug,
    {
        let res: Response<_> = within(svc.clone().oneshot(req)).await.unwrap().into();
        let (parts, body) = res.into_parts();
        let bytes = within(body.collect()).await.unwrap().to_bytes();
        let x = parts
            .headers
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (parts.status, x, parts.headers, bytes)
    }

    #[tokio::test]
    async fn a_range_request_never_answers_or_poisons_a_full_request() {
        // The server honours `Range` like any HTTP server does.
        let (calls, svc) = inner(|_, h| {
            if h.contains_key(http::header::RANGE) {
                Response::builder()
                    .status(206)
                    .header("content-range", "bytes 0-3/10")
                    .body(Full::new(Bytes::from_static(b"0123")))
                    .unwrap()
            } else {
                Response::new(Full::new(Bytes::from_static(b"0123456789")))
            }
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        let (status, _, _, body) = send(&svc, request("GET", &[("range", "bytes=0-3")])).await;
        assert_eq!((status.as_u16(), &body[..]), (206, &b"0123"[..]));
        // A full request afterwards must get the full body, not the stored part.
        let (status, _, _, body) = send(&svc, request("GET", &[])).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"0123456789"[..]));
        // And a range request is never answered with the stored full body.
        let (status, _, _, body) = send(&svc, request("GET", &[("range", "bytes=0-3")])).await;
        assert_eq!((status.as_u16(), &body[..]), (206, &b"0123"[..]));
        assert_eq!(calls.load(SeqCst), 3);
    }

    #[tokio::test]
    async fn a_partial_content_answer_is_never_stored() {
        // Even when the request did not ask for a range (a misbehaving inner service).
        let (calls, svc) = inner(|_, _| {
            Response::builder()
                .status(206)
                .header("content-range", "bytes 0-3/10")
                .body(Full::new(Bytes::from_static(b"0123")))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        for _ in 0..2 {
            let (_, x, _, _) = send(&svc, request("GET", &[])).await;
            assert_ne!(x, "HIT");
        }
        assert_eq!(calls.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_content_encoded_answer_is_not_served_to_a_client_that_cannot_decode_it() {
        // The server compresses when the client accepts it (as tower-http's
        // CompressionLayer does); the cache key does not include `Accept-Encoding`.
        let (calls, svc) = inner(|_, h| {
            let gzip = h
                .get(http::header::ACCEPT_ENCODING)
                .is_some_and(|v| v.to_str().unwrap().contains("gzip"));
            if gzip {
                Response::builder()
                    .header("content-encoding", "gzip")
                    .header("vary", "accept-encoding")
                    .body(Full::new(Bytes::from_static(b"\x1f\x8b compressed")))
                    .unwrap()
            } else {
                Response::builder()
                    .header("vary", "accept-encoding")
                    .body(Full::new(Bytes::from_static(b"plain")))
                    .unwrap()
            }
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        let (_, _, h, _) = send(&svc, request("POST", &[("accept-encoding", "gzip")])).await;
        assert_eq!(h["content-encoding"], "gzip");
        let (_, _, h, body) = send(&svc, request("POST", &[])).await;
        assert!(!h.contains_key("content-encoding"), "{h:?}");
        assert_eq!(body, "plain");
        // The identity answer may be stored and served to everybody.
        let (_, x, _, body) = send(&svc, request("POST", &[("accept-encoding", "gzip")])).await;
        assert_eq!((x.as_str(), &body[..]), ("HIT", &b"plain"[..]));
        assert_eq!(calls.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_varying_on_a_header_outside_the_key_is_not_stored() {
        let (calls, svc) = inner(|_, h| {
            let lang = h
                .get(http::header::ACCEPT_LANGUAGE)
                .map_or("en", |v| v.to_str().unwrap())
                .to_owned();
            Response::builder()
                .header("vary", "Accept-Language")
                .body(Full::new(Bytes::from(lang)))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        let (_, _, _, body) = send(&svc, request("POST", &[("accept-language", "fr")])).await;
        assert_eq!(body, "fr");
        let (_, _, _, body) = send(&svc, request("POST", &[("accept-language", "de")])).await;
        assert_eq!(body, "de");
        assert_eq!(calls.load(SeqCst), 2);

        let (calls, svc) = inner(|_, _| {
            Response::builder()
                .header("vary", "*")
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        for _ in 0..2 {
            let (_, x, _, _) = send(&svc, request("POST", &[])).await;
            assert_ne!(x, "HIT");
        }
        assert_eq!(calls.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn vary_on_headers_the_key_covers_is_still_cached() {
        // `Vary: Authorization` (the default tenant scope) and `Vary: Accept-Encoding`
        // on an identity answer do not prevent caching.
        let (calls, svc) = inner(|_, _| {
            Response::builder()
                .header("vary", "authorization, accept-encoding")
                .header("vary", "Origin")
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        send(&svc, request("POST", &[])).await;
        let (_, x, _, _) = send(&svc, request("POST", &[])).await;
        // `Origin` is outside the key: not cached.
        assert_ne!(x, "HIT");
        assert_eq!(calls.load(SeqCst), 2);

        let (calls, svc) = inner(|_, _| {
            Response::builder()
                .header("vary", "authorization, accept-encoding")
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        send(&svc, request("POST", &[])).await;
        let (_, x, _, _) = send(&svc, request("POST", &[])).await;
        assert_eq!(x, "HIT");
        assert_eq!(calls.load(SeqCst), 1);
    }

    // ------------------------------------------------------------------------------
    // Defects found by review in the commit and single-flight paths, each fixed: every
    // test here failed before its fix.

    fn sse(body: &'static str) -> Response<Full<Bytes>> {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn stored_after_one_call(res: fn() -> Response<Full<Bytes>>) -> bool {
        let (calls, svc) = inner(move |_, _| res());
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        send(&svc, request("POST", &[])).await;
        let (_, x, _, _) = send(&svc, request("POST", &[])).await;
        let stored = x == "HIT";
        assert_eq!(calls.load(SeqCst), if stored { 1 } else { 2 });
        stored
    }

    #[tokio::test]
    async fn a_stream_with_an_error_event_before_done_is_not_stored() {
        let stored = stored_after_one_call(|| {
        sse(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "event: error\ndata: {\"object\":\"error\",\"message\":\"Internal server error\",\"type\":\"internal_server_error\",\"param\":null,\"code\":\"3000\"}\n\n",
            "data: [DONE]\n\n",
        ))
    })
    .await;
        assert!(!stored, "an errored stream was stored and will be replayed");
    }

    #[tokio::test]
    async fn a_stream_that_finished_with_reason_error_is_not_stored() {
        let stored = stored_after_one_call(|| {
        sse(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
            "data: [DONE]\n\n",
        ))
    })
    .await;
        assert!(
            !stored,
            "a stream that ended in finish_reason=error was stored"
        );
    }

    #[tokio::test]
    async fn done_inside_content_is_not_the_end_of_the_stream() {
        // The model wrote the text `data: [DONE]`; the stream was then cut cleanly
        // (no [DONE] event of its own).
        let stored = stored_after_one_call(|| {
            sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"data: [DONE]\"}}]}\n\n")
        })
        .await;
        assert!(!stored, "a stream without its own [DONE] event was stored");
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_content_length_is_not_stored() {
        let stored = stored_after_one_call(|| {
            Response::builder()
                .header("content-length", "100")
                .body(Full::new(Bytes::from_static(b"{\"truncated\":")))
                .unwrap()
        })
        .await;
        assert!(!stored, "a truncated body was stored as complete");
    }

    #[tokio::test]
    async fn a_head_hit_keeps_the_content_length_of_the_resource() {
        let (_, svc) = inner(|_, _| {
            Response::builder()
                .header("content-length", "10")
                .body(Full::new(Bytes::new()))
                .unwrap()
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        send(&svc, request("HEAD", &[])).await;
        let (_, x, h, _) = send(&svc, request("HEAD", &[])).await;
        if x == "HIT" {
            assert_eq!(h["content-length"], "10", "HEAD hit changed the length");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_stops_reading_does_not_stall_its_followers() {
        let (calls, svc) = inner(|_, _| sse("data: {\"choices\":[]}\n\ndata: [DONE]\n\n"));
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        // The leader's client got the head and then stopped reading (a slow consumer
        // behind a full socket buffer looks the same to the cache).
        let leader = within(svc.clone().oneshot(request("POST", &[])))
            .await
            .unwrap();
        assert_eq!(leader.headers()["x-cache"], "MISS");
        let follower = within(svc.clone().oneshot(request("POST", &[])))
            .await
            .unwrap();
        assert_eq!(follower.headers()["x-cache"], "COALESCED");
        let body = within(follower.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert!(body.ends_with(b"data: [DONE]\n\n"));
        assert_eq!(calls.load(SeqCst), 1);
        drop(leader);
    }

    /// A response body fed through a channel: pending until the test sends a frame.
    struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

    impl http_body::Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            self.0
                .poll_recv(cx)
                .map(|f| f.map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_leader_s_followers_are_woken_by_the_live_upstream() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = tower::service_fn(move |_req: Req| {
            c.fetch_add(1, SeqCst);
            let body = ChannelBody(rx.lock().unwrap().take().expect("one upstream call"));
            let res = Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap();
            async move { Ok::<_, Infallible>(res) }
        });
        let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(svc);
        let events = ["data: {\"choices\":[]}\n\n", "data: [DONE]\n\n"];

        let leader = within(svc.clone().oneshot(request("POST", &[])))
            .await
            .unwrap();
        assert_eq!(leader.headers()["x-cache"], "MISS");
        let mut leader = leader.into_body();
        // The leader polls once while the upstream is pending, then stops reading.
        let polled = tokio::time::timeout(Duration::from_millis(10), leader.frame()).await;
        assert!(polled.is_err());

        let follower = within(svc.clone().oneshot(request("POST", &[])))
            .await
            .unwrap();
        assert_eq!(follower.headers()["x-cache"], "COALESCED");
        let reading = tokio::spawn(async move { follower.into_body().collect().await });
        for e in events {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(Bytes::from_static(e.as_bytes())).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(tx);
        let body = within(reading).await.unwrap().unwrap().to_bytes();
        assert_eq!(body, events.concat());

        // The stream was stored, and the leader still gets all of it.
        let res = within(svc.clone().oneshot(request("POST", &[])))
            .await
            .unwrap();
        let x = res.headers()["x-cache"].to_str().unwrap().to_owned();
        let stored = within(res.into_body().collect()).await.unwrap().to_bytes();
        assert_eq!(
            (x.as_str(), &stored[..]),
            ("HIT", events.concat().as_bytes())
        );
        let rest = within(leader.collect()).await.unwrap().to_bytes();
        assert_eq!(rest, events.concat());
        assert_eq!(calls.load(SeqCst), 1);
    }
}
