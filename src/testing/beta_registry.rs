//! The fake's registries: agents (with versions and aliases), libraries with their
//! documents and accesses, and prompts (`/v2/prompts`) with versions.

use axum::response::Response;
use serde_json::Value;

use super::beta::{State, not_found};
use super::fake::RecordedRequest;

pub(super) fn agents(_state: &State, rec: &RecordedRequest, _json: &Value) -> Response {
    not_found("route", &rec.path)
}

pub(super) fn libraries(_state: &State, rec: &RecordedRequest, _json: &Value) -> Response {
    not_found("route", &rec.path)
}

pub(super) fn prompts(_state: &State, rec: &RecordedRequest, _json: &Value) -> Response {
    not_found("route", &rec.path)
}
