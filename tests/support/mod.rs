//! Shared test support: every integration test file declares `mod support;`.
//!
//! - [`engine_suite`]: the engine contract suite and how to find the test servers.
//! - [`proxy`] (feature `server`): the `mistral-cache` proxy run in-process.
//! - [`spec`]: recorded requests and answers validated against the OpenAPI spec.
//! - Here: the environment switches, the OpenAPI spec, and small HTTP helpers.
//!
//! The fake Mistral API itself is public: `mistral_tower::testing` (feature `testing`,
//! which the crate's dev-dependency on itself turns on).
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod engine_suite;
#[cfg(feature = "server")]
pub mod proxy;
pub mod spec;

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// `true` when `MISTRAL_TOWER_REQUIRE_SERVICES=1`: a missing server, or a missing
/// OpenAPI spec, fails the test instead of skipping it.
pub fn require_services() -> bool {
    std::env::var("MISTRAL_TOWER_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Where the OpenAPI spec is: `MISTRAL_OPENAPI_SPEC`, else
/// `../shared/mistral/openapi.yaml` beside the checkout (the project's own machines
/// and CI). `None` when neither exists.
pub fn openapi_spec_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MISTRAL_OPENAPI_SPEC").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/mistral/openapi.yaml");
    beside.is_file().then_some(beside)
}

/// Mistral's OpenAPI spec, parsed once; or prints
/// `skipped: OpenAPI spec not found (set MISTRAL_OPENAPI_SPEC)` and returns `None`.
///
/// # Panics
///
/// When the spec is missing and [`require_services`] is on, or when a spec that was
/// found cannot be read or parsed.
pub fn openapi_spec() -> Option<&'static Value> {
    static SPEC: OnceLock<Option<Value>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        let path = openapi_spec_path()?;
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Some(
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display())),
        )
    });
    if spec.is_none() {
        if require_services() {
            panic!(
                "OpenAPI spec not found (set MISTRAL_OPENAPI_SPEC), and MISTRAL_TOWER_REQUIRE_SERVICES=1"
            );
        }
        println!("skipped: OpenAPI spec not found (set MISTRAL_OPENAPI_SPEC)");
    }
    spec.as_ref()
}

/// A client (key `test-key`) sending straight to `fake`'s in-process service.
pub fn client(fake: &mistral_tower::testing::FakeMistral) -> mistral_tower::Client {
    mistral_tower::Client::builder()
        .api_key("test-key")
        .service(fake.service())
        .build()
        .unwrap()
}

/// A JSON `POST` to `uri` with `body`.
pub fn post(uri: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// The whole body as a UTF-8 string.
pub async fn body_string<B: Body<Data = Bytes>>(b: B) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(b.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Anything that carries headers: a `HeaderMap`, a request or a response.
pub trait HasHeaders {
    fn header_map(&self) -> &HeaderMap;
}

impl HasHeaders for HeaderMap {
    fn header_map(&self) -> &HeaderMap {
        self
    }
}

impl<B> HasHeaders for http::Response<B> {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

impl<B> HasHeaders for http::Request<B> {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

/// The `x-cache` header in upper case (`""` when absent).
pub fn x_cache(r: &impl HasHeaders) -> String {
    r.header_map()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// The standard output of a command that must have succeeded (else its standard error
/// fails the test).
pub fn success_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}
