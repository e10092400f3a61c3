//! Fill-in-the-middle code completion (`POST /v1/fim/completions`): the request; the response
//! and stream chunks are the chat types (the spec's `FIMCompletionResponse` extends
//! `ChatCompletionResponse`).
//!
//! # Example
//!
//! ```
//! use mistral_tower::fim::FimCompletionRequest;
//!
//! let req = FimCompletionRequest::new("codestral-latest", "def add(a, b):")
//!     .suffix("return a + b")
//!     .max_tokens(64);
//! let body = serde_json::to_value(&req)?;
//! assert_eq!(body["suffix"], "return a + b");
//! assert!(body.get("stream").is_none());
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::common::{Stop, setters};

/// The response of a FIM completion: the same shape as a chat completion.
pub type FimCompletionResponse = crate::chat::ChatCompletionResponse;

/// One streamed FIM chunk: the same shape as a chat completion chunk.
pub type FimCompletionChunk = crate::chat::ChatCompletionChunk;

/// A FIM completion request (`FIMCompletionRequest`).
///
/// Every optional field is `None` by default and then not sent. Set fields directly or with the
/// builder-style setters of the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FimCompletionRequest {
    /// ID of the model with FIM to use (e.g. `codestral-latest`).
    pub model: String,
    /// The text/code to complete.
    pub prompt: String,
    /// Optional text/code that adds more context for the model. When given a `prompt` and a
    /// `suffix` the model will fill what is between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// What sampling temperature to use, we recommend between 0.0 and 0.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: only the tokens comprising the `top_p` probability mass are considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The maximum number of tokens to generate in the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The minimum number of tokens to generate in the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<u32>,
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
    /// Key of Mistral's *server-side* prompt cache (not this crate's response cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
}

impl FimCompletionRequest {
    /// A request with a model and a prompt; every other field unset.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        FimCompletionRequest {
            model: model.into(),
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    setters! {
        suffix: impl String,
        temperature: f64,
        top_p: f64,
        max_tokens: u32,
        min_tokens: u32,
        stream: bool,
        stop: impl Stop,
        random_seed: u64,
        metadata: Map<String, Value>,
        prompt_cache_key: impl String,
    }
}
