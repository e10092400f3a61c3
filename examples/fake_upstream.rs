//! A fake Mistral API for driving `mistral-cache` end to end (the Python SDK test
//! in `.ci/`): serves the canned bodies of `mistral_tower::testing::fixtures`
//! (the repository's `tests/fixtures/`) and counts the calls it receives.
//! To fake the API inside your own tests, use `mistral_tower::testing::FakeMistral`
//! (feature `testing`) instead.
//!
//! ```text
//! cargo run --example fake_upstream -- 127.0.0.1:18081
//! ```
//!
//! Routes: `POST /v1/chat/completions` (JSON, or SSE when `"stream": true`),
//! `POST /v1/embeddings`, `GET /v1/models`, and `GET /_fake/calls`, which answers
//! `{"total": N, "paths": {"POST /v1/chat/completions": N, ...}}`.
//! The first line on stdout is `listening on http://ADDR`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use mistral_tower::testing::fixtures;

#[derive(Default)]
struct Calls {
    total: u64,
    paths: BTreeMap<String, u64>,
}

#[derive(Clone)]
struct Fake {
    calls: Arc<Mutex<Calls>>,
    chat: Bytes,
    stream: Bytes,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let fake = Fake {
        calls: Arc::default(),
        chat: Bytes::from_static(fixtures::CHAT_RESPONSE.as_bytes()),
        stream: Bytes::from_static(fixtures::CHAT_STREAM.as_bytes()),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/_fake/calls", get(calls))
        .with_state(fake.clone())
        .layer(axum::middleware::from_fn_with_state(fake, count));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn count(State(fake): State<Fake>, req: Request, next: axum::middleware::Next) -> Response {
    if !req.uri().path().starts_with("/_fake/") {
        let mut calls = fake.calls.lock().unwrap();
        calls.total += 1;
        *calls
            .paths
            .entry(format!("{} {}", req.method(), req.uri().path()))
            .or_default() += 1;
    }
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        "mistral-correlation-id",
        HeaderValue::from_str(&format!("fake-{:016x}", fastrand::u64(..))).unwrap(),
    );
    res
}

async fn calls(State(fake): State<Fake>) -> Response {
    let calls = fake.calls.lock().unwrap();
    json(serde_json::json!({ "total": calls.total, "paths": calls.paths }))
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn bad_request(msg: &str) -> Response {
    let body = serde_json::json!({
        "object": "error", "message": msg, "type": "invalid_request_error",
        "param": null, "code": null,
    });
    (StatusCode::BAD_REQUEST, json(body)).into_response()
}

async fn chat(State(fake): State<Fake>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request("invalid JSON body");
    };
    if req.get("messages").is_none() {
        return bad_request("Missing required property: messages");
    }
    if req.get("stream").and_then(serde_json::Value::as_bool) != Some(true) {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            fake.chat.clone(),
        )
            .into_response();
    }
    // One SSE event per frame, 20 ms apart, as the real API streams them.
    let text = String::from_utf8_lossy(&fake.stream).replace("\r\n", "\n");
    let events: Vec<Bytes> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| Bytes::from(format!("{}\n\n", e.trim_end())))
        .collect();
    let stream = futures_util::stream::unfold(events.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok::<_, Infallible>(next), it))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn embeddings(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request("invalid JSON body");
    };
    let inputs: Vec<String> = match req.get("input") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return bad_request("Missing required property: input"),
    };
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            // A deterministic vector derived from the text.
            let seed = text
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let embedding: Vec<f64> = (0..8)
                .map(|i| f64::from((seed.rotate_left(i * 4) % 2000) as u16) / 1000.0 - 1.0)
                .collect();
            serde_json::json!({ "object": "embedding", "embedding": embedding, "index": index })
        })
        .collect();
    let tokens: usize = inputs
        .iter()
        .map(|t| t.split_whitespace().count().max(1))
        .sum();
    json(serde_json::json!({
        "id": format!("emb-{:08x}", fastrand::u32(..)),
        "object": "list",
        "data": data,
        "model": req.get("model").cloned().unwrap_or_else(|| "mistral-embed".into()),
        "usage": { "prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens },
    }))
}

async fn models() -> Response {
    json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": "mistral-small-latest", "object": "model", "created": 1_700_000_000,
            "owned_by": "mistralai",
            "capabilities": { "completion_chat": true, "completion_fim": false,
                "function_calling": true, "fine_tuning": false, "vision": false },
            "type": "base",
        }],
    }))
}
