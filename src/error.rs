//! The client's error type: one [`Error`] with the HTTP status, headers,
//! correlation id and the parsed Mistral API error, plus `is_*` predicates.
//!
//! # Example
//!
//! ```
//! use mistral_tower::error::{ApiError, Error};
//!
//! // Every error body shape the Mistral API sends parses into an `ApiError`:
//! let api = ApiError::parse(br#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300","raw_status_code":429}"#).unwrap();
//! assert_eq!(api.message, "Rate limit exceeded");
//! assert_eq!(api.code.as_deref(), Some("1300"));
//! assert_eq!(api.raw_status_code, Some(429));
//!
//! // Malformed bodies never panic; they are kept as the raw body instead.
//! assert!(ApiError::parse(b"<html>502 Bad Gateway</html>").is_none());
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::BoxError;

/// The response header Mistral uses to identify a request in its logs.
pub const CORRELATION_ID_HEADER: &str = "mistral-correlation-id";

/// Every failure of a client call.
///
/// Inspect it with the predicates ([`is_status`](Error::is_status),
/// [`is_timeout`](Error::is_timeout), [`is_retryable`](Error::is_retryable), ...)
/// and the accessors ([`status`](Error::status), [`api_error`](Error::api_error),
/// [`correlation_id`](Error::correlation_id), ...).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    status: Option<StatusCode>,
    headers: Option<HeaderMap>,
    api_error: Option<ApiError>,
    raw_body: Option<Bytes>,
    message: Option<String>,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Invalid configuration (builder, environment).
    Config,
    /// The request could not be built or serialized.
    Request,
    /// The connection could not be established.
    Connect,
    /// A timeout elapsed.
    Timeout(TimeoutKind),
    /// The API answered with a non-success status.
    Status,
    /// The response body could not be decoded.
    Decode,
    /// A streamed response failed: truncated, an error event, or a body error.
    Stream,
    /// Any other transport or middleware failure.
    Transport,
}

/// Which timeout elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Establishing the TCP connection took too long.
    Connect,
    /// The total timeout of a non-streaming request (headers and whole body), or
    /// of the response headers of a streaming request.
    Total,
    /// No event arrived on a stream within the stream idle timeout.
    StreamIdle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Total => "total",
            TimeoutKind::StreamIdle => "stream idle",
        })
    }
}

/// The error a timeout produces inside the stack (a [`BoxError`] source).
///
/// The timeout layer and the transport return it; [`Error`] recognizes it and
/// reports [`Error::is_timeout`] with the [`TimeoutKind`].
#[derive(Debug, Clone)]
pub struct TimeoutError {
    kind: TimeoutKind,
    after: Option<Duration>,
}

impl TimeoutError {
    /// A timeout of this kind that elapsed after `after` (when known).
    pub fn new(kind: TimeoutKind, after: Option<Duration>) -> Self {
        TimeoutError { kind, after }
    }
    /// Which timeout elapsed.
    pub fn kind(&self) -> TimeoutKind {
        self.kind
    }
    /// The configured duration, when known.
    pub fn after(&self) -> Option<Duration> {
        self.after
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            Some(d) => write!(f, "{} timeout elapsed after {d:?}", self.kind),
            None => write!(f, "{} timeout elapsed", self.kind),
        }
    }
}

impl StdError for TimeoutError {}

/// The error the transport returns when a connection cannot be established.
///
/// The retry layer retries it; [`Error::is_connect`] reports it, and
/// [`Error::is_timeout`] too when the connect timeout elapsed.
#[derive(Debug)]
pub struct ConnectError {
    source: BoxError,
    timed_out: bool,
}

impl ConnectError {
    /// Wraps the underlying connection failure; it counts as a connect timeout when
    /// its source chain holds an `io::Error` of kind `TimedOut` or a [`TimeoutError`].
    pub fn new(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        let mut timed_out = false;
        let mut cur: Option<&(dyn StdError + 'static)> = Some(&*source);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                timed_out = true;
                break;
            }
            if e.is::<TimeoutError>() {
                timed_out = true;
                break;
            }
            cur = e.source();
        }
        ConnectError { source, timed_out }
    }

    /// Whether the connect timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            write!(f, "connect timeout: {}", self.source)
        } else {
            write!(f, "connection failed: {}", self.source)
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The error an upstream stream sends in the middle of a server-sent event stream
/// (an `event: error` or a `data:` object with `"object": "error"`).
#[derive(Debug, Clone)]
pub struct StreamEventError {
    /// The parsed API error, when the event data is one.
    pub api_error: Option<ApiError>,
    /// The raw event data.
    pub data: String,
}

impl fmt::Display for StreamEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.api_error {
            Some(e) => write!(f, "error event in stream: {e}"),
            None => write!(f, "error event in stream: {}", truncate(&self.data, 200)),
        }
    }
}

impl StdError for StreamEventError {}

/// The error a Mistral endpoint returned, parsed from any of the body shapes the
/// API uses.
///
/// Shapes understood: the documented envelope `{object, message, type, param, code}`
/// (with `code` a string or a number, and an optional `raw_status_code`); the same
/// envelope whose `message` is an object with a `detail` list; `{"detail": "..."}`;
/// a 422 `{"detail": [{loc, msg, type}, ...]}`; and the legacy `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ApiError {
    /// A human-readable message. For validation errors, the entries' messages
    /// joined with `"; "`.
    pub message: String,
    /// The error type, e.g. `invalid_request_error` or `rate_limited`.
    pub error_type: Option<String>,
    /// The offending parameter, when the API names one.
    pub param: Option<String>,
    /// The error code; numeric codes are rendered as strings (`"1300"`).
    pub code: Option<String>,
    /// The HTTP status the API reports in the body (`raw_status_code`).
    pub raw_status_code: Option<u16>,
    /// Validation details (`message.detail[]` or a top-level `detail[]`).
    pub detail: Vec<ValidationDetail>,
    /// The whole parsed body, for fields not modelled here.
    pub raw: Value,
}

/// One entry of a validation error's `detail` list.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ValidationDetail {
    /// The kind of violation, e.g. `extra_forbidden` or `missing`.
    pub error_type: Option<String>,
    /// Where the violation is, e.g. `["body", "messages"]` (numbers rendered as strings).
    pub loc: Vec<String>,
    /// The message.
    pub msg: String,
    /// The offending input value, when sent.
    pub input: Option<Value>,
}

impl ApiError {
    /// Parses an error body; `None` when it is not JSON or not an error shape.
    /// Never panics.
    pub fn parse(body: &[u8]) -> Option<ApiError> {
        let value: Value = serde_json::from_slice(body).ok()?;
        ApiError::from_value(value)
    }

    /// Interprets an already parsed JSON value as an error; `None` if it is not one.
    pub fn from_value(value: Value) -> Option<ApiError> {
        let obj = value.as_object()?;
        let mut err = ApiError::default();
        let mut recognized = false;

        match obj.get("message") {
            Some(Value::String(s)) => {
                err.message = s.clone();
                recognized = true;
            }
            Some(Value::Object(m)) => {
                recognized = true;
                if let Some(d) = m.get("detail") {
                    absorb_detail(&mut err, d);
                }
                if err.message.is_empty() {
                    if let Some(Value::String(s)) = m.get("message") {
                        err.message = s.clone();
                    } else {
                        err.message = Value::Object(m.clone()).to_string();
                    }
                }
            }
            Some(Value::Array(_)) => {
                recognized = true;
                absorb_detail(&mut err, &obj["message"]);
            }
            _ => {}
        }
        if let Some(d) = obj.get("detail")
            && !matches!(d, Value::Null)
        {
            recognized = true;
            if err.message.is_empty() || err.detail.is_empty() {
                absorb_detail(&mut err, d);
            }
        }
        // `{"error": {...}}` (OpenAI-style) or `{"error": "..."}`.
        if !recognized {
            match obj.get("error") {
                Some(Value::String(s)) => {
                    err.message = s.clone();
                    recognized = true;
                }
                Some(inner @ Value::Object(_)) => {
                    if let Some(mut nested) = ApiError::from_value(inner.clone()) {
                        nested.raw = value.clone();
                        return Some(nested);
                    }
                }
                _ => {}
            }
        }
        if obj.get("object").and_then(Value::as_str) == Some("error") {
            recognized = true;
        }
        if !recognized {
            return None;
        }
        err.error_type = string_field(obj.get("type"));
        err.param = string_field(obj.get("param"));
        err.code = string_field(obj.get("code"));
        err.raw_status_code = obj
            .get("raw_status_code")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok());
        err.raw = value;
        Some(err)
    }
}

fn string_field(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn absorb_detail(err: &mut ApiError, d: &Value) {
    match d {
        Value::String(s) => {
            if err.message.is_empty() {
                err.message = s.clone();
            }
        }
        Value::Array(items) => {
            for item in items {
                let entry = match item {
                    Value::Object(o) => ValidationDetail {
                        error_type: string_field(o.get("type")),
                        loc: match o.get("loc") {
                            Some(Value::Array(l)) => l
                                .iter()
                                .map(|p| match p {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect(),
                            _ => Vec::new(),
                        },
                        msg: string_field(o.get("msg"))
                            .or_else(|| string_field(o.get("message")))
                            .unwrap_or_default(),
                        input: o.get("input").cloned(),
                    },
                    Value::String(s) => ValidationDetail {
                        msg: s.clone(),
                        ..Default::default()
                    },
                    other => ValidationDetail {
                        msg: other.to_string(),
                        ..Default::default()
                    },
                };
                err.detail.push(entry);
            }
            if err.message.is_empty() {
                err.message = err
                    .detail
                    .iter()
                    .map(|d| {
                        if d.loc.is_empty() {
                            d.msg.clone()
                        } else {
                            format!("{}: {}", d.loc.join("."), d.msg)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
            }
        }
        Value::Null => {}
        other => {
            if err.message.is_empty() {
                err.message = other.to_string();
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(t) = &self.error_type {
            write!(f, " (type {t}")?;
            if let Some(c) = &self.code {
                write!(f, ", code {c}")?;
            }
            f.write_str(")")?;
        } else if let Some(c) = &self.code {
            write!(f, " (code {c})")?;
        }
        Ok(())
    }
}

impl Error {
    fn from_parts(kind: Kind) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                status: None,
                headers: None,
                api_error: None,
                raw_body: None,
                message: None,
                source: None,
            }),
        }
    }

    fn with_message(mut self, msg: impl Into<String>) -> Self {
        self.inner.message = Some(msg.into());
        self
    }

    fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn with_response_meta(mut self, status: StatusCode, headers: HeaderMap) -> Self {
        self.inner.status = Some(status);
        self.inner.headers = Some(headers);
        self
    }

    pub(crate) fn with_raw_body(mut self, body: Bytes) -> Self {
        self.inner.raw_body = Some(body);
        self
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::from_parts(Kind::Config).with_message(msg)
    }

    pub(crate) fn request(source: impl Into<BoxError>) -> Self {
        Error::from_parts(Kind::Request).with_source(source)
    }

    /// An error for a non-success response: parses the body into an [`ApiError`],
    /// keeping the raw body when it does not parse.
    pub(crate) fn from_status(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        let mut e = Error::from_parts(Kind::Status).with_response_meta(status, headers);
        e.inner.api_error = ApiError::parse(&body);
        e.inner.raw_body = Some(body);
        e
    }

    pub(crate) fn decode(source: impl Into<BoxError>, body: Bytes) -> Self {
        Error::from_parts(Kind::Decode)
            .with_source(source)
            .with_raw_body(body)
    }

    pub(crate) fn stream(msg: impl Into<String>) -> Self {
        Error::from_parts(Kind::Stream).with_message(msg)
    }

    pub(crate) fn stream_event(ev: StreamEventError) -> Self {
        let mut e = Error::from_parts(Kind::Stream);
        e.inner.api_error = ev.api_error.clone();
        e.inner.raw_body = Some(Bytes::from(ev.data.clone()));
        e.with_source(ev)
    }

    /// Classifies an error returned by the tower stack (timeouts, connection
    /// failures, anything else).
    pub fn from_service_error(err: BoxError) -> Self {
        Error::classify(err, Kind::Transport)
    }

    /// Classifies an error produced while reading a response body; errors that are
    /// not timeouts or connection failures become `fallback` ([`Error::is_stream`]
    /// for streams, a transport error otherwise).
    pub(crate) fn from_body_error(err: BoxError, streaming: bool) -> Self {
        Error::classify(
            err,
            if streaming {
                Kind::Stream
            } else {
                Kind::Transport
            },
        )
    }

    fn classify(err: BoxError, fallback: Kind) -> Self {
        // Already a client error (e.g. from a user layer): keep it.
        let err = match err.downcast::<Error>() {
            Ok(e) => return *e,
            Err(e) => e,
        };
        let mut kind = fallback;
        let mut cur: Option<&(dyn StdError + 'static)> = Some(&*err);
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<TimeoutError>() {
                kind = Kind::Timeout(t.kind());
                break;
            }
            if e.is::<tower::timeout::error::Elapsed>() {
                kind = Kind::Timeout(TimeoutKind::Total);
                break;
            }
            if let Some(c) = e.downcast_ref::<ConnectError>() {
                kind = if c.is_timeout() {
                    Kind::Timeout(TimeoutKind::Connect)
                } else {
                    Kind::Connect
                };
                break;
            }
            if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
                && h.is_connect()
            {
                let timed_out = h
                    .source()
                    .and_then(|s| s.source())
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
                kind = if timed_out {
                    Kind::Timeout(TimeoutKind::Connect)
                } else {
                    Kind::Connect
                };
                break;
            }
            if let Some(s) = e.downcast_ref::<StreamEventError>() {
                let s = s.clone();
                return Error::stream_event(s);
            }
            cur = e.source();
        }
        Error::from_parts(kind).with_source(err)
    }

    /// The HTTP status of the response, when one was received.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The response headers, when a response was received.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.inner.headers.as_ref()
    }

    /// The `mistral-correlation-id` response header, to quote to Mistral support.
    pub fn correlation_id(&self) -> Option<&str> {
        self.inner
            .headers
            .as_ref()?
            .get(CORRELATION_ID_HEADER)?
            .to_str()
            .ok()
    }

    /// The error the API returned, parsed from the response body (or from a stream
    /// error event).
    pub fn api_error(&self) -> Option<&ApiError> {
        self.inner.api_error.as_ref()
    }

    /// The raw response body of a status or decode error.
    pub fn raw_body(&self) -> Option<&Bytes> {
        self.inner.raw_body.as_ref()
    }

    /// Which timeout elapsed, for a timeout error.
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self.inner.kind {
            Kind::Timeout(k) => Some(k),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed: a 429, 500, 502, 503 or 504
    /// status, a connection failure, or a connect timeout.
    pub fn is_retryable(&self) -> bool {
        match self.inner.kind {
            Kind::Status => self.inner.status.is_some_and(is_retryable_status),
            Kind::Connect | Kind::Timeout(TimeoutKind::Connect) => true,
            _ => false,
        }
    }

    /// Whether a timeout elapsed (see [`timeout_kind`](Error::timeout_kind)).
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, Kind::Timeout(_))
    }

    /// Whether the connection could not be established (a connect timeout included).
    pub fn is_connect(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::Connect | Kind::Timeout(TimeoutKind::Connect)
        )
    }

    /// Whether the API answered with a non-success status.
    pub fn is_status(&self) -> bool {
        self.inner.kind == Kind::Status
    }

    /// Whether a successful response body could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.inner.kind == Kind::Decode
    }

    /// Whether a stream failed after it started: truncated (no `[DONE]`), an error
    /// event from upstream, an undecodable event, or a broken body.
    pub fn is_stream(&self) -> bool {
        self.inner.kind == Kind::Stream
    }

    /// Whether the client configuration is invalid (builder or environment).
    pub fn is_config(&self) -> bool {
        self.inner.kind == Kind::Config
    }
}

/// Whether a response status is worth retrying: 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        match i.kind {
            Kind::Config => f.write_str("invalid client configuration")?,
            Kind::Request => f.write_str("could not build the request")?,
            Kind::Connect => f.write_str("could not connect")?,
            Kind::Timeout(k) => write!(f, "{k} timeout")?,
            Kind::Status => match i.status {
                Some(s) => write!(f, "HTTP status {s}")?,
                None => f.write_str("error status")?,
            },
            Kind::Decode => f.write_str("could not decode the response")?,
            Kind::Stream => f.write_str("stream failed")?,
            Kind::Transport => f.write_str("request failed")?,
        }
        if let Some(m) = &i.message {
            write!(f, ": {m}")?;
        }
        if let Some(api) = &i.api_error {
            write!(f, ": {api}")?;
        } else if i.kind == Kind::Status
            && let Some(b) = &i.raw_body
            && !b.is_empty()
        {
            write!(f, ": {}", truncate(&String::from_utf8_lossy(b), 200))?;
        }
        if let Some(src) = &i.source
            && (i.kind != Kind::Stream || i.api_error.is_none())
        {
            write!(f, ": {src}")?;
        }
        if let Some(id) = self.correlation_id() {
            write!(f, " (correlation id {id})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind);
        if let Some(s) = i.status {
            d.field("status", &s);
        }
        if let Some(id) = self.correlation_id() {
            d.field("correlation_id", &id);
        }
        if let Some(a) = &i.api_error {
            d.field("api_error", &a.to_string());
        }
        if let Some(m) = &i.message {
            d.field("message", m);
        }
        if let Some(s) = &i.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($file:literal) => {
            include_bytes!(concat!("../tests/fixtures/", $file))
        };
    }

    #[test]
    fn glossary_envelope() {
        let e = ApiError::parse(fixture!("error.invalid-request.json")).unwrap();
        assert_eq!(
            e.message,
            "The model `mistral-nano-2099` is not available to this workspace."
        );
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(e.param.as_deref(), Some("model"));
        assert_eq!(e.code.as_deref(), Some("model_not_available"));
        assert!(e.detail.is_empty());
    }

    #[test]
    fn message_object_with_detail_list() {
        let e = ApiError::parse(fixture!("error.validation-detail.json")).unwrap();
        assert_eq!(e.detail.len(), 2);
        assert_eq!(e.detail[0].error_type.as_deref(), Some("extra_forbidden"));
        assert_eq!(e.detail[0].loc, ["body", "top_k"]);
        assert_eq!(e.detail[1].msg, "Field required");
        assert_eq!(e.detail[0].input, Some(Value::from(40)));
        assert!(e.message.contains("Extra inputs are not permitted"));
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(e.code, None);
        assert_eq!(e.param, None);
    }

    #[test]
    fn string_message_numeric_string_code() {
        let e = ApiError::parse(fixture!("error.string-message.json")).unwrap();
        assert_eq!(
            e.message,
            "Embedding dimension 4096 is above the maximum of 3072 for this model."
        );
        assert_eq!(e.code.as_deref(), Some("3051"));
        assert_eq!(
            e.error_type.as_deref(),
            Some("invalid_request_invalid_args")
        );
    }

    #[test]
    fn detail_string() {
        let e = ApiError::parse(fixture!("error.401.json")).unwrap();
        assert_eq!(e.message, "Invalid or expired API key");
        assert_eq!(e.error_type, None);
    }

    #[test]
    fn invalid_model() {
        let e = ApiError::parse(fixture!("error.invalid-model.json")).unwrap();
        assert_eq!(e.message, "Invalid model: mistral-imaginary-latest");
        assert_eq!(e.code.as_deref(), Some("1500"));
        assert_eq!(e.error_type.as_deref(), Some("invalid_model"));
    }

    #[test]
    fn legacy_message_only() {
        let e = ApiError::parse(fixture!("error.429-legacy.json")).unwrap();
        assert_eq!(e.message, "Too many requests, slow down");
        assert_eq!(e.code, None);
    }

    #[test]
    fn current_429_with_raw_status() {
        let e = ApiError::parse(fixture!("error.429.json")).unwrap();
        assert_eq!(e.message, "Rate limit exceeded for this workspace");
        assert_eq!(e.error_type.as_deref(), Some("rate_limited"));
        assert_eq!(e.code.as_deref(), Some("1300"));
        assert_eq!(e.raw_status_code, Some(429));
    }

    #[test]
    fn fastapi_422_detail_list() {
        let body = br#"{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{}},{"loc":["body","messages",0],"msg":"bad"}]}"#;
        let e = ApiError::parse(body).unwrap();
        assert_eq!(e.detail.len(), 2);
        assert_eq!(e.detail[1].loc, ["body", "messages", "0"]);
        assert_eq!(
            e.message,
            "body.model: Field required; body.messages.0: bad"
        );
    }

    #[test]
    fn numeric_code() {
        let e = ApiError::parse(br#"{"object":"error","message":"x","code":3051}"#).unwrap();
        assert_eq!(e.code.as_deref(), Some("3051"));
    }

    #[test]
    fn non_error_shapes_are_none() {
        assert!(ApiError::parse(b"").is_none());
        assert!(ApiError::parse(b"null").is_none());
        assert!(ApiError::parse(b"[1,2]").is_none());
        assert!(ApiError::parse(b"{\"id\":\"x\"}").is_none());
        assert!(ApiError::parse(b"upstream connect error").is_none());
        assert!(ApiError::parse(br#"{"message":{"detail":5}}"#).is_some());
    }

    #[test]
    fn status_error_keeps_raw_body_when_unparsed() {
        let mut h = HeaderMap::new();
        h.insert(CORRELATION_ID_HEADER, "abc-123".parse().unwrap());
        let e = Error::from_status(
            StatusCode::BAD_GATEWAY,
            h,
            Bytes::from_static(b"<html>bad gateway</html>"),
        );
        assert!(e.is_status() && e.is_retryable());
        assert!(e.api_error().is_none());
        assert_eq!(e.raw_body().unwrap(), "<html>bad gateway</html>".as_bytes());
        assert_eq!(e.correlation_id(), Some("abc-123"));
        assert!(e.to_string().contains("abc-123"));
    }

    #[test]
    fn classifies_timeouts_and_connect_errors() {
        let e =
            Error::from_service_error(Box::new(TimeoutError::new(TimeoutKind::StreamIdle, None)));
        assert!(e.is_timeout() && !e.is_retryable());
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::StreamIdle));
        let e = Error::from_service_error(Box::new(ConnectError::new(std::io::Error::other(
            "refused",
        ))));
        assert!(e.is_connect() && e.is_retryable() && !e.is_timeout());
        let e = Error::from_service_error(Box::new(ConnectError::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timeout",
        ))));
        assert!(e.is_connect() && e.is_timeout() && e.is_retryable());
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Connect));
        let e = Error::from_service_error("boom".into());
        assert!(!e.is_timeout() && !e.is_connect() && !e.is_status());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = ApiError::parse(&bytes);
            let e = Error::from_status(StatusCode::BAD_REQUEST, HeaderMap::new(), Bytes::from(bytes));
            let _ = e.to_string();
        }

        #[test]
        fn parse_never_panics_on_json(s in r#"\{("(message|detail|code|type|param|object|raw_status_code|loc|msg)":(null|1|-1|"x"|\[\]|\{\}|\[\{"loc":\[1,"a"\],"msg":2\}\]|\{"detail":\[1\]\}),?){0,6}\}"#) {
            let _ = ApiError::parse(s.as_bytes());
        }
    }
}
