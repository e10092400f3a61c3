//! Agents completions (`POST /v1/agents/completions`): the request; responses and stream
//! chunks are the chat types.
//!
//! # Example
//!
//! ```
//! use mistral_tower::agents::AgentsCompletionRequest;
//! use mistral_tower::chat::ChatMessage;
//!
//! let req = AgentsCompletionRequest::new("ag:1234", vec![ChatMessage::user("Hi")]).stream(true);
//! let body = serde_json::to_value(&req)?;
//! assert_eq!(body["agent_id"], "ag:1234");
//! assert_eq!(body["stream"], true);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatMessage;
pub use crate::chat::{ChatCompletionChunk, ChatCompletionResponse};
use crate::common::{
    GuardrailConfig, Prediction, PromptMode, ReasoningEffort, ResponseFormat, ServiceTier, Stop,
    Tool, ToolChoice, setters,
};

/// An agents completion request (`AgentsCompletionRequest`).
///
/// Every optional field is `None` by default and then not sent. Set fields directly or with the
/// builder-style setters of the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentsCompletionRequest {
    /// The ID of the agent to use for this completion.
    pub agent_id: String,
    /// The prompt(s) to generate completions for, encoded as a list of messages.
    pub messages: Vec<ChatMessage>,
    /// The maximum number of tokens to generate in the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Whether to stream back partial progress as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stop generation if this token (or one of these tokens) is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// The seed to use for random sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The format the model must output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Controls which (if any) tool is called by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Penalizes the repetition of words or phrases (-2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalizes the repetition of words based on their frequency (-2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Number of completions to return for each request.
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
}

impl AgentsCompletionRequest {
    /// A request for an agent with messages; every other field unset.
    pub fn new(agent_id: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        AgentsCompletionRequest {
            agent_id: agent_id.into(),
            messages,
            ..Default::default()
        }
    }

    setters! {
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
    }
}
