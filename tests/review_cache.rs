//! Adversarial review of `CacheLayer`: answers that must never be stored or served
//! to the wrong request.

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
