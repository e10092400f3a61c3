//! Chat completions (`POST /v1/chat/completions`): request, response, stream chunk and an
//! accumulator that turns streamed chunks into the final response.
//!
//! Requests have public `Option` fields (unset fields are never sent) and builder-style setters
//! of the same names; `Some(0.0)` and `Some(false)` are sent as given.
//!
//! # Example
//!
//! ```
//! use mistral_tower::chat::{
//!     ChatCompletionAccumulator, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
//!     ResponseFormat,
//! };
//!
//! let req = ChatCompletionRequest::new(
//!     "mistral-small-latest",
//!     vec![ChatMessage::system("Answer in JSON."), ChatMessage::user("Hi")],
//! )
//! .temperature(0.0)
//! .max_tokens(64)
//! .response_format(ResponseFormat::json_object());
//! let body = serde_json::to_value(&req)?;
//! assert_eq!(body["temperature"], 0.0);
//! assert!(body.get("top_p").is_none()); // unset fields are not sent
//!
//! let mut acc = ChatCompletionAccumulator::new();
//! for data in [
//!     r#"{"id":"a","model":"m","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
//!     r#"{"id":"a","model":"m","created":1,"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
//! ] {
//!     let chunk: ChatCompletionChunk = serde_json::from_str(data)?;
//!     acc.push(&chunk);
//! }
//! let res = acc.finish();
//! assert_eq!(res.choices[0].message.text(), "Hello");
//! assert_eq!(res.usage.unwrap().total_tokens, 3);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::common::{
    Arguments, AudioChunk, Content, ContentChunk, DocumentUrlChunk, FileChunk, FinishReason,
    Function, FunctionCall, FunctionName, GuardrailConfig, ImageDetail, ImageUrl, ImageUrlChunk,
    ImageUrlObject, JsonSchema, ModerationAction, ModerationLlmV1CategoryThresholds,
    ModerationLlmV1Config, ModerationLlmV2CategoryThresholds, ModerationLlmV2Config,
    NamedToolChoice, Prediction, PromptMode, PromptTokensDetails, ReasoningEffort, ReferenceChunk,
    ReferenceId, ResponseFormat, ResponseFormatType, Role, ServiceTier, Stop, TextChunk,
    ThinkChunk, ThinkingPart, Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolConfiguration,
    ToolReferenceChunk, ToolType, UsageInfo,
};
use crate::common::{null_default, setters};

/// One message of a conversation, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// A system prompt (`SystemMessage`).
    System(SystemMessage),
    /// A user message (`UserMessage`).
    User(UserMessage),
    /// A model message, e.g. an earlier answer or a prefix (`AssistantMessage`).
    Assistant(AssistantMessage),
    /// The result of a tool call (`ToolMessage`).
    Tool(ToolMessage),
}

impl ChatMessage {
    /// A system message from a string or content chunks.
    pub fn system(content: impl Into<Content>) -> Self {
        ChatMessage::System(SystemMessage {
            content: content.into(),
        })
    }

    /// A user message from a string or content chunks.
    pub fn user(content: impl Into<Content>) -> Self {
        ChatMessage::User(UserMessage {
            content: Some(content.into()),
        })
    }

    /// An assistant message from a string or content chunks.
    pub fn assistant(content: impl Into<Content>) -> Self {
        ChatMessage::Assistant(AssistantMessage {
            content: Some(content.into()),
            ..AssistantMessage::default()
        })
    }

    /// An assistant message used as a prefix the answer must start with (`prefix: true`).
    pub fn assistant_prefix(content: impl Into<Content>) -> Self {
        ChatMessage::Assistant(AssistantMessage {
            content: Some(content.into()),
            prefix: Some(true),
            ..AssistantMessage::default()
        })
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<Content>) -> Self {
        ChatMessage::Tool(ToolMessage {
            content: Some(content.into()),
            tool_call_id: Some(tool_call_id.into()),
            name: None,
        })
    }

    /// The role of the message.
    pub fn role(&self) -> Role {
        match self {
            ChatMessage::System(_) => Role::System,
            ChatMessage::User(_) => Role::User,
            ChatMessage::Assistant(_) => Role::Assistant,
            ChatMessage::Tool(_) => Role::Tool,
        }
    }

    /// The content of the message, if any.
    pub fn content(&self) -> Option<&Content> {
        match self {
            ChatMessage::System(m) => Some(&m.content),
            ChatMessage::User(m) => m.content.as_ref(),
            ChatMessage::Assistant(m) => m.content.as_ref(),
            ChatMessage::Tool(m) => m.content.as_ref(),
        }
    }
}

impl From<AssistantMessage> for ChatMessage {
    fn from(value: AssistantMessage) -> Self {
        ChatMessage::Assistant(value)
    }
}

/// A system message (`SystemMessage`; only text and thinking chunks are allowed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemMessage {
    /// The content.
    pub content: Content,
}

/// A user message (`UserMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// The content (required by the spec, may be `null`).
    pub content: Option<Content>,
}

/// A message of the model (`AssistantMessage`): in requests (conversation history, prefix) and
/// as the message of a response choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// The content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Tool calls the model made (the live API sends `null` when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Set this to `true` when adding an assistant message as prefix to condition the model
    /// response. The role of the prefix message is to force the model to start its answer by
    /// the content of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<bool>,
}

impl AssistantMessage {
    /// The text of the content (empty when there is none).
    pub fn text(&self) -> String {
        self.content
            .as_ref()
            .map(|c| c.text().into_owned())
            .unwrap_or_default()
    }

    /// The tool calls (empty when there are none).
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.tool_calls.as_deref().unwrap_or_default()
    }
}

/// The result of a tool call (`ToolMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolMessage {
    /// The content (required by the spec, may be `null`).
    pub content: Option<Content>,
    /// The id of the tool call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The name of the function called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A chat completion request (`ChatCompletionRequest`).
///
/// Every optional field is `None` by default and then not sent. Set fields directly or with the
/// builder-style setters of the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// ID of the model to use.
    pub model: String,
    /// The prompt(s) to generate completions for, encoded as a list of messages.
    pub messages: Vec<ChatMessage>,
    /// What sampling temperature to use, we recommend between 0.0 and 0.7. The default value
    /// varies depending on the model you are targeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: only the tokens comprising the `top_p` probability mass are considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The maximum number of tokens to generate in the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Whether to stream back partial progress as server-sent events, terminated by
    /// `data: [DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stop generation if this token (or one of these tokens) is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// The seed to use for random sampling. If set, different calls will generate deterministic
    /// results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The format the model must output (`text`, `json_object`, `json_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// A list of tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Controls which (if any) tool is called by the model: a mode or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Penalizes the repetition of words or phrases (-2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalizes the repetition of words based on their frequency (-2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Number of completions to return for each request, input tokens are only billed once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Expected results, to speed up responses for mostly known content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
    /// Whether to enable parallel function calling during tool use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning effort of reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Toggles between the reasoning mode and no system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_mode: Option<PromptMode>,
    /// Guardrails (moderation) applied to the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// Key of Mistral's *server-side* prompt cache (not this crate's response cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// Whether to serve the request using priority or standard capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// Whether to inject a safety prompt before all conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_prompt: Option<bool>,
}

impl ChatCompletionRequest {
    /// A request with a model and messages; every other field unset.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatCompletionRequest {
            model: model.into(),
            messages,
            ..Default::default()
        }
    }

    setters! {
        temperature: f64,
        top_p: f64,
        max_tokens: u32,
        stream: bool,
        stop: impl Stop,
        random_seed: u64,
        metadata: Map<String, Value>,
        response_format: ResponseFormat,
        tools: Vec<Tool>,
        tool_choice: impl ToolChoice,
        presence_penalty: f64,
        frequency_penalty: f64,
        n: u32,
        prediction: Prediction,
        parallel_tool_calls: bool,
        reasoning_effort: impl ReasoningEffort,
        prompt_mode: impl PromptMode,
        guardrails: Vec<GuardrailConfig>,
        prompt_cache_key: impl String,
        service_tier: impl ServiceTier,
        safe_prompt: bool,
    }
}

/// A chat completion response (`ChatCompletionResponse`), also returned by FIM and agents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// The completion id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type, `chat.completion`.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The model used.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageInfo>,
    /// Unix timestamp (seconds) of the creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The completions (one unless `n` > 1).
    #[serde(default, deserialize_with = "null_default")]
    pub choices: Vec<ChatCompletionChoice>,
}

impl ChatCompletionResponse {
    /// The text of the first choice (empty when there is none).
    pub fn text(&self) -> String {
        self.choices
            .first()
            .map(|c| c.message.text())
            .unwrap_or_default()
    }
}

/// One completion of a response (`ChatCompletionChoice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChoice {
    /// The choice index.
    #[serde(default, deserialize_with = "null_default")]
    pub index: u32,
    /// The generated message.
    #[serde(default, deserialize_with = "null_default")]
    pub message: AssistantMessage,
    /// Several messages, when the completion returns more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<DeltaMessage>>,
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

/// One streamed event (`CompletionChunk`), the JSON of one `data:` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// The completion id (the same in every chunk).
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type, `chat.completion.chunk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix timestamp (seconds) of the creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The model used.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// Token usage, usually only in the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageInfo>,
    /// The deltas.
    #[serde(default, deserialize_with = "null_default")]
    pub choices: Vec<ChatCompletionStreamChoice>,
}

impl ChatCompletionChunk {
    /// The text this chunk adds to the first choice (empty when none).
    pub fn text(&self) -> String {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_ref())
            .map(|c| c.text().into_owned())
            .unwrap_or_default()
    }
}

/// The delta of one choice in a chunk (`CompletionResponseStreamChoice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionStreamChoice {
    /// The choice index.
    #[serde(default, deserialize_with = "null_default")]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default, deserialize_with = "null_default")]
    pub delta: DeltaMessage,
    /// Why generation stopped, in the last chunk of the choice.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

/// A partial message (`DeltaMessage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaMessage {
    /// The role, usually only in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A piece of content: a string or chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Tool calls (a streamed tool call usually arrives whole in one chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The tool call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// If the completion returns multiple messages, which message this delta is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Merges streamed [`ChatCompletionChunk`]s into the final [`ChatCompletionResponse`].
///
/// Content deltas are concatenated (strings or chunk arrays), tool calls are merged by index
/// (a call may arrive whole or split; `arguments` strings are concatenated), the last usage and
/// finish reason win, and choices are kept apart by index (`n` > 1). The id, model and creation
/// time come from the first chunk that has them. The role is not kept: a choice's message is an
/// [`AssistantMessage`].
#[derive(Debug, Clone, Default)]
pub struct ChatCompletionAccumulator {
    id: String,
    model: String,
    created: Option<u64>,
    usage: Option<UsageInfo>,
    choices: BTreeMap<u32, ChoiceState>,
}

#[derive(Debug, Clone, Default)]
struct ChoiceState {
    content: Option<Content>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<FinishReason>,
}

impl ChatCompletionAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created.is_none() {
            self.created = chunk.created;
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        for choice in &chunk.choices {
            let state = self.choices.entry(choice.index).or_default();
            let delta = &choice.delta;
            if let Some(content) = &delta.content {
                match &mut state.content {
                    Some(existing) => existing.append(content.clone()),
                    None => state.content = Some(content.clone()),
                }
            }
            for call in delta.tool_calls.iter().flatten() {
                merge_tool_call(&mut state.tool_calls, call);
            }
            if let Some(reason) = &choice.finish_reason {
                state.finish_reason = Some(reason.clone());
            }
        }
    }

    /// The response assembled so far.
    pub fn finish(self) -> ChatCompletionResponse {
        ChatCompletionResponse {
            id: self.id,
            object: "chat.completion".to_owned(),
            model: self.model,
            usage: self.usage,
            created: self.created,
            choices: self
                .choices
                .into_iter()
                .map(|(index, state)| ChatCompletionChoice {
                    index,
                    message: AssistantMessage {
                        content: state.content,
                        tool_calls: if state.tool_calls.is_empty() {
                            None
                        } else {
                            Some(state.tool_calls)
                        },
                        prefix: None,
                    },
                    messages: None,
                    finish_reason: state.finish_reason,
                })
                .collect(),
        }
    }
}

fn real_id(id: &Option<String>) -> Option<&str> {
    id.as_deref().filter(|id| !id.is_empty() && *id != "null")
}

fn merge_tool_call(calls: &mut Vec<ToolCall>, delta: &ToolCall) {
    let delta_id = real_id(&delta.id);
    let target = match (delta_id, delta.index) {
        // A known id continues that call.
        (Some(id), _) if calls.iter().any(|c| real_id(&c.id) == Some(id)) => {
            calls.iter().position(|c| real_id(&c.id) == Some(id))
        }
        // A new id starts a new call.
        (Some(_), _) => None,
        // No id: continue the call with this index, or the last one.
        (None, Some(index)) => calls.iter().rposition(|c| c.index == Some(index)),
        (None, None) => calls.len().checked_sub(1),
    };
    let Some(position) = target else {
        calls.push(delta.clone());
        return;
    };
    let call = &mut calls[position];
    if real_id(&call.id).is_none() && delta_id.is_some() {
        call.id.clone_from(&delta.id);
    }
    if call.r#type.is_none() {
        call.r#type.clone_from(&delta.r#type);
    }
    if call.index.is_none() {
        call.index = delta.index;
    }
    if call.function.name.is_empty() {
        call.function.name.clone_from(&delta.function.name);
    }
    match (&mut call.function.arguments, &delta.function.arguments) {
        (Arguments::String(existing), Arguments::String(more)) => existing.push_str(more),
        (existing, more) => {
            if !more.to_json_string().is_empty() {
                *existing = more.clone();
            }
        }
    }
}
