//! Typed structured output (feature `schemars`): a strict JSON schema derived from a Rust
//! type is sent as the response format, and the answer comes back parsed into that type.
//!
//! [`Chat::parse`] is the one-call form (the Python SDK's `client.chat.parse`),
//! [`Chat::parse_stream`] streams the text deltas and ends with the parsed value, and
//! [`Tool::from_type`] derives a function tool's parameters from an arguments type whose
//! calls then decode with [`ToolCall::parse_arguments`].
//!
//! The schema follows what Mistral's strict mode expects: every object has
//! `additionalProperties: false` and lists all its properties as `required` (an
//! `Option` field is required and nullable), and subschemas are inlined where
//! possible.
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, JsonSchema)]
//! struct Book {
//!     title: String,
//!     author: String,
//!     year: Option<u16>,
//! }
//!
//! # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
//! let req = ChatCompletionRequest::new(
//!     "mistral-small-latest",
//!     vec![ChatMessage::user("Name one book by Ursula K. Le Guin.")],
//! );
//! let res = client.chat().parse::<Book>(req).await?;
//! println!("{} by {} ({:?})", res.parsed.title, res.parsed.author, res.parsed.year);
//! # Ok(()) }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use schemars::JsonSchema as DeriveSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;
use crate::chat::ChatCompletionResponse;
use crate::chat::{ChatCompletionAccumulator, ChatCompletionChunk, ChatCompletionRequest};
use crate::client::{ApiResponse, Chat, EventStream};
use crate::common::{Function, JsonSchema, ResponseFormat, Tool, ToolCall};

/// The strict JSON schema of `T`: inlined subschemas, `additionalProperties: false`
/// and every property required on every object, no `$schema` key.
pub fn strict_schema<T: DeriveSchema + ?Sized>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    make_strict(&mut schema);
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
    }
    schema
}

/// Makes every object schema strict: `additionalProperties: false` and all of its
/// properties `required`.
pub fn make_strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                map.insert("required".into(), Value::Array(names));
                map.insert("additionalProperties".into(), Value::Bool(false));
            } else if map.get("type").and_then(Value::as_str) == Some("object")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, child) in map.iter_mut() {
                if !matches!(key.as_str(), "default" | "examples" | "const" | "enum") {
                    make_strict(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

/// The schema's name as the API accepts it (letters, digits, `_` and `-`).
fn schema_name<T: DeriveSchema + ?Sized>() -> String {
    let name: String = T::schema_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "output".to_owned()
    } else {
        name
    }
}

/// A strict `json_schema` response format derived from `T`.
pub fn response_format<T: DeriveSchema + ?Sized>() -> ResponseFormat {
    ResponseFormat::json_schema(
        JsonSchema::new(schema_name::<T>(), strict_schema::<T>()).strict(true),
    )
}

/// A chat completion with its first choice's content parsed into `T`.
#[derive(Debug, Clone)]
pub struct ParsedChatCompletion<T> {
    /// The parsed content of the first choice.
    pub parsed: T,
    /// The whole response.
    pub response: ChatCompletionResponse,
}

/// Parses the first choice's text into `T`; a failure is a decode error
/// ([`Error::is_decode`]) whose [`raw_body`](Error::raw_body) is the text.
fn parse_text<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::decode(e, Bytes::from(text.to_owned())))
}

impl Chat<'_> {
    /// Sends `req` with a strict `json_schema` response format derived from `T`
    /// (replacing any other) and parses the answer's text into `T`.
    ///
    /// # Errors
    ///
    /// As [`create`](Chat::create); an answer that does not decode into `T` is a
    /// decode error ([`Error::is_decode`]) whose [`raw_body`](Error::raw_body) holds
    /// the text, with the response's status and headers.
    pub async fn parse<T>(
        &self,
        req: ChatCompletionRequest,
    ) -> Result<ApiResponse<ParsedChatCompletion<T>>, Error>
    where
        T: DeriveSchema + DeserializeOwned,
    {
        let req = req.response_format(response_format::<T>());
        let res = self.create(req).await?;
        let (response, status, headers) = res.into_parts();
        match parse_text::<T>(&response.text()) {
            Ok(parsed) => Ok(ApiResponse::new(
                ParsedChatCompletion { parsed, response },
                status,
                headers,
            )),
            Err(e) => Err(e.with_response_meta(status, headers)),
        }
    }

    /// Streams `req` with a strict `json_schema` response format derived from `T`:
    /// yields [`StructuredEvent::Delta`] for every text delta, then one
    /// [`StructuredEvent::Done`] with the parsed value and the assembled response.
    pub async fn parse_stream<T>(
        &self,
        req: ChatCompletionRequest,
    ) -> Result<StructuredStream<T>, Error>
    where
        T: DeriveSchema + DeserializeOwned,
    {
        let req = req.response_format(response_format::<T>());
        let inner = self.create_stream(req).await?;
        Ok(StructuredStream {
            inner,
            acc: Some(ChatCompletionAccumulator::new()),
            _t: PhantomData,
        })
    }
}

/// One item of a [`StructuredStream`].
#[derive(Debug, Clone)]
pub enum StructuredEvent<T> {
    /// A piece of the answer's text (a fragment of the JSON document).
    Delta(String),
    /// The end: the parsed value and the assembled response.
    Done(Box<ParsedChatCompletion<T>>),
}

/// The stream of [`Chat::parse_stream`].
pub struct StructuredStream<T> {
    inner: EventStream<ChatCompletionChunk>,
    acc: Option<ChatCompletionAccumulator>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for StructuredStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StructuredStream")
            .field("inner", &self.inner)
            .field("finished", &self.acc.is_none())
            .finish()
    }
}

impl<T> StructuredStream<T> {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }
}

impl<T: DeserializeOwned> Stream for StructuredStream<T> {
    type Item = Result<StructuredEvent<T>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(acc) = this.acc.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    acc.push(&chunk);
                    let text = chunk.text();
                    if !text.is_empty() {
                        return Poll::Ready(Some(Ok(StructuredEvent::Delta(text))));
                    }
                }
                Some(Err(e)) => {
                    this.acc = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let response = this.acc.take().expect("checked above").finish();
                    let out = parse_text::<T>(&response.text())
                        .map(|parsed| {
                            StructuredEvent::Done(Box::new(ParsedChatCompletion {
                                parsed,
                                response,
                            }))
                        })
                        .map_err(|e| {
                            e.with_response_meta(this.inner.status(), this.inner.headers().clone())
                        });
                    return Poll::Ready(Some(out));
                }
            }
        }
    }
}

impl Tool {
    /// A strict function tool whose parameters schema is derived from `Args`; decode
    /// the model's calls with [`ToolCall::parse_arguments`].
    pub fn from_type<Args: DeriveSchema + ?Sized>(
        name: impl Into<String>,
        description: impl Into<String>,
    ) -> Tool {
        let mut parameters = strict_schema::<Args>();
        if let Value::Object(map) = &mut parameters {
            map.remove("title");
            map.remove("description");
        }
        if !parameters.is_object() {
            parameters = Value::Object(Map::new());
        }
        Tool::Function {
            function: Function::new(name, parameters)
                .description(description)
                .strict(true),
        }
    }
}

impl ToolCall {
    /// The call's arguments decoded into `Args`.
    ///
    /// # Errors
    ///
    /// A decode error ([`Error::is_decode`]) whose [`raw_body`](Error::raw_body) is the
    /// arguments' JSON text.
    pub fn parse_arguments<Args: DeserializeOwned>(&self) -> Result<Args, Error> {
        self.function
            .arguments
            .parse()
            .map_err(|e| Error::decode(e, Bytes::from(self.function.arguments.to_json_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct Inner {
        n: u32,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, schemars::JsonSchema)]
    struct Outer {
        name: String,
        note: Option<String>,
        items: Vec<Inner>,
    }

    #[test]
    fn schema_is_strict_everywhere() {
        let s = strict_schema::<Outer>();
        assert!(s.get("$schema").is_none());
        assert_eq!(s["additionalProperties"], false);
        let mut req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        req.sort_unstable();
        assert_eq!(req, ["items", "name", "note"]);
        let inner = &s["properties"]["items"]["items"];
        assert_eq!(inner["additionalProperties"], false, "{s}");
        assert_eq!(inner["required"], serde_json::json!(["n"]));
        let f = response_format::<Outer>();
        let js = f.json_schema.unwrap();
        assert_eq!(js.name, "Outer");
        assert_eq!(js.strict, Some(true));
    }

    #[test]
    fn tool_from_type_and_arguments() {
        let Tool::Function { function } = Tool::from_type::<Inner>("count", "Counts.") else {
            panic!("a function tool");
        };
        assert_eq!(function.strict, Some(true));
        assert_eq!(function.parameters["type"], "object");
        let call = ToolCall::function("c1", "count", r#"{"n":3}"#);
        assert_eq!(call.parse_arguments::<Inner>().unwrap().n, 3);
        let bad = ToolCall::function("c1", "count", r#"{"n":"x"}"#);
        let e = bad.parse_arguments::<Inner>().unwrap_err();
        assert!(e.is_decode());
        assert_eq!(e.raw_body().unwrap().as_ref(), br#"{"n":"x"}"#);
    }
}
