//! Crate-private request helpers for the resources that go beyond one JSON call:
//! multipart uploads, streamed downloads and bodiless answers.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::client::{ApiResponse, EventStream, RequestOptions};
use crate::multipart::Form;
use crate::{Body, Client, Error};

/// The largest error body read into an [`Error`].
const MAX_ERROR_BODY: usize = 1024 * 1024;
/// The largest JSON answer decoded.
const MAX_JSON_BODY: usize = 512 * 1024 * 1024;

/// A request with a multipart body (`Content-Length` set when the form knows it).
pub(crate) fn form_request(
    method: Method,
    path: &str,
    form: Form,
    accept: &'static str,
) -> Result<Request<Body>, Error> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(ACCEPT, HeaderValue::from_static(accept))
        .header(CONTENT_TYPE, form.content_type());
    if let Some(len) = form.content_length() {
        req = req.header(CONTENT_LENGTH, len);
    }
    req.body(form.into_body()).map_err(Error::request)
}

/// A bodiless request.
pub(crate) fn empty_request(
    method: Method,
    path: &str,
    accept: &'static str,
) -> Result<Request<Body>, Error> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(ACCEPT, HeaderValue::from_static(accept))
        .body(Body::empty())
        .map_err(Error::request)
}

/// Sends through the stack with the call's options; a non-success status becomes an
/// [`Error`].
pub(crate) async fn send_checked(
    client: &Client,
    req: Request<Body>,
    options: &RequestOptions,
) -> Result<Response<Body>, Error> {
    let res = client.send_with_options(req, options).await?;
    if res.status().is_success() {
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let bytes = match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Err(Error::from_status(parts.status, parts.headers, bytes))
}

/// Decodes a JSON answer. With `allow_empty`, an empty body (a `204`, or a `200`
/// without content) reads as `{}`, so a delete answered without a body is a success.
pub(crate) async fn json<T: DeserializeOwned>(
    res: Response<Body>,
    allow_empty: bool,
) -> Result<ApiResponse<T>, Error> {
    let (parts, body) = res.into_parts();
    let bytes = match Limited::new(body, MAX_JSON_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let err = if e.is::<http_body_util::LengthLimitError>() {
                Error::decode(e, Bytes::new())
            } else {
                Error::from_body_error(e, false)
            };
            return Err(err.with_response_meta(parts.status, parts.headers));
        }
    };
    let text: &[u8] = if allow_empty && bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    match serde_json::from_slice::<T>(text) {
        Ok(data) => Ok(ApiResponse::new(data, parts.status, parts.headers)),
        Err(e) => Err(Error::decode(e, bytes).with_response_meta(parts.status, parts.headers)),
    }
}

/// Sends and decodes a JSON answer.
pub(crate) async fn call<T: DeserializeOwned>(
    client: &Client,
    req: Request<Body>,
    options: &RequestOptions,
) -> Result<ApiResponse<T>, Error> {
    json(send_checked(client, req, options).await?, false).await
}

/// Sends and decodes a JSON answer that may have no body (deletes, archive): an empty
/// body reads as `{}`.
pub(crate) async fn call_allow_empty<T: DeserializeOwned>(
    client: &Client,
    req: Request<Body>,
    options: &RequestOptions,
) -> Result<ApiResponse<T>, Error> {
    json(send_checked(client, req, options).await?, true).await
}

/// Sends a request to a streaming endpoint and returns its event stream; a JSON
/// answer instead of a stream is an error.
pub(crate) async fn stream<T: DeserializeOwned>(
    client: &Client,
    req: Request<Body>,
    options: &RequestOptions,
) -> Result<EventStream<T>, Error> {
    let res = send_checked(client, req, options).await?;
    let (parts, body) = res.into_parts();
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let bytes = Limited::new(body, MAX_ERROR_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let err = match crate::error::ApiError::parse(&bytes) {
            Some(_) => Error::from_status(parts.status, parts.headers, bytes),
            None => Error::decode("expected a text/event-stream response, got JSON", bytes)
                .with_response_meta(parts.status, parts.headers),
        };
        return Err(err);
    }
    Ok(EventStream::new(parts.status, parts.headers, body))
}
