//! Models (`GET /v1/models`, `GET` and `DELETE /v1/models/{model_id}`): model cards, the model
//! list, and a capability filter (the Go client's `SearchModels`).
//!
//! Base and fine-tuned model cards share one tolerant [`Model`] type; the fine-tuned fields are
//! `Option`s.
//!
//! # Example
//!
//! ```
//! use mistral_tower::models::{ModelFilter, ModelList};
//!
//! let list: ModelList = serde_json::from_str(r#"{"object":"list","data":[
//!     {"id":"a","capabilities":{"completion_chat":true,"vision":true,"new_thing":true}},
//!     {"id":"b","capabilities":{"completion_chat":true,"vision":false}}
//! ]}"#)?;
//! let filter = ModelFilter::new().completion_chat(true).vision(true);
//! let ids: Vec<&str> = list.search(&filter).iter().map(|m| m.id.as_str()).collect();
//! assert_eq!(ids, ["a"]);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::common::{null_default, setters, string_enum};

string_enum! {
    /// The kind of a model card (`type`).
    ModelType {
        /// A base model (`BaseModelCard`).
        Base = "base",
        /// A fine-tuned model (`FTModelCard`).
        FineTuned = "fine-tuned",
    }
}

/// A model card (`BaseModelCard` or `FTModelCard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The model id.
    pub id: String,
    /// The object type, `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix timestamp (seconds) of the creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The owner (`mistralai` for base models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// What the model can do.
    #[serde(default, deserialize_with = "null_default")]
    pub capabilities: ModelCapabilities,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The context length in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<u64>,
    /// Other ids of the same model.
    #[serde(default, deserialize_with = "null_default")]
    pub aliases: Vec<String>,
    /// Deprecation date-time (RFC 3339), if deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<String>,
    /// The model replacing this one once deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_replacement_model: Option<String>,
    /// The default sampling temperature of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model_temperature: Option<f64>,
    /// Whether the model is internal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// `base` or `fine-tuned`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ModelType>,
    /// The fine-tuning job (fine-tuned models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The base model (fine-tuned models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Whether the model is archived (fine-tuned models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

impl Model {
    /// Whether this is a fine-tuned model (by `type`, or by the presence of `job`).
    pub fn is_fine_tuned(&self) -> bool {
        match &self.r#type {
            Some(t) => *t == ModelType::FineTuned,
            None => self.job.is_some(),
        }
    }
}

/// What a model can do (`ModelCapabilities`); unknown capabilities are ignored and `null` reads
/// as `false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCapabilities {
    /// Chat completions.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_chat: bool,
    /// Function calling.
    #[serde(default, deserialize_with = "null_default")]
    pub function_calling: bool,
    /// Reasoning.
    #[serde(default, deserialize_with = "null_default")]
    pub reasoning: bool,
    /// Fill-in-the-middle completions.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_fim: bool,
    /// Fine-tuning.
    #[serde(default, deserialize_with = "null_default")]
    pub fine_tuning: bool,
    /// Image input.
    #[serde(default, deserialize_with = "null_default")]
    pub vision: bool,
    /// OCR.
    #[serde(default, deserialize_with = "null_default")]
    pub ocr: bool,
    /// Classification.
    #[serde(default, deserialize_with = "null_default")]
    pub classification: bool,
    /// Moderation.
    #[serde(default, deserialize_with = "null_default")]
    pub moderation: bool,
    /// Audio input.
    #[serde(default, deserialize_with = "null_default")]
    pub audio: bool,
    /// Audio transcription.
    #[serde(default, deserialize_with = "null_default")]
    pub audio_transcription: bool,
    /// Realtime audio transcription.
    #[serde(default, deserialize_with = "null_default")]
    pub audio_transcription_realtime: bool,
    /// Speech generation.
    #[serde(default, deserialize_with = "null_default")]
    pub audio_speech: bool,
    /// Unified resources.
    #[serde(default, deserialize_with = "null_default")]
    pub unified_resources: bool,
}

/// The list of models (`ModelList`). Also reads a bare JSON array of model cards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelList {
    /// The object type, `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

impl<'de> Deserialize<'de> for ModelList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default, deserialize_with = "null_default")]
            object: String,
            #[serde(default, deserialize_with = "null_default")]
            data: Vec<Model>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Envelope(Envelope),
            Bare(Vec<Model>),
        }
        Ok(match Shape::deserialize(deserializer)? {
            Shape::Envelope(e) => ModelList {
                object: e.object,
                data: e.data,
            },
            Shape::Bare(data) => ModelList {
                object: "list".to_owned(),
                data,
            },
        })
    }
}

impl ModelList {
    /// The models matching a capability filter, in list order.
    pub fn search(&self, filter: &ModelFilter) -> Vec<&Model> {
        self.data.iter().filter(|m| filter.matches(m)).collect()
    }

    /// The model with this id or alias.
    pub fn get(&self, id: &str) -> Option<&Model> {
        self.data
            .iter()
            .find(|m| m.id == id || m.aliases.iter().any(|a| a == id))
    }
}

/// A capability filter over models: each `Some(x)` requires the capability to equal `x`,
/// `None` accepts anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFilter {
    /// Chat completions.
    pub completion_chat: Option<bool>,
    /// Function calling.
    pub function_calling: Option<bool>,
    /// Reasoning.
    pub reasoning: Option<bool>,
    /// Fill-in-the-middle completions.
    pub completion_fim: Option<bool>,
    /// Fine-tuning.
    pub fine_tuning: Option<bool>,
    /// Image input.
    pub vision: Option<bool>,
    /// OCR.
    pub ocr: Option<bool>,
    /// Classification.
    pub classification: Option<bool>,
    /// Moderation.
    pub moderation: Option<bool>,
    /// Audio input.
    pub audio: Option<bool>,
    /// Audio transcription.
    pub audio_transcription: Option<bool>,
    /// Fine-tuned (`true`) or base (`false`) models.
    pub fine_tuned: Option<bool>,
    /// Archived models.
    pub archived: Option<bool>,
}

impl ModelFilter {
    /// A filter accepting every model.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        completion_chat: bool,
        function_calling: bool,
        reasoning: bool,
        completion_fim: bool,
        fine_tuning: bool,
        vision: bool,
        ocr: bool,
        classification: bool,
        moderation: bool,
        audio: bool,
        audio_transcription: bool,
        fine_tuned: bool,
        archived: bool,
    }

    /// Whether a model passes the filter.
    pub fn matches(&self, model: &Model) -> bool {
        let c = &model.capabilities;
        let checks = [
            (self.completion_chat, c.completion_chat),
            (self.function_calling, c.function_calling),
            (self.reasoning, c.reasoning),
            (self.completion_fim, c.completion_fim),
            (self.fine_tuning, c.fine_tuning),
            (self.vision, c.vision),
            (self.ocr, c.ocr),
            (self.classification, c.classification),
            (self.moderation, c.moderation),
            (self.audio, c.audio),
            (self.audio_transcription, c.audio_transcription),
            (self.fine_tuned, model.is_fine_tuned()),
            (self.archived, model.archived.unwrap_or(false)),
        ];
        checks
            .iter()
            .all(|(want, have)| want.is_none_or(|w| w == *have))
    }
}

/// The result of deleting a fine-tuned model (`DeleteModelResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeleteModelResponse {
    /// The ID of the deleted model.
    pub id: String,
    /// The object type that was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The deletion status.
    #[serde(default = "yes")]
    pub deleted: bool,
}

fn yes() -> bool {
    true
}
