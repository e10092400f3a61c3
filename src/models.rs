//! Models (`GET /v1/models`, `GET` and `DELETE /v1/models/{model_id}`, and the fine-tuned
//! model management under `/v1/fine_tuning/models`): model cards, the model list, and a
//! capability filter (the Go client's `SearchModels`).
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

use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{ApiResponse, Models};
use crate::common::{null_default, setters, string_enum};
use crate::pagination::{Query, path_segment};
use crate::{Error, raw};

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
    #[serde(default, deserialize_with = "null_default")]
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

/// The query parameters of `GET /v1/models` ([`Models::list_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelListQuery {
    /// Only models of this provider.
    pub provider: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

impl ModelListQuery {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        provider: impl String,
        model: impl String,
    }

    fn to_path(&self) -> String {
        let mut q = Query::new();
        q.opt("provider", self.provider.as_deref())
            .opt("model", self.model.as_deref());
        q.to_path("/v1/models")
    }
}

/// A new name or description for a fine-tuned model (`UpdateModelRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateModelRequest {
    /// The new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl UpdateModelRequest {
    /// An update changing nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        name: impl String,
        description: impl String,
    }
}

string_enum! {
    /// The kind of a fine-tuned model (`model_type`).
    FineTunedModelType {
        /// A completion model (`CompletionFineTunedModel`).
        Completion = "completion",
        /// A classifier (`ClassifierFineTunedModel`).
        Classifier = "classifier",
    }
}

/// What a fine-tuned model can do (`FineTunedModelCapabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FineTunedModelCapabilities {
    /// Chat completions.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_chat: bool,
    /// Fill-in-the-middle completions.
    #[serde(default, deserialize_with = "null_default")]
    pub completion_fim: bool,
    /// Function calling.
    #[serde(default, deserialize_with = "null_default")]
    pub function_calling: bool,
    /// Fine-tuning.
    #[serde(default, deserialize_with = "null_default")]
    pub fine_tuning: bool,
    /// Classification.
    #[serde(default, deserialize_with = "null_default")]
    pub classification: bool,
}

/// A target of a classifier model (`ClassifierTargetResult`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassifierTargetResult {
    /// The target's name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Its labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: Vec<String>,
    /// Its weight in the loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// The loss function (`single_class` or `multi_class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_function: Option<String>,
}

/// A fine-tuned model (`CompletionFineTunedModel` or `ClassifierFineTunedModel`, told
/// apart by [`model_type`](Self::model_type)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FineTunedModel {
    /// The model id.
    pub id: String,
    /// The object type, `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix timestamp (seconds) of the creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// The workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// The base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The version of the base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_version: Option<String>,
    /// Whether the model is archived.
    #[serde(default, deserialize_with = "null_default")]
    pub archived: bool,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the model can do.
    #[serde(default, deserialize_with = "null_default")]
    pub capabilities: FineTunedModelCapabilities,
    /// The context length in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<u64>,
    /// Other ids of the model.
    #[serde(default, deserialize_with = "null_default")]
    pub aliases: Vec<String>,
    /// The fine-tuning job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The classifier targets (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_targets: Option<Vec<ClassifierTargetResult>>,
    /// `completion` or `classifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<FineTunedModelType>,
}

/// The result of archiving or unarchiving a fine-tuned model (`ArchiveModelResponse`,
/// `UnarchiveModelResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveModelResponse {
    /// The model id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type, `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Whether the model is now archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

impl Models<'_> {
    /// Lists the models with the `provider` and `model` query parameters.
    pub async fn list_with(&self, query: &ModelListQuery) -> Result<ApiResponse<ModelList>, Error> {
        self.client
            .send_json_with_options::<(), _>(Method::GET, &query.to_path(), None, &self.options)
            .await
    }

    /// Renames or re-describes a fine-tuned model
    /// (`PATCH /v1/fine_tuning/models/{model_id}`).
    pub async fn update(
        &self,
        model_id: &str,
        req: &UpdateModelRequest,
    ) -> Result<ApiResponse<FineTunedModel>, Error> {
        let path = format!("/v1/fine_tuning/models/{}", path_segment(model_id));
        self.client
            .send_json_with_options(Method::PATCH, &path, Some(req), &self.options)
            .await
    }

    /// Archives a fine-tuned model (`POST /v1/fine_tuning/models/{model_id}/archive`).
    pub async fn archive(
        &self,
        model_id: &str,
    ) -> Result<ApiResponse<ArchiveModelResponse>, Error> {
        self.set_archived(model_id, Method::POST).await
    }

    /// Unarchives a fine-tuned model
    /// (`DELETE /v1/fine_tuning/models/{model_id}/archive`).
    pub async fn unarchive(
        &self,
        model_id: &str,
    ) -> Result<ApiResponse<ArchiveModelResponse>, Error> {
        self.set_archived(model_id, Method::DELETE).await
    }

    async fn set_archived(
        &self,
        model_id: &str,
        method: Method,
    ) -> Result<ApiResponse<ArchiveModelResponse>, Error> {
        let archived = method == Method::POST;
        let path = format!("/v1/fine_tuning/models/{}/archive", path_segment(model_id));
        let req = raw::empty_request(method, &path, "application/json")?;
        let mut res: ApiResponse<ArchiveModelResponse> =
            raw::call_allow_empty(self.client, req, &self.options).await?;
        if res.id.is_empty() {
            res.id = model_id.to_owned();
        }
        res.archived.get_or_insert(archived);
        Ok(res)
    }
}
