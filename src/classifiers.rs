//! Moderation and classification (`POST /v1/moderations`, `/v1/chat/moderations`,
//! `/v1/classifications`, `/v1/chat/classifications`): requests and responses.
//!
//! # Example
//!
//! ```
//! use mistral_tower::chat::ChatMessage;
//! use mistral_tower::classifiers::{ChatModerationRequest, ModerationRequest, ModerationResponse};
//!
//! let req = ModerationRequest::new("mistral-moderation-latest", ["some text"]);
//! assert_eq!(serde_json::to_value(&req)?["input"], serde_json::json!(["some text"]));
//! let chat = ChatModerationRequest::new("mistral-moderation-latest", vec![ChatMessage::user("Hi")]);
//! assert_eq!(serde_json::to_value(&chat)?["input"][0]["role"], "user");
//!
//! let res: ModerationResponse = serde_json::from_str(
//!     r#"{"id":"m","model":"mistral-moderation-latest","results":[{"categories":{"pii":true},"category_scores":{"pii":0.9}}]}"#,
//! )?;
//! assert!(res.results[0].flagged());
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatMessage;
use crate::common::{null_default, setters};
use crate::embeddings::one_or_many;

/// A text classification request (`ClassificationRequest`), for `/v1/classifications`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationRequest {
    /// ID of the model to use.
    pub model: String,
    /// Text to classify (sent as an array).
    #[serde(deserialize_with = "one_or_many")]
    pub input: Vec<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl ClassificationRequest {
    /// A request classifying these inputs.
    pub fn new<I, S>(model: impl Into<String>, input: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClassificationRequest {
            model: model.into(),
            input: input.into_iter().map(Into::into).collect(),
            metadata: None,
        }
    }

    setters! {
        metadata: Map<String, Value>,
    }
}

/// A text moderation request for `/v1/moderations` (the spec's `ClassificationRequest`).
pub type ModerationRequest = ClassificationRequest;

/// A chat moderation request (`ChatModerationRequest`), for `/v1/chat/moderations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatModerationRequest {
    /// ID of the model to use.
    pub model: String,
    /// Chat to classify: one conversation or several.
    pub input: ChatModerationInput,
}

impl ChatModerationRequest {
    /// A request moderating one conversation.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatModerationRequest {
            model: model.into(),
            input: ChatModerationInput::Conversation(messages),
        }
    }

    /// A request moderating several conversations.
    pub fn batch(model: impl Into<String>, conversations: Vec<Vec<ChatMessage>>) -> Self {
        ChatModerationRequest {
            model: model.into(),
            input: ChatModerationInput::Conversations(conversations),
        }
    }
}

/// The input of a chat moderation: one conversation or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatModerationInput {
    /// One conversation.
    Conversation(Vec<ChatMessage>),
    /// Several conversations.
    Conversations(Vec<Vec<ChatMessage>>),
}

/// A chat classification request (`ChatClassificationRequest`), for
/// `/v1/chat/classifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatClassificationRequest {
    /// ID of the model to use.
    pub model: String,
    /// Chat to classify: one conversation or several.
    pub input: ChatClassificationInput,
}

impl ChatClassificationRequest {
    /// A request classifying one conversation.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatClassificationRequest {
            model: model.into(),
            input: ChatClassificationInput::One(InstructRequest { messages }),
        }
    }

    /// A request classifying several conversations.
    pub fn batch(model: impl Into<String>, conversations: Vec<Vec<ChatMessage>>) -> Self {
        ChatClassificationRequest {
            model: model.into(),
            input: ChatClassificationInput::Many(
                conversations
                    .into_iter()
                    .map(|messages| InstructRequest { messages })
                    .collect(),
            ),
        }
    }
}

/// The input of a chat classification (`ChatClassificationRequestInputs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatClassificationInput {
    /// One conversation.
    One(InstructRequest),
    /// Several conversations.
    Many(Vec<InstructRequest>),
}

/// One conversation to classify (`InstructRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructRequest {
    /// The messages.
    pub messages: Vec<ChatMessage>,
}

/// The result of a moderation (`ModerationResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationResponse {
    /// The response id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The model used.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// One result per input.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<ModerationObject>,
}

/// The moderation of one input (`ModerationObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationObject {
    /// Per category: whether the input is flagged.
    #[serde(default, deserialize_with = "null_default")]
    pub categories: BTreeMap<String, bool>,
    /// Per category: the score.
    #[serde(default, deserialize_with = "null_default")]
    pub category_scores: BTreeMap<String, f64>,
}

impl ModerationObject {
    /// Whether any category is flagged.
    pub fn flagged(&self) -> bool {
        self.categories.values().any(|v| *v)
    }
}

/// The result of a classification (`ClassificationResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationResponse {
    /// The response id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The model used.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// One map per input: target name to its result.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<BTreeMap<String, ClassificationTargetResult>>,
}

/// The result for one classification target (`ClassificationTargetResult`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationTargetResult {
    /// Per label: the score.
    #[serde(default, deserialize_with = "null_default")]
    pub scores: BTreeMap<String, f64>,
}
