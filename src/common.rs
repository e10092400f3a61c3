//! Wire types shared by several Mistral endpoints: usage, content chunks, tools, tool calls,
//! response formats, predictions, guardrails and the string enums they use.
//!
//! Reading is tolerant, writing is exact: response types ignore unknown fields and keep
//! unknown enum values as `Other(String)` (re-serialized unchanged); request types never send a
//! field that was not set, and send `Some(0.0)` / `Some(false)` as given.
//!
//! # Example
//!
//! ```
//! use mistral_tower::common::{Content, ContentChunk, FinishReason, FunctionCall};
//!
//! let content: Content = serde_json::from_str(r#"[{"type":"text","text":"Hi"},{"type":"new","x":1}]"#)?;
//! assert_eq!(content.text(), "Hi");
//! assert!(matches!(content.chunks()[1], ContentChunk::Unknown(_)));
//!
//! let reason: FinishReason = serde_json::from_str(r#""brand_new""#)?;
//! assert_eq!(reason, FinishReason::Other("brand_new".into()));
//! assert_eq!(serde_json::to_string(&reason)?, r#""brand_new""#);
//!
//! let call: FunctionCall = serde_json::from_str(r#"{"name":"f","arguments":"{\"a\":1}"}"#)?;
//! assert_eq!(call.arguments.to_value()?, serde_json::json!({"a": 1}));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Declares a string enum whose unknown values are kept in an `Other(String)` variant and
/// re-serialized unchanged.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of the crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $value, )+
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $value => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $( $value => Self::$variant, )+
                    _ => Self::Other(value),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from(value.as_ref()))
            }
        }
    };
}
pub(crate) use string_enum;

/// Generates builder-style setters that set `self.field = Some(value)`: `field: T,` takes a
/// `T`; `field: impl T,` takes any `impl Into<T>`.
macro_rules! setters {
    () => {};
    ($name:ident : impl $ty:ty, $($rest:tt)*) => {
        #[doc = concat!("Sets the `", stringify!($name), "` field (builder style).")]
        #[must_use]
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        }
        $crate::common::setters!($($rest)*);
    };
    ($name:ident : $ty:ty, $($rest:tt)*) => {
        #[doc = concat!("Sets the `", stringify!($name), "` field (builder style).")]
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
        $crate::common::setters!($($rest)*);
    };
}
pub(crate) use setters;

string_enum! {
    /// Why the model stopped generating.
    FinishReason {
        /// A natural stop point or a stop sequence.
        Stop = "stop",
        /// `max_tokens` was reached.
        Length = "length",
        /// The model's context length was reached.
        ModelLength = "model_length",
        /// Generation failed (seen in streams).
        Error = "error",
        /// The model called one or more tools.
        ToolCalls = "tool_calls",
    }
}

string_enum! {
    /// The author of a message.
    Role {
        /// A system prompt.
        System = "system",
        /// The user.
        User = "user",
        /// The model.
        Assistant = "assistant",
        /// A tool result.
        Tool = "tool",
    }
}

string_enum! {
    /// The type of a tool call (`ToolTypes`): only `function` today.
    ToolType {
        /// A function call.
        Function = "function",
    }
}

string_enum! {
    /// `tool_choice` as a string (`ToolChoiceEnum`).
    ToolChoiceMode {
        /// The model picks between a message and tool calls.
        Auto = "auto",
        /// The model does not call any tool.
        None = "none",
        /// The model must call one or more tools.
        Any = "any",
        /// The model must call one or more tools (same as `any`).
        Required = "required",
    }
}

string_enum! {
    /// The output format type of [`ResponseFormat`] (`ResponseFormats`).
    ResponseFormatType {
        /// Plain text (the default).
        Text = "text",
        /// JSON mode: the output is valid JSON.
        JsonObject = "json_object",
        /// JSON schema mode: the output follows the given schema.
        JsonSchema = "json_schema",
    }
}

string_enum! {
    /// The detail level of an image (`ImageDetail`).
    ImageDetail {
        /// Low detail.
        Low = "low",
        /// Let the model choose.
        Auto = "auto",
        /// High detail.
        High = "high",
    }
}

string_enum! {
    /// How much a reasoning model thinks (`ReasoningEffort`).
    ReasoningEffort {
        /// No reasoning.
        None = "none",
        /// Minimal reasoning.
        Minimal = "minimal",
        /// Low effort.
        Low = "low",
        /// Medium effort.
        Medium = "medium",
        /// High effort.
        High = "high",
        /// Extra high effort.
        Xhigh = "xhigh",
    }
}

string_enum! {
    /// The `prompt_mode` of a chat request (`MistralPromptMode`): `reasoning` uses the system
    /// prompt for reasoning models.
    PromptMode {
        /// The reasoning system prompt.
        Reasoning = "reasoning",
    }
}

string_enum! {
    /// Requested service tier (`RequestedServiceTier`): priority or standard capacity.
    ServiceTier {
        /// Let the service decide.
        Auto = "auto",
        /// Only standard capacity.
        StandardOnly = "standard_only",
    }
}

string_enum! {
    /// Action a guardrail takes when a score is above its threshold (`ModerationLLMAction`).
    ModerationAction {
        /// Do nothing.
        None = "none",
        /// Block the request.
        Block = "block",
    }
}

/// Token usage of a request (`UsageInfo`).
///
/// The spec declares `additionalProperties: false`, yet live responses carry more
/// (`prompt_tokens_details.cached_tokens`, embeddings' `prompt_token_details`): unknown fields
/// are kept in [`UsageInfo::extra`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageInfo {
    /// Tokens in the prompt.
    #[serde(default, deserialize_with = "null_default")]
    pub prompt_tokens: u64,
    /// Tokens in the completion.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_tokens: u64,
    /// Prompt plus completion tokens.
    #[serde(default, deserialize_with = "null_default")]
    pub total_tokens: u64,
    /// Seconds of audio in the prompt (an integer per the spec; the live API has also been seen
    /// sending `{}`, so any JSON value is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_audio_seconds: Option<Value>,
    /// The service tier at which the request was processed: standard or priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Details of the prompt tokens, e.g. how many were served from Mistral's server-side
    /// prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// The same details as spelled by the embeddings endpoint (`prompt_token_details`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_details: Option<PromptTokensDetails>,
    /// Any other field the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl UsageInfo {
    /// Prompt tokens served from Mistral's server-side prompt cache, if reported.
    pub fn cached_tokens(&self) -> Option<u64> {
        self.prompt_tokens_details
            .as_ref()
            .or(self.prompt_token_details.as_ref())
            .and_then(|d| d.cached_tokens)
    }
}

/// Details of the prompt tokens (undocumented in the spec, sent by the live API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from Mistral's server-side prompt cache (`prompt_cache_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Any other field the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a plain string or a list of chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A list of typed chunks (text, images, documents, ...).
    Chunks(Vec<ContentChunk>),
}

impl Default for Content {
    fn default() -> Self {
        Content::Text(String::new())
    }
}

impl Content {
    /// The text of the content: the string itself, or the concatenated `text` chunks.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(text) => Cow::Borrowed(text),
            Content::Chunks(chunks) => {
                let mut out = String::new();
                for chunk in chunks {
                    if let ContentChunk::Text(t) = chunk {
                        out.push_str(&t.text);
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// The content as chunks (a string becomes one text chunk).
    pub fn chunks(&self) -> Cow<'_, [ContentChunk]> {
        match self {
            Content::Text(text) => Cow::Owned(vec![ContentChunk::text(text.clone())]),
            Content::Chunks(chunks) => Cow::Borrowed(chunks),
        }
    }

    /// Appends a streamed delta: strings concatenate; chunks are appended, and adjacent text
    /// is merged into the last text chunk.
    pub fn append(&mut self, delta: Content) {
        match (&mut *self, delta) {
            (Content::Text(text), Content::Text(more)) => text.push_str(&more),
            (Content::Chunks(chunks), Content::Text(more)) => push_text(chunks, &more),
            (Content::Text(text), Content::Chunks(more)) => {
                let mut chunks = Vec::new();
                if !text.is_empty() {
                    chunks.push(ContentChunk::text(std::mem::take(text)));
                }
                append_chunks(&mut chunks, more);
                *self = Content::Chunks(chunks);
            }
            (Content::Chunks(chunks), Content::Chunks(more)) => append_chunks(chunks, more),
        }
    }
}

fn push_text(chunks: &mut Vec<ContentChunk>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(ContentChunk::Text(last)) = chunks.last_mut() {
        last.text.push_str(text);
    } else {
        chunks.push(ContentChunk::text(text));
    }
}

fn append_chunks(chunks: &mut Vec<ContentChunk>, more: Vec<ContentChunk>) {
    for chunk in more {
        match chunk {
            ContentChunk::Text(t) => push_text(chunks, &t.text),
            other => chunks.push(other),
        }
    }
}

impl From<&str> for Content {
    fn from(value: &str) -> Self {
        Content::Text(value.to_owned())
    }
}

impl From<String> for Content {
    fn from(value: String) -> Self {
        Content::Text(value)
    }
}

impl From<&String> for Content {
    fn from(value: &String) -> Self {
        Content::Text(value.clone())
    }
}

impl From<Vec<ContentChunk>> for Content {
    fn from(value: Vec<ContentChunk>) -> Self {
        Content::Chunks(value)
    }
}

impl From<ContentChunk> for Content {
    fn from(value: ContentChunk) -> Self {
        Content::Chunks(vec![value])
    }
}

/// One typed piece of message content (`ContentChunk`), tagged by `type`.
///
/// A chunk with an unknown `type` (or a known `type` in an unexpected shape) is kept verbatim
/// as [`ContentChunk::Unknown`] and re-serialized unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentChunk {
    /// `{"type": "text", "text": ...}`.
    #[serde(rename = "text")]
    Text(TextChunk),
    /// `{"type": "image_url", "image_url": ...}`.
    #[serde(rename = "image_url")]
    ImageUrl(ImageUrlChunk),
    /// `{"type": "document_url", "document_url": ...}`.
    #[serde(rename = "document_url")]
    DocumentUrl(DocumentUrlChunk),
    /// `{"type": "reference", "reference_ids": [...]}`.
    #[serde(rename = "reference")]
    Reference(ReferenceChunk),
    /// `{"type": "file", "file_id": ...}`: an uploaded file.
    #[serde(rename = "file")]
    File(FileChunk),
    /// `{"type": "thinking", "thinking": [...]}`: reasoning of a reasoning model.
    #[serde(rename = "thinking")]
    Thinking(ThinkChunk),
    /// `{"type": "input_audio", "input_audio": ...}`.
    #[serde(rename = "input_audio")]
    InputAudio(AudioChunk),
    /// Any chunk this version of the crate does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

impl ContentChunk {
    /// A text chunk.
    pub fn text(text: impl Into<String>) -> Self {
        ContentChunk::Text(TextChunk { text: text.into() })
    }

    /// An image chunk with a URL (or a `data:` URL).
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentChunk::ImageUrl(ImageUrlChunk {
            image_url: ImageUrl::Url(url.into()),
        })
    }

    /// A document chunk with a URL.
    pub fn document_url(url: impl Into<String>) -> Self {
        ContentChunk::DocumentUrl(DocumentUrlChunk {
            document_url: url.into(),
            document_name: None,
        })
    }

    /// A chunk referring to an uploaded file.
    pub fn file(file_id: impl Into<String>) -> Self {
        ContentChunk::File(FileChunk {
            file_id: file_id.into(),
        })
    }

    /// An audio chunk (base64-encoded audio or a URL).
    pub fn input_audio(audio: impl Into<String>) -> Self {
        ContentChunk::InputAudio(AudioChunk {
            input_audio: audio.into(),
        })
    }
}

/// A text chunk (`TextChunk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextChunk {
    /// The text.
    pub text: String,
}

/// An image chunk (`ImageURLChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrlChunk {
    /// The image: a URL string or `{url, detail}`.
    pub image_url: ImageUrl,
}

/// An image reference: a bare URL string or an object with a detail level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    /// A URL (or a `data:image/...;base64,` URL).
    Url(String),
    /// `{url, detail}` (`ImageURL`).
    Object(ImageUrlObject),
}

/// An image URL with a detail level (`ImageURL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrlObject {
    /// The URL.
    pub url: String,
    /// The detail level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ImageDetail>,
}

/// A document chunk (`DocumentURLChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentUrlChunk {
    /// The document URL.
    pub document_url: String,
    /// The filename of the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_name: Option<String>,
}

/// A reference chunk (`ReferenceChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceChunk {
    /// The referenced ids.
    pub reference_ids: Vec<ReferenceId>,
}

/// A reference id: an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReferenceId {
    /// An integer id.
    Int(i64),
    /// A string id.
    String(String),
}

/// A chunk referring to an uploaded file (`FileChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChunk {
    /// The file id (a UUID).
    pub file_id: String,
}

/// An audio chunk (`AudioChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioChunk {
    /// The audio, base64-encoded (or a URL).
    pub input_audio: String,
}

/// A thinking chunk of a reasoning model (`ThinkChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkChunk {
    /// The reasoning.
    pub thinking: Vec<ThinkingPart>,
    /// Signature to replay some reasoning blocks across turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Whether the thinking chunk is closed or not. Currently only used for prefixing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
}

/// One part of a [`ThinkChunk`], tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ThinkingPart {
    /// `{"type": "text", ...}`.
    #[serde(rename = "text")]
    Text(TextChunk),
    /// `{"type": "tool_reference", ...}`.
    #[serde(rename = "tool_reference")]
    ToolReference(ToolReferenceChunk),
    /// `{"type": "reference", ...}`.
    #[serde(rename = "reference")]
    Reference(ReferenceChunk),
    /// Any part this version of the crate does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

/// A reference to a tool result (`ToolReferenceChunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolReferenceChunk {
    /// The tool: a built-in connector name (`web_search`, ...) or a custom string.
    pub tool: String,
    /// The title.
    pub title: String,
    /// The URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The favicon URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favicon: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A tool the model may use, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    /// A function the model may call (`Tool`).
    Function {
        /// The function.
        function: Function,
    },
    /// Built-in web search (`WebSearchTool`).
    WebSearch {
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// Built-in premium web search (`WebSearchPremiumTool`).
    WebSearchPremium {
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// Built-in code interpreter (`CodeInterpreterTool`).
    CodeInterpreter {
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// Built-in image generation (`ImageGenerationTool`).
    ImageGeneration {
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// Search in document libraries (`DocumentLibraryTool`).
    DocumentLibrary {
        /// Ids of the library in which to search.
        library_ids: Vec<String>,
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// A custom connector (`CustomConnector`).
    Connector {
        /// The connector id.
        connector_id: String,
        /// Credentials for the connector.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<ConnectorAuth>,
        /// Tool configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_configuration: Option<ToolConfiguration>,
    },
    /// Any tool this version of the crate does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

impl Tool {
    /// A function tool.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Tool::Function {
            function: Function::new(name, parameters).description(description),
        }
    }
}

impl From<Function> for Tool {
    fn from(function: Function) -> Self {
        Tool::Function { function }
    }
}

/// A function definition (`Function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// The function name.
    pub name: String,
    /// What the function does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Enforce the parameters schema strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// The parameters, as a JSON schema object.
    pub parameters: Value,
}

impl Function {
    /// A function with a name and a JSON schema of its parameters.
    pub fn new(name: impl Into<String>, parameters: Value) -> Self {
        Function {
            name: name.into(),
            description: None,
            strict: None,
            parameters,
        }
    }

    setters! {
        description: impl String,
        strict: bool,
    }
}

/// Configuration of a built-in tool (`ToolConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolConfiguration {
    /// Excluded items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// Included items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Items requiring confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_confirmation: Option<Vec<String>>,
}

/// Credentials of a custom connector, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConnectorAuth {
    /// `{"type": "oauth2-token", "value": ...}` (`OAuth2TokenAuth`).
    #[serde(rename = "oauth2-token")]
    OAuth2Token {
        /// The token.
        value: String,
    },
    /// `{"type": "api-key", "value": ...}` (`APIKeyAuth`).
    #[serde(rename = "api-key")]
    ApiKey {
        /// The key.
        value: String,
    },
}

/// A tool call made by the model (`ToolCall`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id (the spec's default is the string `"null"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call type (`function`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ToolType>,
    /// The function called and its arguments.
    #[serde(default)]
    pub function: FunctionCall,
    /// Position of the call in a streamed message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl ToolCall {
    /// A function call with an id and JSON-encoded string arguments.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<Arguments>,
    ) -> Self {
        ToolCall {
            id: Some(id.into()),
            r#type: Some(ToolType::Function),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
            index: None,
        }
    }
}

/// The function part of a tool call (`FunctionCall`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The arguments: the live API sends a JSON-encoded string; the spec also allows an object.
    #[serde(default, deserialize_with = "null_default")]
    pub arguments: Arguments,
}

/// Function-call arguments: a JSON-encoded string or a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Arguments {
    /// JSON-encoded arguments, as the live API sends them.
    String(String),
    /// Arguments as a JSON object.
    Object(Map<String, Value>),
}

impl Default for Arguments {
    fn default() -> Self {
        Arguments::String(String::new())
    }
}

impl Arguments {
    /// The arguments as a JSON value (a string is parsed; an empty string is `{}`).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Arguments::String(s) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
            Arguments::String(s) => serde_json::from_str(s),
            Arguments::Object(map) => Ok(Value::Object(map.clone())),
        }
    }

    /// The arguments decoded into a type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Arguments::String(s) => serde_json::from_str(s),
            Arguments::Object(map) => T::deserialize(Value::Object(map.clone())),
        }
    }

    /// The arguments as a JSON-encoded string.
    pub fn to_json_string(&self) -> String {
        match self {
            Arguments::String(s) => s.clone(),
            Arguments::Object(map) => Value::Object(map.clone()).to_string(),
        }
    }
}

impl From<&str> for Arguments {
    fn from(value: &str) -> Self {
        Arguments::String(value.to_owned())
    }
}

impl From<String> for Arguments {
    fn from(value: String) -> Self {
        Arguments::String(value)
    }
}

impl From<Map<String, Value>> for Arguments {
    fn from(value: Map<String, Value>) -> Self {
        Arguments::Object(value)
    }
}

/// Which tool the model calls: a mode (`auto`, `none`, `any`, `required`) or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// A mode (`ToolChoiceEnum`).
    Mode(ToolChoiceMode),
    /// A specific function (`ToolChoice`): `{"type": "function", "function": {"name": ...}}`.
    Named(NamedToolChoice),
}

impl ToolChoice {
    /// `auto`: the model picks between a message and tool calls.
    pub fn auto() -> Self {
        ToolChoice::Mode(ToolChoiceMode::Auto)
    }

    /// `none`: the model does not call tools.
    pub fn none() -> Self {
        ToolChoice::Mode(ToolChoiceMode::None)
    }

    /// `any`: the model must call one or more tools.
    pub fn any() -> Self {
        ToolChoice::Mode(ToolChoiceMode::Any)
    }

    /// `required`: the model must call one or more tools.
    pub fn required() -> Self {
        ToolChoice::Mode(ToolChoiceMode::Required)
    }

    /// Forces the model to call this function.
    pub fn function(name: impl Into<String>) -> Self {
        ToolChoice::Named(NamedToolChoice {
            r#type: Some(ToolType::Function),
            function: FunctionName { name: name.into() },
        })
    }
}

impl From<ToolChoiceMode> for ToolChoice {
    fn from(value: ToolChoiceMode) -> Self {
        ToolChoice::Mode(value)
    }
}

/// A named tool choice (the spec's `ToolChoice` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    /// The tool type (`function`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ToolType>,
    /// The function to call.
    pub function: FunctionName,
}

/// The name of a function to call (`FunctionName`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionName {
    /// The function name.
    pub name: String,
}

/// The format the model must output (`ResponseFormat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub r#type: ResponseFormatType,
    /// The schema, for `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchema>,
}

impl ResponseFormat {
    /// `{"type": "text"}`.
    pub fn text() -> Self {
        ResponseFormat {
            r#type: ResponseFormatType::Text,
            json_schema: None,
        }
    }

    /// `{"type": "json_object"}`: JSON mode (also instruct the model to produce JSON).
    pub fn json_object() -> Self {
        ResponseFormat {
            r#type: ResponseFormatType::JsonObject,
            json_schema: None,
        }
    }

    /// `{"type": "json_schema", "json_schema": ...}`: output follows the schema.
    pub fn json_schema(schema: JsonSchema) -> Self {
        ResponseFormat {
            r#type: ResponseFormatType::JsonSchema,
            json_schema: Some(schema),
        }
    }
}

/// A named JSON schema for structured output (`JsonSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchema {
    /// The schema's name.
    pub name: String,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema object.
    pub schema: Value,
    /// Enforce the schema strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl JsonSchema {
    /// A schema with a name.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        JsonSchema {
            name: name.into(),
            description: None,
            schema,
            strict: None,
        }
    }

    setters! {
        description: impl String,
        strict: bool,
    }
}

/// An expected completion, to speed up responses (`Prediction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Always `content`.
    #[serde(rename = "type", default = "prediction_type")]
    pub r#type: String,
    /// The expected content.
    #[serde(default)]
    pub content: String,
}

fn prediction_type() -> String {
    "content".to_owned()
}

impl Prediction {
    /// A content prediction.
    pub fn content(content: impl Into<String>) -> Self {
        Prediction {
            r#type: prediction_type(),
            content: content.into(),
        }
    }
}

/// Stop sequences: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl From<&str> for Stop {
    fn from(value: &str) -> Self {
        Stop::One(value.to_owned())
    }
}

impl From<String> for Stop {
    fn from(value: String) -> Self {
        Stop::One(value)
    }
}

impl From<Vec<String>> for Stop {
    fn from(value: Vec<String>) -> Self {
        Stop::Many(value)
    }
}

impl From<Vec<&str>> for Stop {
    fn from(value: Vec<&str>) -> Self {
        Stop::Many(value.into_iter().map(str::to_owned).collect())
    }
}

/// A guardrail on a request (`GuardrailConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardrailConfig {
    /// If true, return HTTP 403 and block request in the event of a server-side error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_on_error: Option<bool>,
    /// Moderation with the v1 moderation model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation_llm_v1: Option<ModerationLlmV1Config>,
    /// Moderation with the v2 moderation model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation_llm_v2: Option<ModerationLlmV2Config>,
}

/// Guardrail with the v1 moderation model (`ModerationLLMV1Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationLlmV1Config {
    /// Override model name. Should be omitted in general.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Per-category thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_category_thresholds: Option<ModerationLlmV1CategoryThresholds>,
    /// If true, only evaluate categories in custom_category_thresholds; others are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_other_categories: Option<bool>,
    /// Action to take if any score is above the threshold for any category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ModerationAction>,
}

/// Guardrail with the v2 moderation model (`ModerationLLMV2Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationLlmV2Config {
    /// Override model name. Should be omitted in general.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Per-category thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_category_thresholds: Option<ModerationLlmV2CategoryThresholds>,
    /// If true, only evaluate categories in custom_category_thresholds; others are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_other_categories: Option<bool>,
    /// Action to take if any score is above the threshold for any category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ModerationAction>,
}

/// Category thresholds of the v1 moderation model (`ModerationLLMV1CategoryThresholds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationLlmV1CategoryThresholds {
    /// Sexual content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sexual: Option<f64>,
    /// Hate and discrimination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hate_and_discrimination: Option<f64>,
    /// Violence and threats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violence_and_threats: Option<f64>,
    /// Dangerous and criminal content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerous_and_criminal_content: Option<f64>,
    /// Self-harm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfharm: Option<f64>,
    /// Health advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<f64>,
    /// Financial advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial: Option<f64>,
    /// Legal advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub law: Option<f64>,
    /// Personally identifiable information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<f64>,
}

/// Category thresholds of the v2 moderation model (`ModerationLLMV2CategoryThresholds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationLlmV2CategoryThresholds {
    /// Sexual content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sexual: Option<f64>,
    /// Hate and discrimination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hate_and_discrimination: Option<f64>,
    /// Violence and threats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violence_and_threats: Option<f64>,
    /// Dangerous content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerous: Option<f64>,
    /// Criminal content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criminal: Option<f64>,
    /// Self-harm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfharm: Option<f64>,
    /// Health advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<f64>,
    /// Financial advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial: Option<f64>,
    /// Legal advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub law: Option<f64>,
    /// Personally identifiable information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<f64>,
    /// Jailbreaking attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jailbreaking: Option<f64>,
}
