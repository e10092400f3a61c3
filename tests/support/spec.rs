//! Validation of recorded requests (JSON, multipart and query parameters) and of
//! answers against the OpenAPI spec ([`super::openapi_spec`]).
//!
//! Tests call [`spec`] first: without the spec they print
//! `skipped: OpenAPI spec not found (set MISTRAL_OPENAPI_SPEC)` and return, unless
//! `MISTRAL_TOWER_REQUIRE_SERVICES=1`, which makes a missing spec a failure.

use std::sync::OnceLock;

use mistral_tower::cache::multipart::{boundary, parse_form};
use mistral_tower::testing::RecordedRequest;
use serde_json::{Map, Value, json};

/// The spec, or `None` (after printing why) when it is absent and not required
/// (see [`super::openapi_spec`]).
pub fn spec() -> Option<&'static Value> {
    super::openapi_spec()
}

/// The spec's components, where every object schema with `properties` and no word
/// on other keys forbids them (so a misspelt field fails anywhere).
fn strict_components(spec: &Value) -> &'static Value {
    static STRICT: OnceLock<Value> = OnceLock::new();
    STRICT.get_or_init(|| {
        fn strictify(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    if map.get("properties").is_some_and(Value::is_object)
                        && !map.contains_key("additionalProperties")
                    {
                        map.insert("additionalProperties".into(), Value::Bool(false));
                    }
                    for (key, child) in map.iter_mut() {
                        if !matches!(key.as_str(), "examples" | "example" | "default") {
                            strictify(child);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(strictify),
                _ => {}
            }
        }
        let mut c = spec["components"].clone();
        flatten_all_of(&mut c);
        strictify(&mut c);
        c
    })
}

/// Merges every component schema that is an `allOf` of object schemas (the
/// conversation requests: a base plus `stream`) into one object schema, so that
/// forbidding unknown properties on each part does not reject the whole.
fn flatten_all_of(components: &mut Value) {
    let Some(schemas) = components
        .get("schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (name, schema) in &schemas {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            continue;
        };
        let mut props = Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut ok = true;
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => &schemas[r.rsplit('/').next().unwrap()],
                None => part,
            };
            match part.get("properties").and_then(Value::as_object) {
                Some(p) => props.extend(p.clone()),
                None => ok = false,
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
        }
        if ok {
            components["schemas"][name.as_str()] =
                json!({"type": "object", "properties": props, "required": required});
        }
    }
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Validates `instance` against `schema` (which may `$ref` the components).
pub fn check(spec: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut s = schema.clone();
    if let Value::Object(m) = &mut s {
        m.insert("components".into(), strict_components(spec).clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&s)
        .unwrap_or_else(|e| panic!("compile schema for {what}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} rejects:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// The spec operation of a method and concrete path: `(template, operation)`.
pub fn operation<'a>(
    spec: &'a Value,
    method: &str,
    path: &str,
    streaming: bool,
) -> Option<(&'a str, &'a Value)> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut found = None;
    for (template, ops) in spec["paths"].as_object().unwrap() {
        let (bare, suffix) = template.split_once('#').unwrap_or((template, ""));
        let t: Vec<&str> = bare.split('/').collect();
        let matches = t.len() == segs.len()
            && t.iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s);
        if !matches {
            continue;
        }
        let Some(op) = ops.get(method.to_ascii_lowercase()) else {
            continue;
        };
        let literal = t.iter().filter(|t| !t.starts_with('{')).count();
        let wanted = (suffix == "stream") == streaming;
        // prefer literal segments over parameters, then the matching variant
        let score = literal * 2 + usize::from(wanted);
        if found.as_ref().is_none_or(|(s, _, _)| score > *s) {
            found = Some((score, template.as_str(), op));
        }
    }
    found.map(|(_, t, op)| (t, op))
}

fn is_kind(spec: &Value, schema: &Value, kind: &str) -> bool {
    let s = resolve(spec, schema);
    s.get("type").and_then(Value::as_str) == Some(kind)
        || ["anyOf", "oneOf", "allOf"].iter().any(|k| {
            s.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| is_kind(spec, x, kind)))
        })
}

/// Whether a schema is (or may be) a binary string: a file field.
fn is_binary(spec: &Value, schema: &Value) -> bool {
    let s = resolve(spec, schema);
    s.get("format").and_then(Value::as_str) == Some("binary")
        || ["anyOf", "oneOf", "allOf"].iter().any(|k| {
            s.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| is_binary(spec, x)))
        })
}

/// A text value as the schema's type wants it.
fn typed(spec: &Value, schema: &Value, text: &str) -> Value {
    if is_kind(spec, schema, "boolean") && (text == "true" || text == "false") {
        return json!(text == "true");
    }
    if is_kind(spec, schema, "integer")
        && let Ok(n) = text.parse::<i64>()
    {
        return json!(n);
    }
    if is_kind(spec, schema, "number")
        && let Ok(n) = text.parse::<f64>()
    {
        return json!(n);
    }
    if is_kind(spec, schema, "object")
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return v;
    }
    json!(text)
}

/// Collects `(name, text)` pairs into an object typed by `properties`; a name unknown
/// to the schema is kept as a string (and fails the strict validation).
fn object_of(spec: &Value, properties: &Value, pairs: &[(String, String)]) -> Value {
    let mut out = Map::new();
    for (name, value) in pairs {
        let schema = &properties[name.as_str()];
        let array = is_kind(spec, schema, "array");
        let item_schema = if array {
            let s = resolve(spec, schema);
            let arr = std::iter::once(s)
                .chain(
                    s.get("anyOf")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
                .find(|x| x.get("type").and_then(Value::as_str) == Some("array"))
                .unwrap();
            arr["items"].clone()
        } else {
            schema.clone()
        };
        let v = if schema.is_null() {
            json!(value)
        } else {
            typed(spec, &item_schema, value)
        };
        if array {
            out.entry(name.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(v);
        } else {
            out.insert(name.clone(), v);
        }
    }
    Value::Object(out)
}

/// Validates a recorded request against its operation: path, query parameters and
/// body (JSON or multipart). Returns the operation's template.
pub fn validate_request(spec: &Value, rec: &RecordedRequest) -> String {
    let ct = rec
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let form_parts = rec
        .headers
        .get("content-type")
        .and_then(boundary)
        .map(|b| parse_form(&b, &rec.body).expect("a well-formed multipart body"));
    let streaming = match &form_parts {
        Some(parts) => parts
            .iter()
            .any(|p| p.name == "stream" && p.data == b"true"),
        None => rec.json().get("stream") == Some(&json!(true)),
    };
    let (template, op) = operation(spec, rec.method.as_str(), &rec.path, streaming)
        .unwrap_or_else(|| panic!("no spec operation for {} {}", rec.method, rec.path));
    let what = format!("{} {template}", rec.method);

    // query parameters
    let params: Vec<&Value> = op["parameters"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["in"] == "query").collect())
        .unwrap_or_default();
    let mut props = Map::new();
    for p in &params {
        props.insert(p["name"].as_str().unwrap().to_owned(), p["schema"].clone());
    }
    let pairs: Vec<(String, String)> = rec
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let props = Value::Object(props);
    let query = object_of(spec, &props, &pairs);
    for (name, value) in query.as_object().unwrap() {
        let schema = &props[name.as_str()];
        assert!(!schema.is_null(), "{what}: unknown query parameter {name}");
        check(spec, schema, value, &format!("{what} query {name}"));
    }

    // body
    let Some(body) = op.get("requestBody") else {
        assert!(
            rec.body.is_empty(),
            "{what}: a body where the spec has none"
        );
        return template.to_owned();
    };
    if let Some(parts) = form_parts {
        let schema = &body["content"]["multipart/form-data"]["schema"];
        assert!(
            !schema.is_null(),
            "{what}: multipart where the spec wants {ct}"
        );
        let props = &resolve(spec, schema)["properties"];
        let pairs: Vec<(String, String)> = parts
            .iter()
            .map(|p| {
                let v = if p.filename.is_some() {
                    "<binary>".to_owned()
                } else {
                    String::from_utf8_lossy(p.data).into_owned()
                };
                (p.name.clone(), v)
            })
            .collect();
        for p in parts.iter().filter(|p| p.filename.is_some()) {
            let prop = resolve(spec, &props[p.name.as_str()]);
            assert!(
                is_binary(spec, prop),
                "{what}: file part {} is not a binary field",
                p.name
            );
        }
        let instance = object_of(spec, props, &pairs);
        check(spec, schema, &instance, &what);
    } else {
        let schema = &body["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{what}: JSON where the spec wants another type"
        );
        assert!(
            ct.starts_with("application/json"),
            "{what}: content type {ct}"
        );
        check(spec, schema, &rec.json(), &what);
    }
    template.to_owned()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Validates a response body against the operation's 200 JSON schema, as the spec
/// writes it (responses may carry fields the spec does not list).
pub fn validate_response(spec: &Value, method: &str, path: &str, body: &Value) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let (template, op) = operation(spec, method, path, false)
        .unwrap_or_else(|| panic!("no spec operation for {method} {path}"));
    let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{method} {template}: no JSON 200 schema");
    let mut s = schema.clone();
    if let Value::Object(m) = &mut s {
        m.insert("components".into(), spec["components"].clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&s)
        .unwrap_or_else(|e| panic!("compile the response schema of {template}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "the answer to {method} {template} does not match the spec:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(body).unwrap()
    );
    template.to_owned()
}

/// Checks `body` against the strict 200 JSON schema of the operation at `method`
/// `path` (the streaming variant when `streaming`); nothing to check when the
/// operation declares no JSON answer.
pub fn check_response(spec: &Value, method: &str, path: &str, streaming: bool, body: &Value) {
    let (template, op) = operation(spec, method, path, streaming).unwrap();
    let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
    if !schema.is_null() {
        check(
            spec,
            schema,
            body,
            &format!("response of {method} {template}"),
        );
    }
}

/// Validates every request `fake` received against the spec; returns
/// `"METHOD template"` for each (nothing when the spec is absent).
pub fn validate_all(fake: &mistral_tower::testing::FakeMistral) -> Vec<String> {
    let Some(spec) = spec() else {
        return Vec::new();
    };
    fake.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, validate_request(spec, r)))
        .collect()
}
