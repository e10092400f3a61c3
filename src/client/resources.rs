//! Resource handles: thin views over the [`Client`] for each API area.

use http::Method;

use super::{ApiResponse, Client, EventStream, RequestOptions};
use crate::Error;
use crate::agents::AgentsCompletionRequest;
use crate::chat::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse};
use crate::classifiers::{
    ChatClassificationRequest, ChatModerationRequest, ClassificationRequest,
    ClassificationResponse, ModerationRequest, ModerationResponse,
};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::fim::{FimCompletionChunk, FimCompletionRequest, FimCompletionResponse};
use crate::models::{DeleteModelResponse, Model, ModelFilter, ModelList};
use crate::ocr::{OcrRequest, OcrResponse};

impl Client {
    /// Chat completions (`/v1/chat/completions`).
    pub fn chat(&self) -> Chat<'_> {
        Chat {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// Fill-in-the-middle completions (`/v1/fim/completions`).
    pub fn fim(&self) -> Fim<'_> {
        Fim {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// Agents completions (`/v1/agents/completions`).
    pub fn agents(&self) -> Agents<'_> {
        Agents {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// Embeddings (`/v1/embeddings`).
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// Models (`/v1/models`).
    pub fn models(&self) -> Models<'_> {
        Models {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// Moderation and classification (`/v1/moderations`, `/v1/classifications`, ...).
    pub fn classifiers(&self) -> Classifiers<'_> {
        Classifiers {
            client: self,
            options: RequestOptions::default(),
        }
    }
    /// OCR (`/v1/ocr`).
    pub fn ocr(&self) -> Ocr<'_> {
        Ocr {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Percent-encodes a path segment (model ids may hold `:` and other characters).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Chat completions (`/v1/chat/completions`).
#[derive(Debug, Clone)]
pub struct Chat<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Chat<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Chat<'_> {
    /// Creates a chat completion. A `stream: Some(true)` on the request is cleared.
    pub async fn create(
        &self,
        mut req: ChatCompletionRequest,
    ) -> Result<ApiResponse<ChatCompletionResponse>, Error> {
        if req.stream == Some(true) {
            req.stream = None;
        }
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/chat/completions",
                Some(&req),
                &self.options,
            )
            .await
    }

    /// Streams a chat completion: sets `stream: true` and yields the chunks as they
    /// arrive (see [`EventStream`]). Feed them to a
    /// [`ChatCompletionAccumulator`](crate::chat::ChatCompletionAccumulator) to get
    /// the final response.
    pub async fn create_stream(
        &self,
        mut req: ChatCompletionRequest,
    ) -> Result<EventStream<ChatCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client
            .send_stream_with_options("/v1/chat/completions", &req, &self.options)
            .await
    }
}

/// Fill-in-the-middle completions (`/v1/fim/completions`).
#[derive(Debug, Clone)]
pub struct Fim<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Fim<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Fim<'_> {
    /// Creates a FIM completion. A `stream: Some(true)` on the request is cleared.
    pub async fn create(
        &self,
        mut req: FimCompletionRequest,
    ) -> Result<ApiResponse<FimCompletionResponse>, Error> {
        if req.stream == Some(true) {
            req.stream = None;
        }
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/fim/completions",
                Some(&req),
                &self.options,
            )
            .await
    }

    /// Streams a FIM completion.
    pub async fn create_stream(
        &self,
        mut req: FimCompletionRequest,
    ) -> Result<EventStream<FimCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client
            .send_stream_with_options("/v1/fim/completions", &req, &self.options)
            .await
    }
}

/// Agents completions (`/v1/agents/completions`).
#[derive(Debug, Clone)]
pub struct Agents<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Agents<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Agents<'_> {
    /// Creates an agents completion. A `stream: Some(true)` on the request is cleared.
    pub async fn create(
        &self,
        mut req: AgentsCompletionRequest,
    ) -> Result<ApiResponse<ChatCompletionResponse>, Error> {
        if req.stream == Some(true) {
            req.stream = None;
        }
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/agents/completions",
                Some(&req),
                &self.options,
            )
            .await
    }

    /// Streams an agents completion.
    pub async fn create_stream(
        &self,
        mut req: AgentsCompletionRequest,
    ) -> Result<EventStream<ChatCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client
            .send_stream_with_options("/v1/agents/completions", &req, &self.options)
            .await
    }
}

/// Embeddings (`/v1/embeddings`).
#[derive(Debug, Clone)]
pub struct Embeddings<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Embeddings<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Embeddings<'_> {
    /// Creates embeddings for the inputs.
    pub async fn create(
        &self,
        req: EmbeddingRequest,
    ) -> Result<ApiResponse<EmbeddingResponse>, Error> {
        self.client
            .send_json_with_options(Method::POST, "/v1/embeddings", Some(&req), &self.options)
            .await
    }
}

/// Models (`/v1/models`).
#[derive(Debug, Clone)]
pub struct Models<'a> {
    // crate-visible: the fine-tuned model operations live in `crate::models`
    pub(crate) client: &'a Client,
    pub(crate) options: RequestOptions,
}

impl Models<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Models<'_> {
    /// Lists the models available to the key.
    pub async fn list(&self) -> Result<ApiResponse<ModelList>, Error> {
        self.client
            .send_json_with_options::<(), _>(Method::GET, "/v1/models", None, &self.options)
            .await
    }

    /// Retrieves one model by id.
    pub async fn get(&self, id: &str) -> Result<ApiResponse<Model>, Error> {
        let path = format!("/v1/models/{}", path_segment(id));
        self.client
            .send_json_with_options::<(), _>(Method::GET, &path, None, &self.options)
            .await
    }

    /// Deletes a fine-tuned model. A `204` without a body is a success.
    pub async fn delete(&self, id: &str) -> Result<ApiResponse<DeleteModelResponse>, Error> {
        let path = format!("/v1/models/{}", path_segment(id));
        let req = crate::raw::empty_request(Method::DELETE, &path, "application/json")?;
        let mut res: ApiResponse<DeleteModelResponse> =
            crate::raw::call_allow_empty(self.client, req, &self.options).await?;
        if res.id.is_empty() {
            res.id = id.to_owned();
        }
        Ok(res)
    }

    /// Lists the models and keeps those matching the capability filter (the Go
    /// client's `SearchModels`).
    pub async fn search(&self, filter: &ModelFilter) -> Result<ApiResponse<Vec<Model>>, Error> {
        let list = self.list().await?;
        Ok(list.map(|l| l.data.into_iter().filter(|m| filter.matches(m)).collect()))
    }
}

/// Moderation and classification.
#[derive(Debug, Clone)]
pub struct Classifiers<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Classifiers<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Classifiers<'_> {
    /// Moderates text (`/v1/moderations`).
    pub async fn moderate(
        &self,
        req: ModerationRequest,
    ) -> Result<ApiResponse<ModerationResponse>, Error> {
        self.client
            .send_json_with_options(Method::POST, "/v1/moderations", Some(&req), &self.options)
            .await
    }

    /// Moderates conversations (`/v1/chat/moderations`).
    pub async fn moderate_chat(
        &self,
        req: ChatModerationRequest,
    ) -> Result<ApiResponse<ModerationResponse>, Error> {
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/chat/moderations",
                Some(&req),
                &self.options,
            )
            .await
    }

    /// Classifies text (`/v1/classifications`).
    pub async fn classify(
        &self,
        req: ClassificationRequest,
    ) -> Result<ApiResponse<ClassificationResponse>, Error> {
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/classifications",
                Some(&req),
                &self.options,
            )
            .await
    }

    /// Classifies conversations (`/v1/chat/classifications`).
    pub async fn classify_chat(
        &self,
        req: ChatClassificationRequest,
    ) -> Result<ApiResponse<ClassificationResponse>, Error> {
        self.client
            .send_json_with_options(
                Method::POST,
                "/v1/chat/classifications",
                Some(&req),
                &self.options,
            )
            .await
    }
}

/// OCR (`/v1/ocr`).
#[derive(Debug, Clone)]
pub struct Ocr<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Ocr<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl Ocr<'_> {
    /// Extracts text (and optionally images, tables, annotations) from a document.
    pub async fn process(&self, req: OcrRequest) -> Result<ApiResponse<OcrResponse>, Error> {
        self.client
            .send_json_with_options(Method::POST, "/v1/ocr", Some(&req), &self.options)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(
            path_segment("ft:open-mistral-7b:abc"),
            "ft:open-mistral-7b:abc"
        );
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
