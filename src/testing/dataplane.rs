//! The fake's data-plane endpoints: files, batch jobs, fine-tuned model management,
//! audio transcriptions, speech and voices, with in-memory state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body as AxumBody;
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::fake::RecordedRequest;
use crate::cache::multipart::{FormPart, boundary, parse_form};

/// The in-memory state behind the data-plane endpoints.
#[derive(Default)]
pub(super) struct State {
    next_id: AtomicU64,
    files: Mutex<Vec<(Value, Bytes)>>,
    batches: Mutex<Vec<Batch>>,
    voices: Mutex<Option<Vec<Value>>>,
}

struct Batch {
    job: Value,
    /// `(custom_id, body)` of every request.
    requests: Vec<(Option<String>, Value)>,
}

const CREATED: u64 = 1_780_000_000;

impl State {
    fn id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    fn store_file(
        &self,
        filename: &str,
        purpose: &str,
        sample_type: &str,
        source: &str,
        content: Bytes,
    ) -> Value {
        let lines = content
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        let meta = json!({
            "id": self.id(),
            "object": "file",
            "bytes": content.len(),
            "created_at": CREATED,
            "filename": filename,
            "purpose": purpose,
            "sample_type": sample_type,
            "num_lines": if filename.ends_with(".jsonl") { json!(lines) } else { Value::Null },
            "mimetype": crate::multipart::guess_content_type(filename),
            "source": source,
            "signature": null,
        });
        self.files.lock().unwrap().push((meta.clone(), content));
        meta
    }

    fn file(&self, id: &str) -> Option<(Value, Bytes)> {
        self.files
            .lock()
            .unwrap()
            .iter()
            .find(|(m, _)| m["id"] == id)
            .cloned()
    }
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(AxumBody::from(body.to_string()))
        .unwrap()
}

fn not_found(what: &str, id: &str) -> Response {
    json_response(404, json!({"detail": format!("{what} not found: {id}")}))
}

fn unprocessable(msg: &str) -> Response {
    json_response(
        422,
        json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": msg, "input": null}]}),
    )
}

/// The query parameters, percent-decoded, in order.
fn query(rec: &RecordedRequest) -> Vec<(String, String)> {
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

fn q1(q: &[(String, String)], name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn qn(q: &[(String, String)], name: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn form(rec: &RecordedRequest) -> Option<Vec<FormPart<'_>>> {
    let ct = rec.headers.get(header::CONTENT_TYPE)?;
    parse_form(&boundary(ct)?, &rec.body)
}

fn field<'a>(parts: &'a [FormPart<'a>], name: &str) -> Option<&'a FormPart<'a>> {
    parts.iter().find(|p| p.name == name)
}

fn text(parts: &[FormPart<'_>], name: &str) -> Option<String> {
    field(parts, name).map(|p| String::from_utf8_lossy(p.data).into_owned())
}

/// Pages `items` by `page` / `page_size`.
fn paged(items: Vec<Value>, q: &[(String, String)]) -> (Vec<Value>, usize) {
    let total = items.len();
    let page: usize = q1(q, "page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let size: usize = q1(q, "page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100);
    (
        items.into_iter().skip(page * size).take(size).collect(),
        total,
    )
}

/// Answers a data-plane request, or `None` for other paths.
pub(super) fn endpoint(
    state: &State,
    rec: &RecordedRequest,
    body: &Value,
    scenario: &str,
) -> Option<Response> {
    let path = rec.path.as_str();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = rec.method.as_str();
    let res = match (method, segs.as_slice()) {
        ("POST", ["v1", "files"]) => upload(state, rec),
        ("GET", ["v1", "files"]) => list_files(state, rec),
        ("GET", ["v1", "files", id]) => match state.file(id) {
            Some((mut m, _)) => {
                m["deleted"] = json!(false);
                json_response(200, m)
            }
            None => not_found("File", id),
        },
        ("DELETE", ["v1", "files", id]) => {
            let mut files = state.files.lock().unwrap();
            let before = files.len();
            files.retain(|(m, _)| m["id"] != *id);
            if files.len() == before {
                not_found("File", id)
            } else if scenario == "delete-204" {
                Response::builder()
                    .status(204)
                    .body(AxumBody::empty())
                    .unwrap()
            } else {
                json_response(200, json!({"id": id, "object": "file", "deleted": true}))
            }
        }
        ("GET", ["v1", "files", id, "content"]) => match state.file(id) {
            Some((_, content)) => {
                let chunks: Vec<Result<Bytes, std::io::Error>> = content
                    .chunks(16 * 1024)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                Response::builder()
                    .status(200)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, content.len())
                    .body(AxumBody::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap()
            }
            None => not_found("File", id),
        },
        ("GET", ["v1", "files", id, "url"]) => match state.file(id) {
            Some(_) => {
                let expiry = q1(&query(rec), "expiry").unwrap_or_else(|| "24".into());
                json_response(
                    200,
                    json!({"url": format!("https://files.fake.invalid/{id}?expiry={expiry}h&sig=fake")}),
                )
            }
            None => not_found("File", id),
        },
        ("PATCH", ["v1", "fine_tuning", "models", id]) => json_response(
            200,
            json!({
                "id": id, "object": "model", "created": CREATED, "owned_by": "org-1",
                "workspace_id": "ws-1", "root": "open-mistral-7b", "root_version": "0.1",
                "archived": false, "name": body.get("name"), "description": body.get("description"),
                "capabilities": {"completion_chat": true, "completion_fim": false, "function_calling": false,
                                 "fine_tuning": false, "classification": false},
                "max_context_length": 32768, "aliases": [], "job": null, "model_type": "completion",
            }),
        ),
        ("POST" | "DELETE", ["v1", "fine_tuning", "models", id, "archive"]) => json_response(
            200,
            json!({"id": id, "object": "model", "archived": method == "POST"}),
        ),
        ("POST", ["v1", "batch", "jobs"]) => create_batch(state, body),
        ("GET", ["v1", "batch", "jobs"]) => list_batches(state, rec),
        ("GET", ["v1", "batch", "jobs", id]) => get_batch(state, id, rec),
        ("DELETE", ["v1", "batch", "jobs", id]) => {
            let mut batches = state.batches.lock().unwrap();
            let before = batches.len();
            batches.retain(|b| b.job["id"] != *id);
            if batches.len() == before {
                not_found("Batch job", id)
            } else {
                json_response(200, json!({"id": id, "object": "batch", "deleted": true}))
            }
        }
        ("POST", ["v1", "batch", "jobs", id, "cancel"]) => {
            let mut batches = state.batches.lock().unwrap();
            match batches.iter_mut().find(|b| b.job["id"] == *id) {
                Some(b) => {
                    b.job["status"] = json!("CANCELLATION_REQUESTED");
                    json_response(200, b.job.clone())
                }
                None => not_found("Batch job", id),
            }
        }
        ("POST", ["v1", "audio", "transcriptions"]) => transcribe(rec, scenario),
        ("POST", ["v1", "audio", "speech"]) => speech(body),
        ("GET", ["v1", "audio", "voices"]) => {
            let q = query(rec);
            let limit: usize = q1(&q, "limit").and_then(|v| v.parse().ok()).unwrap_or(10);
            let offset: usize = q1(&q, "offset").and_then(|v| v.parse().ok()).unwrap_or(0);
            let kind = q1(&q, "type").unwrap_or_else(|| "all".into());
            let voices = voices(state);
            let all: Vec<Value> = voices
                .iter()
                .filter(|v| match kind.as_str() {
                    "preset" => v["user_id"].is_null(),
                    "custom" => !v["user_id"].is_null(),
                    _ => true,
                })
                .cloned()
                .collect();
            let total = all.len();
            let items: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
            json_response(
                200,
                json!({"items": items, "total": total, "page": offset / limit.max(1),
                       "page_size": limit, "total_pages": total.div_ceil(limit.max(1))}),
            )
        }
        ("POST", ["v1", "audio", "voices"]) => {
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                return Some(unprocessable("name is required"));
            };
            let v = json!({
                "name": name, "slug": body.get("slug"), "languages": body.get("languages").cloned().unwrap_or(json!([])),
                "gender": body.get("gender"), "age": body.get("age"), "tags": body.get("tags"),
                "color": body.get("color"), "description": body.get("description"),
                "retention_notice": body.get("retention_notice").cloned().unwrap_or(json!(30)),
                "id": state.id(), "created_at": "2026-01-01T00:00:00Z", "user_id": "user-1",
                "trimmed_seconds": 4.5,
            });
            voices(state);
            state
                .voices
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .push(v.clone());
            json_response(200, v)
        }
        ("GET" | "PATCH" | "DELETE", ["v1", "audio", "voices", id]) => {
            voices(state);
            let mut guard = state.voices.lock().unwrap();
            let list = guard.as_mut().unwrap();
            let Some(i) = list.iter().position(|v| v["id"] == *id) else {
                return Some(not_found("Voice", id));
            };
            match method {
                "GET" => json_response(200, list[i].clone()),
                "PATCH" => {
                    if let Some(obj) = body.as_object() {
                        for (k, v) in obj {
                            list[i][k] = v.clone();
                        }
                    }
                    json_response(200, list[i].clone())
                }
                _ => {
                    let v = list.remove(i);
                    if scenario == "delete-204" {
                        Response::builder()
                            .status(204)
                            .body(AxumBody::empty())
                            .unwrap()
                    } else {
                        json_response(200, v)
                    }
                }
            }
        }
        ("GET", ["v1", "audio", "voices", id, "sample"]) => {
            if !voices(state).iter().any(|v| v["id"] == *id) {
                return Some(not_found("Voice", id));
            }
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "audio/wav")
                .body(AxumBody::from(format!("RIFF....WAVEfake sample of {id}")))
                .unwrap()
        }
        _ => return None,
    };
    Some(res)
}

fn voices(state: &State) -> Vec<Value> {
    let mut guard = state.voices.lock().unwrap();
    guard
        .get_or_insert_with(|| {
            ["Ada", "Bruno", "Chloé"]
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    json!({
                        "name": name, "slug": name.to_lowercase(), "languages": ["en", "fr"],
                        "gender": null, "age": null, "tags": ["preset"], "color": null,
                        "description": format!("Preset voice {name}"), "retention_notice": 30,
                        "id": format!("00000000-0000-4000-9000-{i:012x}"),
                        "created_at": "2026-01-01T00:00:00Z", "user_id": null, "trimmed_seconds": null,
                    })
                })
                .collect()
        })
        .clone()
}

fn upload(state: &State, rec: &RecordedRequest) -> Response {
    let Some(parts) = form(rec) else {
        return unprocessable("expected a multipart/form-data body");
    };
    let Some(file) = field(&parts, "file") else {
        return unprocessable("file is required");
    };
    let purpose = text(&parts, "purpose").unwrap_or_else(|| "fine-tune".into());
    let filename = file.filename.clone().unwrap_or_else(|| "upload".into());
    let sample_type = match purpose.as_str() {
        "batch" => "batch_request",
        _ => "instruct",
    };
    let mut meta = state.store_file(
        &filename,
        &purpose,
        sample_type,
        "upload",
        Bytes::copy_from_slice(file.data),
    );
    if let Some(v) = text(&parts, "visibility") {
        meta["visibility"] = json!(v);
    }
    json_response(200, meta)
}

fn list_files(state: &State, rec: &RecordedRequest) -> Response {
    let q = query(rec);
    let purpose = q1(&q, "purpose");
    let search = q1(&q, "search");
    let sample_types = qn(&q, "sample_type");
    let sources = qn(&q, "source");
    let mimetypes = qn(&q, "mimetypes");
    let items: Vec<Value> = state
        .files
        .lock()
        .unwrap()
        .iter()
        .map(|(m, _)| m.clone())
        .filter(|m| purpose.as_ref().is_none_or(|p| m["purpose"] == p.as_str()))
        .filter(|m| {
            search
                .as_ref()
                .is_none_or(|s| m["filename"].as_str().unwrap_or("").contains(s.as_str()))
        })
        .filter(|m| {
            sample_types.is_empty() || sample_types.iter().any(|s| m["sample_type"] == s.as_str())
        })
        .filter(|m| sources.is_empty() || sources.iter().any(|s| m["source"] == s.as_str()))
        .filter(|m| mimetypes.is_empty() || mimetypes.iter().any(|s| m["mimetype"] == s.as_str()))
        .collect();
    let (data, total) = paged(items, &q);
    let total = if q1(&q, "include_total").as_deref() == Some("false") {
        Value::Null
    } else {
        json!(total)
    };
    json_response(200, json!({"data": data, "object": "list", "total": total}))
}

fn create_batch(state: &State, body: &Value) -> Response {
    let Some(endpoint) = body.get("endpoint").and_then(Value::as_str) else {
        return unprocessable("endpoint is required");
    };
    let mut requests = Vec::new();
    let input_files: Vec<String> = body
        .get("input_files")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for id in &input_files {
        let Some((_, content)) = state.file(id) else {
            return not_found("File", id);
        };
        for line in content
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                return unprocessable("an input line is not JSON");
            };
            requests.push((
                v["custom_id"].as_str().map(str::to_owned),
                v["body"].clone(),
            ));
        }
    }
    if let Some(inline) = body.get("requests").and_then(Value::as_array) {
        for r in inline {
            requests.push((
                r["custom_id"].as_str().map(str::to_owned),
                r["body"].clone(),
            ));
        }
    }
    let job = json!({
        "id": state.id(), "object": "batch", "input_files": input_files,
        "metadata": body.get("metadata"), "endpoint": endpoint, "model": body.get("model"),
        "agent_id": body.get("agent_id"), "output_file": null, "error_file": null, "errors": [],
        "outputs": null, "status": "QUEUED", "created_at": CREATED, "total_requests": requests.len(),
        "completed_requests": 0, "succeeded_requests": 0, "failed_requests": 0,
        "started_at": null, "completed_at": null,
    });
    state.batches.lock().unwrap().push(Batch {
        job: job.clone(),
        requests,
    });
    json_response(200, job)
}

fn list_batches(state: &State, rec: &RecordedRequest) -> Response {
    let q = query(rec);
    let statuses = qn(&q, "status");
    let model = q1(&q, "model");
    let mut items: Vec<Value> = state
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.job.clone())
        .filter(|j| statuses.is_empty() || statuses.iter().any(|s| j["status"] == s.as_str()))
        .filter(|j| model.as_ref().is_none_or(|m| j["model"] == m.as_str()))
        .collect();
    if q1(&q, "order_by").as_deref() != Some("created") {
        items.reverse();
    }
    let (data, total) = paged(items, &q);
    json_response(200, json!({"data": data, "object": "list", "total": total}))
}

/// The answer of one batch request.
fn batch_answer(endpoint: &str, body: &Value, i: usize) -> Value {
    match endpoint {
        "/v1/embeddings" => json!({
            "id": format!("emb-{i}"), "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "embedding": [0.1, 0.2, 0.3], "index": 0}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
        }),
        _ => {
            let question = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
                .unwrap_or("");
            json!({
                "id": format!("cmpl-batch-{i}"), "object": "chat.completion", "created": CREATED,
                "model": body.get("model").cloned().unwrap_or(json!("mistral-small-latest")),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Answer {i}: {question}"),
                             "tool_calls": null, "prefix": false}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            })
        }
    }
}

fn get_batch(state: &State, id: &str, rec: &RecordedRequest) -> Response {
    let inline = q1(&query(rec), "inline").as_deref() == Some("true");
    let mut batches = state.batches.lock().unwrap();
    let Some(b) = batches.iter_mut().find(|b| b.job["id"] == id) else {
        return not_found("Batch job", id);
    };
    // Each look moves the job on: QUEUED, RUNNING, then done.
    match b.job["status"].as_str().unwrap_or("") {
        "QUEUED" => {
            b.job["status"] = json!("RUNNING");
            b.job["started_at"] = json!(CREATED + 1);
        }
        "RUNNING" => {
            let endpoint = b.job["endpoint"].as_str().unwrap_or("").to_owned();
            let (mut out, mut err, mut outputs) = (String::new(), String::new(), Vec::new());
            let (mut ok, mut failed) = (0, 0);
            for (i, (custom_id, body)) in b.requests.iter().enumerate() {
                let line = if custom_id.as_deref().is_some_and(|c| c.starts_with("fail")) {
                    failed += 1;
                    let l = json!({"id": format!("batch-{id}-{i}"), "custom_id": custom_id, "response": {"status_code": 400, "body": {"object": "error", "message": "Invalid request", "type": "invalid_request_error", "param": null, "code": "3051"}}, "error": null});
                    err.push_str(&format!("{l}\n"));
                    l
                } else {
                    ok += 1;
                    let l = json!({"id": format!("batch-{id}-{i}"), "custom_id": custom_id, "response": {"status_code": 200, "body": batch_answer(&endpoint, body, i)}, "error": null});
                    out.push_str(&format!("{l}\n"));
                    l
                };
                outputs.push(line);
            }
            drop(batches);
            let output = state.store_file(
                &format!("{id}.jsonl"),
                "batch",
                "batch_result",
                "mistral",
                out.into(),
            );
            let error = (failed > 0).then(|| {
                state.store_file(
                    &format!("{id}_error.jsonl"),
                    "batch",
                    "batch_error",
                    "mistral",
                    err.into(),
                )
            });
            batches = state.batches.lock().unwrap();
            let b = batches
                .iter_mut()
                .find(|b| b.job["id"] == id)
                .expect("still there");
            b.job["status"] = json!("SUCCESS");
            b.job["output_file"] = output["id"].clone();
            b.job["error_file"] = error.map_or(Value::Null, |e| e["id"].clone());
            b.job["completed_requests"] = json!(ok + failed);
            b.job["succeeded_requests"] = json!(ok);
            b.job["failed_requests"] = json!(failed);
            b.job["completed_at"] = json!(CREATED + 2);
            b.job["outputs"] = json!(outputs);
        }
        "CANCELLATION_REQUESTED" => b.job["status"] = json!("CANCELLED"),
        _ => {}
    }
    let b = batches
        .iter()
        .find(|b| b.job["id"] == id)
        .expect("found above");
    let mut job = b.job.clone();
    if !inline {
        job["outputs"] = Value::Null;
    }
    json_response(200, job)
}

fn transcription_text(parts: &[FormPart<'_>]) -> String {
    if let Some(f) = field(parts, "file") {
        // FNV-1a: different audio, different text
        let sum = f.data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!(
            "Transcript of {} ({} bytes, checksum {sum}).",
            f.filename.as_deref().unwrap_or("audio"),
            f.data.len()
        )
    } else if let Some(url) = text(parts, "file_url") {
        format!("Transcript of {url}.")
    } else if let Some(id) = text(parts, "file_id") {
        format!("Transcript of file {id}.")
    } else {
        String::new()
    }
}

fn transcribe(rec: &RecordedRequest, scenario: &str) -> Response {
    let Some(parts) = form(rec) else {
        return unprocessable("expected a multipart/form-data body");
    };
    let Some(model) = text(&parts, "model") else {
        return unprocessable("model is required");
    };
    let sources = ["file", "file_url", "file_id"]
        .iter()
        .filter(|n| field(&parts, n).is_some())
        .count();
    if sources != 1 {
        return unprocessable("exactly one of file, file_url and file_id is required");
    }
    let text_all = transcription_text(&parts);
    let language = text(&parts, "language");
    let words: Vec<&str> = text_all.split(' ').collect();
    let segments = if parts.iter().any(|p| p.name == "timestamp_granularities") {
        json!([{"type": "transcription_segment", "text": text_all, "start": 0.0, "end": 1.5, "score": null, "speaker_id": null}])
    } else {
        json!([])
    };
    let usage = json!({"prompt_tokens": 4, "completion_tokens": words.len(), "total_tokens": 4 + words.len(), "prompt_audio_seconds": 2});
    let done = json!({"model": model, "text": text_all, "language": language, "segments": segments, "usage": usage});
    if text(&parts, "stream").as_deref() != Some("true") {
        return json_response(200, done);
    }
    let mut events = vec![format!(
        "event: transcription.language\ndata: {}\n\n",
        json!({"type": "transcription.language", "audio_language": language.clone().unwrap_or_else(|| "en".into())})
    )];
    for (i, w) in words.iter().enumerate() {
        let delta = if i == 0 {
            (*w).to_owned()
        } else {
            format!(" {w}")
        };
        events.push(format!(
            "event: transcription.text.delta\ndata: {}\n\n",
            json!({"type": "transcription.text.delta", "text": delta})
        ));
    }
    let mut done = done;
    done["type"] = json!("transcription.done");
    let done_event = format!("event: transcription.done\ndata: {done}\n\n");
    let chunks: Vec<Result<Bytes, std::io::Error>> = match scenario {
        "stream-truncated" => events
            .into_iter()
            .take(2)
            .map(|e| Ok(Bytes::from(e)))
            .collect(),
        "stream-abort" => events
            .into_iter()
            .take(2)
            .map(|e| Ok(Bytes::from(e)))
            .chain(std::iter::once(Err(std::io::Error::other("fake abort"))))
            .collect(),
        _ => events
            .into_iter()
            .chain(std::iter::once(done_event))
            .map(|e| Ok(Bytes::from(e)))
            .collect(),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(AxumBody::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

fn speech(body: &Value) -> Response {
    let Some(input) = body.get("input").and_then(Value::as_str) else {
        return unprocessable("input is required");
    };
    let audio = format!("RIFF....WAVEfake speech: {input}");
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_response(200, json!({"audio_data": b64(audio.as_bytes())}));
    }
    let bytes = audio.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(8) {
        out.push_str(&format!(
            "event: speech.audio.delta\ndata: {}\n\n",
            json!({"type": "speech.audio.delta", "audio_data": b64(chunk)})
        ));
    }
    out.push_str(&format!(
        "event: speech.audio.done\ndata: {}\n\n",
        json!({"type": "speech.audio.done", "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}})
    ));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(AxumBody::from(out))
        .unwrap()
}
