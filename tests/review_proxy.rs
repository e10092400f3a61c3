//! Adversarial review of the `mistral-cache` proxy: disconnects, HTTP/2 clients,
//! hop-by-hop headers, chunked bodies over the limit, retried bodies.
#![cfg(feature = "server")]

#[path = "support/proxy.rs"]
mod proxy_support;
mod support;

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
    for (i, extra) in [vec![], vec![("x-cache-control", "no-store")]]
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
