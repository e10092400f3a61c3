//! A minimal static upstream for the load benchmark (`benches/load/run.sh`).
//!
//! It listens on 127.0.0.1 and answers every `POST /v1/chat/completions` with the
//! same 4 KiB chat completion JSON, without reading the model or calling anything.
//! `GET /count` returns how many completions it has served, so the load script can
//! prove that cache hits never reached it.
//!
//! ```text
//! cargo run --release --example static_upstream -- 127.0.0.1:7000
//! ```
//!
//! With port 0 (the default, `127.0.0.1:0`) it picks a free port; either way it
//! prints `listening on <addr>` on stdout once it accepts connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// The size of every completion this upstream returns.
const RESPONSE_SIZE: usize = 4096;

#[derive(Clone)]
struct AppState {
    body: Bytes,
    served: Arc<AtomicU64>,
}

/// A chat completion of exactly `size` bytes (the assistant content is padded).
fn completion(size: usize) -> Bytes {
    let build = |pad: usize| {
        let mut content = String::from(
            "The average distance between the Earth and the Moon is 384,400 km (238,855 miles). ",
        );
        content.extend(std::iter::repeat_n('.', pad));
        serde_json::json!({
            "id": "bed9481e857e40fab7c7eea4232f294a",
            "object": "chat.completion",
            "model": "mistral-large-latest",
            "usage": {"prompt_tokens": 11, "completion_tokens": 268, "total_tokens": 279},
            "created": 1764257531,
            "choices": [{
                "index": 0,
                "message": {"content": content, "tool_calls": null, "prefix": false, "role": "assistant"},
                "finish_reason": "stop"
            }]
        })
        .to_string()
    };
    let pad = size - build(0).len();
    let body = build(pad);
    assert_eq!(body.len(), size);
    Bytes::from(body)
}

async fn chat(State(state): State<AppState>, _body: Bytes) -> impl IntoResponse {
    state.served.fetch_add(1, Ordering::Relaxed);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.body.clone(),
    )
}

async fn count(State(state): State<AppState>) -> String {
    state.served.load(Ordering::Relaxed).to_string()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let state = AppState {
        body: completion(RESPONSE_SIZE),
        served: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/count", get(count))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
