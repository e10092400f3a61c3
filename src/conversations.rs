//! Conversations (beta, `/v1/conversations`): start, append, restart (each also
//! streamed), list, get, delete, history and messages, with typed entries and a typed
//! event stream, plus [`Conversations::run`], which runs a conversation with local
//! function tools to completion.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use mistral_tower::Client;
//! use mistral_tower::conversations::{ConversationEvent, ConversationRequest};
//!
//! # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
//! let res = client
//!     .conversations()
//!     .start(ConversationRequest::model("mistral-medium-latest", "Who are you?"))
//!     .await?;
//! println!("{}: {}", res.conversation_id, res.text());
//!
//! // Streamed: typed events, ending cleanly at `conversation.response.done`.
//! let mut events = client
//!     .conversations()
//!     .append_stream(&res.conversation_id, "And what can you do?".into())
//!     .await?;
//! while let Some(event) = events.try_next().await? {
//!     if let ConversationEvent::MessageOutputDelta(delta) = event {
//!         print!("{}", delta.content.text());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Caching
//!
//! None of these operations is cached by default: a conversation is server-side
//! state, and appending to it twice is not the same as appending once. The
//! cacheability table (`src/cacheable.rs`) is expected to mark every
//! `/v1/conversations` route as never cached.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{ApiResponse, EventStream};
use crate::common::{
    Arguments, Content, GuardrailConfig, Prediction, ReasoningEffort, ResponseFormat, Stop, Tool,
    ToolChoiceMode, null_default, setters, string_enum,
};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{BoxError, Client, Error, RequestOptions};

string_enum! {
    /// Who executes agent handoffs (`handoff_execution`).
    HandoffExecution {
        /// The client: the handoff comes back as a function call.
        Client = "client",
        /// The server (the default).
        Server = "server",
    }
}

string_enum! {
    /// The role of an input message (`MessageInputEntry.role`).
    EntryRole {
        /// The user.
        User = "user",
        /// The assistant.
        Assistant = "assistant",
    }
}

string_enum! {
    /// The confirmation state of a function call (`confirmation_status`).
    ConfirmationStatus {
        /// Waiting for a confirmation.
        Pending = "pending",
        /// Allowed.
        Allowed = "allowed",
        /// Denied.
        Denied = "denied",
    }
}

string_enum! {
    /// A confirmation of a tool call (`ToolCallConfirmation.confirmation`).
    Confirmation {
        /// Run the tool.
        Allow = "allow",
        /// Do not run it.
        Deny = "deny",
    }
}

/// Completion arguments of a conversation or an agent (`CompletionArgs`): the
/// white-listed fields of a chat completion request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionArgs {
    /// Stop generation at this token (or these tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Penalizes repeated words or phrases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalizes words by their frequency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The maximum number of tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The seed of random sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Expected output, to speed up the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
    /// The output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Whether and how tools are called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceMode>,
    /// Reasoning effort of reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
}

impl CompletionArgs {
    /// No argument set.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        stop: impl Stop,
        presence_penalty: f64,
        frequency_penalty: f64,
        temperature: f64,
        top_p: f64,
        max_tokens: u32,
        random_seed: u64,
        prediction: Prediction,
        response_format: ResponseFormat,
        tool_choice: ToolChoiceMode,
        reasoning_effort: impl ReasoningEffort,
    }
}

/// An agent version: a number or an alias (`agent_version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgentVersion {
    /// A version number.
    Number(u64),
    /// An alias.
    Alias(String),
}

impl From<u64> for AgentVersion {
    fn from(v: u64) -> Self {
        AgentVersion::Number(v)
    }
}

impl From<&str> for AgentVersion {
    fn from(v: &str) -> Self {
        AgentVersion::Alias(v.to_owned())
    }
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentVersion::Number(n) => write!(f, "{n}"),
            AgentVersion::Alias(a) => f.write_str(a),
        }
    }
}

/// The inputs of a conversation turn (`ConversationInputs`): a user message as text,
/// or entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConversationInputs {
    /// A user message.
    Text(String),
    /// Entries (messages, function results, ...).
    Entries(Vec<ConversationEntry>),
}

impl From<&str> for ConversationInputs {
    fn from(v: &str) -> Self {
        ConversationInputs::Text(v.to_owned())
    }
}

impl From<String> for ConversationInputs {
    fn from(v: String) -> Self {
        ConversationInputs::Text(v)
    }
}

impl From<Vec<ConversationEntry>> for ConversationInputs {
    fn from(v: Vec<ConversationEntry>) -> Self {
        ConversationInputs::Entries(v)
    }
}

/// One entry of a conversation, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConversationEntry {
    /// `message.input` (`MessageInputEntry`).
    #[serde(rename = "message.input")]
    MessageInput(MessageInputEntry),
    /// `message.output` (`MessageOutputEntry`).
    #[serde(rename = "message.output")]
    MessageOutput(MessageOutputEntry),
    /// `function.result` (`FunctionResultEntry`).
    #[serde(rename = "function.result")]
    FunctionResult(FunctionResultEntry),
    /// `function.call` (`FunctionCallEntry`).
    #[serde(rename = "function.call")]
    FunctionCall(FunctionCallEntry),
    /// `tool.execution` (`ToolExecutionEntry`): a built-in tool run by the server.
    #[serde(rename = "tool.execution")]
    ToolExecution(ToolExecutionEntry),
    /// `agent.handoff` (`AgentHandoffEntry`).
    #[serde(rename = "agent.handoff")]
    AgentHandoff(AgentHandoffEntry),
    /// An entry this version of the crate does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

impl ConversationEntry {
    /// A user message.
    pub fn user(content: impl Into<Content>) -> Self {
        ConversationEntry::MessageInput(MessageInputEntry::new(EntryRole::User, content))
    }

    /// An assistant message (input).
    pub fn assistant(content: impl Into<Content>) -> Self {
        ConversationEntry::MessageInput(MessageInputEntry::new(EntryRole::Assistant, content))
    }

    /// The result of a function call.
    pub fn function_result(tool_call_id: impl Into<String>, result: impl Into<String>) -> Self {
        ConversationEntry::FunctionResult(FunctionResultEntry {
            tool_call_id: tool_call_id.into(),
            result: result.into(),
            ..Default::default()
        })
    }
}

/// The metadata common to entries as read from the API.
macro_rules! entry_meta {
    ($(#[$m:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// The object type, `entry`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub object: Option<String>,
            /// The entry id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// When the entry was created (RFC 3339).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub created_at: Option<String>,
            /// When the entry was completed (RFC 3339).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub completed_at: Option<String>,
            $($body)*
        }
    };
}

entry_meta! {
    /// A message given to the model (`MessageInputEntry`).
    MessageInputEntry {
        /// `user` or `assistant`.
        pub role: EntryRole,
        /// The content: text or chunks.
        pub content: Content,
        /// Whether the message is a prefix the answer continues.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prefix: Option<bool>,
    }
}

impl MessageInputEntry {
    /// A message with a role and content.
    pub fn new(role: EntryRole, content: impl Into<Content>) -> Self {
        MessageInputEntry {
            role,
            content: content.into(),
            ..Default::default()
        }
    }
}

#[allow(clippy::derivable_impls)] // a macro-declared enum
impl Default for EntryRole {
    fn default() -> Self {
        EntryRole::User
    }
}

entry_meta! {
    /// A message written by the model (`MessageOutputEntry`).
    MessageOutputEntry {
        /// The agent that wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent_id: Option<String>,
        /// The model that wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// Always `assistant`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role: Option<String>,
        /// The content: text or chunks.
        #[serde(default, deserialize_with = "null_default")]
        pub content: Content,
    }
}

entry_meta! {
    /// The result of a function call, sent by the client (`FunctionResultEntry`).
    FunctionResultEntry {
        /// The call answered.
        pub tool_call_id: String,
        /// The result (usually JSON text).
        pub result: String,
    }
}

entry_meta! {
    /// A function call the client must run (`FunctionCallEntry`).
    FunctionCallEntry {
        /// The agent that made the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent_id: Option<String>,
        /// The model that made the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// The call id, to quote in the function result.
        #[serde(default, deserialize_with = "null_default")]
        pub tool_call_id: String,
        /// The function name.
        #[serde(default, deserialize_with = "null_default")]
        pub name: String,
        /// The arguments: a JSON object or its text.
        #[serde(default, deserialize_with = "null_default")]
        pub arguments: Arguments,
        /// Whether the call waits for a confirmation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub confirmation_status: Option<ConfirmationStatus>,
    }
}

entry_meta! {
    /// A built-in tool run by the server (`ToolExecutionEntry`).
    ToolExecutionEntry {
        /// The agent that ran it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent_id: Option<String>,
        /// The model that ran it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// The tool (`web_search`, `code_interpreter`, ... or a connector).
        #[serde(default, deserialize_with = "null_default")]
        pub name: String,
        /// The arguments, as JSON text.
        #[serde(default, deserialize_with = "null_default")]
        pub arguments: String,
        /// Information about the execution.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub info: Option<Map<String, Value>>,
    }
}

entry_meta! {
    /// A handoff from one agent to another (`AgentHandoffEntry`).
    AgentHandoffEntry {
        /// The agent handing off.
        #[serde(default, deserialize_with = "null_default")]
        pub previous_agent_id: String,
        /// Its name.
        #[serde(default, deserialize_with = "null_default")]
        pub previous_agent_name: String,
        /// The agent taking over.
        #[serde(default, deserialize_with = "null_default")]
        pub next_agent_id: String,
        /// Its name.
        #[serde(default, deserialize_with = "null_default")]
        pub next_agent_name: String,
    }
}

/// A confirmation of a pending tool call (`ToolCallConfirmation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallConfirmation {
    /// The call.
    pub tool_call_id: String,
    /// `allow` or `deny`.
    pub confirmation: Confirmation,
}

/// Starts a conversation (`ConversationRequest`, `ConversationStreamRequest`): with a
/// model (and instructions, tools) or with an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRequest {
    /// The first inputs.
    pub inputs: ConversationInputs,
    /// Whether to stream (set by the handle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Whether to store the conversation on Mistral's servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Who executes handoffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_execution: Option<HandoffExecution>,
    /// Instructions the model follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools available to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// A name for the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The agent to talk to (instead of a model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<AgentVersion>,
    /// The model to talk to (instead of an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl ConversationRequest {
    /// A conversation with a model.
    pub fn model(model: impl Into<String>, inputs: impl Into<ConversationInputs>) -> Self {
        ConversationRequest {
            model: Some(model.into()),
            ..ConversationRequest::new(inputs)
        }
    }

    /// A conversation with an agent.
    pub fn agent(agent_id: impl Into<String>, inputs: impl Into<ConversationInputs>) -> Self {
        ConversationRequest {
            agent_id: Some(agent_id.into()),
            ..ConversationRequest::new(inputs)
        }
    }

    /// Inputs only (set `model` or `agent_id`).
    pub fn new(inputs: impl Into<ConversationInputs>) -> Self {
        ConversationRequest {
            inputs: inputs.into(),
            stream: None,
            store: None,
            handoff_execution: None,
            instructions: None,
            tools: None,
            completion_args: None,
            guardrails: None,
            name: None,
            description: None,
            metadata: None,
            agent_id: None,
            agent_version: None,
            model: None,
        }
    }

    setters! {
        store: bool,
        handoff_execution: HandoffExecution,
        instructions: impl String,
        tools: Vec<Tool>,
        completion_args: CompletionArgs,
        guardrails: Vec<GuardrailConfig>,
        name: impl String,
        description: impl String,
        metadata: Map<String, Value>,
        agent_version: impl AgentVersion,
    }
}

/// Appends to a conversation (`AppendConversationRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppendConversationRequest {
    /// The new inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<ConversationInputs>,
    /// Whether to stream (set by the handle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Whether to store the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Who executes handoffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_execution: Option<HandoffExecution>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Confirmations of pending tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_confirmations: Option<Vec<ToolCallConfirmation>>,
}

impl AppendConversationRequest {
    /// New inputs.
    pub fn new(inputs: impl Into<ConversationInputs>) -> Self {
        AppendConversationRequest {
            inputs: Some(inputs.into()),
            ..Default::default()
        }
    }

    setters! {
        store: bool,
        handoff_execution: HandoffExecution,
        completion_args: CompletionArgs,
        tool_confirmations: Vec<ToolCallConfirmation>,
    }
}

impl From<&str> for AppendConversationRequest {
    fn from(v: &str) -> Self {
        AppendConversationRequest::new(v)
    }
}

impl From<Vec<ConversationEntry>> for AppendConversationRequest {
    fn from(v: Vec<ConversationEntry>) -> Self {
        AppendConversationRequest::new(v)
    }
}

/// Restarts a conversation from one of its entries (`RestartConversationRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartConversationRequest {
    /// The new inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<ConversationInputs>,
    /// Whether to stream (set by the handle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Whether to store the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Who executes handoffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_execution: Option<HandoffExecution>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The entry to restart from.
    pub from_entry_id: String,
    /// The agent version to use (the current one when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<AgentVersion>,
}

impl RestartConversationRequest {
    /// Restart from `from_entry_id` with new inputs.
    pub fn new(from_entry_id: impl Into<String>, inputs: impl Into<ConversationInputs>) -> Self {
        RestartConversationRequest {
            from_entry_id: from_entry_id.into(),
            inputs: Some(inputs.into()),
            ..Default::default()
        }
    }

    setters! {
        store: bool,
        handoff_execution: HandoffExecution,
        completion_args: CompletionArgs,
        guardrails: Vec<GuardrailConfig>,
        metadata: Map<String, Value>,
        agent_version: impl AgentVersion,
    }
}

/// Token usage of a conversation turn (`ConversationUsageInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationUsageInfo {
    /// Prompt tokens.
    #[serde(default, deserialize_with = "null_default")]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_tokens: u64,
    /// Total tokens.
    #[serde(default, deserialize_with = "null_default")]
    pub total_tokens: u64,
    /// Tokens used by connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_tokens: Option<u64>,
    /// Calls per connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectors: Option<Map<String, Value>>,
}

/// The answer to a start, append or restart (`ConversationResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationResponse {
    /// The object type, `conversation.response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The conversation.
    #[serde(default, deserialize_with = "null_default")]
    pub conversation_id: String,
    /// The new entries.
    #[serde(default, deserialize_with = "null_default")]
    pub outputs: Vec<ConversationEntry>,
    /// Token usage.
    #[serde(default, deserialize_with = "null_default")]
    pub usage: ConversationUsageInfo,
    /// Guardrail results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<Value>>,
}

impl ConversationResponse {
    /// The text of the message outputs, concatenated.
    pub fn text(&self) -> String {
        self.outputs
            .iter()
            .filter_map(|e| match e {
                ConversationEntry::MessageOutput(m) => Some(m.content.text().into_owned()),
                _ => None,
            })
            .collect()
    }

    /// The function calls the client must run.
    pub fn function_calls(&self) -> impl Iterator<Item = &FunctionCallEntry> {
        self.outputs.iter().filter_map(|e| match e {
            ConversationEntry::FunctionCall(c) => Some(c),
            _ => None,
        })
    }
}

/// A conversation (`ModelConversation` or `AgentConversation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation id.
    pub id: String,
    /// The object type, `conversation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Last update (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
    /// The model (a model conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent (an agent conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<AgentVersion>,
    /// Instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Every entry of a conversation (`ConversationHistory`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationHistory {
    /// The object type, `conversation.history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The conversation.
    #[serde(default, deserialize_with = "null_default")]
    pub conversation_id: String,
    /// The entries.
    #[serde(default, deserialize_with = "null_default")]
    pub entries: Vec<ConversationEntry>,
}

/// The messages of a conversation (`ConversationMessages`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationMessages {
    /// The object type, `conversation.messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The conversation.
    #[serde(default, deserialize_with = "null_default")]
    pub conversation_id: String,
    /// The messages (input and output entries).
    #[serde(default, deserialize_with = "null_default")]
    pub messages: Vec<ConversationEntry>,
}

/// Pagination of [`Conversations::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationListQuery {
    /// The page, from 0.
    pub page: Option<u64>,
    /// The page size (the API's default is 100).
    pub page_size: Option<u64>,
}

impl ConversationListQuery {
    /// The first page, the API's page size.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page: u64,
        page_size: u64,
    }
}

/// A streamed conversation event (`ConversationEvents`), tagged by `type` (the
/// same as the SSE `event:` name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConversationEvent {
    /// `conversation.response.started` (`ResponseStartedEvent`).
    #[serde(rename = "conversation.response.started")]
    ResponseStarted(ResponseStartedEvent),
    /// `conversation.response.done` (`ResponseDoneEvent`): the last event.
    #[serde(rename = "conversation.response.done")]
    ResponseDone(ResponseDoneEvent),
    /// `conversation.response.error` (`ResponseErrorEvent`): the last event.
    #[serde(rename = "conversation.response.error")]
    ResponseError(ResponseErrorEvent),
    /// `message.output.delta` (`MessageOutputEvent`): a piece of an output message.
    #[serde(rename = "message.output.delta")]
    MessageOutputDelta(MessageOutputEvent),
    /// `tool.execution.started` (`ToolExecutionStartedEvent`).
    #[serde(rename = "tool.execution.started")]
    ToolExecutionStarted(ToolExecutionEvent),
    /// `tool.execution.delta` (`ToolExecutionDeltaEvent`).
    #[serde(rename = "tool.execution.delta")]
    ToolExecutionDelta(ToolExecutionEvent),
    /// `tool.execution.done` (`ToolExecutionDoneEvent`).
    #[serde(rename = "tool.execution.done")]
    ToolExecutionDone(ToolExecutionEvent),
    /// `function.call.delta` (`FunctionCallEvent`): a piece of a function call.
    #[serde(rename = "function.call.delta")]
    FunctionCallDelta(FunctionCallEvent),
    /// `agent.handoff.started` (`AgentHandoffStartedEvent`).
    #[serde(rename = "agent.handoff.started")]
    AgentHandoffStarted(AgentHandoffEvent),
    /// `agent.handoff.done` (`AgentHandoffDoneEvent`).
    #[serde(rename = "agent.handoff.done")]
    AgentHandoffDone(AgentHandoffEvent),
    /// An event this version of the crate does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

/// The SSE event names that end a conversation stream.
const TERMINAL_EVENTS: &[&str] = &["conversation.response.done", "conversation.response.error"];

/// `conversation.response.started`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStartedEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The conversation.
    #[serde(default, deserialize_with = "null_default")]
    pub conversation_id: String,
}

/// `conversation.response.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseDoneEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Token usage.
    #[serde(default, deserialize_with = "null_default")]
    pub usage: ConversationUsageInfo,
}

/// `conversation.response.error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseErrorEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The message.
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    /// The code.
    #[serde(default, deserialize_with = "null_default")]
    pub code: i64,
}

/// `message.output.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageOutputEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Which output this delta belongs to.
    #[serde(default, deserialize_with = "null_default")]
    pub output_index: u32,
    /// The output entry's id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// Which content chunk.
    #[serde(default, deserialize_with = "null_default")]
    pub content_index: u32,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Always `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The piece of content.
    #[serde(default, deserialize_with = "null_default")]
    pub content: Content,
}

/// `tool.execution.started`, `.delta` and `.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolExecutionEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Which output.
    #[serde(default, deserialize_with = "null_default")]
    pub output_index: u32,
    /// The tool execution entry's id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The tool.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The arguments (started) or a piece of them (delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Execution information (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Map<String, Value>>,
}

/// `function.call.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Which output.
    #[serde(default, deserialize_with = "null_default")]
    pub output_index: u32,
    /// The function call entry's id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The function.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The call id.
    #[serde(default, deserialize_with = "null_default")]
    pub tool_call_id: String,
    /// A piece of the JSON arguments.
    #[serde(default, deserialize_with = "null_default")]
    pub arguments: String,
    /// Whether the call waits for a confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_status: Option<ConfirmationStatus>,
}

/// `agent.handoff.started` and `.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentHandoffEvent {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Which output.
    #[serde(default, deserialize_with = "null_default")]
    pub output_index: u32,
    /// The handoff entry's id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The agent handing off (started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_agent_id: Option<String>,
    /// Its name (started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_agent_name: Option<String>,
    /// The agent taking over (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_agent_id: Option<String>,
    /// Its name (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_agent_name: Option<String>,
}

/// The result of deleting something that answers without a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {}

impl Client {
    /// Conversations (beta, `/v1/conversations`).
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Conversations (beta, `/v1/conversations`).
#[derive(Debug, Clone)]
pub struct Conversations<'a> {
    client: &'a Client,
    options: RequestOptions,
}

fn conv_path(id: &str, tail: &str) -> String {
    format!("/v1/conversations/{}{tail}", path_segment(id))
}

impl Conversations<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts a conversation (`POST /v1/conversations`). A `stream: Some(true)` is
    /// cleared.
    pub async fn start(
        &self,
        mut req: ConversationRequest,
    ) -> Result<ApiResponse<ConversationResponse>, Error> {
        req.stream = None;
        self.turn("/v1/conversations", &req).await
    }

    /// Starts a conversation and streams its events (`POST /v1/conversations`,
    /// `stream: true`); the stream ends cleanly after `conversation.response.done`
    /// (or `conversation.response.error`).
    pub async fn start_stream(
        &self,
        mut req: ConversationRequest,
    ) -> Result<EventStream<ConversationEvent>, Error> {
        req.stream = Some(true);
        self.turn_stream("/v1/conversations", &req).await
    }

    /// Appends inputs to a conversation (`POST /v1/conversations/{id}`).
    pub async fn append(
        &self,
        conversation_id: &str,
        mut req: AppendConversationRequest,
    ) -> Result<ApiResponse<ConversationResponse>, Error> {
        req.stream = None;
        self.turn(&conv_path(conversation_id, ""), &req).await
    }

    /// Appends inputs and streams the events (`POST /v1/conversations/{id}`,
    /// `stream: true`).
    pub async fn append_stream(
        &self,
        conversation_id: &str,
        mut req: AppendConversationRequest,
    ) -> Result<EventStream<ConversationEvent>, Error> {
        req.stream = Some(true);
        self.turn_stream(&conv_path(conversation_id, ""), &req)
            .await
    }

    /// Restarts a conversation from an entry, as a new conversation
    /// (`POST /v1/conversations/{id}/restart`).
    pub async fn restart(
        &self,
        conversation_id: &str,
        mut req: RestartConversationRequest,
    ) -> Result<ApiResponse<ConversationResponse>, Error> {
        req.stream = None;
        self.turn(&conv_path(conversation_id, "/restart"), &req)
            .await
    }

    /// Restarts a conversation and streams the events
    /// (`POST /v1/conversations/{id}/restart`, `stream: true`).
    pub async fn restart_stream(
        &self,
        conversation_id: &str,
        mut req: RestartConversationRequest,
    ) -> Result<EventStream<ConversationEvent>, Error> {
        req.stream = Some(true);
        self.turn_stream(&conv_path(conversation_id, "/restart"), &req)
            .await
    }

    /// One turn (`POST path`), answered whole.
    async fn turn<R: Serialize>(
        &self,
        path: &str,
        req: &R,
    ) -> Result<ApiResponse<ConversationResponse>, Error> {
        self.client
            .send_json_with_options(Method::POST, path, Some(req), &self.options)
            .await
    }

    /// One turn (`POST path`, `stream: true`), as events that end cleanly at the
    /// conversation's terminal event.
    async fn turn_stream<R: Serialize>(
        &self,
        path: &str,
        req: &R,
    ) -> Result<EventStream<ConversationEvent>, Error> {
        let s = self
            .client
            .send_stream_with_options(path, req, &self.options)
            .await?;
        Ok(s.ends_after(TERMINAL_EVENTS))
    }

    /// Lists conversations (`GET /v1/conversations`): one page, whose
    /// [`into_stream`](Page::into_stream) walks the following ones.
    pub async fn list(
        &self,
        query: ConversationListQuery,
    ) -> Result<ApiResponse<Page<Conversation>>, Error> {
        list_page(self.client.clone(), self.options.clone(), query).await
    }

    /// Retrieves a conversation (`GET /v1/conversations/{id}`).
    pub async fn get(&self, conversation_id: &str) -> Result<ApiResponse<Conversation>, Error> {
        crate::beta::get(self.client, &self.options, &conv_path(conversation_id, "")).await
    }

    /// Deletes a conversation (`DELETE /v1/conversations/{id}`).
    pub async fn delete(&self, conversation_id: &str) -> Result<ApiResponse<Deleted>, Error> {
        crate::beta::delete(self.client, &self.options, &conv_path(conversation_id, "")).await
    }

    /// Every entry of a conversation (`GET /v1/conversations/{id}/history`).
    pub async fn history(
        &self,
        conversation_id: &str,
    ) -> Result<ApiResponse<ConversationHistory>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &conv_path(conversation_id, "/history"),
        )
        .await
    }

    /// The messages of a conversation (`GET /v1/conversations/{id}/messages`).
    pub async fn messages(
        &self,
        conversation_id: &str,
    ) -> Result<ApiResponse<ConversationMessages>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &conv_path(conversation_id, "/messages"),
        )
        .await
    }

    /// Runs a conversation with local function tools to completion: adds the tools'
    /// definitions to `req`, starts the conversation, runs every function call the
    /// model asks for and appends the results, until an answer has no call to a
    /// registered function. After [`FunctionTools::max_rounds`] rounds that still
    /// call functions, it stops with an error naming the bound (the calls are left
    /// unanswered in the conversation).
    ///
    /// A function that fails reports `{"error": "<message>"}` to the model as its
    /// result. A call to a function that is not registered ends the run: it is in
    /// the last response's outputs for the caller to handle.
    pub async fn run(
        &self,
        mut req: ConversationRequest,
        tools: &FunctionTools,
    ) -> Result<ConversationRun, Error> {
        req.tools
            .get_or_insert_with(Vec::new)
            .extend(tools.definitions().iter().cloned());
        let mut res = self.start(req).await?.into_data();
        let mut entries = res.outputs.clone();
        let mut rounds = 0;
        loop {
            let calls: Vec<FunctionCallEntry> = res
                .function_calls()
                .filter(|c| tools.handlers.contains_key(&c.name))
                .cloned()
                .collect();
            if calls.is_empty() || res.function_calls().count() != calls.len() {
                return Ok(ConversationRun {
                    conversation_id: res.conversation_id.clone(),
                    entries,
                    response: res,
                    rounds,
                });
            }
            if rounds >= tools.max_rounds {
                // the next append is not built: the bound is reached
                return Err(Error::request(format!(
                    "the conversation still calls functions after {rounds} rounds"
                )));
            }
            rounds += 1;
            let mut results = Vec::with_capacity(calls.len());
            for call in &calls {
                let handler = &tools.handlers[&call.name];
                let result = match handler(call.arguments.clone()).await {
                    Ok(r) => r,
                    Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
                };
                results.push(ConversationEntry::function_result(
                    call.tool_call_id.clone(),
                    result,
                ));
            }
            entries.extend(results.iter().cloned());
            res = self
                .append(
                    &res.conversation_id,
                    AppendConversationRequest::new(results),
                )
                .await?
                .into_data();
            entries.extend(res.outputs.iter().cloned());
        }
    }
}

/// The result of [`Conversations::run`].
#[derive(Debug, Clone)]
pub struct ConversationRun {
    /// The conversation.
    pub conversation_id: String,
    /// Every entry of the run, in order: outputs, function results, outputs, ...
    pub entries: Vec<ConversationEntry>,
    /// The last response.
    pub response: ConversationResponse,
    /// How many rounds of function calls were run.
    pub rounds: usize,
}

impl ConversationRun {
    /// The text of the last response.
    pub fn text(&self) -> String {
        self.response.text()
    }
}

type Handler = Arc<dyn Fn(Arguments) -> BoxFuture<Result<String, BoxError>> + Send + Sync>;

/// Local functions the model may call in [`Conversations::run`]: each has a tool
/// definition (name, description, JSON schema of its parameters) and a Rust
/// function that answers a call with the result's text.
///
/// ```
/// use mistral_tower::conversations::FunctionTools;
/// use serde_json::json;
///
/// let tools = FunctionTools::new().function(
///     "add",
///     "Adds two numbers.",
///     json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
///            "required": ["a", "b"]}),
///     |args: serde_json::Value| async move {
///         let sum = args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0);
///         Ok::<_, std::convert::Infallible>(sum.to_string())
///     },
/// );
/// assert_eq!(tools.definitions().len(), 1);
/// ```
#[derive(Clone)]
pub struct FunctionTools {
    definitions: Vec<Tool>,
    handlers: HashMap<String, Handler>,
    max_rounds: usize,
}

impl fmt::Debug for FunctionTools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("FunctionTools")
            .field("functions", &names)
            .field("max_rounds", &self.max_rounds)
            .finish()
    }
}

impl Default for FunctionTools {
    fn default() -> Self {
        FunctionTools {
            definitions: Vec::new(),
            handlers: HashMap::new(),
            max_rounds: 8,
        }
    }
}

impl FunctionTools {
    /// No functions; at most 8 rounds of calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many rounds of function calls in one run.
    #[must_use]
    pub fn max_rounds(mut self, n: usize) -> Self {
        self.max_rounds = n;
        self
    }

    /// The tool definitions sent to the model.
    pub fn definitions(&self) -> &[Tool] {
        &self.definitions
    }

    /// Registers a function whose arguments decode into `Args` (any
    /// `DeserializeOwned`: a struct, or `serde_json::Value`) and which answers with
    /// the result's text. `parameters` is the JSON schema of `Args`.
    #[must_use]
    pub fn function<Args, F, Fut, E>(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        f: F,
    ) -> Self
    where
        Args: serde::de::DeserializeOwned + Send + 'static,
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let name = name.into();
        self.definitions
            .push(Tool::function(name.clone(), description, parameters));
        self.insert(name, f);
        self
    }

    fn insert<Args, F, Fut, E>(&mut self, name: String, f: F)
    where
        Args: serde::de::DeserializeOwned + Send + 'static,
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |args: Arguments| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let args: Args = args
                    .parse()
                    .map_err(|e| -> BoxError { format!("invalid arguments: {e}").into() })?;
                f(args).await.map_err(Into::into)
            })
        });
        self.handlers.insert(name, handler);
    }

    /// Registers a function whose parameters schema is derived from `Args`
    /// (feature `schemars`, a strict schema as [`Tool::from_type`] makes).
    #[cfg(feature = "schemars")]
    #[must_use]
    pub fn typed<Args, F, Fut, E>(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        f: F,
    ) -> Self
    where
        Args: schemars::JsonSchema + serde::de::DeserializeOwned + Send + 'static,
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let name = name.into();
        self.definitions
            .push(Tool::from_type::<Args>(name.clone(), description));
        self.insert(name, f);
        self
    }
}

fn list_page(
    client: Client,
    options: RequestOptions,
    query: ConversationListQuery,
) -> BoxFuture<Result<ApiResponse<Page<Conversation>>, Error>> {
    Box::pin(async move {
        let mut q = Query::new();
        q.opt("page", query.page).opt("page_size", query.page_size);
        let res: ApiResponse<Vec<Conversation>> =
            crate::beta::get(&client, &options, &q.to_path("/v1/conversations")).await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(100);
        let fetch: Fetch<Conversation> = Arc::new(move |n| {
            let client = client.clone();
            let options = options.clone();
            let query = query.clone().page(n);
            Box::pin(async move { Ok(list_page(client, options, query).await?.into_data()) })
        });
        Ok(res.map(|l| Page::new(l, None, page, page_size).with_fetch(fetch)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_read_tolerantly_and_write_exactly() {
        let e: ConversationEntry = serde_json::from_value(json!({
            "object": "entry", "type": "function.call", "tool_call_id": "c1",
            "name": "add", "arguments": {"a": 1}, "brand_new": true
        }))
        .unwrap();
        let ConversationEntry::FunctionCall(c) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(c.arguments.to_value().unwrap(), json!({"a": 1}));
        let u: ConversationEntry =
            serde_json::from_value(json!({"type": "future.entry", "x": 1})).unwrap();
        assert!(matches!(u, ConversationEntry::Unknown(_)));
        assert_eq!(
            serde_json::to_value(ConversationEntry::function_result("c1", "3")).unwrap(),
            json!({"type": "function.result", "tool_call_id": "c1", "result": "3"})
        );
        let req = ConversationRequest::model("m", "hi");
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"inputs": "hi", "model": "m"})
        );
    }

    #[test]
    fn events_decode_by_type() {
        let e: ConversationEvent = serde_json::from_value(json!({
            "type": "message.output.delta", "id": "m1", "content": "Hel", "output_index": 0
        }))
        .unwrap();
        let ConversationEvent::MessageOutputDelta(d) = e else {
            panic!()
        };
        assert_eq!(d.content.text(), "Hel");
        let e: ConversationEvent =
            serde_json::from_value(json!({"type": "some.new.event"})).unwrap();
        assert!(matches!(e, ConversationEvent::Unknown(_)));
    }
}
