//! The fake's registries: agents (with versions and aliases), libraries with their
//! documents and accesses, and prompts (`/v2/prompts`) with versions.

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::beta::{
    State, json_response, no_content, not_found, page_of, paged, q1, query, unprocessable,
};
use super::fake::{RecordedRequest, percent_decode};

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

pub(super) fn libraries(_state: &State, rec: &RecordedRequest, _json: &Value) -> Response {
    not_found("route", &rec.path)
}
