//! The [`Client`]: typed resource handles over an erased tower stack.
//!
//! STUB: owned by the client work; signatures here are the contract other modules use.

use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use tower::util::BoxCloneSyncService;

use crate::{Body, BoxError, Error};

/// The erased service at the heart of a [`Client`]: every layer plus the transport.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// A typed API answer plus its HTTP metadata. Derefs to the data.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    /// The decoded body.
    pub data: T,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
}

impl<T> std::ops::Deref for ApiResponse<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// The Mistral API client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    _service: HttpService,
}

/// Configures a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    _priv: (),
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
    /// Reads `MISTRAL_API_KEY` and optional `MISTRAL_BASE_URL`.
    pub fn from_env() -> Result<Client, Error> {
        Client::builder().build()
    }
}

impl ClientBuilder {
    /// The API key, sent as a sensitive `Authorization: Bearer` header.
    pub fn api_key(self, _key: impl Into<String>) -> Self {
        self
    }
    /// The base URL (default `https://api.mistral.ai`).
    pub fn base_url(self, _url: impl AsRef<str>) -> Self {
        self
    }
    /// Total timeout of a non-streaming request.
    pub fn timeout(self, _d: Duration) -> Self {
        self
    }
    /// Keep an `Authorization` header already on the request and only add the
    /// configured key when there is none (used by the proxy).
    pub fn keep_request_authorization(self, _yes: bool) -> Self {
        self
    }
    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        Ok(Client {
            _service: self.build_service()?,
        })
    }
    /// Builds only the erased stack (every layer and the transport).
    pub fn build_service(self) -> Result<HttpService, Error> {
        Ok(BoxCloneSyncService::new(
            crate::transport::HttpTransport::default(),
        ))
    }
}
