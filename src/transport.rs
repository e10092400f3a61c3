//! The innermost service of the client stack: hyper 1.x over rustls.
//!
//! Connection failures are returned as [`ConnectError`](crate::error::ConnectError)
//! (a connect timeout included, see `ConnectError::is_timeout`), so the retry
//! layer and [`Error`](crate::Error) can classify them.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::transport::{HttpTransport, TransportConfig};
//!
//! let transport = HttpTransport::new(TransportConfig {
//!     connect_timeout: Some(Duration::from_secs(3)),
//!     ..TransportConfig::default()
//! });
//! # let _ = transport;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Body, BoxError};

/// Settings of the [`HttpTransport`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Time allowed to establish a TCP connection (TLS handshake included in the
    /// total timeout). Default 10 s.
    pub connect_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Option<Duration>,
    /// Maximum idle connections kept per host. Default unbounded.
    pub pool_max_idle_per_host: usize,
    /// Speak only HTTP/2 (prior knowledge on `http://`). Default: HTTP/1.1, or
    /// HTTP/2 when the server offers it through ALPN on `https://`.
    pub http2_only: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Some(Duration::from_secs(10)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            http2_only: false,
        }
    }
}

/// A pooled hyper client with rustls (webpki roots), HTTP/1.1 and HTTP/2.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct HttpTransport {
    client: HyperClient<HttpsConnector<HttpConnector>, Body>,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport").finish_non_exhaustive()
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new(TransportConfig::default())
    }
}

impl HttpTransport {
    /// Builds a transport with the given settings.
    pub fn new(config: TransportConfig) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(config.connect_timeout);
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .http2_only(config.http2_only);
        HttpTransport {
            client: builder.build(https),
        }
    }
}

impl tower_service::Service<Request<Body>> for HttpTransport {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let fut = self.client.request(req);
        Box::pin(async move {
            let res = fut.await.map_err(|e| -> BoxError {
                if e.is_connect() {
                    Box::new(crate::error::ConnectError::new(e))
                } else {
                    Box::new(e)
                }
            })?;
            Ok(res.map(Body::new))
        })
    }
}
