//! Shared fixtures for the criterion benches: realistic chat request bodies, a 4 KiB
//! chat completion, a 1,000-event SSE stream, and the one tokio runtime every bench
//! group runs on.

#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use serde_json::json;

/// The bearer token sent by every benchmark request (never a real key).
pub const AUTHORIZATION: &str = "Bearer bench-0000000000000000000000000000000000";

/// A POST of `body` to `/v1/chat/completions` as a client sends it (JSON, with the
/// bench's `Authorization`).
pub fn chat_post(body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, AUTHORIZATION)
        .body(Full::new(body))
        .expect("valid request")
}

/// The inner services' answer: `body` as a cacheable JSON response.
pub fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(Full::new(body))
        .expect("valid response")
}

/// The one runtime shared by every group (current-thread: lowest noise for latency).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Prose used to fill message contents: sentences with the escapes a real prompt has
/// (newlines, quotes, a tab, non-ASCII), so the canonicalizer sees real string work.
const PROSE: &str = "You are a careful assistant. Answer in \"plain\" English and cite the \
source when you can.\nThe user asked about the distance between the Earth and the Moon, \
which varies between ~363,300 km (perigee) and ~405,500 km (apogee).\n\t- Keep it short; \
use **markdown** lists.\nCafé, naïve, 東京 — unicode must survive canonicalization. ";

/// A chat message with its fields in the order an SDK's struct writes them (`role`
/// before `content`: not sorted, so the canonicalizer has to reorder every message).
#[derive(serde::Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

/// A chat request body with its fields in declaration order, as an SDK serializes it
/// (`model` before `messages`: not sorted). `serde_json::json!` would sort the keys
/// (no `preserve_order`), which is the canonicalizer's easiest case and not what
/// clients send.
#[derive(serde::Serialize)]
struct ChatBody {
    model: &'static str,
    messages: Vec<Message>,
    temperature: f64,
    top_p: f64,
    max_tokens: u32,
    stream: bool,
    safe_prompt: bool,
    random_seed: u64,
}

/// A chat completion request of exactly `size` bytes of compact JSON, the way an SDK
/// sends it: a system prompt, a few user/assistant turns, sampling parameters, and
/// the last user message padded so the whole body is `size` bytes long. Keys are in
/// the SDK's declaration order, not sorted.
///
/// `salt` changes the last message so two calls with different salts give different
/// cache keys (for miss benches).
pub fn chat_request(size: usize, salt: u64) -> Bytes {
    let turn = |i: usize| -> String {
        let mut s = format!("Turn {i}: ");
        s.push_str(PROSE);
        s
    };
    let build = |pad: usize| -> Vec<u8> {
        let msg = |role, content: String| Message { role, content };
        let mut messages = vec![msg("system", PROSE.to_owned())];
        // One user/assistant pair per ~1.5 KiB of requested size.
        let pairs = (size / 1536).min(64);
        for i in 0..pairs {
            messages.push(msg("user", turn(2 * i)));
            messages.push(msg("assistant", turn(2 * i + 1)));
        }
        let mut last = format!("Request #{salt}. Now summarize the above. ");
        last.extend(std::iter::repeat_n('x', pad));
        messages.push(msg("user", last));
        let body = ChatBody {
            model: "mistral-large-latest",
            messages,
            temperature: 0.2,
            top_p: 1.0,
            max_tokens: 512,
            stream: false,
            safe_prompt: false,
            random_seed: 42,
        };
        serde_json::to_vec(&body).expect("serialize")
    };
    let unpadded = build(0).len();
    assert!(
        unpadded <= size,
        "skeleton {unpadded} B > requested {size} B"
    );
    let body = build(size - unpadded);
    assert_eq!(body.len(), size);
    Bytes::from(body)
}

/// A non-streamed chat completion of exactly `size` bytes of JSON.
pub fn chat_response(size: usize) -> Bytes {
    let build = |pad: usize| -> Vec<u8> {
        let mut content =
            String::from("The average distance between the Earth and the Moon is 384,400 km. ");
        content.extend(std::iter::repeat_n('y', pad));
        let body = json!({
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
        });
        serde_json::to_vec(&body).expect("serialize")
    };
    let unpadded = build(0).len();
    assert!(unpadded <= size);
    let body = build(size - unpadded);
    assert_eq!(body.len(), size);
    Bytes::from(body)
}

/// A streamed chat completion: `events` SSE events (one `Bytes` per event, as an
/// upstream sends them), the last one being `data: [DONE]`.
pub fn sse_events(events: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(events);
    for i in 0..events.saturating_sub(1) {
        let ev = format!(
            "data: {{\"id\":\"59060ef9339a4112b2c9e57e3ee6199d\",\"model\":\"mistral-large-latest\",\
\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"finish_reason\":null}}],\
\"object\":\"chat.completion.chunk\",\"created\":1764258570,\"usage\":null}}\n\n"
        );
        out.push(Bytes::from(ev));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}
