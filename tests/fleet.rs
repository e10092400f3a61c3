//! Single-flight across processes: several independent `CacheLayer`s, each with its own
//! engine instance (one "replica" each), on one Redis (single node and cluster) or
//! PostgreSQL, in front of one upstream that counts its calls.
//!
//! Needs `REDIS_URL`, `REDIS_CLUSTER_URL` and `DATABASE_URL` (each test prints
//! `skipped: VAR not set` without its variable); the fail-open test needs nothing.
//! With `RUST_LOG=mistral_tower=debug`, a failing scenario prints the layers' logs.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use mistral_tower::cache::{
    BoxEngine, CacheEngine, CacheLayer, MetricsSnapshot, RequestBody, engine_from_url,
};
use support::engine_suite::{add_query, env_or_skip, reachable_or_skip, unique};
use support::x_cache;
use tokio::sync::watch;
use tower::{Layer, ServiceExt};

/// Guards against hangs only; never an assertion on speed.
const GUARD: Duration = Duration::from_secs(60);

// A concrete error type: with `BoxError` here the compiler loses track of the
// trait object's `'static` inside spawned futures (a known rustc limitation).
type UpBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How the gated upstream calls' bodies go on once the gate opens (later calls always
/// end cleanly and at once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum First {
    Clean,
    /// An error after the first frame.
    Error,
    /// Never another frame (its process is killed meanwhile).
    Stall,
    /// Never a response head (its process is killed meanwhile).
    NoHead,
}

/// An upstream that counts its calls. It answers the head at once; the body of each of
/// the first `gated` calls sends its first frame and then waits for the gate.
#[derive(Clone)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    gate: watch::Receiver<bool>,
    first: First,
    gated: usize,
}

fn frames(stream: bool) -> Vec<Bytes> {
    if stream {
        let mut v: Vec<Bytes> = (0..6)
            .map(|i| Bytes::from(format!("data: {{\"id\":\"cmpl-1\",\"i\":{i}}}\n\n")))
            .collect();
        v.push(Bytes::from_static(b"data: [DONE]\n\n"));
        v
    } else {
        vec![
            Bytes::from_static(br#"{"id":"cmpl-1","choices":["#),
            Bytes::from_static(br#"{"message":{"content":"hello"}}]}"#),
        ]
    }
}

impl Upstream {
    fn new(first: First) -> (Self, watch::Sender<bool>) {
        Self::gating(first, 1)
    }

    fn gating(first: First, gated: usize) -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let up = Upstream {
            calls: Arc::new(AtomicUsize::new(0)),
            gate: rx,
            first,
            gated,
        };
        (up, tx)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service<B: Send + 'static>(
        self,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<UpBody>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let this = self;
        tower::service_fn(move |req: Request<B>| {
            let this = this.clone();
            async move {
                let n = this.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let stream = req.headers().get("x-test-stream").is_some_and(|v| v == "1");
                let first = (n <= this.gated).then_some(this.first);
                if first == Some(First::NoHead) {
                    std::future::pending::<()>().await;
                }
                let body = body(frames(stream), first, this.gate.clone());
                let ct = if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", ct)
                        .header("x-upstream-call", n)
                        .body(body)
                        .unwrap(),
                )
            }
        })
    }
}

fn body(frames: Vec<Bytes>, first: Option<First>, gate: watch::Receiver<bool>) -> UpBody {
    let state = (0usize, frames, first, gate);
    let stream = futures_util::stream::unfold(state, |(i, frames, first, mut gate)| async move {
        if i == 1
            && let Some(first) = first
        {
            let _ = gate.wait_for(|open| *open).await;
            match first {
                First::Clean => {}
                First::Error => {
                    let e = std::io::Error::other("upstream failed mid-body");
                    return Some((Err(e), (usize::MAX, frames, None, gate)));
                }
                First::Stall => std::future::pending::<()>().await,
                First::NoHead => unreachable!("no body without a head"),
            }
        }
        let f = frames.get(i)?.clone();
        Some((Ok(Frame::data(f)), (i + 1, frames, first, gate)))
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

fn request(tag: &str, stream: bool) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"{tag}"}}]}}"#
    );
    let mut req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    if stream {
        req.headers_mut()
            .insert("x-test-stream", http::HeaderValue::from_static("1"));
    }
    req
}

/// `n` replicas: a layer each, over its own engine instance built from `url`.
async fn replicas(url: &str, n: usize) -> Vec<CacheLayer<BoxEngine>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let engine = engine_from_url(url).await.expect("engine");
        assert!(engine.fleet().is_some(), "{url} has a fleet capability");
        out.push(CacheLayer::new(engine).fleet_lease(Duration::from_secs(1)));
    }
    out
}

fn total(layers: &[CacheLayer<BoxEngine>], f: impl Fn(MetricsSnapshot) -> u64) -> u64 {
    layers.iter().map(|l| f(l.metrics())).sum()
}

/// Waits until `cond` holds (bounded by [`GUARD`]).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What one caller got: `x-cache`, and its body or the error it ended with.
type Got = (String, Result<Bytes, String>);

async fn send(layer: &CacheLayer<BoxEngine>, up: &Upstream, tag: &str, stream: bool) -> Got {
    let svc = layer.layer(up.clone().service::<RequestBody<Full<Bytes>>>());
    let res = svc.oneshot(request(tag, stream)).await.unwrap();
    let xc = x_cache(&res);
    let body = match res.into_body().collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(e.to_string()),
    };
    (xc, body)
}

/// `n` identical requests for `tag`, spread in turn over `layers`, each on its own task.
fn spawn_requests(
    layers: &[CacheLayer<BoxEngine>],
    up: &Upstream,
    tag: &str,
    n: usize,
    stream: bool,
) -> Vec<tokio::task::JoinHandle<Got>> {
    (0..n)
        .map(|i| {
            let (l, up, tag) = (layers[i % layers.len()].clone(), up.clone(), tag.to_owned());
            tokio::spawn(async move { send(&l, &up, &tag, stream).await })
        })
        .collect()
}

/// `n` identical concurrent requests spread over the replicas, one upstream call.
async fn one_call_for_the_fleet(url: &str, n: usize, stream: bool) {
    one_call_with(&replicas(url, 3).await, n, stream).await;
}

/// [`one_call_for_the_fleet`] over the given three replicas.
async fn one_call_with(layers: &[CacheLayer<BoxEngine>], n: usize, stream: bool) {
    let (up, gate) = Upstream::new(First::Clean);
    let tag = unique("fleet");
    let tasks = spawn_requests(layers, &up, &tag, n, stream);
    // Every request but the leader has its head (joined a flight here or elsewhere)
    // before the body goes on: then none of them can come after the answer.
    until("every follower to get its head", || {
        total(layers, |m| m.coalesced) == n as u64 - 1
    })
    .await;
    gate.send(true).unwrap();
    let mut bodies = Vec::new();
    for t in tasks {
        let (xc, body) = tokio::time::timeout(GUARD, t).await.unwrap().unwrap();
        assert!(xc == "MISS" || xc == "COALESCED", "{xc}");
        bodies.push(body.expect("complete body"));
    }
    assert_eq!(up.calls(), 1, "one upstream call for the whole fleet");
    let expected: Vec<u8> = frames(stream).concat();
    for b in &bodies {
        assert_eq!(&b[..], &expected[..], "byte-identical answers");
    }
    assert_eq!(total(layers, |m| m.fleet_leaders), 1);
    assert_eq!(total(layers, |m| m.fleet_followers), 2);
    // Later: from the stored entry (or the finished flight), never upstream again.
    for l in layers {
        let (_, body) = send(l, &up, &tag, stream).await;
        assert_eq!(&body.unwrap()[..], &expected[..]);
    }
    assert_eq!(up.calls(), 1);
}

/// The leader's upstream body fails after its first frame: every follower's body ends
/// with an error, nothing is stored, and the next request calls upstream again.
async fn leader_failure_reaches_followers(url: &str) {
    let layers = replicas(url, 3).await;
    let (up, gate) = Upstream::new(First::Error);
    let tag = unique("fleet-fail");
    let leader = {
        let (l, up, tag) = (layers[0].clone(), up.clone(), tag.clone());
        tokio::spawn(async move { send(&l, &up, &tag, true).await })
    };
    until("the leader's call", || up.calls() == 1).await;
    let followers = spawn_requests(&layers[1..], &up, &tag, 6, true);
    until("the followers' heads", || {
        total(&layers, |m| m.coalesced) == 6
    })
    .await;
    gate.send(true).unwrap();
    for t in followers {
        let (xc, body) = tokio::time::timeout(GUARD, t).await.unwrap().unwrap();
        assert_eq!(xc, "COALESCED");
        assert!(
            body.is_err(),
            "a follower of a failed leader ends with an error"
        );
    }
    assert!(leader.await.unwrap().1.is_err());
    assert_eq!(total(&layers, |m| m.stores), 0, "nothing stored");
    let (xc, body) = send(&layers[1], &up, &tag, true).await;
    assert_eq!(xc, "MISS");
    assert_eq!(&body.unwrap()[..], &frames(true).concat()[..]);
    assert_eq!(up.calls(), 2);
}

/// The leader's process dies mid-stream (its runtime is shut down: no failure is
/// published, its lease is no longer renewed): the followers' bodies end with an error
/// within about a lease, and a later request gets a complete answer.
async fn dead_leader_does_not_strand_followers(url: &str) {
    let (up, _gate) = Upstream::new(First::Stall);
    let tag = unique("fleet-dead");
    let leader_rt = start_leader(url, &up, &tag).await;
    until("the leader's call", || up.calls() == 1).await;
    let layers = replicas(url, 2).await;
    let followers = spawn_requests(&layers, &up, &tag, 4, true);
    until("the followers' heads", || {
        total(&layers, |m| m.coalesced) == 4
    })
    .await;
    leader_rt.shutdown_background();
    for t in followers {
        let (xc, body) = tokio::time::timeout(GUARD, t)
            .await
            .expect("followers of a dead leader end")
            .unwrap();
        assert_eq!(xc, "COALESCED");
        assert!(body.is_err(), "stranded followers end with an error");
    }
    assert_eq!(total(&layers, |m| m.stores), 0, "nothing stored");
    let (xc, body) = send(&layers[0], &up, &tag, true).await;
    assert_eq!(xc, "MISS");
    assert_eq!(&body.unwrap()[..], &frames(true).concat()[..]);
    assert_eq!(up.calls(), 2);
}

/// Starts the leader's "process" (its own runtime, engine and connection) sending a
/// stream request for `tag`; shutting the runtime down kills it.
async fn start_leader(url: &str, up: &Upstream, tag: &str) -> tokio::runtime::Runtime {
    let leader_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let leader = {
        let url = url.to_owned();
        leader_rt
            .spawn(async move { replicas(&url, 1).await.remove(0) })
            .await
            .unwrap()
    };
    let (up, tag) = (up.clone(), tag.to_owned());
    leader_rt.spawn(async move { send(&leader, &up, &tag, true).await });
    leader_rt
}

/// The leader's process dies before upstream answered its head: after its lease, one
/// follower takes over and calls upstream; every caller gets the complete answer.
async fn dead_leader_before_its_head_is_replaced(url: &str) {
    let (up, _gate) = Upstream::new(First::NoHead);
    let tag = unique("fleet-takeover");
    let leader_rt = start_leader(url, &up, &tag).await;
    until("the leader's call", || up.calls() == 1).await;
    let layers = replicas(url, 2).await;
    let followers = spawn_requests(&layers, &up, &tag, 4, true);
    leader_rt.shutdown_background();
    for t in followers {
        let (_, body) = tokio::time::timeout(GUARD, t)
            .await
            .expect("followers of a leader dead before its head end")
            .unwrap();
        assert_eq!(&body.unwrap()[..], &frames(true).concat()[..]);
    }
    assert_eq!(up.calls(), 2, "one new leader for the fleet");
    assert!(total(&layers, |m| m.fleet_takeovers) >= 1);
}

async fn redis_url() -> Option<String> {
    let url = env_or_skip("REDIS_URL")?;
    let url = add_query(&url, "prefix", &format!("{}:", unique("fleet")));
    let probe = engine_from_url(&url).await.ok()?;
    reachable_or_skip(&probe, "Redis at REDIS_URL")
        .await
        .then_some(url)
}

async fn cluster_url() -> Option<String> {
    let url = env_or_skip("REDIS_CLUSTER_URL")?;
    let url = add_query(&url, "prefix", &format!("{}:", unique("fleet")));
    let probe = engine_from_url(&url).await.ok()?;
    reachable_or_skip(&probe, "Redis Cluster at REDIS_CLUSTER_URL")
        .await
        .then_some(url)
}

/// One `#[tokio::test]` per scenario on a backend: `$url()` gives the backend's URL (or
/// prints why it skips), and each scenario runs with it and its own arguments.
macro_rules! scenarios {
    ($url:ident: $($name:ident => $scenario:ident($($arg:expr),*);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
            let Some(url) = $url().await else { return };
            $scenario(&url $(, $arg)*).await;
        }
    )*};
}

scenarios! {
    redis_url:
    redis_sixty_json_requests_make_one_call => one_call_for_the_fleet(60, false);
    redis_thirty_streams_make_one_call_byte_identical => one_call_for_the_fleet(30, true);
    redis_leader_failure_ends_followers_with_an_error => leader_failure_reaches_followers();
    redis_dead_leader_does_not_strand_followers => dead_leader_does_not_strand_followers();
    redis_dead_leader_before_its_head_is_replaced => dead_leader_before_its_head_is_replaced();
    redis_signing_replicas_share_one_flight => signing_replicas_share_one_flight();
    redis_forged_fleet_events_are_refused => forged_flight_is_refused();
    redis_unsigned_replicas_do_not_follow_a_signed_flight => signed_flight_is_not_followed_unsigned();
}

scenarios! {
    cluster_url:
    redis_cluster_sixty_json_requests_make_one_call => one_call_for_the_fleet(60, false);
    redis_cluster_thirty_streams_make_one_call_byte_identical => one_call_for_the_fleet(30, true);
    redis_cluster_dead_leader_does_not_strand_followers => dead_leader_does_not_strand_followers();
    redis_cluster_signing_replicas_share_one_flight => signing_replicas_share_one_flight();
}

/// Off by the layer's switch: each replica calls upstream once (per-process
/// single-flight only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fleet_flight_off_is_per_process() {
    let Some(url) = redis_url().await else { return };
    let layers: Vec<_> = replicas(&url, 3)
        .await
        .into_iter()
        .map(|l| l.fleet_flight(false))
        .collect();
    per_process(&layers).await;
    assert_eq!(total(&layers, |m| m.fleet_leaders), 0);
}

/// The fleet's entry secret.
const SECRET: &str = "fleet-test-secret-0123456789";

/// Replicas signing with one secret share flights: the leader signs every event it
/// publishes and the followers check them, JSON and streams alike.
async fn signing_replicas_share_one_flight(url: &str) {
    for (n, stream) in [(60, false), (30, true)] {
        let layers: Vec<_> = replicas(url, 3)
            .await
            .into_iter()
            .map(|l| l.sign_entries(SECRET))
            .collect();
        one_call_with(&layers, n, stream).await;
        assert_eq!(total(&layers, |m| m.fleet_events_rejected_signature), 0);
    }
}

/// A forger who can write the store (and knows the event format) leads a flight with
/// another secret and an answer of its own: the signing replicas refuse its events,
/// call upstream themselves and never serve its bytes.
async fn forged_flight_is_refused(url: &str) {
    flight_not_followed(url, Some(SECRET)).await;
}

/// Replicas that do not sign cannot read a signing leader's events: they call
/// upstream themselves, without counting a takeover of a flight that is not failing.
async fn signed_flight_is_not_followed_unsigned(url: &str) {
    flight_not_followed(url, None).await;
}

/// A leader signing with another secret than the replicas' (`None`: replicas that do
/// not sign) and an answer of its own: no replica follows it or serves its bytes.
async fn flight_not_followed(url: &str, replica_secret: Option<&str>) {
    let forger = replicas(url, 1)
        .await
        .remove(0)
        .sign_entries("not-the-fleet-secret-0123456789");
    let forger_calls = Arc::new(AtomicUsize::new(0));
    let forged = {
        let calls = forger_calls.clone();
        tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            // One forged frame, then a stall: the forger keeps its lease meanwhile.
            let frame = Ok(Frame::data(Bytes::from_static(b"data: {\"forged\":1}\n\n")));
            let frames =
                futures_util::stream::iter([frame]).chain(futures_util::stream::pending::<
                    Result<Frame<Bytes>, std::io::Error>,
                >());
            let res = Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed_unsync(StreamBody::new(frames)))
                .unwrap();
            std::future::ready(Ok::<_, Infallible>(res))
        })
    };
    let tag = unique("fleet-forged");
    let forger_task = {
        let (svc, req) = (forger.layer(forged), request(&tag, true));
        tokio::spawn(async move {
            let res = svc.oneshot(req).await.unwrap();
            // Its caller reads on (the frames are published as they are read).
            let _ = res.into_body().collect().await;
        })
    };
    until("the forger's flight", || {
        forger_calls.load(Ordering::SeqCst) == 1 && forger.metrics().fleet_leaders == 1
    })
    .await;
    let layers: Vec<_> = replicas(url, 2)
        .await
        .into_iter()
        .map(|l| match replica_secret {
            Some(secret) => l.sign_entries(secret),
            None => l,
        })
        .collect();
    let (up, _gate) = Upstream::gating(First::Clean, 0);
    let tasks = spawn_requests(&layers, &up, &tag, 4, true);
    for t in tasks {
        // MISS, or COALESCED with a request of its own process; never the forger's bytes.
        let (_, body) = tokio::time::timeout(GUARD, t).await.unwrap().unwrap();
        assert_eq!(&body.unwrap()[..], &frames(true).concat()[..]);
    }
    assert!(up.calls() >= 1, "the replicas called upstream themselves");
    let refused = total(&layers, |m| m.fleet_events_rejected_signature);
    if replica_secret.is_some() {
        assert!(refused >= 1);
    } else {
        assert_eq!(refused, 0, "nothing to verify without a secret");
    }
    assert_eq!(total(&layers, |m| m.fleet_followers), 0);
    assert_eq!(total(&layers, |m| m.fleet_takeovers), 0);
    forger_task.abort();
}

/// 6 requests over 3 replicas whose engine is unreachable: every replica calls
/// upstream (once: single-flight in the process still holds), every caller gets the
/// answer, no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_engine_fails_open_per_replica() {
    // Port 1 is never a Redis server.
    let layers: Vec<_> = (0..3)
        .map(|_| {
            let e = mistral_tower::cache::RedisEngine::new("redis://127.0.0.1:1")
                .unwrap()
                .with_timeout(Duration::from_millis(300));
            CacheLayer::new(BoxEngine::new(e))
        })
        .collect();
    per_process(&layers).await;
    assert_eq!(total(&layers, |m| m.fleet_fail_opens), 3);
}

/// 6 identical requests, 2 per replica: one upstream call per replica.
async fn per_process(layers: &[CacheLayer<BoxEngine>]) {
    let (up, gate) = Upstream::gating(First::Clean, 3);
    let tag = unique("fleet-local");
    let tasks = spawn_requests(layers, &up, &tag, 6, false);
    until("one local follower per replica", || {
        total(layers, |m| m.coalesced) == 3
    })
    .await;
    until("one call per replica", || up.calls() == 3).await;
    gate.send(true).unwrap();
    for t in tasks {
        let (_, body) = tokio::time::timeout(GUARD, t).await.unwrap().unwrap();
        assert_eq!(&body.unwrap()[..], &frames(false).concat()[..]);
    }
    assert_eq!(up.calls(), 3);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    async fn pg_url() -> Option<String> {
        let url = env_or_skip("DATABASE_URL")?;
        let url = add_query(&url, "table", &unique("fleet"));
        let probe = engine_from_url(&url).await.ok()?;
        reachable_or_skip(&probe, "PostgreSQL at DATABASE_URL")
            .await
            .then_some(url)
    }

    scenarios! {
        pg_url:
        postgres_sixty_json_requests_make_one_call => one_call_for_the_fleet(60, false);
        postgres_thirty_streams_make_one_call_byte_identical => one_call_for_the_fleet(30, true);
        postgres_leader_failure_ends_followers_with_an_error => leader_failure_reaches_followers();
        postgres_dead_leader_does_not_strand_followers => dead_leader_does_not_strand_followers();
        postgres_dead_leader_before_its_head_is_replaced => dead_leader_before_its_head_is_replaced();
        postgres_signing_replicas_share_one_flight => signing_replicas_share_one_flight();
        postgres_forged_fleet_events_are_refused => forged_flight_is_refused();
        postgres_unsigned_replicas_do_not_follow_a_signed_flight => signed_flight_is_not_followed_unsigned();
    }
}
