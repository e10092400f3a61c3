//! The fake's registries: agents (with versions and aliases), libraries with their
//! documents and accesses, and prompts (`/v2/prompts`) with versions.

use axum::http::header;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::beta::{
    State, json_response, no_content, not_found, page_of, paged, q1, query, unprocessable,
};
use super::fake::{RecordedRequest, percent_decode};
use crate::cache::multipart::{boundary, parse_form};

const NOW: &str = "2026-01-01T00:00:00Z";

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect()
}

fn merge(into: &mut Value, from: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

// ---------------------------------------------------------------- agents

/// Version `n` of an agent `(current, snapshots)`.
fn view(entry: &(u64, Vec<Value>), n: u64) -> Option<Value> {
    let mut a = entry.1.get(n as usize)?.clone();
    a["version"] = json!(n);
    a["versions"] = json!((0..entry.1.len() as u64).collect::<Vec<_>>());
    Some(a)
}

fn current(entry: &(u64, Vec<Value>)) -> Value {
    view(entry, entry.0).unwrap()
}

pub(super) fn agents(state: &State, rec: &RecordedRequest, json: &Value) -> Response {
    let segs = segments(&rec.path);
    let q = query(rec);
    let mut agents = state.agents.lock().unwrap();
    match (rec.method.as_str(), &segs[2..]) {
        ("POST", []) => {
            if json.get("model").is_none() || json.get("name").is_none() {
                return unprocessable("model, name: field required");
            }
            let mut a = json.clone();
            merge(
                &mut a,
                &json!({"object": "agent", "id": state.id("ag"), "created_at": NOW,
                        "updated_at": NOW, "deployment_chat": false, "source": "api"}),
            );
            agents.push((0, vec![a]));
            json_response(200, current(agents.last().unwrap()))
        }
        ("GET", []) => {
            let (page, size) = page_of(&q, 20);
            let all: Vec<Value> = agents.iter().map(current).collect();
            json_response(200, Value::Array(paged(&all, page, size)))
        }
        ("GET", [p]) if p == "pages" => {
            let size = q1(&q, "page_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20);
            let start: usize = q1(&q, "page_token")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let all: Vec<Value> = agents.iter().map(current).collect();
            let data = paged(&all[start.min(all.len())..], 0, size);
            let next = (start + size < all.len()).then(|| (start + size).to_string());
            json_response(
                200,
                json!({"object": "list", "data": data, "next_page_token": next}),
            )
        }
        (method, [id, rest @ ..]) => {
            let Some(idx) = agents.iter().position(|v| v.1[0]["id"] == id.as_str()) else {
                return not_found("agent", id);
            };
            match (method, rest) {
                ("GET", []) => match q1(&q, "agent_version") {
                    Some(v) => version_of(&agents[idx], &v, state, id)
                        .unwrap_or_else(|| not_found("agent version", &v)),
                    None => json_response(200, current(&agents[idx])),
                },
                ("PATCH", []) => {
                    let mut a = current(&agents[idx]);
                    merge(&mut a, json);
                    a["updated_at"] = json!(NOW);
                    let entry = &mut agents[idx];
                    entry.1.push(a);
                    entry.0 = entry.1.len() as u64 - 1;
                    json_response(200, current(entry))
                }
                ("DELETE", []) => {
                    agents.remove(idx);
                    no_content()
                }
                ("PATCH", [v]) if v == "version" => {
                    let Some(n) = q1(&q, "version").and_then(|v| v.parse::<u64>().ok()) else {
                        return unprocessable("version: field required");
                    };
                    if n as usize >= agents[idx].1.len() {
                        return not_found("agent version", &n.to_string());
                    }
                    agents[idx].0 = n;
                    json_response(200, current(&agents[idx]))
                }
                ("GET", [v]) if v == "versions" => {
                    let (page, size) = page_of(&q, 20);
                    let entry = &agents[idx];
                    let all: Vec<Value> = (0..entry.1.len() as u64)
                        .filter_map(|n| view(entry, n))
                        .collect();
                    json_response(200, Value::Array(paged(&all, page, size)))
                }
                ("GET", [v, n]) if v == "versions" => version_of(&agents[idx], n, state, id)
                    .unwrap_or_else(|| not_found("agent version", n)),
                ("PUT", [a]) if a == "aliases" => {
                    let (Some(alias), Some(version)) = (
                        q1(&q, "alias"),
                        q1(&q, "version").and_then(|v| v.parse::<u64>().ok()),
                    ) else {
                        return unprocessable("alias, version: field required");
                    };
                    let mut aliases = state.aliases.lock().unwrap();
                    aliases.retain(|(ag, al, _)| !(ag == id && *al == alias));
                    aliases.push((id.clone(), alias.clone(), version));
                    json_response(
                        200,
                        json!({"alias": alias, "version": version, "created_at": NOW, "updated_at": NOW}),
                    )
                }
                ("GET", [a]) if a == "aliases" => {
                    let list: Vec<Value> = state
                        .aliases
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(ag, _, _)| ag == id)
                        .map(|(_, al, v)| {
                            json!({"alias": al, "version": v, "created_at": NOW, "updated_at": NOW})
                        })
                        .collect();
                    json_response(200, Value::Array(list))
                }
                ("DELETE", [a]) if a == "aliases" => {
                    let Some(alias) = q1(&q, "alias") else {
                        return unprocessable("alias: field required");
                    };
                    state
                        .aliases
                        .lock()
                        .unwrap()
                        .retain(|(ag, al, _)| !(ag == id && *al == alias));
                    no_content()
                }
                _ => json_response(405, json!({"detail": "Method Not Allowed"})),
            }
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}

/// One version of an agent, by number or alias.
fn version_of(entry: &(u64, Vec<Value>), v: &str, state: &State, id: &str) -> Option<Response> {
    let n = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            state
                .aliases
                .lock()
                .unwrap()
                .iter()
                .find(|(ag, al, _)| ag == id && al == v)?
                .2
        }
    };
    Some(json_response(200, view(entry, n)?))
}

// ---------------------------------------------------------------- prompts

/// Every prompt is a list of versions; the first holds the prompt's own fields.
fn prompt_at(versions: &[Value], n: usize) -> Value {
    let mut p = versions[0].clone();
    let v = &versions[n];
    for key in ["definition", "notes", "aliases", "createdAt"] {
        match v.get(key) {
            Some(x) => p[key] = x.clone(),
            None => {
                if let Value::Object(m) = &mut p {
                    m.remove(key);
                }
            }
        }
    }
    p["version"] = json!(n + 1);
    p["latestVersion"] = json!(versions.len());
    p
}

pub(super) fn prompts(state: &State, rec: &RecordedRequest, json: &Value) -> Response {
    let segs = segments(&rec.path);
    let q = query(rec);
    let mut prompts = state.prompts.lock().unwrap();
    match (rec.method.as_str(), &segs[2..]) {
        ("POST", []) => {
            if json.get("name").is_none() || json.get("definition").is_none() {
                return unprocessable("name, definition: field required");
            }
            let mut p = json.clone();
            merge(
                &mut p,
                &json!({"id": state.new_uuid(), "createdAt": NOW, "updatedAt": NOW}),
            );
            prompts.push(vec![p]);
            json_response(200, prompt_at(prompts.last().unwrap(), 0))
        }
        ("GET", []) => {
            let size = q1(&q, "pageSize")
                .and_then(|v| v.parse().ok())
                .unwrap_or(50);
            let start: usize = q1(&q, "pageToken")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let all: Vec<Value> = prompts.iter().map(|v| prompt_at(v, v.len() - 1)).collect();
            let data = paged(&all[start.min(all.len())..], 0, size);
            let mut body = json!({"data": data});
            if start + size < all.len() {
                body["nextPageToken"] = json!((start + size).to_string());
            }
            json_response(200, body)
        }
        (method, [id, rest @ ..]) => {
            let Some(idx) = prompts.iter().position(|v| v[0]["id"] == id.as_str()) else {
                return not_found("prompt", id);
            };
            let latest = prompts[idx].len() - 1;
            match (method, rest) {
                ("GET", []) => {
                    let n = if let Some(v) = q1(&q, "version") {
                        match v.parse::<usize>() {
                            Ok(n) if n >= 1 && n <= prompts[idx].len() => n - 1,
                            _ => return not_found("prompt version", &v),
                        }
                    } else if let Some(a) = q1(&q, "alias") {
                        match prompts[idx].iter().position(|v| {
                            v["aliases"]
                                .as_array()
                                .is_some_and(|l| l.iter().any(|x| x == a.as_str()))
                        }) {
                            Some(n) => n,
                            None => return not_found("prompt alias", &a),
                        }
                    } else {
                        latest
                    };
                    json_response(200, prompt_at(&prompts[idx], n))
                }
                ("PATCH", []) => {
                    merge(&mut prompts[idx][0], json);
                    json_response(200, prompt_at(&prompts[idx], latest))
                }
                ("DELETE", []) => {
                    prompts.remove(idx);
                    json_response(200, json!({}))
                }
                ("GET", [v]) if v == "versions" => {
                    let data: Vec<Value> = (0..prompts[idx].len())
                        .map(|n| {
                            let p = prompt_at(&prompts[idx], n);
                            let mut out = Map::new();
                            for key in ["version", "definition", "notes", "aliases", "createdAt"] {
                                if let Some(x) = p.get(key) {
                                    out.insert(key.into(), x.clone());
                                }
                            }
                            Value::Object(out)
                        })
                        .collect();
                    json_response(200, json!({"data": data}))
                }
                ("POST", [v]) if v == "versions" => {
                    let Some(def) = json.get("definition") else {
                        return unprocessable("definition: field required");
                    };
                    if let Some(n) = prompts[idx].iter().position(|v| &v["definition"] == def) {
                        return json_response(200, json!({"version": n + 1, "deduplicated": true}));
                    }
                    let mut v = json.clone();
                    v["createdAt"] = json!(NOW);
                    prompts[idx].push(v);
                    json_response(
                        200,
                        json!({"version": prompts[idx].len(), "deduplicated": false}),
                    )
                }
                (m, [v, n]) if v == "versions" => {
                    let Some(n) = n
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 1 && *n <= prompts[idx].len())
                    else {
                        return not_found("prompt version", n);
                    };
                    if m == "PATCH" {
                        let v = &mut prompts[idx][n - 1];
                        if let Some(notes) = json.get("notes") {
                            v["notes"] = notes.clone();
                        }
                        if let Some(values) = json.get("aliases").and_then(|a| a.get("values")) {
                            v["aliases"] = values.clone();
                        }
                    } else if m != "GET" {
                        return json_response(405, json!({"detail": "Method Not Allowed"}));
                    }
                    json_response(200, prompt_at(&prompts[idx], n - 1))
                }
                _ => json_response(405, json!({"detail": "Method Not Allowed"})),
            }
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}

// ---------------------------------------------------------------- libraries

fn library_view(state: &State, lib: &Value) -> Value {
    let docs = state.documents.lock().unwrap();
    let mine: Vec<&(Value, String)> = docs
        .iter()
        .filter(|(d, _)| d["library_id"] == lib["id"])
        .collect();
    let mut l = lib.clone();
    l["nb_documents"] = json!(mine.len());
    l["total_size"] = json!(
        mine.iter()
            .map(|(d, _)| d["size"].as_u64().unwrap_or(0))
            .sum::<u64>()
    );
    l
}

fn pagination(total: usize, page: usize, size: usize) -> Value {
    let pages = if size == 0 { 0 } else { total.div_ceil(size) };
    json!({"total_items": total, "total_pages": pages, "current_page": page,
           "page_size": size, "has_more": page + 1 < pages})
}

pub(super) fn libraries(state: &State, rec: &RecordedRequest, json: &Value) -> Response {
    let segs = segments(&rec.path);
    let q = query(rec);
    match (rec.method.as_str(), &segs[2..]) {
        ("POST", []) => {
            let Some(name) = json.get("name") else {
                return unprocessable("name: field required");
            };
            let lib = json!({
                "id": state.new_uuid(), "name": name, "created_at": NOW, "updated_at": NOW,
                "owner_id": state.new_uuid(),
                "owner_type": json.get("owner_type").cloned().unwrap_or(json!("Workspace")),
                "total_size": 0, "nb_documents": 0,
                "chunk_size": json.get("chunk_size").cloned().unwrap_or(Value::Null),
                "description": json.get("description").cloned().unwrap_or(Value::Null),
            });
            state.libraries.lock().unwrap().push(lib.clone());
            json_response(201, lib)
        }
        ("GET", []) => {
            let (page, size) = page_of(&q, 100);
            let search = q1(&q, "search");
            let all: Vec<Value> = state
                .libraries
                .lock()
                .unwrap()
                .iter()
                .filter(|l| {
                    search
                        .as_deref()
                        .is_none_or(|s| l["name"].as_str().unwrap_or("").contains(s))
                })
                .map(|l| library_view(state, l))
                .collect();
            json_response(
                200,
                json!({"data": paged(&all, page, size), "pagination": pagination(all.len(), page, size)}),
            )
        }
        (method, [id, rest @ ..]) => {
            let lib = state
                .libraries
                .lock()
                .unwrap()
                .iter()
                .find(|l| l["id"] == id.as_str())
                .cloned();
            let Some(lib) = lib else {
                return not_found("library", id);
            };
            match (method, rest) {
                ("GET", []) => json_response(200, library_view(state, &lib)),
                ("PATCH" | "PUT", []) => {
                    let mut libs = state.libraries.lock().unwrap();
                    let l = libs.iter_mut().find(|l| l["id"] == id.as_str()).unwrap();
                    if method == "PUT" {
                        l["description"] = Value::Null;
                    }
                    merge(l, json);
                    l["updated_at"] = json!(NOW);
                    let l = l.clone();
                    drop(libs);
                    json_response(200, library_view(state, &l))
                }
                ("DELETE", []) => {
                    let view = library_view(state, &lib);
                    state
                        .libraries
                        .lock()
                        .unwrap()
                        .retain(|l| l["id"] != id.as_str());
                    state
                        .documents
                        .lock()
                        .unwrap()
                        .retain(|(d, _)| d["library_id"] != id.as_str());
                    json_response(200, view)
                }
                (_, [s]) if s == "share" => share(state, method, id, json),
                (_, [d, rest @ ..]) if d == "documents" => {
                    documents(state, rec, method, id, rest, &q, json)
                }
                _ => json_response(405, json!({"detail": "Method Not Allowed"})),
            }
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}

fn share(state: &State, method: &str, lib: &str, json: &Value) -> Response {
    let mut shares = state.shares.lock().unwrap();
    let org = "00000000-0000-4000-a000-000000000001";
    match method {
        "GET" => {
            let data: Vec<Value> = shares
                .iter()
                .filter(|s| s["library_id"] == lib)
                .cloned()
                .collect();
            json_response(200, json!({"data": data}))
        }
        "PUT" | "DELETE" => {
            let (Some(uuid), Some(kind)) =
                (json.get("share_with_uuid"), json.get("share_with_type"))
            else {
                return unprocessable("share_with_uuid, share_with_type: field required");
            };
            let s = json!({
                "library_id": lib,
                "user_id": if kind == "User" { uuid.clone() } else { Value::Null },
                "org_id": json.get("org_id").filter(|v| !v.is_null()).cloned().unwrap_or(json!(org)),
                "role": json.get("level").cloned().unwrap_or(json!("Viewer")),
                "share_with_type": kind,
                "share_with_uuid": uuid,
            });
            shares.retain(|x| !(x["library_id"] == lib && x["share_with_uuid"] == *uuid));
            if method == "PUT" {
                shares.push(s.clone());
            }
            json_response(200, s)
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}

fn documents(
    state: &State,
    rec: &RecordedRequest,
    method: &str,
    lib: &str,
    rest: &[String],
    q: &[(String, String)],
    json: &Value,
) -> Response {
    let mut docs = state.documents.lock().unwrap();
    match (method, rest) {
        ("POST", []) => {
            let parts = rec
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(boundary)
                .and_then(|b| parse_form(&b, &rec.body));
            let Some(file) = parts
                .as_ref()
                .and_then(|p| p.iter().find(|p| p.name == "file" && p.filename.is_some()))
            else {
                return unprocessable("file: field required");
            };
            let name = file.filename.clone().unwrap_or_default();
            let ext = name.rsplit_once('.').map(|(_, e)| e.to_owned());
            let doc = json!({
                "id": state.new_uuid(), "library_id": lib, "hash": format!("{:016x}", file.data.len()),
                "mime_type": crate::multipart::guess_content_type(&name), "extension": ext,
                "size": file.data.len(), "name": name, "summary": null, "created_at": NOW,
                "last_processed_at": NOW, "number_of_pages": 1, "process_status": "done",
                "uploaded_by_id": null, "uploaded_by_type": "User",
                "processing_status": "Completed", "tokens_processing_total": 0,
            });
            docs.push((doc.clone(), String::from_utf8_lossy(file.data).into_owned()));
            json_response(200, doc)
        }
        ("GET", []) => {
            let (page, size) = page_of(q, 100);
            let search = q1(q, "search");
            let all: Vec<Value> = docs
                .iter()
                .filter(|(d, _)| d["library_id"] == lib)
                .filter(|(d, _)| {
                    search
                        .as_deref()
                        .is_none_or(|s| d["name"].as_str().unwrap_or("").contains(s))
                })
                .map(|(d, _)| d.clone())
                .collect();
            json_response(
                200,
                json!({"data": paged(&all, page, size), "pagination": pagination(all.len(), page, size)}),
            )
        }
        (method, [id, tail @ ..]) => {
            let Some(idx) = docs
                .iter()
                .position(|(d, _)| d["library_id"] == lib && d["id"] == id.as_str())
            else {
                return not_found("document", id);
            };
            let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
            match (method, tail.as_slice()) {
                ("GET", []) => json_response(200, docs[idx].0.clone()),
                ("PATCH" | "PUT", []) => {
                    merge(&mut docs[idx].0, json);
                    json_response(200, docs[idx].0.clone())
                }
                ("DELETE", []) => {
                    docs.remove(idx);
                    no_content()
                }
                ("GET", ["text_content"]) => json_response(200, json!({"text": docs[idx].1})),
                ("GET", ["status"]) => json_response(
                    200,
                    json!({"document_id": id, "process_status": docs[idx].0["process_status"],
                           "processing_status": docs[idx].0["processing_status"]}),
                ),
                ("GET", ["signed-url"]) => json_response(
                    200,
                    json!(format!("https://fake.mistral.invalid/documents/{id}?sig=1")),
                ),
                ("GET", ["extracted-text-signed-url"]) => json_response(
                    200,
                    json!(format!(
                        "https://fake.mistral.invalid/documents/{id}/text?sig=1"
                    )),
                ),
                ("POST", ["reprocess"]) => {
                    docs[idx].0["process_status"] = json!("todo");
                    no_content()
                }
                _ => json_response(405, json!({"detail": "Method Not Allowed"})),
            }
        }
        _ => json_response(405, json!({"detail": "Method Not Allowed"})),
    }
}
