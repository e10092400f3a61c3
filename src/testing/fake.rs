//! The fake server and service: state, scripted responses, canned endpoints.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::fixtures;
use crate::BoxError;

/// One request the fake received.
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
    script: Mutex<VecDeque<(Option<String>, FakeResponse)>>,
    streams_started: AtomicUsize,
    streams_completed: AtomicUsize,
    streams_dropped: AtomicUsize,
    stream_delay_ms: AtomicUsize,
}

/// A fake Mistral API: a local server, an in-process tower service, or both.
///
/// See the [module docs](super) for the endpoints and scenarios. The server (if
/// started) stops when the value is dropped.
pub struct FakeMistral {
    addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeMistral {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl fmt::Debug for FakeMistral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMistral")
            .field("addr", &self.addr)
            .field("requests", &self.total_calls())
            .finish()
    }
}

impl Default for FakeMistral {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeMistral {
    /// A fake without a server, for [`service`](Self::service) alone.
    pub fn new() -> FakeMistral {
        FakeMistral {
            addr: None,
            shared: Arc::new(Shared::default()),
            task: None,
        }
    }

    /// Starts a server on a random port of 127.0.0.1 (needs a tokio runtime).
    ///
    /// # Panics
    ///
    /// If no port of 127.0.0.1 can be bound.
    pub async fn start() -> FakeMistral {
        let mut fake = FakeMistral::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeMistral: bind 127.0.0.1:0");
        fake.addr = Some(listener.local_addr().expect("bound address"));
        let app = router(fake.shared.clone());
        fake.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        fake
    }

    /// The in-process tower service, sharing this fake's script and records.
    ///
    /// `Client::builder().service(fake.service())` sends the client's requests
    /// straight to it, without a socket.
    pub fn service(&self) -> FakeService {
        FakeService {
            router: router(self.shared.clone()),
        }
    }

    /// `http://127.0.0.1:PORT`, the base URL of the server.
    ///
    /// # Panics
    ///
    /// If the fake was made with [`new`](Self::new), which starts no server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Same as [`url`](Self::url).
    pub fn base_url(&self) -> String {
        self.url()
    }

    /// The bound address of the server.
    ///
    /// # Panics
    ///
    /// If the fake was made with [`new`](Self::new), which starts no server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .expect("FakeMistral::new() starts no server: use FakeMistral::start()")
    }

    /// Answers the next request, whatever its path, with `response`.
    ///
    /// Scripted responses are used in the order they were pushed, before any
    /// scenario or canned endpoint.
    pub fn push(&self, response: FakeResponse) {
        self.shared
            .script
            .lock()
            .unwrap()
            .push_back((None, response));
    }

    /// Answers the next request on exactly `path` (no query) with `response`.
    pub fn push_for(&self, path: impl Into<String>, response: FakeResponse) {
        self.shared
            .script
            .lock()
            .unwrap()
            .push_back((Some(path.into()), response));
    }

    /// Scripted responses not used yet.
    pub fn pending_scripted(&self) -> usize {
        self.shared.script.lock().unwrap().len()
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

    /// SSE responses whose body was dropped before its end (the client went away).
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

    /// Pause between SSE events for every canned stream from now on.
    pub fn set_stream_delay(&self, d: Duration) {
        self.shared
            .stream_delay_ms
            .store(d.as_millis() as usize, Ordering::SeqCst);
    }
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// The in-process fake as a tower service; see [`FakeMistral::service`].
#[derive(Clone)]
pub struct FakeService {
    router: axum::Router,
}

impl fmt::Debug for FakeService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeService").finish_non_exhaustive()
    }
}

impl<B> tower_service::Service<http::Request<B>> for FakeService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<FakeBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = tower_service::Service::call(&mut self.router, req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|body| FakeBody { inner: body }))
        })
    }
}

/// The response body of [`FakeService`].
pub struct FakeBody {
    inner: AxumBody,
}

impl fmt::Debug for FakeBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBody").finish_non_exhaustive()
    }
}

impl http_body::Body for FakeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response scripted with [`FakeMistral::push`]: a status, headers, a body
/// (whole, or SSE events that can be cut or stalled) and a delay.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ScriptBody,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ScriptBody {
    Full(Bytes),
    Sse {
        events: Vec<Bytes>,
        done: bool,
        gap: Duration,
        end: StreamEnd,
    },
}

#[derive(Debug, Clone, Copy)]
enum StreamEnd {
    Clean,
    CutAfter(usize),
    StallAfter(usize),
}

impl FakeResponse {
    /// A 200 `application/json` answer with this body (a `&str`, `String` or
    /// `serde_json::Value`: anything whose `Display` is the JSON text).
    pub fn json(body: impl fmt::Display) -> FakeResponse {
        FakeResponse {
            status: StatusCode::OK,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: ScriptBody::Full(Bytes::from(body.to_string())),
            delay: Duration::ZERO,
        }
    }

    /// A chat completion answering `text`, with a plausible `usage`.
    pub fn chat(text: &str) -> FakeResponse {
        let words = text.split_whitespace().count() as u64;
        FakeResponse::json(json!({
            "id": "cmpl-scripted",
            "object": "chat.completion",
            "created": 1_780_000_000u64,
            "model": "mistral-small-latest",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": null, "prefix": false},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
        }))
    }

    /// A streamed chat completion whose deltas are `deltas`, the last chunk with
    /// `finish_reason: "stop"` and `usage`, then `data: [DONE]`.
    pub fn chat_stream<I, S>(deltas: I) -> FakeResponse
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let deltas: Vec<String> = deltas.into_iter().map(|d| d.as_ref().to_owned()).collect();
        let n = deltas.len();
        let chunks = deltas.iter().enumerate().map(|(i, d)| {
            let last = i + 1 == n;
            json!({
                "id": "cmpl-scripted",
                "object": "chat.completion.chunk",
                "created": 1_780_000_000u64,
                "model": "mistral-small-latest",
                "choices": [{
                    "index": 0,
                    "delta": if i == 0 { json!({"role": "assistant", "content": d}) } else { json!({"content": d}) },
                    "finish_reason": if last { json!("stop") } else { Value::Null },
                }],
                "usage": if last { json!({"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}) } else { Value::Null },
            })
            .to_string()
        });
        FakeResponse::sse(chunks.collect::<Vec<_>>())
    }

    /// A 200 `text/event-stream` answer: one `data:` event per item, then
    /// `data: [DONE]` (unless [`without_done`](Self::without_done)).
    pub fn sse<I, S>(data: I) -> FakeResponse
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        FakeResponse {
            status: StatusCode::OK,
            headers: vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body: ScriptBody::Sse {
                events: data
                    .into_iter()
                    .map(|d| Bytes::from(format!("data: {}\n\n", d.as_ref())))
                    .collect(),
                done: true,
                gap: Duration::ZERO,
                end: StreamEnd::Clean,
            },
            delay: Duration::ZERO,
        }
    }

    /// An error with this status and Mistral's error envelope as its body.
    ///
    /// # Panics
    ///
    /// If `code` is not a valid HTTP status (100 to 999).
    pub fn status(code: u16) -> FakeResponse {
        let message = StatusCode::from_u16(code)
            .expect("an HTTP status code")
            .canonical_reason()
            .unwrap_or("Error");
        FakeResponse::json(json!({
            "object": "error",
            "message": message,
            "type": if code == 429 { "rate_limited" } else { "fake_error" },
            "param": null,
            "code": code.to_string(),
        }))
        .with_status(code)
    }

    /// Replaces the status.
    ///
    /// # Panics
    ///
    /// If `code` is not a valid HTTP status (100 to 999).
    pub fn with_status(mut self, code: u16) -> FakeResponse {
        self.status = StatusCode::from_u16(code).expect("an HTTP status code");
        self
    }

    /// Replaces the body with these bytes (kept as they are, headers unchanged).
    pub fn body(mut self, body: impl Into<Bytes>) -> FakeResponse {
        self.body = ScriptBody::Full(body.into());
        self
    }

    /// Adds a response header.
    ///
    /// # Panics
    ///
    /// If the name or value is not valid in an HTTP header.
    pub fn header(mut self, name: &str, value: &str) -> FakeResponse {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        let value = HeaderValue::from_str(value).expect("a header value");
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> FakeResponse {
        self.header("retry-after", &secs.to_string())
    }

    /// Waits this long before sending the response head.
    pub fn delay(mut self, d: Duration) -> FakeResponse {
        self.delay = d;
        self
    }

    /// For a stream: waits this long between events.
    pub fn event_gap(mut self, d: Duration) -> FakeResponse {
        if let ScriptBody::Sse { gap, .. } = &mut self.body {
            *gap = d;
        }
        self
    }

    /// For a stream: ends after the last event without `data: [DONE]`.
    pub fn without_done(mut self) -> FakeResponse {
        if let ScriptBody::Sse { done, .. } = &mut self.body {
            *done = false;
        }
        self
    }

    /// For a stream: cuts the connection (a body error) after `n` events.
    pub fn cut_after(mut self, n: usize) -> FakeResponse {
        if let ScriptBody::Sse { end, .. } = &mut self.body {
            *end = StreamEnd::CutAfter(n);
        }
        self
    }

    /// For a stream: sends `n` events, then nothing, forever.
    pub fn stall_after(mut self, n: usize) -> FakeResponse {
        if let ScriptBody::Sse { end, .. } = &mut self.body {
            *end = StreamEnd::StallAfter(n);
        }
        self
    }
}

fn next_scripted(shared: &Shared, path: &str) -> Option<FakeResponse> {
    let mut script = shared.script.lock().unwrap();
    let i = script
        .iter()
        .position(|(p, _)| p.as_deref().is_none_or(|p| p == path))?;
    script.remove(i).map(|(_, r)| r)
}

async fn scripted(shared: &Arc<Shared>, r: FakeResponse) -> Response {
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    let mut res = match r.body {
        ScriptBody::Full(b) => Response::new(AxumBody::from(b)),
        ScriptBody::Sse {
            mut events,
            done,
            gap,
            end,
        } => {
            if done {
                events.push(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            let mut steps = Vec::new();
            let tail = match end {
                StreamEnd::Clean => None,
                StreamEnd::CutAfter(n) => {
                    events.truncate(n);
                    Some(Step::Abort)
                }
                StreamEnd::StallAfter(n) => {
                    events.truncate(n);
                    Some(Step::Stall)
                }
            };
            push_events(&mut steps, &events, gap);
            if let Some(t) = tail {
                if matches!(t, Step::Abort) {
                    // let hyper flush the events before the connection is cut
                    steps.push(Step::Sleep(Duration::from_millis(100)));
                }
                steps.push(t);
            }
            Response::new(stream_body(shared, steps, None))
        }
    };
    *res.status_mut() = r.status;
    for (name, value) in r.headers {
        res.headers_mut().insert(name, value);
    }
    res
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
    let mut res = match next_scripted(&shared, &rec.path) {
        Some(r) => scripted(&shared, r).await,
        None => respond(&shared, &rec, &json, &scenario).await,
    };
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
        ["error", "422"] => {
            return error_response(
                422,
                r#"{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{}}]}"#.into(),
                None,
            );
        }
        ["error", ..] if scenario != "error-500-text" => {
            let (body, status) = match scenario {
                "error-validation" => (fixtures::ERROR_VALIDATION_DETAIL, 400),
                "error-string-message" => (fixtures::ERROR_STRING_MESSAGE, 400),
                "error-401" => (fixtures::ERROR_401, 401),
                "error-invalid-model" => (fixtures::ERROR_INVALID_MODEL, 400),
                "error-429-legacy" => (fixtures::ERROR_429_LEGACY, 429),
                "error-429" => (fixtures::ERROR_429, 429),
                _ => (fixtures::ERROR_INVALID_REQUEST, 400),
            };
            return error_response(status, body.to_owned(), None);
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
            return error_response(code, fixtures::ERROR_INVALID_REQUEST.to_owned(), None);
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
                    fixtures::ERROR_429.to_owned()
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
                "tool-call" => fixtures::TOOL_CALL_RESPONSE.to_owned(),
                "prompt-cache" => fixtures::PROMPT_CACHE_RESPONSE.to_owned(),
                "unknown-fields" => {
                    let mut v: Value = serde_json::from_str(fixtures::CHAT_RESPONSE).unwrap();
                    v["brand_new_field"] = json!({"nested": [1, 2, 3]});
                    v["choices"][0]["finish_reason"] = json!("brand_new_reason");
                    v["choices"][0]["message"]["future"] = json!(true);
                    v["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 3, "other": 1});
                    v.to_string()
                }
                _ => fixtures::CHAT_RESPONSE.to_owned(),
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
    fixtures::CHAT_STREAM
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| Bytes::from(format!("{e}\n\n")))
        .collect()
}

fn push_events(steps: &mut Vec<Step>, events: &[Bytes], gap: Duration) {
    for (i, e) in events.iter().enumerate() {
        if i > 0 && !gap.is_zero() {
            steps.push(Step::Sleep(gap));
        }
        steps.push(Step::Send(e.clone()));
    }
}

/// An SSE body playing `steps`; with `endless`, that event every 10 ms forever.
fn stream_body(shared: &Arc<Shared>, steps: Vec<Step>, endless: Option<Bytes>) -> AxumBody {
    shared.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard {
        shared: shared.clone(),
        completed: false,
    };
    let stream =
        futures_util::stream::unfold((steps.into_iter(), guard), move |(mut steps, mut guard)| {
            let endless = endless.clone();
            async move {
                if let Some(event) = endless {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Some((Ok::<Bytes, std::io::Error>(event), (steps, guard)));
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
    AxumBody::from_stream(stream)
}

fn sse_response(shared: &Arc<Shared>, scenario: &str) -> Response {
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
    let gap = match scenario.strip_prefix("stream-delay-") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap_or(10)),
        None => default_delay,
    };
    match scenario {
        "stream-truncated" => push_events(&mut steps, &events[..2], gap),
        "stream-abort" => {
            push_events(&mut steps, &events[..2], gap);
            // let hyper flush the events before the connection is cut
            steps.push(Step::Sleep(Duration::from_millis(100)));
            steps.push(Step::Abort);
        }
        "stream-stall" => {
            push_events(&mut steps, &events[..1], gap);
            steps.push(Step::Stall);
        }
        "stream-error-event" => {
            push_events(&mut steps, &events[..1], gap);
            steps.push(Step::Send(Bytes::from(
                "event: error\ndata: {\"object\":\"error\",\"message\":\"Internal server error\",\"type\":\"internal_server_error\",\"param\":null,\"code\":\"3000\"}\n\n",
            )));
        }
        "stream-bad-json" => {
            push_events(&mut steps, &events[..1], gap);
            steps.push(Step::Send(Bytes::from("data: {not json\n\n")));
            steps.push(Step::Send(Bytes::from("data: [DONE]\n\n")));
        }
        _ => push_events(&mut steps, &events, gap),
    }
    let endless = (scenario == "stream-endless").then(|| events[0].clone());
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(stream_body(shared, steps, endless))
        .unwrap()
}
