//! Authentication and base URL: points every request at the configured base URL
//! and adds the `Authorization: Bearer` header (marked sensitive, redacted in
//! `Debug`).
//!
//! # Example
//!
//! ```
//! use mistral_tower::layers::auth::AuthLayer;
//!
//! let layer = AuthLayer::new("https://api.mistral.ai")
//!     .unwrap()
//!     .api_key("sk-secret")
//!     .unwrap();
//! assert!(!format!("{layer:?}").contains("sk-secret"));
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HOST, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri};
use tower_layer::Layer;
use tower_service::Service;

use crate::Error;

/// The default `User-Agent`.
pub const DEFAULT_USER_AGENT: &str = concat!("mistral-tower/", env!("CARGO_PKG_VERSION"));

#[derive(Clone)]
struct Config {
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path without a trailing slash (`""` for none).
    prefix: String,
    authorization: Option<HeaderValue>,
    keep_request_authorization: bool,
    user_agent: Option<HeaderValue>,
}

/// Sets scheme, authority and path prefix from the base URL, the bearer token and
/// the `User-Agent` on every request.
///
/// Requests carry only a path and query (`/v1/chat/completions`); the base URL's
/// path is prepended, so `https://gateway.example/mistral` works. A `Host` header
/// on the request is removed so the transport sets the right one.
#[derive(Clone)]
pub struct AuthLayer {
    config: Arc<Config>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field(
                "base_url",
                &format_args!("{}://{}{}", self.scheme, self.authority, self.prefix),
            )
            .field(
                "api_key",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "keep_request_authorization",
                &self.keep_request_authorization,
            )
            .finish()
    }
}

impl AuthLayer {
    /// A layer for this base URL (`http` or `https`, optional path prefix), with no key.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        let uri: Uri = base_url
            .trim()
            .parse()
            .map_err(|e| Error::config(format!("invalid base URL {base_url:?}: {e}")))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| Error::config(format!("base URL {base_url:?} has no scheme")))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(Error::config(format!(
                "base URL {base_url:?}: scheme must be http or https"
            )));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| Error::config(format!("base URL {base_url:?} has no host")))?;
        if uri.query().is_some() {
            return Err(Error::config(format!(
                "base URL {base_url:?} must not have a query"
            )));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(AuthLayer {
            config: Arc::new(Config {
                scheme,
                authority,
                prefix,
                authorization: None,
                keep_request_authorization: false,
                user_agent: Some(HeaderValue::from_static(DEFAULT_USER_AGENT)),
            }),
        })
    }

    /// The API key, sent as `Authorization: Bearer <key>` (a sensitive header).
    pub fn api_key(mut self, key: &str) -> Result<Self, Error> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", key.trim()))
            .map_err(|_| Error::config("the API key contains invalid header characters"))?;
        value.set_sensitive(true);
        Arc::make_mut(&mut self.config).authorization = Some(value);
        Ok(self)
    }

    /// Keep an `Authorization` header already on the request, and add the key only
    /// when there is none (a proxy forwarding its callers' keys uses this).
    pub fn keep_request_authorization(mut self, keep: bool) -> Self {
        Arc::make_mut(&mut self.config).keep_request_authorization = keep;
        self
    }

    /// The `User-Agent` set on requests that have none (`None`: do not set one).
    pub fn user_agent(mut self, ua: Option<HeaderValue>) -> Self {
        Arc::make_mut(&mut self.config).user_agent = ua;
        self
    }

    /// The base URL, normalized (no trailing slash).
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}{}",
            self.config.scheme, self.config.authority, self.config.prefix
        )
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service built by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.config)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let c = &*self.config;
        let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
        let pq = if c.prefix.is_empty() {
            PathAndQuery::try_from(pq).ok()
        } else {
            PathAndQuery::try_from(format!("{}{}", c.prefix, pq)).ok()
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(c.scheme.clone());
        parts.authority = Some(c.authority.clone());
        parts.path_and_query = pq.or_else(|| Some(PathAndQuery::from_static("/")));
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        let headers = req.headers_mut();
        headers.remove(HOST);
        if let Some(auth) = &c.authorization
            && !(c.keep_request_authorization && headers.contains_key(AUTHORIZATION))
        {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some(ua) = &c.user_agent
            && !headers.contains_key(USER_AGENT)
        {
            headers.insert(USER_AGENT, ua.clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    async fn seen(layer: AuthLayer, req: Request<()>) -> Request<()> {
        layer
            .layer(service_fn(|r: Request<()>| async move {
                Ok::<_, Infallible>(r)
            }))
            .oneshot(req)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sets_base_url_and_bearer() {
        let layer = AuthLayer::new("http://127.0.0.1:9/prefix/")
            .unwrap()
            .api_key("k1")
            .unwrap();
        let mut req = Request::new(());
        *req.uri_mut() = "/v1/models?x=1".parse().unwrap();
        req.headers_mut()
            .insert(HOST, "proxy.local".parse().unwrap());
        let r = seen(layer, req).await;
        assert_eq!(r.uri(), "http://127.0.0.1:9/prefix/v1/models?x=1");
        let auth = &r.headers()[AUTHORIZATION];
        assert_eq!(auth, "Bearer k1");
        assert!(auth.is_sensitive());
        assert!(r.headers().get(HOST).is_none());
        assert_eq!(r.headers()[USER_AGENT], DEFAULT_USER_AGENT);
    }

    #[tokio::test]
    async fn absolute_request_uri_is_rebased() {
        let layer = AuthLayer::new("https://api.mistral.ai").unwrap();
        let mut req = Request::new(());
        *req.uri_mut() = "http://proxy:8080/v1/chat/completions".parse().unwrap();
        let r = seen(layer, req).await;
        assert_eq!(r.uri(), "https://api.mistral.ai/v1/chat/completions");
        assert!(r.headers().get(AUTHORIZATION).is_none());
    }

    #[tokio::test]
    async fn replaces_or_keeps_request_authorization() {
        let mk = || {
            let mut req = Request::new(());
            *req.uri_mut() = "/v1/models".parse().unwrap();
            req.headers_mut()
                .insert(AUTHORIZATION, "Bearer caller".parse().unwrap());
            req
        };
        let layer = AuthLayer::new("https://api.mistral.ai")
            .unwrap()
            .api_key("mine")
            .unwrap();
        assert_eq!(
            seen(layer.clone(), mk()).await.headers()[AUTHORIZATION],
            "Bearer mine"
        );
        let keep = layer.keep_request_authorization(true);
        assert_eq!(
            seen(keep.clone(), mk()).await.headers()[AUTHORIZATION],
            "Bearer caller"
        );
        let mut bare = Request::new(());
        *bare.uri_mut() = "/v1/models".parse().unwrap();
        assert_eq!(
            seen(keep, bare).await.headers()[AUTHORIZATION],
            "Bearer mine"
        );
    }

    #[test]
    fn rejects_bad_base_urls_and_keys() {
        assert!(AuthLayer::new("api.mistral.ai").is_err());
        assert!(AuthLayer::new("ftp://x").is_err());
        assert!(AuthLayer::new("http://x/?a=b").is_err());
        assert!(AuthLayer::new("http://x").unwrap().api_key("a\nb").is_err());
    }

    #[test]
    fn debug_redacts_the_key() {
        let layer = AuthLayer::new("http://x")
            .unwrap()
            .api_key("sk-very-secret")
            .unwrap();
        let s = format!("{layer:?}");
        assert!(
            !s.contains("sk-very-secret") && s.contains("[redacted]"),
            "{s}"
        );
        let svc = layer.layer(());
        assert!(!format!("{svc:?}").contains("sk-very-secret"));
    }
}
