//! [`RequestOptions`]: per-call headers, query parameters, timeout, retries and cache
//! directives.

use std::fmt;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};

use crate::cache::{X_CACHE_CONTROL, X_CACHE_NAMESPACE, X_CACHE_TTL};
use crate::{Body, Error};

/// Options for one call: extra headers and query parameters, a timeout and a retry
/// count of its own, and cache directives.
///
/// Give them to a resource handle with `with_options` (every handle has it), or to
/// [`Client::send_with_options`](crate::Client::send_with_options) and
/// [`Client::send_json_with_options`](crate::Client::send_json_with_options).
///
/// The cache directives travel as the request headers `x-cache-control`,
/// `x-cache-ttl` and `x-cache-namespace`: the client's own cache
/// ([`ClientBuilder::cache`](crate::ClientBuilder::cache)) consumes them, and without
/// one they reach the server, so they steer a `mistral-cache` proxy at the base URL
/// too (the Mistral API ignores them).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use mistral_tower::{Client, RequestOptions};
/// use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
///
/// # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
/// let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user("Hi")]);
/// let opts = RequestOptions::new()
///     .no_cache() // a fresh answer, stored again
///     .ttl(Duration::from_secs(3600))
///     .namespace("evals")
///     .timeout(Duration::from_secs(20))
///     .max_retries(0)
///     .header("x-request-tag", "nightly");
/// let res = client.chat().with_options(opts).create(req).await?;
/// println!("{:?} {:?}", res.cache_status(), res.age());
///
/// let models = client
///     .models()
///     .with_options(RequestOptions::new().query("provider", "mistral"))
///     .list()
///     .await?;
/// # let _ = models; Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct RequestOptions {
    headers: HeaderMap,
    query: Vec<(String, String)>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    no_cache: bool,
    no_store: bool,
    only_if_cached: bool,
    max_age: Option<Duration>,
    ttl: Option<Duration>,
    namespace: Option<String>,
    /// The first invalid header given, reported when the request is sent.
    invalid: Option<String>,
}

impl fmt::Debug for RequestOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be secrets: only their names are shown.
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("RequestOptions")
            .field("headers", &headers)
            .field("query", &self.query)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("no_cache", &self.no_cache)
            .field("no_store", &self.no_store)
            .field("only_if_cached", &self.only_if_cached)
            .field("max_age", &self.max_age)
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// A per-request total timeout, read by the timeout layer (request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeoutOverride(pub(crate) Duration);

/// A per-request retry count, read by the retry layer (request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaxRetriesOverride(pub(crate) u32);

impl RequestOptions {
    /// No options: the call is sent as the client would.
    pub fn new() -> Self {
        RequestOptions::default()
    }

    /// Adds a request header (it replaces a header of the same name the client would
    /// send; calling it twice with one name sends both values). An invalid name or
    /// value makes the call fail with a request error.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: fmt::Display,
        V: TryInto<HeaderValue>,
        V::Error: fmt::Display,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            (Err(e), _) => self.invalid_header(format!("invalid header name: {e}")),
            (_, Err(e)) => self.invalid_header(format!("invalid header value: {e}")),
        }
        self
    }

    fn invalid_header(&mut self, message: String) {
        self.invalid.get_or_insert(message);
    }

    /// Adds a query parameter (percent-encoded), after those already in the path. Any
    /// `Display` value works: `.query("page", 2)`, `.query("provider", "mistral")`.
    pub fn query(mut self, key: impl fmt::Display, value: impl fmt::Display) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// The total timeout of this call (headers, and the body of a non-streaming
    /// answer), per attempt, instead of the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The number of retries of this call instead of the client's (`0`: none).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Do not answer from the cache: call the API and store the fresh answer.
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// Neither read nor write the cache for this call.
    pub fn no_store(mut self) -> Self {
        self.no_store = true;
        self
    }

    /// Answer only from the cache: a miss is an [`Error`] with status `504` and the API
    /// is not called (retries of this call are off unless set).
    pub fn only_if_cached(mut self) -> Self {
        self.only_if_cached = true;
        self
    }

    /// Accept only a cached answer younger than this (whole seconds).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Store the answer for this long (whole seconds) instead of the cache's TTL. On
    /// the model listing this is the opt-in to caching it at all.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Read and store this call's answer in this cache namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The `x-cache-control` value of the directives, if any.
    fn cache_control(&self) -> Option<String> {
        let mut d: Vec<String> = Vec::new();
        if self.no_cache {
            d.push("no-cache".into());
        }
        if self.no_store {
            d.push("no-store".into());
        }
        if self.only_if_cached {
            d.push("only-if-cached".into());
        }
        if let Some(age) = self.max_age {
            d.push(format!("max-age={}", age.as_secs()));
        }
        (!d.is_empty()).then(|| d.join(", "))
    }

    /// Writes the options into a request about to be sent.
    pub(crate) fn apply(&self, req: &mut Request<Body>) -> Result<(), Error> {
        if let Some(message) = &self.invalid {
            return Err(Error::request(message.clone()));
        }
        if !self.query.is_empty() {
            *req.uri_mut() = with_query(req.uri(), &self.query)?;
        }
        let headers = req.headers_mut();
        for name in self.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        if let Some(cc) = self.cache_control() {
            headers.insert(
                X_CACHE_CONTROL,
                HeaderValue::from_str(&cc).map_err(Error::request)?,
            );
        }
        if let Some(ttl) = self.ttl {
            headers.insert(X_CACHE_TTL, HeaderValue::from(ttl.as_secs()));
        }
        if let Some(ns) = &self.namespace {
            let v = HeaderValue::from_bytes(ns.as_bytes())
                .map_err(|_| Error::request(format!("invalid cache namespace {ns:?}")))?;
            headers.insert(X_CACHE_NAMESPACE, v);
        }
        let ext = req.extensions_mut();
        if let Some(t) = self.timeout {
            ext.insert(TimeoutOverride(t));
        }
        match self.max_retries {
            Some(n) => {
                ext.insert(MaxRetriesOverride(n));
            }
            // A cache miss answered 504 by a proxy is not worth retrying.
            None if self.only_if_cached => {
                ext.insert(MaxRetriesOverride(0));
            }
            None => {}
        }
        Ok(())
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters are kept).
fn encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn with_query(uri: &Uri, query: &[(String, String)]) -> Result<Uri, Error> {
    let mut pq = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut sep = if uri.query().is_some_and(|q| !q.is_empty()) {
        '&'
    } else {
        if pq.ends_with('?') {
            pq.pop();
        }
        '?'
    };
    for (k, v) in query {
        pq.push(sep);
        encode_component(k, &mut pq);
        pq.push('=');
        encode_component(v, &mut pq);
        sep = '&';
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(Error::request)?);
    Uri::from_parts(parts).map_err(Error::request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(opts: &RequestOptions, uri: &str) -> Request<Body> {
        let mut req = Request::builder()
            .uri(uri)
            .header("accept", "application/json")
            .body(Body::empty())
            .unwrap();
        opts.apply(&mut req).unwrap();
        req
    }

    #[test]
    fn query_parameters_are_encoded_and_appended() {
        let opts = RequestOptions::new()
            .query("provider", "mistral")
            .query("model", String::from("a b&c=d/é"));
        let req = applied(&opts, "/v1/models");
        assert_eq!(
            req.uri(),
            "/v1/models?provider=mistral&model=a%20b%26c%3Dd%2F%C3%A9"
        );
        let req = applied(&RequestOptions::new().query("page", 2), "/v1/models?");
        assert_eq!(req.uri(), "/v1/models?page=2");
        let req = applied(&opts, "/v1/models?x=1");
        assert_eq!(
            req.uri().query(),
            Some("x=1&provider=mistral&model=a%20b%26c%3Dd%2F%C3%A9")
        );
    }

    #[test]
    fn directives_headers_and_extensions() {
        let opts = RequestOptions::new()
            .no_cache()
            .no_store()
            .only_if_cached()
            .max_age(Duration::from_secs(90))
            .ttl(Duration::from_secs(3600))
            .namespace("équipe")
            .header("accept", "text/plain")
            .header("x-tag", "a")
            .header("x-tag", "b")
            .timeout(Duration::from_secs(7));
        let req = applied(&opts, "/v1/chat/completions");
        let h = req.headers();
        assert_eq!(
            h["x-cache-control"],
            "no-cache, no-store, only-if-cached, max-age=90"
        );
        assert_eq!(h["x-cache-ttl"], "3600");
        assert_eq!(h["x-cache-namespace"].as_bytes(), "équipe".as_bytes());
        assert_eq!(h["accept"], "text/plain", "replaces the client's");
        assert_eq!(h.get_all("x-tag").iter().count(), 2);
        let ext = req.extensions();
        assert_eq!(
            ext.get::<TimeoutOverride>(),
            Some(&TimeoutOverride(Duration::from_secs(7)))
        );
        assert_eq!(
            ext.get::<MaxRetriesOverride>(),
            Some(&MaxRetriesOverride(0)),
            "only-if-cached turns retries off"
        );
        let req = applied(&RequestOptions::new().max_retries(4), "/");
        assert_eq!(
            req.extensions().get::<MaxRetriesOverride>(),
            Some(&MaxRetriesOverride(4))
        );
        let req = applied(&RequestOptions::new(), "/");
        assert!(req.headers().get("x-cache-control").is_none());
    }

    #[test]
    fn invalid_headers_fail_the_call_and_values_stay_out_of_debug() {
        let opts = RequestOptions::new().header("bad name", "v");
        let mut req = Request::new(Body::empty());
        assert!(opts.apply(&mut req).is_err());
        let opts = RequestOptions::new().header("x-secret", "s3cr3t");
        assert!(!format!("{opts:?}").contains("s3cr3t"));
    }
}
