//! The [`Client`]: typed resource handles over one erased tower stack.
//!
//! Build one with [`Client::builder`] or [`Client::from_env`]; it is cheap to clone
//! (clones share the connection pool, limits and caches). Resource handles
//! ([`Client::chat`], [`Client::embeddings`], [`Client::models`], ...) are thin
//! views that serialize a request, send it through the stack and decode the
//! answer into an [`ApiResponse`] (or an [`EventStream`] for streaming calls).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use mistral_tower::Client;
//! use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
//!
//! # async fn run() -> Result<(), mistral_tower::Error> {
//! let client = Client::builder()
//!     .api_key("sk-...")
//!     .timeout(Duration::from_secs(120))
//!     .max_retries(3)
//!     .build()?;
//! let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user("Hi")]);
//! let res = client.chat().create(req).await?;
//! println!("{} (status {}, correlation id {:?})", res.text(), res.status(), res.correlation_id());
//! # Ok(()) }
//! ```
//!
//! The stack, outermost first:
//!
//! ```text
//! user layers (.layer) → [cache slot] → rate / concurrency limits → retry
//!   → tracing → timeouts (total, stream idle) → auth & base URL
//!   → transport (hyper + rustls, connect timeout) or .service(...)
//! ```

mod builder;
mod options;
mod resources;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::cache::{CacheStatus, X_CACHE};
use crate::error::CORRELATION_ID_HEADER;
use crate::{Body, BoxError, Error};

pub use crate::sse::EventStream;
pub use builder::{ClientBuilder, DEFAULT_BASE_URL};
pub use options::RequestOptions;
pub(crate) use options::{MaxRetriesOverride, TimeoutOverride};
pub use resources::{Agents, Chat, Classifiers, Embeddings, Fim, Models, Ocr};

/// The erased service at the heart of a [`Client`]: every layer plus the transport.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// The largest error body read into an [`Error`] (bigger ones are cut).
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// The largest successful JSON body decoded (OCR answers with images are the
/// biggest); a larger one is a decode error.
const MAX_JSON_BODY: usize = 512 * 1024 * 1024;

/// A typed API answer plus its HTTP metadata. Derefs to the data.
///
/// The fields are private so that the data's own fields are reached directly through
/// `Deref`: `res.data` on an `ApiResponse<EmbeddingResponse>` is the embeddings list.
/// The metadata is read with [`status`](ApiResponse::status),
/// [`headers`](ApiResponse::headers) and [`correlation_id`](ApiResponse::correlation_id).
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    data: T,
    status: StatusCode,
    headers: HeaderMap,
}

impl<T> ApiResponse<T> {
    /// Bundles decoded data with the status and headers it came with.
    pub fn new(data: T, status: StatusCode, headers: HeaderMap) -> Self {
        ApiResponse {
            data,
            status,
            headers,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The data, the status and the headers.
    pub fn into_parts(self) -> (T, StatusCode, HeaderMap) {
        (self.data, self.status, self.headers)
    }

    /// The `mistral-correlation-id` response header, to quote to Mistral support.
    pub fn correlation_id(&self) -> Option<&str> {
        self.headers.get(CORRELATION_ID_HEADER)?.to_str().ok()
    }

    /// What a cache on the way did (the `x-cache` header of the client's cache or of a
    /// `mistral-cache` proxy): `None` when no cache reported anything.
    pub fn cache_status(&self) -> Option<CacheStatus> {
        cache_status(&self.headers)
    }

    /// How long ago a cached answer was stored (the `age` header of a hit).
    pub fn age(&self) -> Option<std::time::Duration> {
        age(&self.headers)
    }

    /// The decoded body, dropping the metadata.
    pub fn into_data(self) -> T {
        self.data
    }

    /// Maps the data, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> ApiResponse<U> {
        ApiResponse {
            data: f(self.data),
            status: self.status,
            headers: self.headers,
        }
    }
}

/// The [`CacheStatus`] of an `x-cache` response header.
pub(crate) fn cache_status(headers: &HeaderMap) -> Option<CacheStatus> {
    CacheStatus::from_header_value(headers.get(X_CACHE)?.to_str().ok()?)
}

/// The `age` response header (whole seconds).
pub(crate) fn age(headers: &HeaderMap) -> Option<std::time::Duration> {
    let secs = headers
        .get(http::header::AGE)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(secs))
}

impl<T> std::ops::Deref for ApiResponse<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T> std::ops::DerefMut for ApiResponse<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

/// The Mistral API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    service: HttpService,
    base_url: Arc<str>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &&*self.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the environment: `MISTRAL_API_KEY` (required) and
    /// `MISTRAL_BASE_URL` (optional, default `https://api.mistral.ai`).
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env()?.build()
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A clone of the erased stack, to send raw HTTP requests through every layer.
    pub fn service(&self) -> HttpService {
        self.service.clone()
    }

    /// Sends a raw request (path and query only, e.g. `/v1/models`) through the
    /// stack. The status is not checked.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Body>, Error> {
        self.send_raw(req).await
    }

    /// [`send`](Self::send) with per-call [`RequestOptions`] (headers, query,
    /// timeout, retries, cache directives).
    pub async fn send_with_options(
        &self,
        mut req: Request<Body>,
        options: &RequestOptions,
    ) -> Result<Response<Body>, Error> {
        options.apply(&mut req)?;
        self.send_raw(req).await
    }

    async fn send_raw(&self, req: Request<Body>) -> Result<Response<Body>, Error> {
        self.service
            .clone()
            .oneshot(req)
            .await
            .map_err(Error::from_service_error)
    }

    fn build_request<B: Serialize + ?Sized>(
        method: Method,
        path: &str,
        body: Option<&B>,
        accept: &'static str,
    ) -> Result<Request<Body>, Error> {
        let body = match body {
            Some(b) => Body::full(serde_json::to_vec(b).map_err(Error::request)?),
            None => Body::empty(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if !matches!(body.as_bytes(), Some([])) {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        req.body(body).map_err(Error::request)
    }

    /// Sends a request through the stack and turns a non-success status into an
    /// [`Error`].
    async fn send_checked(
        &self,
        mut req: Request<Body>,
        options: &RequestOptions,
    ) -> Result<Response<Body>, Error> {
        options.apply(&mut req)?;
        let res = self.send_raw(req).await?;
        if res.status().is_success() {
            return Ok(res);
        }
        let (parts, body) = res.into_parts();
        let bytes = match Limited::new(body, MAX_ERROR_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            // a broken or oversized error body: keep the status, lose the body
            Err(_) => Bytes::new(),
        };
        Err(Error::from_status(parts.status, parts.headers, bytes))
    }

    /// Sends a JSON request to `path` and decodes the JSON answer: the generic call
    /// behind every resource method, usable for endpoints without a typed handle.
    pub async fn send_json<Req, Res>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<ApiResponse<Res>, Error>
    where
        Req: Serialize + ?Sized,
        Res: DeserializeOwned,
    {
        self.send_json_with_options(method, path, body, &RequestOptions::default())
            .await
    }

    /// [`send_json`](Self::send_json) with per-call [`RequestOptions`].
    pub async fn send_json_with_options<Req, Res>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Req>,
        options: &RequestOptions,
    ) -> Result<ApiResponse<Res>, Error>
    where
        Req: Serialize + ?Sized,
        Res: DeserializeOwned,
    {
        let req = Client::build_request(method, path, body, "application/json")?;
        let res = self.send_checked(req, options).await?;
        let (parts, body) = res.into_parts();
        if http_body::Body::size_hint(&body)
            .exact()
            .is_some_and(|n| n > MAX_JSON_BODY as u64)
        {
            return Err(
                Error::decode("the response body is over the size limit", Bytes::new())
                    .with_response_meta(parts.status, parts.headers),
            );
        }
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
        match serde_json::from_slice::<Res>(&bytes) {
            Ok(data) => Ok(ApiResponse {
                data,
                status: parts.status,
                headers: parts.headers,
            }),
            Err(e) => Err(Error::decode(e, bytes).with_response_meta(parts.status, parts.headers)),
        }
    }

    /// Sends a JSON request to a streaming endpoint and returns the typed event
    /// stream (the request must already ask for a stream).
    pub async fn send_stream<Req, T>(&self, path: &str, body: &Req) -> Result<EventStream<T>, Error>
    where
        Req: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send_stream_with_options(path, body, &RequestOptions::default())
            .await
    }

    /// [`send_stream`](Self::send_stream) with per-call [`RequestOptions`].
    pub async fn send_stream_with_options<Req, T>(
        &self,
        path: &str,
        body: &Req,
        options: &RequestOptions,
    ) -> Result<EventStream<T>, Error>
    where
        Req: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let req = Client::build_request(Method::POST, path, Some(body), "text/event-stream")?;
        let res = self.send_checked(req, options).await?;
        let (parts, body) = res.into_parts();
        let is_json = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // Not a stream: the server ignored `stream: true` or sent an error body.
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
}

impl ClientBuilder {
    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let base_url: Arc<str> = self.resolved_base_url().into();
        Ok(Client {
            service: self.build_service()?,
            base_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_cheap_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Client>();
        check::<HttpService>();
    }
}
