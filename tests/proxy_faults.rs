//! The `mistral-cache` proxy and its administration commands under hostile input and
//! failing dependencies (issue 16, "what fuzzing and fault injection found"):
//! slowloris connections, the connection cap, corrupt entries, retry storms.
#![cfg(feature = "server")]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use bytes::Bytes;
use mistral_tower::cache::{CacheEngine, FileEngine};
use support::proxy::{guard, start_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

/// The 41-byte entry of issue 16 (a valid checksum over a header count of 0xFFFF).
const ISSUE_16_ENTRY: &str =
    "4d54434501000000c800000000000000000000000000000000000000000000ffff7aa44c7e68584f86";

fn unhex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn bin() -> String {
    std::env::var("MISTRAL_CACHE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mistral-cache").to_owned())
}

/// Runs the binary to completion: (exit code, stdout, stderr).
fn run_bin(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
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

#[tokio::test]
async fn admin_commands_report_and_purge_the_issue_entry() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let files = FileEngine::new(dir.path()).unwrap();
    let key = "ab".repeat(32);
    files.set(&key, unhex(ISSUE_16_ENTRY)).await.unwrap();

    let (code, out, err) = run_bin(&["stats", "--engine", &url, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unreadable"], 1, "{v}");

    let (code, _, err) = run_bin(&["inspect", "--engine", &url, &key]);
    assert_eq!(code, 1, "an error, not a panic: {err}");
    assert!(err.contains("does not decode"), "{err}");

    let (code, out, err) = run_bin(&["purge", "--engine", &url, "--expired"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("purged 1 entries"), "{out}");
    assert!(files.get(&key).await.unwrap_err().is_miss());
}

// ---------------------------------------------------------------------------
// A small upstream: a JSON answer, a slow one, and an overloaded one.

struct Upstream {
    url: String,
    overloaded_calls: Arc<AtomicUsize>,
}

async fn start_upstream() -> Upstream {
    let overloaded_calls = Arc::new(AtomicUsize::new(0));
    let calls = overloaded_calls.clone();
    let json = || {
        (
            [("content-type", "application/json")],
            r#"{"object":"chat.completion","choices":[]}"#,
        )
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(move || async move { json() }))
        .route("/v1/files", post(move || async move { json() }))
        .route(
            "/v1/slow",
            post(move |headers: HeaderMap| async move {
                let ms = headers["x-sleep-ms"].to_str().unwrap().parse().unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                json()
            }),
        )
        .route(
            "/v1/overloaded",
            post(move || {
                calls.fetch_add(1, SeqCst);
                async move {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "7"), ("content-type", "application/json")],
                        r#"{"message":"busy"}"#,
                    )
                        .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream {
        url,
        overloaded_calls,
    }
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Sends raw bytes on a new connection and reads until the server closes it.
async fn raw_exchange(url: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr(url)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = guard(s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn chat_request(path: &str, extra: &str) -> Vec<u8> {
    let body = r#"{"model":"m","messages":[]}"#;
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Waits until the server closes `s` (EOF or reset); fails the test after 10 s.
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match guard(s.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_others_are_served() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.max_connections = 100;
    })
    .await;
    let mut silent = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(addr(&proxy.url)).await.unwrap();
        if i % 2 == 1 {
            // Half a request head, never finished.
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ")
                .await
                .unwrap();
        }
        silent.push(s);
    }
    let res = raw_exchange(&proxy.url, &chat_request("/v1/chat/completions", "")).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    for s in &mut silent {
        closed_by_server(s).await;
    }
    let metrics = raw_exchange(
        &proxy.url,
        b"GET /_mistral-cache/metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        metrics.contains("mistral_cache_client_connection_timeouts_total{reason=\"header\"} 40\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mistral_cache_engine_breaker_state 0\n"),
        "{metrics}"
    );
    proxy.shutdown().await;
}

/// A keep-alive connection to `url` that has had one chat answer.
async fn kept_alive_after_one_answer(url: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr(url)).await.unwrap();
    let req = String::from_utf8(chat_request("/v1/chat/completions", ""))
        .unwrap()
        .replace("connection: close", "connection: keep-alive");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(r#""choices":[]}"#) {
        let n = guard(s.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_secs(3600);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut s = kept_alive_after_one_answer(&proxy.url).await;
    // Kept alive, then closed for idleness (the head timeout is an hour).
    closed_by_server(&mut s).await;
    proxy.shutdown().await;
}

/// A kept-alive connection whose next request head starts and stalls is closed by the
/// head timeout, long before its idle timeout: the watchdog, which requests do not
/// wake, looks again within the shorter timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_request_head_is_closed_by_the_head_timeout() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_secs(3600);
    })
    .await;
    let mut s = kept_alive_after_one_answer(&proxy.url).await;
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    closed_by_server(&mut s).await;
    let metrics = raw_exchange(
        &proxy.url,
        b"GET /_mistral-cache/metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        metrics.contains("mistral_cache_client_connection_timeouts_total{reason=\"header\"} 1\n"),
        "{metrics}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_outlives_the_connection_timeouts() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(100);
    })
    .await;
    let res = raw_exchange(
        &proxy.url,
        &chat_request("/v1/slow", "x-sleep-ms: 1000\r\n"),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_service_resumes() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_secs(3600);
        c.max_connections = 4;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&proxy.url)).await.unwrap());
    }
    // The accept loop sees the held connections first (same listener, in order).
    let res = raw_exchange(&proxy.url, &chat_request("/v1/chat/completions", "")).await;
    assert!(res.starts_with("HTTP/1.1 503"), "{res}");
    assert!(
        res.to_ascii_lowercase().contains("connection: close"),
        "{res}"
    );
    drop(held);
    let served = guard(async {
        loop {
            let res = raw_exchange(&proxy.url, &chat_request("/v1/chat/completions", "")).await;
            if res.starts_with("HTTP/1.1 200") {
                return res;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(served.contains("chat.completion"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_errors_are_not_retried_by_default() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        let defaults = mistral_tower::server::Config::default();
        c.max_retries = defaults.max_retries;
        c.connect_retries = defaults.connect_retries;
    })
    .await;
    let res = raw_exchange(&proxy.url, &chat_request("/v1/overloaded", "")).await;
    assert!(res.starts_with("HTTP/1.1 503"), "{res}");
    assert!(
        res.contains("retry-after: 7\r\n"),
        "passed through untouched: {res}"
    );
    assert_eq!(up.overloaded_calls.load(SeqCst), 1);
    proxy.shutdown().await;

    let defaults = mistral_tower::server::Config::default();
    assert_eq!(defaults.max_retries, 0, "status retries are opt-in");
    assert_eq!(defaults.connect_retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_client_body_is_a_400() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |_| {}).await;
    for path in ["/v1/chat/completions", "/v1/files"] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"a\":\r\nzz\r\n1}}\r\n0\r\n\r\n"
        );
        let res = raw_exchange(&proxy.url, req.as_bytes()).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{path}: {res}");
    }
    let metrics = proxy.metrics.render(None);
    for line in metrics.lines() {
        if line.starts_with("mistral_cache_upstream_errors_total{") {
            assert!(line.ends_with(" 0"), "not an upstream error: {line}");
        }
    }
    proxy.shutdown().await;
}

/// A `.tmp-*` file as a writer that crashed between writing and renaming leaves it,
/// dated an hour ago.
fn plant_stale_temp_file(dir: &std::path::Path) -> std::path::PathBuf {
    let shard = dir.join("ab");
    std::fs::create_dir_all(&shard).unwrap();
    let path = shard.join(".tmp-crashed-writer");
    let f = std::fs::File::create(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_temp_files_are_removed_by_serve_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());

    let stale = plant_stale_temp_file(dir.path());
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| c.engine = url.clone()).await;
    assert!(!stale.exists(), "removed at start-up");
    proxy.shutdown().await;

    let stale = plant_stale_temp_file(dir.path());
    let (code, out, err) = run_bin(&["purge", "--engine", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 1 stale temporary files"), "{out}");
    assert!(!stale.exists(), "removed by purge");
}

/// A connection from `ip` (another loopback address than the test's own) to `url`.
async fn connect_from(ip: &str, url: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr(url).parse().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_silent_connections_does_not_lock_out_the_others() {
    let up = start_upstream().await;
    let proxy = start_proxy(&up.url, |c| {
        c.header_read_timeout = Duration::from_secs(3600);
        c.max_connections = 20;
        c.max_connections_per_ip = 5;
    })
    .await;
    // A slowloris from 127.0.0.2: more silent connections than the whole cap.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.2", &proxy.url).await);
    }
    let mut refused = 0;
    for _ in 0..30 {
        let mut s = connect_from("127.0.0.2", &proxy.url).await;
        let mut got = Vec::new();
        let _ = guard(s.read_to_end(&mut got)).await;
        let got = String::from_utf8_lossy(&got);
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 503"), "{got}");
        refused += 1;
    }
    assert_eq!(refused, 30);
    // Another client is still served, from its own address.
    let mut s = connect_from("127.0.0.3", &proxy.url).await;
    s.write_all(&chat_request("/v1/chat/completions", ""))
        .await
        .unwrap();
    let mut got = Vec::new();
    guard(s.read_to_end(&mut got)).await.unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // The address's own connections still count: closing them frees its share.
    drop(held);
    let served = guard(async {
        loop {
            let mut s = connect_from("127.0.0.2", &proxy.url).await;
            s.write_all(&chat_request("/v1/chat/completions", ""))
                .await
                .unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got).await;
            if got.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let () = served;
    proxy.shutdown().await;
}
