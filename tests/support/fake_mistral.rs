//! A fake Mistral API server on `127.0.0.1:0` for integration tests.
//!
//! ```ignore
//! mod support;
//! use support::fake_mistral::FakeMistral;
//!
//! let fake = FakeMistral::start().await;
//! let client = Client::builder().api_key("test-key").base_url(fake.base_url()).build()?;
//! client.chat().create(req).await?;
//! assert_eq!(fake.calls("/v1/chat/completions"), 1);
//! assert_eq!(fake.last_headers().unwrap()["authorization"], "Bearer test-key");
//! ```
//!
//! # API
//!
//! - `FakeMistral::start().await`: binds a random port and serves until dropped.
//! - `base_url()` (`http://127.0.0.1:PORT`), `addr()`.
//! - `calls(path)`: requests received on this exact path (no query), `total_calls()`.
//! - `requests()` / `last_request()`: every [`RecordedRequest`] (method, path, query,
//!   headers, body bytes; `.json()` parses the body); `last_headers()`,
//!   `last_body_json()`.
//! - `streams_started()`, `streams_completed()` (the SSE body was sent to its end,
//!   `[DONE]` included) and `streams_dropped()` (the SSE body was dropped before its
//!   end: the client went away). `wait_for_dropped_streams(n)` polls for the latter.
//! - `set_stream_delay(d)`: pause between SSE events (default 0).
//!
//! # Endpoints
//!
//! `POST /v1/chat/completions` (the docs' example response, or the docs' SSE
//! example when the body has `"stream": true`), `POST /v1/fim/completions`,
//! `POST /v1/agents/completions` (same), `POST /v1/embeddings` (one 3-dimension
//! vector per input; base64 with `encoding_format: "base64"`),
//! `GET /v1/models`, `GET|DELETE /v1/models/{id}` (404 `{"detail": ...}` for an
//! unknown id), `POST /v1/moderations`, `/v1/chat/moderations`,
//! `/v1/classifications`, `/v1/chat/classifications`, `POST /v1/ocr`. Anything else
//! answers 404. Every response carries `mistral-correlation-id: fake-<n>` where `n`
//! counts requests from 1.
//!
//! # Scenarios
//!
//! Chosen by the request header `x-fake-scenario`, or else by the body's `model`
//! when it is one of these names (so a test can pick one through the typed client):
//!
//! | scenario | behaviour |
//! |---|---|
//! | `error-05a` … `error-05g` | the example error body with its status (05a/b/c/e: 400, 05d: 401, 05f/g: 429) |
//! | `error-422` | 422 with a FastAPI `{"detail": [{loc, msg, type}]}` body |
//! | `error-500-text` | 500 with a `text/plain` body that is not JSON |
//! | `status-<code>` | that status with the 05a envelope |
//! | `fail-<code>-<n>` | the first `n` calls with this scenario on this path fail with `<code>` (429 uses the 05g body), later calls succeed |
//! | `fail-<code>-<n>-after-<secs>` | same, with `Retry-After: <secs>` |
//! | `slow-<ms>` | waits `ms` before the response headers |
//! | `hang` | never answers |
//! | `tool-call` | the tool-call example response (non-streaming) |
//! | `prompt-cache` | the prompt-cache usage example response |
//! | `unknown-fields` | responses and chunks with extra fields and unknown enum values |
//! | `stream-delay-<ms>` | the example stream with `ms` between events |
//! | `stream-truncated` | two events, then the body ends cleanly without `[DONE]` |
//! | `stream-abort` | two events, then the connection is cut (a body error) |
//! | `stream-stall` | one event, then nothing (for the idle timeout) |
//! | `stream-error-event` | one event, then `event: error` with an error envelope |
//! | `stream-bad-json` | one event, then a `data:` line that is not JSON |
//! | `stream-endless` | an event every 10 ms forever (for cancellation) |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

/// One request the fake server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    counters: Mutex<HashMap<String, usize>>,
    streams_started: AtomicUsize,
    streams_completed: AtomicUsize,
    streams_dropped: AtomicUsize,
    stream_delay_ms: AtomicUsize,
}

/// The fake server; it stops when dropped.
pub struct FakeMistral {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMistral {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeMistral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMistral")
            .field("addr", &self.addr)
            .finish()
    }
}

fn example(name: &str) -> String {
    let path = format!(
        "{}/../shared/mistral/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

impl FakeMistral {
    /// Starts the server on a random local port.
    pub async fn start() -> FakeMistral {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMistral { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received on exactly this path.
    pub fn calls(&self, path: &str) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Every request received.
    pub fn total_calls(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// A copy of every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests.lock().unwrap().last().cloned()
    }

    /// The headers of the last request.
    pub fn last_headers(&self) -> Option<HeaderMap> {
        self.last_request().map(|r| r.headers)
    }

    /// The body of the last request as JSON.
    pub fn last_body_json(&self) -> Option<Value> {
        self.last_request().map(|r| r.json())
    }

    /// SSE responses started.
    pub fn streams_started(&self) -> usize {
        self.shared.streams_started.load(Ordering::SeqCst)
    }

    /// SSE responses whose body was sent to its end.
    pub fn streams_completed(&self) -> usize {
        self.shared.streams_completed.load(Ordering::SeqCst)
    }

    /// SSE responses whose body was dropped before its end (client went away).
    pub fn streams_dropped(&self) -> usize {
        self.shared.streams_dropped.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until at least `n` streams were dropped; returns the count.
    pub async fn wait_for_dropped_streams(&self, n: usize) -> usize {
        for _ in 0..1000 {
            if self.streams_dropped() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.streams_dropped()
    }

    /// Pause between SSE events for every stream from now on.
    pub fn set_stream_delay(&self, d: Duration) {
        self.shared
            .stream_delay_ms
            .store(d.as_millis() as usize, Ordering::SeqCst);
    }
}

fn json_response(status: StatusCode, body: impl Into<AxumBody>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn error_response(status: u16, body: String, retry_after: Option<&str>) -> Response {
    let mut res = json_response(StatusCode::from_u16(status).unwrap(), body);
    if let Some(ra) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_str(ra).unwrap());
    }
    res
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let rec = RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
    };
    let json = rec.json();
    let n = {
        let mut reqs = shared.requests.lock().unwrap();
        reqs.push(rec.clone());
        reqs.len()
    };
    let scenario = rec
        .headers
        .get("x-fake-scenario")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            json.get("model")
                .and_then(Value::as_str)
                .filter(|m| is_scenario(m))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let mut res = respond(&shared, &rec, &json, &scenario).await;
    res.headers_mut().insert(
        "mistral-correlation-id",
        HeaderValue::from_str(&format!("fake-{n}")).unwrap(),
    );
    res
}

fn is_scenario(s: &str) -> bool {
    [
        "error-",
        "status-",
        "fail-",
        "slow-",
        "hang",
        "tool-call",
        "prompt-cache",
        "unknown-fields",
        "stream-",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

async fn respond(
    shared: &Arc<Shared>,
    rec: &RecordedRequest,
    json: &Value,
    scenario: &str,
) -> Response {
    let parts: Vec<&str> = scenario.split('-').collect();
    match parts.as_slice() {
        ["error", which] => {
            let (file, status) = match *which {
                "05a" => ("05a-error.glossary-format.json", 400),
                "05b" => ("05b-error.400-validation-detail.json", 400),
                "05c" => ("05c-error.400-string-message.json", 400),
                "05d" => ("05d-error.401.json", 401),
                "05e" => ("05e-error.400-invalid-model.json", 400),
                "05f" => ("05f-error.429-legacy.json", 429),
                "05g" => ("05g-error.429-current.json", 429),
                "422" => {
                    return error_response(
                        422,
                        r#"{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{}}]}"#.into(),
                        None,
                    );
                }
                _ => ("05a-error.glossary-format.json", 400),
            };
            return error_response(status, example(file), None);
        }
        ["error", "500", "text"] => {
            return Response::builder()
                .status(500)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(AxumBody::from(
                    "upstream connect error or disconnect/reset before headers",
                ))
                .unwrap();
        }
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            return error_response(code, example("05a-error.glossary-format.json"), None);
        }
        ["fail", code, times, rest @ ..] => {
            let code: u16 = code.parse().unwrap_or(503);
            let times: usize = times.parse().unwrap_or(1);
            let retry_after = match rest {
                ["after", secs] => Some(*secs),
                _ => None,
            };
            let key = format!("{} {}", rec.path, scenario);
            let seen = {
                let mut c = shared.counters.lock().unwrap();
                let e = c.entry(key).or_insert(0);
                *e += 1;
                *e
            };
            if seen <= times {
                let body = if code == 429 {
                    example("05g-error.429-current.json")
                } else {
                    json!({"object":"error","message":"Service unavailable","type":"service_unavailable","param":null,"code":"3505"}).to_string()
                };
                return error_response(code, body, retry_after);
            }
        }
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(100))).await;
        }
        ["hang"] => {
            std::future::pending::<()>().await;
        }
        _ => {}
    }
    endpoint(shared, rec, json, scenario)
}

fn endpoint(shared: &Arc<Shared>, rec: &RecordedRequest, json: &Value, scenario: &str) -> Response {
    let path = rec.path.as_str();
    let method = &rec.method;
    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    match (method.as_str(), path) {
        ("POST", "/v1/chat/completions" | "/v1/fim/completions" | "/v1/agents/completions") => {
            if streaming || scenario.starts_with("stream-") {
                return sse_response(shared, scenario);
            }
            let body = match scenario {
                "tool-call" => example("03-tool-call.response.json"),
                "prompt-cache" => example("06-prompt-cache-usage.response.json"),
                "unknown-fields" => {
                    let mut v: Value =
                        serde_json::from_str(&example("01-chat-completion.response.json")).unwrap();
                    v["brand_new_field"] = json!({"nested": [1, 2, 3]});
                    v["choices"][0]["finish_reason"] = json!("brand_new_reason");
                    v["choices"][0]["message"]["future"] = json!(true);
                    v["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 3, "other": 1});
                    v.to_string()
                }
                _ => example("01-chat-completion.response.json"),
            };
            json_response(StatusCode::OK, body)
        }
        ("POST", "/v1/embeddings") => {
            let inputs = match json.get("input") {
                Some(Value::Array(a)) => a.len(),
                _ => 1,
            };
            let base64 = json.get("encoding_format").and_then(Value::as_str) == Some("base64");
            let data: Vec<Value> = (0..inputs)
                .map(|i| {
                    let v = [0.1f32 * (i as f32 + 1.0), 0.2, 0.3];
                    let embedding = if base64 {
                        use base64::Engine as _;
                        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                    } else {
                        json!(v)
                    };
                    json!({"object": "embedding", "embedding": embedding, "index": i})
                })
                .collect();
            let mut body = json!({
                "id": "emb-fake",
                "object": "list",
                "model": json.get("model").cloned().unwrap_or(json!("mistral-embed")),
                "data": data,
                "usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4,
                          "prompt_token_details": {"cached_tokens": 0}},
            });
            if scenario == "unknown-fields" {
                body["extra"] = json!("ignored");
            }
            json_response(StatusCode::OK, body.to_string())
        }
        ("GET", "/v1/models") => json_response(StatusCode::OK, models_list().to_string()),
        ("GET" | "DELETE", p) if p.starts_with("/v1/models/") => {
            let id = percent_decode(&p["/v1/models/".len()..]);
            let list = models_list();
            let found = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == id.as_str())
                .cloned();
            match (method.as_str(), found) {
                (_, None) => error_response(
                    404,
                    json!({"detail": format!("Model not found: {id}")}).to_string(),
                    None,
                ),
                ("GET", Some(m)) => json_response(StatusCode::OK, m.to_string()),
                (_, Some(_)) => json_response(
                    StatusCode::OK,
                    json!({"id": id, "object": "model", "deleted": true}).to_string(),
                ),
            }
        }
        ("POST", "/v1/moderations" | "/v1/chat/moderations") => {
            let n = match json.get("input") {
                Some(Value::Array(a))
                    if path == "/v1/moderations" || a.first().is_some_and(Value::is_array) =>
                {
                    a.len()
                }
                _ => 1,
            };
            let results: Vec<Value> = (0..n)
                .map(|i| {
                    json!({
                        "categories": {"sexual": false, "hate_and_discrimination": false, "violence_and_threats": false, "pii": i == 0},
                        "category_scores": {"sexual": 0.001, "hate_and_discrimination": 0.002, "violence_and_threats": 0.003, "pii": if i == 0 {0.91} else {0.01}},
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({"id": "mod-fake", "model": json.get("model"), "results": results})
                    .to_string(),
            )
        }
        ("POST", "/v1/classifications" | "/v1/chat/classifications") => json_response(
            StatusCode::OK,
            json!({
                "id": "cls-fake",
                "model": json.get("model"),
                "results": [{"intent": {"scores": {"question": 0.8, "statement": 0.2}}}],
            })
            .to_string(),
        ),
        ("POST", "/v1/ocr") => json_response(
            StatusCode::OK,
            json!({
                "pages": [{
                    "index": 0,
                    "markdown": "# Fake document\n\nHello from OCR.",
                    "images": [],
                    "dimensions": {"dpi": 200, "height": 2200, "width": 1700},
                }],
                "model": json.get("model").cloned().unwrap_or(json!("mistral-ocr-latest")),
                "usage_info": {"pages_processed": 1, "doc_size_bytes": 1234},
            })
            .to_string(),
        ),
        _ => error_response(404, json!({"detail": "Not Found"}).to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn models_list() -> Value {
    json!({
        "object": "list",
        "data": [
            {
                "id": "mistral-small-latest", "object": "model", "created": 1764258570, "owned_by": "mistralai",
                "capabilities": {"completion_chat": true, "completion_fim": false, "function_calling": true,
                                 "fine_tuning": true, "vision": true, "classification": false},
                "name": "mistral-small-2506", "max_context_length": 131072,
                "aliases": ["mistral-small-2506"], "type": "base"
            },
            {
                "id": "codestral-latest", "object": "model", "created": 1764258570, "owned_by": "mistralai",
                "capabilities": {"completion_chat": true, "completion_fim": true, "function_calling": true,
                                 "fine_tuning": false, "vision": false, "classification": false},
                "max_context_length": 256000, "aliases": [], "type": "base"
            },
            {
                "id": "mistral-embed", "object": "model", "created": 1764258570, "owned_by": "mistralai",
                "capabilities": {"completion_chat": false, "completion_fim": false, "function_calling": false,
                                 "fine_tuning": false, "vision": false, "classification": false},
                "max_context_length": 8192, "aliases": [], "type": "base", "future_field": {"x": 1}
            },
            {
                "id": "ft:open-mistral-7b:abc123:20240101:def", "object": "model", "created": 1764258570,
                "owned_by": "org-1", "capabilities": {"completion_chat": true, "fine_tuning": true},
                "type": "fine-tuned", "job": "job-1", "root": "open-mistral-7b", "archived": false
            }
        ]
    })
}

/// Drop guard that tells whether an SSE body was sent to its end.
struct StreamGuard {
    shared: Arc<Shared>,
    completed: bool,
}

impl StreamGuard {
    fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.completed {
            self.shared.streams_completed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.shared.streams_dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

enum Step {
    Send(Bytes),
    Sleep(Duration),
    Stall,
    Abort,
}

fn sample_events() -> Vec<Bytes> {
    example("02-chat-stream.sse")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| Bytes::from(format!("{e}\n\n")))
        .collect()
}

fn sse_response(shared: &Arc<Shared>, scenario: &str) -> Response {
    shared.streams_started.fetch_add(1, Ordering::SeqCst);
    let mut events = sample_events();
    if scenario == "unknown-fields" {
        for e in events.iter_mut() {
            let s = String::from_utf8_lossy(e).replace(
                "\"object\":\"chat.completion.chunk\"",
                "\"object\":\"chat.completion.chunk\",\"p\":\"abcdef\",\"brand_new\":1",
            );
            *e = Bytes::from(s);
        }
    }
    let default_delay = Duration::from_millis(shared.stream_delay_ms.load(Ordering::SeqCst) as u64);
    let mut steps: Vec<Step> = Vec::new();
    let delay = match scenario.strip_prefix("stream-delay-") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap_or(10)),
        None => default_delay,
    };
    let push_events = |steps: &mut Vec<Step>, evs: &[Bytes]| {
        for (i, e) in evs.iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                steps.push(Step::Sleep(delay));
            }
            steps.push(Step::Send(e.clone()));
        }
    };
    let endless = scenario == "stream-endless";
    match scenario {
        "stream-truncated" => push_events(&mut steps, &events[..2]),
        "stream-abort" => {
            push_events(&mut steps, &events[..2]);
            // let hyper flush the events before the connection is cut
            steps.push(Step::Sleep(Duration::from_millis(100)));
            steps.push(Step::Abort);
        }
        "stream-stall" => {
            push_events(&mut steps, &events[..1]);
            steps.push(Step::Stall);
        }
        "stream-error-event" => {
            push_events(&mut steps, &events[..1]);
            steps.push(Step::Send(Bytes::from(
                "event: error\ndata: {\"object\":\"error\",\"message\":\"Internal server error\",\"type\":\"internal_server_error\",\"param\":null,\"code\":\"3000\"}\n\n",
            )));
        }
        "stream-bad-json" => {
            push_events(&mut steps, &events[..1]);
            steps.push(Step::Send(Bytes::from("data: {not json\n\n")));
            steps.push(Step::Send(Bytes::from("data: [DONE]\n\n")));
        }
        _ => push_events(&mut steps, &events),
    }
    let guard = StreamGuard {
        shared: shared.clone(),
        completed: false,
    };
    let first = events[0].clone();
    let stream =
        futures_util::stream::unfold((steps.into_iter(), guard), move |(mut steps, mut guard)| {
            let first = first.clone();
            async move {
                if endless {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Some((Ok::<Bytes, std::io::Error>(first), (steps, guard)));
                }
                loop {
                    match steps.next() {
                        Some(Step::Send(b)) => return Some((Ok(b), (steps, guard))),
                        Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
                        Some(Step::Stall) => std::future::pending::<()>().await,
                        Some(Step::Abort) => {
                            return Some((
                                Err(std::io::Error::other("fake abort")),
                                (steps, guard),
                            ));
                        }
                        None => {
                            guard.complete();
                            return None;
                        }
                    }
                }
            }
        });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(AxumBody::from_stream(stream))
        .unwrap()
}
