//! End-to-end tests of the `mistral-cache` proxy: in-process (`server::Proxy` on a
//! free port) and as the real binary (signals, exit codes, admin commands), in
//! front of a small upstream started by each test.
#![cfg(feature = "server")]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mistral_tower::server::{Config, Metrics, MetricsSnapshot, Proxy};
use support::proxy::{GUARD, guard, start_proxy};
use support::x_cache;
use tokio::sync::{Semaphore, oneshot};

mod support;

use mistral_tower::testing::fixtures::{CHAT_RESPONSE as CHAT_JSON, CHAT_STREAM as CHAT_SSE};

// ---------------------------------------------------------------------------
// A small upstream: counts calls, serves the example bodies, can gate a stream
// after its first event, and can hang.

#[derive(Clone)]
struct Upstream {
    calls: Arc<Mutex<Vec<Call>>>,
    /// A gated stream waits for one permit after its first event.
    gate: Arc<Semaphore>,
}

#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    authorization: Option<String>,
}

struct RunningUpstream {
    url: String,
    state: Upstream,
}

impl RunningUpstream {
    fn calls(&self) -> usize {
        self.state.calls.lock().unwrap().len()
    }
    fn calls_to(&self, path: &str) -> usize {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .count()
    }
    fn last_call(&self) -> Call {
        self.state.calls.lock().unwrap().last().cloned().unwrap()
    }
    fn release_stream(&self) {
        self.state.gate.add_permits(1);
    }
}

async fn start_upstream() -> RunningUpstream {
    let state = Upstream {
        calls: Arc::default(),
        gate: Arc::new(Semaphore::new(0)),
    };
    let app = Router::new()
        .fallback(upstream_handler)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    RunningUpstream { url, state }
}

async fn upstream_handler(State(state): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let n = {
        let mut calls = state.calls.lock().unwrap();
        calls.push(Call {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            authorization: parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        calls.len()
    };
    let body = body.collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut res = match (parts.method.as_str(), parts.uri.path()) {
        ("POST", "/v1/chat/completions") => {
            if json["model"] == "hang" {
                std::future::pending::<()>().await;
            }
            if json["stream"] == true {
                sse_response(&state, parts.headers.contains_key("x-test-gate"))
            } else {
                // A fresh id per upstream call proves which answer a client got.
                let mut v: serde_json::Value = serde_json::from_str(CHAT_JSON).unwrap();
                v["id"] = format!("upstream-call-{n}").into();
                json_response(StatusCode::OK, v)
            }
        }
        ("POST", "/v1/embeddings") => json_response(
            StatusCode::OK,
            serde_json::json!({
                "id": format!("upstream-call-{n}"), "object": "list", "model": "mistral-embed",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
            }),
        ),
        ("GET", "/v1/files") => json_response(
            StatusCode::OK,
            serde_json::json!({"object": "list", "data": [], "total": n}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            serde_json::json!({"object": "error", "message": "not found", "type": "not_found", "param": null, "code": null}),
        ),
    };
    res.headers_mut().insert(
        "mistral-correlation-id",
        format!("corr-{n}").parse().unwrap(),
    );
    res
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The example events, one per frame; a gated stream waits for a permit after
/// the first one.
fn sse_response(state: &Upstream, gated: bool) -> Response {
    let events: Vec<Bytes> = CHAT_SSE
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| Bytes::from(format!("{}\n\n", e.trim())))
        .collect();
    let gate = state.gate.clone();
    let stream = futures_util::stream::unfold((0usize, events), move |(i, events)| {
        let gate = gate.clone();
        async move {
            if i >= events.len() {
                return None;
            }
            if i == 1 && gated {
                gate.acquire().await.unwrap().forget();
            }
            Some((Ok::<_, Infallible>(events[i].clone()), (i + 1, events)))
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        AxumBody::from_stream(stream),
    )
        .into_response()
}

fn example_sse_bytes() -> Vec<u8> {
    CHAT_SSE
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .flat_map(|e| format!("{}\n\n", e.trim()).into_bytes())
        .collect()
}

// ---------------------------------------------------------------------------
// The proxy in-process, and an HTTP client.

fn client() -> HyperClient<HttpConnector, Full<Bytes>> {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

async fn send(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    guard(client().request(req)).await.unwrap()
}

async fn read_all(res: http::Response<hyper::body::Incoming>) -> (http::response::Parts, Bytes) {
    let (parts, body) = res.into_parts();
    let bytes = guard(body.collect()).await.unwrap().to_bytes();
    (parts, bytes)
}

/// The proxy's counters once `n` requests are fully accounted for (a request is
/// counted when the server drops its response body, just after the client got it).
async fn settled(metrics: &Metrics, n: u64) -> MetricsSnapshot {
    guard(async {
        loop {
            let snap = metrics.snapshot();
            if snap.requests >= n {
                return snap;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

const CHAT_BODY: &str = r#"{"model":"mistral-large-latest","messages":[{"role":"user","content":"How far is the Moon?"}]}"#;
const STREAM_BODY: &str = r#"{"model":"mistral-large-latest","stream":true,"messages":[{"role":"user","content":"Count"}]}"#;

// ---------------------------------------------------------------------------
// In-process tests.

#[tokio::test]
async fn repeated_chat_completion_is_served_from_cache() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    let url = format!("{}/v1/chat/completions", proxy.url);

    let (first, first_body) =
        read_all(send("POST", &url, Some("Bearer k1"), Some(CHAT_BODY), &[]).await).await;
    assert_eq!(first.status, 200);
    assert!(
        x_cache(&first.headers).starts_with("MISS"),
        "{:?}",
        first.headers
    );
    assert_eq!(up.calls_to("/v1/chat/completions"), 1);
    assert_eq!(up.last_call().authorization.as_deref(), Some("Bearer k1"));

    // Same request, other field order and whitespace: answered from the cache.
    let reordered = r#"{ "messages": [{"content":"How far is the Moon?","role":"user"}], "model": "mistral-large-latest" }"#;
    let (second, second_body) =
        read_all(send("POST", &url, Some("Bearer k1"), Some(reordered), &[]).await).await;
    assert_eq!(second.status, 200);
    assert!(
        x_cache(&second.headers).starts_with("HIT"),
        "{:?}",
        second.headers
    );
    assert_eq!(
        up.calls_to("/v1/chat/completions"),
        1,
        "the upstream was called again"
    );
    assert_eq!(first_body, second_body);
    let v: serde_json::Value = serde_json::from_slice(&second_body).unwrap();
    assert_eq!(v["id"], "upstream-call-1");

    let snap = settled(&proxy.metrics, 2).await;
    assert_eq!((snap.hits, snap.misses), (1, 1));
    assert_eq!(snap.bytes_served_from_cache, second_body.len() as u64);
    assert_eq!(
        snap.total_tokens_from_cache, 98,
        "usage of the stored answer"
    );

    let metrics = read_all(
        send(
            "GET",
            &format!("{}/_mistral-cache/metrics", proxy.url),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    let text = String::from_utf8(metrics.1.to_vec()).unwrap();
    assert!(text.contains("mistral_cache_hits_total 1\n"), "{text}");
    assert!(
        text.contains("mistral_cache_tokens_from_cache_total{kind=\"total\"} 98\n"),
        "{text}"
    );
    assert!(
        text.contains("mistral_cache_upstream_latency_seconds_count 1\n"),
        "{text}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn stream_is_forwarded_event_by_event_then_replayed_byte_identical() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    let url = format!("{}/v1/chat/completions", proxy.url);

    // Miss: the first event reaches the client while the upstream still holds the rest.
    let res = send(
        "POST",
        &url,
        Some("Bearer k1"),
        Some(STREAM_BODY),
        &[("x-test-gate", "1")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(x_cache(res.headers()).starts_with("MISS"));
    let mut body = res.into_body();
    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        let frame = guard(body.frame())
            .await
            .expect("the first event must arrive before the upstream sends the second")
            .unwrap();
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
    }
    assert_eq!(
        received.iter().filter(|&&b| b == b'\n').count(),
        2,
        "exactly one event so far"
    );
    up.release_stream();
    while let Some(frame) = guard(body.frame()).await {
        if let Some(data) = frame.unwrap().data_ref() {
            received.extend_from_slice(data);
        }
    }
    assert_eq!(received, example_sse_bytes());
    assert!(received.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(up.calls(), 1);

    // Hit: byte-identical, no upstream call.
    let (parts, replay) =
        read_all(send("POST", &url, Some("Bearer k1"), Some(STREAM_BODY), &[]).await).await;
    assert!(
        x_cache(&parts.headers).starts_with("HIT"),
        "{:?}",
        parts.headers
    );
    assert_eq!(
        parts.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    assert_eq!(replay.as_ref(), received.as_slice());
    assert_eq!(up.calls(), 1);
    assert_eq!(settled(&proxy.metrics, 2).await.total_tokens_from_cache, 21);
    proxy.shutdown().await;
}

#[tokio::test]
async fn different_api_keys_do_not_share_entries_unless_configured() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    let url = format!("{}/v1/chat/completions", proxy.url);
    for key in ["Bearer alice", "Bearer bob", "Bearer alice", "Bearer bob"] {
        let (parts, _) = read_all(send("POST", &url, Some(key), Some(CHAT_BODY), &[]).await).await;
        assert_eq!(parts.status, 200);
    }
    assert_eq!(up.calls(), 2, "one upstream call per API key");
    let seen: Vec<_> = up
        .state
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.authorization.clone().unwrap())
        .collect();
    assert_eq!(seen, ["Bearer alice", "Bearer bob"]);
    proxy.shutdown().await;

    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| c.share_across_keys = true).await;
    let url = format!("{}/v1/chat/completions", proxy.url);
    for key in ["Bearer alice", "Bearer bob"] {
        read_all(send("POST", &url, Some(key), Some(CHAT_BODY), &[]).await).await;
    }
    assert_eq!(up.calls(), 1, "--share-across-keys shares entries");
    proxy.shutdown().await;
}

#[tokio::test]
async fn proxy_key_is_used_only_when_the_client_sends_none() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| c.api_key = Some("proxy-key".into())).await;
    read_all(send("GET", &format!("{}/v1/files", proxy.url), None, None, &[]).await).await;
    assert_eq!(
        up.last_call().authorization.as_deref(),
        Some("Bearer proxy-key")
    );
    read_all(
        send(
            "GET",
            &format!("{}/v1/files", proxy.url),
            Some("Bearer mine"),
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(up.last_call().authorization.as_deref(), Some("Bearer mine"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_forwarded_uncached() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    for _ in 0..2 {
        let (parts, body) = read_all(
            send(
                "GET",
                &format!("{}/v1/files?page=0", proxy.url),
                Some("Bearer k"),
                None,
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(parts.status, 200);
        assert!(!x_cache(&parts.headers).starts_with("HIT"));
        assert!(parts.headers.contains_key("mistral-correlation-id"));
        assert!(String::from_utf8_lossy(&body).contains("\"object\":\"list\""));
    }
    assert_eq!(up.calls_to("/v1/files"), 2, "GET /v1/files is never cached");
    // Upstream statuses pass through unchanged.
    let (parts, _) = read_all(
        send(
            "DELETE",
            &format!("{}/v1/models/x", proxy.url),
            Some("Bearer k"),
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 404);
    assert_eq!(up.last_call().method, "DELETE");
    let snap = settled(&proxy.metrics, 3).await;
    assert_eq!((snap.hits, snap.uncached), (0, 3));
    proxy.shutdown().await;
}

#[tokio::test]
async fn cached_routes_are_configurable() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.cached_routes = mistral_tower::server::CachedRoutes::new(["/v1/embeddings"]).unwrap();
    })
    .await;
    for _ in 0..2 {
        read_all(
            send(
                "POST",
                &format!("{}/v1/chat/completions", proxy.url),
                Some("Bearer k"),
                Some(CHAT_BODY),
                &[],
            )
            .await,
        )
        .await;
        read_all(
            send(
                "POST",
                &format!("{}/v1/embeddings", proxy.url),
                Some("Bearer k"),
                Some(r#"{"model":"mistral-embed","input":["a"]}"#),
                &[],
            )
            .await,
        )
        .await;
    }
    assert_eq!(up.calls_to("/v1/chat/completions"), 2);
    assert_eq!(up.calls_to("/v1/embeddings"), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_down_is_a_502_in_the_api_error_shape() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = start_proxy(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    for path in ["/v1/chat/completions", "/v1/models"] {
        let method = if path == "/v1/models" { "GET" } else { "POST" };
        let (parts, body) = read_all(
            send(
                method,
                &format!("{}{path}", proxy.url),
                Some("Bearer k"),
                Some(CHAT_BODY),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(parts.status, 502, "{path}");
        assert_eq!(
            parts.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], "error");
        assert_eq!(v["type"], "upstream_unreachable");
        assert_eq!(v["code"], "502");
        assert!(v["param"].is_null());
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("cannot reach the upstream")
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_hanging_is_a_504() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| c.timeout = Duration::from_millis(300)).await;
    let body = r#"{"model":"hang","messages":[]}"#;
    let (parts, bytes) = read_all(
        send(
            "POST",
            &format!("{}/v1/chat/completions", proxy.url),
            Some("Bearer k"),
            Some(body),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 504);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["object"], "error");
    assert_eq!(v["type"], "upstream_timeout");
    assert_eq!(v["code"], "504");
    proxy.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_on_the_api_port_and_on_a_separate_port() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    let (parts, body) = read_all(
        send(
            "GET",
            &format!("{}/_mistral-cache/healthz", proxy.url),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"ok\""));
    let (parts, body) = read_all(
        send(
            "GET",
            &format!("{}/_mistral-cache/metrics", proxy.url),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert!(
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        String::from_utf8_lossy(&body)
            .contains("# TYPE mistral_cache_upstream_latency_seconds histogram")
    );
    assert_eq!(up.calls(), 0, "admin endpoints are not forwarded");
    proxy.shutdown().await;

    // --admin-listen: a separate router, the API port forwards everything.
    let mut config = Config::default();
    config.upstream = up.url.clone();
    config.engine = "memory://".into();
    config.admin_listen = Some("127.0.0.1:1".parse().unwrap());
    let p = Proxy::new(config).await.unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, admin_addr) = (api.local_addr().unwrap(), admin.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(p.run(api, Some(admin), async move {
        let _ = rx.await;
    }));
    let (parts, _) = read_all(
        send(
            "GET",
            &format!("http://{admin_addr}/metrics"),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 200);
    let (parts, _) = read_all(
        send(
            "GET",
            &format!("http://{admin_addr}/healthz"),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 200);
    let (parts, _) = read_all(
        send(
            "GET",
            &format!("http://{api_addr}/_mistral-cache/metrics"),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(
        parts.status, 404,
        "forwarded upstream, which does not know it"
    );
    assert_eq!(up.calls(), 1);
    tx.send(()).unwrap();
    guard(task).await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------
// The binary.

/// The binary under test; `MISTRAL_CACHE_BIN` may point at another build of it.
fn bin() -> String {
    std::env::var("MISTRAL_CACHE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mistral-cache").to_owned())
}

/// A running `mistral-cache serve`, its stderr lines on a channel.
struct Binary {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(bin())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("MISTRAL_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = spawn_line_reader(child.stderr.take().unwrap());
        let addr = loop {
            let line = lines
                .recv_timeout(GUARD)
                .expect("the proxy did not report its address");
            if line.contains("mistral-cache listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .unwrap();
                break addr.parse().unwrap();
            }
        };
        Binary { child, lines, addr }
    }

    fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(GUARD)
                .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the proxy did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_line_reader(
    stream: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("[proxy] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn run_bin(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + GUARD;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("mistral-cache {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_stream_lets_it_finish() {
    let up = start_upstream().await;
    let bin = Binary::start(&["--upstream", &up.url, "--engine", "memory://"]);
    let url = format!("http://{}/v1/chat/completions", bin.addr);

    let res = send(
        "POST",
        &url,
        Some("Bearer k"),
        Some(STREAM_BODY),
        &[("x-test-gate", "1")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        let frame = guard(body.frame()).await.unwrap().unwrap();
        if let Some(d) = frame.data_ref() {
            received.extend_from_slice(d);
        }
    }

    bin.signal("-TERM");
    bin.wait_for_line("SIGTERM received");
    bin.wait_for_line("shutting down");
    // No new connections once shutting down (the listener closes right after the signal).
    guard(async {
        while tokio::net::TcpStream::connect(bin.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    up.release_stream();
    while let Some(frame) = guard(body.frame()).await {
        if let Some(d) = frame.expect("the stream must not be cut").data_ref() {
            received.extend_from_slice(d);
        }
    }
    assert!(
        received.ends_with(b"data: [DONE]\n\n"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(received, example_sse_bytes());
    let status = tokio::task::spawn_blocking(move || bin.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn port_taken_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = run_bin(&["serve", "--listen", &addr, "--engine", "memory://"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
    drop(taken);
}

#[test]
fn invalid_engine_url_is_refused() {
    let (code, _, stderr) =
        run_bin(&["serve", "--listen", "127.0.0.1:0", "--engine", "nosuch://x"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot open the cache engine nosuch://x"),
        "{stderr}"
    );
    let (code, _, stderr) = run_bin(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--engine",
        "redis-at-home",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid engine URL"), "{stderr}");
}

#[cfg(feature = "redis")]
#[test]
fn unreachable_engine_is_refused_unless_optional() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let engine = format!("redis://127.0.0.1:{port}/0?timeout=500ms");
    let (code, _, stderr) = run_bin(&["serve", "--listen", "127.0.0.1:0", "--engine", &engine]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is unreachable"), "{stderr}");
    assert!(stderr.contains("--engine-optional"), "{stderr}");

    let bin = Binary::start(&["--engine", &engine, "--engine-optional"]);
    bin.signal("-INT");
    assert!(bin.wait().success());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_optional_unreachable_engine_fails_open() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let engine = format!("redis://127.0.0.1:{port}/0?timeout=200ms");
    let up = start_upstream().await;
    let mut config = Config::default();
    config.upstream = up.url.clone();
    config.engine = engine.clone();
    assert!(matches!(
        Proxy::new(config).await,
        Err(mistral_tower::server::ServerError::EngineUnreachable { .. })
    ));
    let proxy = start_proxy(&up.url, |c| {
        c.engine = engine;
        c.engine_optional = true;
    })
    .await;
    let url = format!("{}/v1/chat/completions", proxy.url);
    for _ in 0..2 {
        let (parts, body) =
            read_all(send("POST", &url, Some("Bearer k"), Some(CHAT_BODY), &[]).await).await;
        assert_eq!(parts.status, 200);
        assert!(!x_cache(&parts.headers).starts_with("HIT"));
        assert!(String::from_utf8_lossy(&body).contains("chat.completion"));
    }
    assert_eq!(
        up.calls(),
        2,
        "both answered by upstream while the engine is down"
    );
    let (_, text) = read_all(
        send(
            "GET",
            &format!("{}/_mistral-cache/metrics", proxy.url),
            None,
            None,
            &[],
        )
        .await,
    )
    .await;
    let text = String::from_utf8_lossy(&text);
    let errors: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mistral_cache_engine_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 2, "engine errors are counted: {text}");
    proxy.shutdown().await;
}

#[test]
fn env_variables_configure_serve() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(bin())
        .arg("serve")
        .env("MISTRAL_CACHE_LISTEN", &addr)
        .env("MISTRAL_CACHE_ENGINE", "memory://")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "MISTRAL_CACHE_LISTEN ignored: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_stream_entry_to_the_file_engine() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let bin = Binary::start(&["--upstream", &up.url, "--engine", &engine]);
    let url = format!("http://{}/v1/chat/completions", bin.addr);
    let res = send(
        "POST",
        &url,
        Some("Bearer k"),
        Some(STREAM_BODY),
        &[("x-test-gate", "1")],
    )
    .await;
    let mut body = res.into_body();
    guard(body.frame()).await.unwrap().unwrap();
    bin.signal("-TERM");
    bin.wait_for_line("shutting down");
    up.release_stream();
    let mut received = Vec::new();
    while let Some(frame) = guard(body.frame()).await {
        if let Some(d) = frame.unwrap().data_ref() {
            received.extend_from_slice(d);
        }
    }
    assert!(received.ends_with(b"data: [DONE]\n\n"));
    let status = tokio::task::spawn_blocking(move || bin.wait())
        .await
        .unwrap();
    assert!(status.success());
    // The entry written at the end of the stream is on disk after the exit.
    let (code, out, err) = run_bin(&["stats", "--engine", &engine, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entries"], 1, "{out}");
    assert_eq!(v["kinds"]["sse"], 1, "{out}");
}

// ---------------------------------------------------------------------------
// Administration commands on the file engine.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_purge_and_inspect_work_on_the_file_engine() {
    use mistral_tower::cache::{CacheEngine, CacheEntry, EntryKind, FileEngine};

    let dir = tempfile::tempdir().unwrap();
    let engine_url = format!("file://{}", dir.path().display());

    // One entry written by the proxy itself...
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| c.engine = engine_url.clone()).await;
    let (parts, _) = read_all(
        send(
            "POST",
            &format!("{}/v1/chat/completions", proxy.url),
            Some("Bearer k"),
            Some(CHAT_BODY),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 200);
    // ... and one in the `ci` namespace, chosen per request.
    read_all(
        send(
            "POST",
            &format!("{}/v1/chat/completions", proxy.url),
            Some("Bearer k"),
            Some(STREAM_BODY),
            &[("x-cache-namespace", "ci")],
        )
        .await,
    )
    .await;
    proxy.shutdown().await;

    // Plus an old entry and bytes that do not decode, written directly.
    let files = FileEngine::new(dir.path()).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let old = CacheEntry::new(EntryKind::Json, StatusCode::OK, HeaderMap::new())
        .with_frames(vec![Bytes::from_static(br#"{"old":true}"#)])
        .with_times(now_ms - 10 * 86_400_000, None)
        .with_request("", "POST", "/v1/embeddings");
    files.set(&"0".repeat(64), old.encode()).await.unwrap();
    files
        .set(&"f".repeat(64), Bytes::from_static(b"not an entry"))
        .await
        .unwrap();

    let stats = |args: &[&str]| {
        let (code, out, err) =
            run_bin(&[&["stats", "--engine", &engine_url, "--json"], args].concat());
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let v = stats(&[]);
    assert_eq!(v["entries"], 3, "{v}");
    assert_eq!(v["unreadable"], 1, "{v}");
    assert_eq!(v["kinds"]["sse"], 1, "{v}");
    assert_eq!(v["namespaces"]["ci"], 1, "{v}");
    assert_eq!(v["namespaces"]["(default)"], 2, "{v}");
    assert!(
        v["oldest"].as_str().unwrap() < v["newest"].as_str().unwrap(),
        "{v}"
    );
    let (code, text, _) = run_bin(&["stats", "--engine", &engine_url]);
    assert_eq!(code, 0);
    assert!(text.contains("entries:     3"), "{text}");

    // inspect, by a unique key prefix: the proxy's chat entry.
    let keys = files.keys().await.unwrap();
    let mut chat_key = None;
    for k in &keys {
        let Ok(e) = CacheEntry::decode(&files.get(k).await.unwrap()) else {
            continue;
        };
        if e.path() == "/v1/chat/completions" && e.kind() == EntryKind::Json {
            chat_key = Some(k.clone());
        }
    }
    let chat_key = chat_key.expect("the proxy stored the chat completion");
    let (code, out, err) = run_bin(&["inspect", "--engine", &engine_url, &chat_key[..12]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("key:        {chat_key}")), "{out}");
    assert!(
        out.contains("request:    POST /v1/chat/completions"),
        "{out}"
    );
    assert!(out.contains("status:     200 OK"), "{out}");
    assert!(out.contains("kind:       json"), "{out}");
    assert!(
        out.contains("usage:      27 prompt + 71 completion = 98 tokens"),
        "{out}"
    );
    assert!(out.contains("  content-type: application/json"), "{out}");
    assert!(
        out.contains("\n  \"object\": \"chat.completion\","),
        "pretty JSON body: {out}"
    );
    assert!(
        !out.to_lowercase().contains("bearer"),
        "credentials are never stored: {out}"
    );

    // inspect the stream: its events, one by one.
    let sse_key = {
        let mut found = None;
        for k in &keys {
            if let Ok(e) = CacheEntry::decode(&files.get(k).await.unwrap())
                && e.kind() == EntryKind::Sse
            {
                found = Some(k.clone());
            }
        }
        found.unwrap()
    };
    let (code, out, _) = run_bin(&["inspect", "--engine", &engine_url, &sse_key]);
    assert_eq!(code, 0);
    assert!(out.contains("namespace:  ci"), "{out}");
    assert!(out.contains("[event 1]\n  data: {"), "{out}");
    assert!(out.contains("  data: [DONE]"), "{out}");
    let (code, _, err) = run_bin(&["inspect", "--engine", &engine_url, "abcdefabcdef"]);
    assert_eq!(code, 1);
    assert!(err.contains("no entry"), "{err}");

    // purge --namespace, then --older-than, then everything.
    let (code, out, err) = run_bin(&["purge", "--engine", &engine_url, "--namespace", "ci"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("purged 1 entries"), "{out}");
    assert_eq!(stats(&[])["namespaces"]["ci"], serde_json::Value::Null);

    let (code, out, _) = run_bin(&[
        "purge",
        "--engine",
        &engine_url,
        "--older-than",
        "7d",
        "--dry-run",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("would purge 1 entries"), "{out}");
    assert_eq!(stats(&[])["entries"], 2, "a dry run deletes nothing");
    let (code, out, _) = run_bin(&["purge", "--engine", &engine_url, "--older-than", "7d"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("purged 1 entries"), "{out}");
    assert!(files.get(&"0".repeat(64)).await.unwrap_err().is_miss());
    assert!(files.get(&chat_key).await.is_ok(), "a recent entry is kept");

    let (code, out, _) = run_bin(&["purge", "--engine", &engine_url]);
    assert_eq!(code, 0);
    assert!(out.starts_with("purged 2 entries (all entries)"), "{out}");
    let v = stats(&[]);
    assert_eq!(
        (v["entries"].as_u64(), v["unreadable"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
}

// ---------------------------------------------------------------------------
// Against the shared fake Mistral server.

use mistral_tower::testing::FakeMistral;

#[tokio::test]
async fn every_default_cached_route_is_served_from_cache() {
    let fake = FakeMistral::start().await;
    let proxy = start_proxy(&fake.base_url(), |_| {}).await;
    let routes: [(&str, &str); 10] = [
        ("/v1/chat/completions", CHAT_BODY),
        ("/v1/chat/completions", STREAM_BODY),
        (
            "/v1/fim/completions",
            r#"{"model":"codestral-latest","prompt":"def f(","suffix":")"}"#,
        ),
        (
            "/v1/agents/completions",
            r#"{"agent_id":"ag-1","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "/v1/embeddings",
            r#"{"model":"mistral-embed","input":["a","b"]}"#,
        ),
        (
            "/v1/moderations",
            r#"{"model":"mistral-moderation-latest","input":["text"]}"#,
        ),
        (
            "/v1/chat/moderations",
            r#"{"model":"mistral-moderation-latest","input":[{"role":"user","content":"x"}]}"#,
        ),
        ("/v1/classifications", r#"{"model":"m","input":["text"]}"#),
        (
            "/v1/chat/classifications",
            r#"{"model":"m","input":[{"messages":[{"role":"user","content":"x"}]}]}"#,
        ),
        (
            "/v1/ocr",
            r#"{"model":"mistral-ocr-latest","document":{"type":"document_url","document_url":"https://example.com/a.pdf"}}"#,
        ),
    ];
    for (path, body) in routes {
        let url = format!("{}{path}", proxy.url);
        let (first, first_body) =
            read_all(send("POST", &url, Some("Bearer k"), Some(body), &[]).await).await;
        assert_eq!(
            first.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&first_body)
        );
        let before = fake.total_calls();
        let (second, second_body) =
            read_all(send("POST", &url, Some("Bearer k"), Some(body), &[]).await).await;
        assert!(
            x_cache(&second.headers).starts_with("HIT"),
            "{path}: {:?}",
            second.headers
        );
        assert_eq!(
            fake.total_calls(),
            before,
            "{path}: the second call reached upstream"
        );
        assert_eq!(first_body, second_body, "{path}");
    }
    // Not cached: GET /v1/models.
    for _ in 0..2 {
        read_all(
            send(
                "GET",
                &format!("{}/v1/models", proxy.url),
                Some("Bearer k"),
                None,
                &[],
            )
            .await,
        )
        .await;
    }
    assert_eq!(fake.calls("/v1/models"), 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn errors_truncated_streams_and_malformed_requests_are_never_cached() {
    let fake = FakeMistral::start().await;
    let proxy = start_proxy(&fake.base_url(), |_| {}).await;
    let url = format!("{}/v1/chat/completions", proxy.url);

    // Upstream errors pass through unchanged, and are not stored.
    for _ in 0..2 {
        let (parts, body) = read_all(
            send(
                "POST",
                &url,
                Some("Bearer k"),
                Some(CHAT_BODY),
                &[("x-fake-scenario", "error-429")],
            )
            .await,
        )
        .await;
        assert_eq!(parts.status, 429);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "rate_limited");
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 2);

    // A stream that ends without [DONE] is forwarded as it is and not stored.
    for _ in 0..2 {
        let (parts, body) = read_all(
            send(
                "POST",
                &url,
                Some("Bearer k"),
                Some(STREAM_BODY),
                &[("x-fake-scenario", "stream-truncated")],
            )
            .await,
        )
        .await;
        assert_eq!(parts.status, 200);
        assert!(!String::from_utf8_lossy(&body).contains("[DONE]"));
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 4);

    // A malformed body reaches upstream byte for byte; its 4xx answer is not stored.
    let malformed = "{\"model\": \"m\", \"messages\": [ oops";
    for _ in 0..2 {
        let (parts, _) = read_all(
            send(
                "POST",
                &url,
                Some("Bearer k"),
                Some(malformed),
                &[("x-fake-scenario", "error-422")],
            )
            .await,
        )
        .await;
        assert_eq!(parts.status, 422);
        assert_eq!(fake.last_request().unwrap().body, malformed.as_bytes());
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 6);
    let snap = settled(&proxy.metrics, 6).await;
    assert_eq!((snap.hits, snap.requests), (0, 6));
    proxy.shutdown().await;
}

#[tokio::test]
async fn request_cache_headers_pass_through_to_the_cache_layer() {
    let fake = FakeMistral::start().await;
    let proxy = start_proxy(&fake.base_url(), |_| {}).await;
    let url = format!("{}/v1/embeddings", proxy.url);
    let body = r#"{"model":"mistral-embed","input":["x"]}"#;

    // only-if-cached on a miss: 504 without calling upstream, with a JSON error.
    let (parts, err) = read_all(
        send(
            "POST",
            &url,
            Some("Bearer k"),
            Some(body),
            &[("cache-control", "only-if-cached")],
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, 504);
    assert_eq!(fake.total_calls(), 0);
    assert!(
        String::from_utf8_lossy(&err).contains("\"code\":\"only_if_cached\""),
        "{err:?}"
    );

    read_all(send("POST", &url, Some("Bearer k"), Some(body), &[]).await).await;
    // no-cache refreshes, no-store bypasses; both reach upstream.
    let (parts, _) = read_all(
        send(
            "POST",
            &url,
            Some("Bearer k"),
            Some(body),
            &[("cache-control", "no-cache")],
        )
        .await,
    )
    .await;
    assert!(
        x_cache(&parts.headers).starts_with("REFRESH"),
        "{:?}",
        parts.headers
    );
    let (parts, _) = read_all(
        send(
            "POST",
            &url,
            Some("Bearer k"),
            Some(body),
            &[("cache-control", "no-store")],
        )
        .await,
    )
    .await;
    assert!(
        x_cache(&parts.headers).starts_with("BYPASS"),
        "{:?}",
        parts.headers
    );
    assert_eq!(fake.total_calls(), 3);
    // The cache headers are consumed, not forwarded.
    let headers = fake.last_headers().unwrap();
    assert!(!headers.contains_key("cache-control"));
    // A namespace is a separate key space.
    let (parts, _) = read_all(
        send(
            "POST",
            &url,
            Some("Bearer k"),
            Some(body),
            &[("x-cache-namespace", "other")],
        )
        .await,
    )
    .await;
    assert!(x_cache(&parts.headers).starts_with("MISS"));
    let (parts, _) = read_all(send("POST", &url, Some("Bearer k"), Some(body), &[]).await).await;
    assert!(x_cache(&parts.headers).starts_with("HIT"));
    assert_eq!(fake.total_calls(), 4);

    let snap = settled(&proxy.metrics, 6).await;
    assert_eq!((snap.bypasses, snap.hits), (1, 1));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_forwarded_uncached() {
    let fake = FakeMistral::start().await;
    let proxy = start_proxy(&fake.base_url(), |c| c.max_request_body = 64).await;
    let url = format!("{}/v1/embeddings", proxy.url);
    let big = format!(
        r#"{{"model":"mistral-embed","input":["{}"]}}"#,
        "x".repeat(200)
    );
    for _ in 0..2 {
        let (parts, _) =
            read_all(send("POST", &url, Some("Bearer k"), Some(&big), &[]).await).await;
        assert_eq!(parts.status, 200);
        assert!(
            x_cache(&parts.headers).starts_with("BYPASS"),
            "{:?}",
            parts.headers
        );
        assert_eq!(
            fake.last_request().unwrap().body,
            big.as_bytes(),
            "forwarded whole"
        );
    }
    assert_eq!(fake.calls("/v1/embeddings"), 2);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------

/// Adversarial review of the `mistral-cache` proxy: disconnects, HTTP/2 clients,
/// hop-by-hop headers, chunked bodies over the limit, retried bodies.
#[cfg(feature = "server")]
mod adversarial {
    use crate::support::proxy as proxy_support;

    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http::header;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::rt::TokioExecutor;
    use mistral_tower::server::Config;
    use mistral_tower::testing::FakeMistral;
    use proxy_support::{RunningProxy, guard};

    /// The shared in-process proxy, with a short graceful-shutdown bound.
    async fn start_proxy(upstream: &str, tweak: impl FnOnce(&mut Config)) -> RunningProxy {
        proxy_support::start_proxy(upstream, |c| {
            c.shutdown_timeout = Duration::from_secs(2);
            tweak(c);
        })
        .await
    }

    fn post(url: &str, body: &str, extra: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::post(url)
            .header(header::AUTHORIZATION, "Bearer k")
            .header(header::CONTENT_TYPE, "application/json");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    const STREAM_ENDLESS: &str =
        r#"{"model":"stream-endless","stream":true,"messages":[{"role":"user","content":"go"}]}"#;

    #[tokio::test]
    async fn a_client_leaving_mid_stream_drops_the_upstream_call() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |_| {}).await;
        let url = format!("{}/v1/chat/completions", proxy.url);
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        // Cached route (the cache tees the stream, no follower) and a bypass.
        for (i, extra) in [vec![], vec![("cache-control", "no-store")]]
            .into_iter()
            .enumerate()
        {
            let res = guard(client.request(post(&url, STREAM_ENDLESS, &extra)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let mut body = res.into_body();
            let first = guard(body.frame()).await.unwrap().unwrap();
            assert!(first.is_data());
            drop(body);
            assert_eq!(
                guard(fake.wait_for_dropped_streams(i + 1)).await,
                i + 1,
                "the upstream stream kept running after the client left ({extra:?})"
            );
        }
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn an_http2_client_is_served_and_cached() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |_| {}).await;
        let url = format!("{}/v1/embeddings", proxy.url);
        let client = HyperClient::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let body = r#"{"model":"mistral-embed","input":["a"]}"#;
        let mut states = Vec::new();
        for _ in 0..2 {
            let res = guard(client.request(post(&url, body, &[]))).await.unwrap();
            assert_eq!(res.version(), http::Version::HTTP_2);
            let status = res.status();
            let cache = res.headers().get("x-cache").cloned();
            let bytes = guard(res.into_body().collect()).await.unwrap().to_bytes();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            states.push(cache.unwrap().to_str().unwrap().to_owned());
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["object"], "list");
        }
        assert_eq!(states, ["MISS", "HIT"]);
        assert_eq!(fake.calls("/v1/embeddings"), 1);
        // The upstream got an HTTP/1.1 request for its own host.
        let headers = fake.last_headers().unwrap();
        assert_eq!(headers[header::HOST], fake.addr().to_string());
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn hop_by_hop_and_proxy_headers_are_not_forwarded() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |_| {}).await;
        let url = format!("{}/v1/models", proxy.url);
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        let req = http::Request::get(&url)
            .header(header::AUTHORIZATION, "Bearer k")
            .header(header::CONNECTION, "keep-alive, x-hop")
            .header("x-hop", "secret")
            .header(header::PROXY_AUTHORIZATION, "Basic cHJveHk6c2VjcmV0")
            .header("keep-alive", "timeout=5")
            .header(header::TE, "trailers")
            .header("x-end-to-end", "kept")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = guard(client.request(req)).await.unwrap();
        assert_eq!(res.status(), 200);
        let h = fake.last_headers().unwrap();
        for name in ["x-hop", "proxy-authorization", "keep-alive", "te"] {
            assert!(!h.contains_key(name), "{name} was forwarded: {h:?}");
        }
        assert_eq!(h["x-end-to-end"], "kept");
        assert_eq!(h[header::AUTHORIZATION], "Bearer k");
        assert_eq!(h[header::HOST], fake.addr().to_string());
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_forwarded_whole_and_uncached() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |c| c.max_request_body = 100).await;
        let url = format!("{}/v1/embeddings", proxy.url);
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        let big = format!(
            r#"{{"model":"mistral-embed","input":["{}"]}}"#,
            "y".repeat(1000)
        );
        for _ in 0..2 {
            // No Content-Length: a chunked body, in small pieces.
            let pieces: Vec<Result<http_body::Frame<Bytes>, Infallible>> = big
                .as_bytes()
                .chunks(37)
                .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = StreamBody::new(futures_util::stream::iter(pieces));
            let req = http::Request::post(&url)
                .header(header::AUTHORIZATION, "Bearer k")
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .unwrap();
            let res = guard(client.request(req)).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["x-cache"], "BYPASS");
            assert_eq!(fake.last_request().unwrap().body, big.as_bytes());
        }
        assert_eq!(fake.calls("/v1/embeddings"), 2);
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn a_retried_request_replays_the_body_byte_identical() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |c| c.max_retries = 2).await;
        let url = format!("{}/v1/chat/completions", proxy.url);
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        // Odd formatting that canonicalization would change.
        let body = "{ \"model\" : \"fail-503-1-after-0\",\n  \"messages\":[{\"content\":\"\\u0041\",\"role\":\"user\"}] }";
        let res = guard(client.request(post(&url, body, &[]))).await.unwrap();
        assert_eq!(res.status(), 200);
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 2, "one failure, one retry");
        for r in &reqs {
            assert_eq!(r.body, body.as_bytes());
        }
        proxy.shutdown().await;
    }

    /// Sends raw bytes on a fresh connection and returns what came back until close.
    async fn raw(addr: &str, request: &[u8], half_close: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        if half_close {
            // The client is done sending (a short body is then truncated, not slow).
            s.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        let _ = guard(s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn odd_request_targets_get_an_answer_and_the_proxy_keeps_serving() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |_| {}).await;
        let addr = proxy.url.trim_start_matches("http://").to_owned();
        for req in [
        &b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n",
        b"GET http://other.example/v1/models HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"short\":",
        b"GET /v1/models HTTP/1.0\r\n\r\n",
    ] {
        let truncated = req.ends_with(b"{\"short\":");
        let answer = raw(&addr, req, truncated).await;
        // Either an HTTP answer or a closed connection; never a hang or a crash.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1."),
            "{answer}"
        );
    }
        // Nothing reached another host, and the proxy still works.
        assert!(fake.requests().iter().all(|r| r.path != "evil.example:443"));
        let client = HyperClient::builder(TokioExecutor::new()).build_http();
        let res = guard(
            client.request(
                http::Request::get(format!("{}/v1/models", proxy.url))
                    .header(header::AUTHORIZATION, "Bearer k")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn content_length_forwarded_matches_the_body() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |_| {}).await;
        let addr = proxy.url.trim_start_matches("http://").to_owned();
        let body = r#"{"model":"mistral-embed","input":["a"]}"#;
        for path in ["/v1/embeddings", "/v1/uncached"] {
            // Both framings, as a smuggling attempt would send them: chunked wins.
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            let answer = raw(&addr, req.as_bytes(), false).await;
            assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
            let last = fake.last_request().unwrap();
            assert_eq!(last.path, path);
            assert_eq!(last.body, body.as_bytes(), "{path}");
            if let Some(cl) = last.headers.get(header::CONTENT_LENGTH) {
                assert_eq!(cl.to_str().unwrap(), body.len().to_string(), "{path}");
            }
        }
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn a_stalled_request_body_gets_a_408_instead_of_hanging() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.base_url(), |c| {
            c.stream_idle_timeout = Duration::from_millis(300);
        })
        .await;
        let addr = proxy.url.trim_start_matches("http://").to_owned();
        for path in ["/v1/chat/completions", "/v1/uncached"] {
            // 9 of 100 announced bytes, then silence with the connection open.
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"short\":"
            );
            let answer = raw(&addr, req.as_bytes(), false).await;
            assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
            assert!(answer.contains("request_timeout"), "{answer}");
        }
        assert_eq!(
            fake.calls("/v1/chat/completions"),
            0,
            "nothing half-read is forwarded to a cached route"
        );
        proxy.shutdown().await;
    }

    #[test]
    fn help_does_not_print_secrets_from_the_environment() {
        for args in [&["serve", "--help"][..], &["stats", "--help"][..]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-cache"))
                .args(args)
                .env(
                    "MISTRAL_CACHE_ENGINE",
                    "redis://user:hunter2@localhost:6379/0",
                )
                .env("MISTRAL_CACHE_API_KEY", "sk-secret-1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("MISTRAL_CACHE_ENGINE"), "{text}");
            assert!(
                !text.contains("hunter2") && !text.contains("sk-secret-1"),
                "{args:?}: {text}"
            );
        }
    }
}
