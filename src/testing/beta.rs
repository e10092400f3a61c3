//! The fake's beta endpoints: conversations (JSON and SSE), agents, libraries,
//! documents and accesses, and prompts (`/v2/prompts`), with in-memory state.
//!
//! Conversations answer every turn with one `message.output` entry: `echo: <text>`
//! for a user message, `result: <result>` for function results. A conversation
//! stream sends `conversation.response.started`, the answer as two
//! `message.output.delta` events and `conversation.response.done`, without
//! `data: [DONE]`; the scenario `conversation-error` ends it with
//! `conversation.response.error` instead, and `stream-truncated` cuts it before the
//! done event.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body as AxumBody;
use axum::http::header;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::fake::RecordedRequest;

const NOW: &str = "2026-01-01T00:00:00Z";

/// The in-memory state behind the beta endpoints.
#[derive(Default)]
pub(super) struct State {
    next_id: AtomicU64,
    conversations: Mutex<Vec<Conversation>>,
    pub(super) agents: Mutex<Vec<(u64, Vec<Value>)>>,
    pub(super) aliases: Mutex<Vec<(String, String, u64)>>,
    pub(super) libraries: Mutex<Vec<Value>>,
    pub(super) documents: Mutex<Vec<(Value, String)>>,
    pub(super) shares: Mutex<Vec<Value>>,
    pub(super) prompts: Mutex<Vec<Vec<Value>>>,
}

struct Conversation {
    meta: Value,
    entries: Vec<Value>,
}

impl State {
    pub(super) fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{prefix}_{n:08}")
    }

    fn uuid(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        format!("00000000-0000-4000-9000-{n:012x}")
    }
}

pub(super) fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(AxumBody::from(body.to_string()))
        .unwrap()
}

pub(super) fn no_content() -> Response {
    Response::builder()
        .status(204)
        .body(AxumBody::empty())
        .unwrap()
}

pub(super) fn not_found(what: &str, id: &str) -> Response {
    json_response(404, json!({"detail": format!("{what} not found: {id}")}))
}

pub(super) fn unprocessable(msg: &str) -> Response {
    json_response(
        422,
        json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": msg, "input": null}]}),
    )
}

/// The query parameters, percent-decoded, in order.
pub(super) fn query(rec: &RecordedRequest) -> Vec<(String, String)> {
    rec.query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                super::fake::percent_decode(k),
                super::fake::percent_decode(v),
            )
        })
        .collect()
}

pub(super) fn q1(q: &[(String, String)], name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// `(page, page_size)` from the query.
pub(super) fn page_of(q: &[(String, String)], default_size: usize) -> (usize, usize) {
    let page = q1(q, "page").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size = q1(q, "page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_size);
    (page, size)
}

pub(super) fn paged<T: Clone>(items: &[T], page: usize, size: usize) -> Vec<T> {
    items.iter().skip(page * size).take(size).cloned().collect()
}

/// Routes a beta request, or `None` when the path is not a beta endpoint.
pub(super) fn endpoint(
    state: &State,
    rec: &RecordedRequest,
    json: &Value,
    scenario: &str,
) -> Option<Response> {
    let path = rec.path.as_str();
    if path == "/v1/conversations" || path.starts_with("/v1/conversations/") {
        return Some(conversations(state, rec, json, scenario));
    }
    if path == "/v1/agents" || path.starts_with("/v1/agents/") && path != "/v1/agents/completions" {
        return Some(super::beta_registry::agents(state, rec, json));
    }
    if path == "/v1/libraries" || path.starts_with("/v1/libraries/") {
        return Some(super::beta_registry::libraries(state, rec, json));
    }
    if path == "/v2/prompts" || path.starts_with("/v2/prompts/") {
        return Some(super::beta_registry::prompts(state, rec, json));
    }
    None
}

/// The input entries of a request, with ids and timestamps, and the answer's text.
fn input_entries(state: &State, inputs: &Value) -> (Vec<Value>, String) {
    let entries: Vec<Value> = match inputs {
        Value::String(s) => vec![json!({"type": "message.input", "role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let mut answer = String::new();
    let entries = entries
        .into_iter()
        .map(|mut e| {
            match e["type"].as_str() {
                Some("function.result") => {
                    answer = format!("result: {}", e["result"].as_str().unwrap_or(""));
                }
                _ => {
                    let text = match &e["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(chunks) => {
                            chunks.iter().filter_map(|c| c["text"].as_str()).collect()
                        }
                        _ => String::new(),
                    };
                    answer = format!("echo: {text}");
                }
            }
            if let Value::Object(m) = &mut e {
                m.insert("object".into(), json!("entry"));
                m.insert("id".into(), json!(state.id("msg")));
                m.insert("created_at".into(), json!(NOW));
            }
            e
        })
        .collect();
    (entries, answer)
}

fn output_entry(state: &State, meta: &Value, text: &str) -> Value {
    json!({
        "object": "entry",
        "type": "message.output",
        "id": state.id("msg"),
        "created_at": NOW,
        "completed_at": NOW,
        "model": meta.get("model").cloned().unwrap_or(Value::Null),
        "agent_id": meta.get("agent_id").cloned().unwrap_or(Value::Null),
        "role": "assistant",
        "content": text,
    })
}

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14})
}

/// The answer of a turn: JSON or a conversation event stream.
fn turn(state: &State, conv_id: &str, json: &Value, scenario: &str) -> Response {
    let (inputs, answer) = input_entries(state, json.get("inputs").unwrap_or(&Value::Null));
    let mut convs = state.conversations.lock().unwrap();
    let Some(conv) = convs.iter_mut().find(|c| c.meta["id"] == conv_id) else {
        return not_found("conversation", conv_id);
    };
    // `call:NAME:ARGS` asks for a function call
    let out = match answer
        .strip_prefix("echo: call:")
        .and_then(|r| r.split_once(':'))
    {
        Some((name, args)) => json!({
            "object": "entry",
            "type": "function.call",
            "id": state.id("fc"),
            "created_at": NOW,
            "model": conv.meta.get("model").cloned().unwrap_or(Value::Null),
            "tool_call_id": state.id("call"),
            "name": name,
            "arguments": args,
        }),
        None => output_entry(state, &conv.meta, &answer),
    };
    conv.entries.extend(inputs);
    conv.entries.push(out.clone());
    if json.get("stream").and_then(Value::as_bool) == Some(true) {
        return event_stream(conv_id, &out, &answer, scenario);
    }
    json_response(
        200,
        json!({
            "object": "conversation.response",
            "conversation_id": conv_id,
            "outputs": [out],
            "usage": usage(),
        }),
    )
}

fn event_stream(conv_id: &str, out: &Value, answer: &str, scenario: &str) -> Response {
    let mut events = vec![(
        "conversation.response.started",
        json!({"type": "conversation.response.started", "created_at": NOW, "conversation_id": conv_id}),
    )];
    if out["type"] == "function.call" {
        events.push((
            "function.call.delta",
            json!({"type": "function.call.delta", "created_at": NOW, "output_index": 0,
                   "id": out["id"], "name": out["name"], "tool_call_id": out["tool_call_id"],
                   "arguments": out["arguments"]}),
        ));
    }
    let answer = if out["type"] == "function.call" {
        ""
    } else {
        answer
    };
    let mid = answer.len() / 2;
    let mid = (mid..=answer.len())
        .find(|i| answer.is_char_boundary(*i))
        .unwrap_or(answer.len());
    let pieces = [&answer[..mid], &answer[mid..]];
    for (i, piece) in pieces.into_iter().filter(|p| !p.is_empty()).enumerate() {
        events.push((
            "message.output.delta",
            json!({"type": "message.output.delta", "created_at": NOW, "output_index": 0,
                   "id": out["id"], "content_index": i, "model": out["model"],
                   "role": "assistant", "content": piece}),
        ));
    }
    match scenario {
        "conversation-error" => events.push((
            "conversation.response.error",
            json!({"type": "conversation.response.error", "created_at": NOW,
                   "message": "the model failed", "code": 3000}),
        )),
        "stream-truncated" => {}
        _ => events.push((
            "conversation.response.done",
            json!({"type": "conversation.response.done", "created_at": NOW, "usage": usage()}),
        )),
    }
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(AxumBody::from(body))
        .unwrap()
}

fn conversation_meta(state: &State, json: &Value) -> Value {
    let mut meta = Map::new();
    meta.insert("object".into(), json!("conversation"));
    meta.insert("id".into(), json!(state.id("conv")));
    meta.insert("created_at".into(), json!(NOW));
    meta.insert("updated_at".into(), json!(NOW));
    for key in [
        "name",
        "description",
        "metadata",
        "instructions",
        "tools",
        "completion_args",
        "guardrails",
        "agent_id",
        "agent_version",
        "model",
    ] {
        if let Some(v) = json.get(key).filter(|v| !v.is_null()) {
            meta.insert(key.into(), v.clone());
        }
    }
    if !meta.contains_key("agent_id") && !meta.contains_key("model") {
        meta.insert("model".into(), json!("mistral-medium-latest"));
    }
    Value::Object(meta)
}

fn conversations(state: &State, rec: &RecordedRequest, json: &Value, scenario: &str) -> Response {
    let segs: Vec<&str> = rec.path.trim_start_matches('/').split('/').collect();
    let id = segs.get(2).map(|s| super::fake::percent_decode(s));
    match (rec.method.as_str(), &segs[2..]) {
        ("POST", []) => {
            if json.get("inputs").is_none() {
                return unprocessable("inputs: field required");
            }
            let meta = conversation_meta(state, json);
            let id = meta["id"].as_str().unwrap().to_owned();
            state.conversations.lock().unwrap().push(Conversation {
                meta,
                entries: Vec::new(),
            });
            turn(state, &id, json, scenario)
        }
        ("GET", []) => {
            let q = query(rec);
            let (page, size) = page_of(&q, 100);
            let all: Vec<Value> = state
                .conversations
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.meta.clone())
                .collect();
            json_response(200, Value::Array(paged(&all, page, size)))
        }
        (method, [_, rest @ ..]) => {
            let id = id.unwrap_or_default();
            let found = state
                .conversations
                .lock()
                .unwrap()
                .iter()
                .find(|c| c.meta["id"] == id.as_str())
                .map(|c| (c.meta.clone(), c.entries.clone()));
            let Some((meta, entries)) = found else {
                return not_found("conversation", &id);
            };
            match (method, rest) {
                ("GET", []) => json_response(200, meta),
                ("DELETE", []) => {
                    state
                        .conversations
                        .lock()
                        .unwrap()
                        .retain(|c| c.meta["id"] != id.as_str());
                    no_content()
                }
                ("POST", []) => turn(state, &id, json, scenario),
                ("GET", ["history"]) => json_response(
                    200,
                    json!({"object": "conversation.history", "conversation_id": id, "entries": entries}),
                ),
                ("GET", ["messages"]) => {
                    let messages: Vec<Value> = entries
                        .into_iter()
                        .filter(|e| {
                            matches!(e["type"].as_str(), Some("message.input" | "message.output"))
                        })
                        .collect();
                    json_response(
                        200,
                        json!({"object": "conversation.messages", "conversation_id": id, "messages": messages}),
                    )
                }
                ("POST", ["restart"]) => {
                    let Some(from) = json.get("from_entry_id").and_then(Value::as_str) else {
                        return unprocessable("from_entry_id: field required");
                    };
                    let Some(pos) = entries.iter().position(|e| e["id"] == from) else {
                        return not_found("entry", from);
                    };
                    let mut new_meta = meta.clone();
                    new_meta["id"] = json!(state.id("conv"));
                    let new_id = new_meta["id"].as_str().unwrap().to_owned();
                    state.conversations.lock().unwrap().push(Conversation {
                        meta: new_meta,
                        entries: entries[..pos].to_vec(),
                    });
                    turn(state, &new_id, json, scenario)
                }
                _ => json_response(405, json!({"detail": "Method Not Allowed"})),
            }
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}

impl State {
    /// A fresh UUID-shaped id (libraries and documents use UUIDs).
    pub(super) fn new_uuid(&self) -> String {
        self.uuid()
    }
}
