//! Resource handles: thin views over the [`Client`] for each API area.

use http::Method;

use super::{ApiResponse, Client, EventStream};
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
        Chat { client: self }
    }
    /// Fill-in-the-middle completions (`/v1/fim/completions`).
    pub fn fim(&self) -> Fim<'_> {
        Fim { client: self }
    }
    /// Agents completions (`/v1/agents/completions`).
    pub fn agents(&self) -> Agents<'_> {
        Agents { client: self }
    }
    /// Embeddings (`/v1/embeddings`).
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings { client: self }
    }
    /// Models (`/v1/models`).
    pub fn models(&self) -> Models<'_> {
        Models { client: self }
    }
    /// Moderation and classification (`/v1/moderations`, `/v1/classifications`, ...).
    pub fn classifiers(&self) -> Classifiers<'_> {
        Classifiers { client: self }
    }
    /// OCR (`/v1/ocr`).
    pub fn ocr(&self) -> Ocr<'_> {
        Ocr { client: self }
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
#[derive(Debug, Clone, Copy)]
pub struct Chat<'a> {
    client: &'a Client,
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
            .send_json(Method::POST, "/v1/chat/completions", Some(&req))
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
        self.client.send_stream("/v1/chat/completions", &req).await
    }
}

/// Fill-in-the-middle completions (`/v1/fim/completions`).
#[derive(Debug, Clone, Copy)]
pub struct Fim<'a> {
    client: &'a Client,
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
            .send_json(Method::POST, "/v1/fim/completions", Some(&req))
            .await
    }

    /// Streams a FIM completion.
    pub async fn create_stream(
        &self,
        mut req: FimCompletionRequest,
    ) -> Result<EventStream<FimCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client.send_stream("/v1/fim/completions", &req).await
    }
}

/// Agents completions (`/v1/agents/completions`).
#[derive(Debug, Clone, Copy)]
pub struct Agents<'a> {
    client: &'a Client,
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
            .send_json(Method::POST, "/v1/agents/completions", Some(&req))
            .await
    }

    /// Streams an agents completion.
    pub async fn create_stream(
        &self,
        mut req: AgentsCompletionRequest,
    ) -> Result<EventStream<ChatCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client
            .send_stream("/v1/agents/completions", &req)
            .await
    }
}

/// Embeddings (`/v1/embeddings`).
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    client: &'a Client,
}

impl Embeddings<'_> {
    /// Creates embeddings for the inputs.
    pub async fn create(
        &self,
        req: EmbeddingRequest,
    ) -> Result<ApiResponse<EmbeddingResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/embeddings", Some(&req))
            .await
    }
}

/// Models (`/v1/models`).
#[derive(Debug, Clone, Copy)]
pub struct Models<'a> {
    // crate-visible: the fine-tuned model operations live in `crate::models`
    pub(crate) client: &'a Client,
}

impl Models<'_> {
    /// Lists the models available to the key.
    pub async fn list(&self) -> Result<ApiResponse<ModelList>, Error> {
        self.client
            .send_json::<(), _>(Method::GET, "/v1/models", None)
            .await
    }

    /// Retrieves one model by id.
    pub async fn get(&self, id: &str) -> Result<ApiResponse<Model>, Error> {
        let path = format!("/v1/models/{}", path_segment(id));
        self.client
            .send_json::<(), _>(Method::GET, &path, None)
            .await
    }

    /// Deletes a fine-tuned model. A `204` without a body is a success.
    pub async fn delete(&self, id: &str) -> Result<ApiResponse<DeleteModelResponse>, Error> {
        let path = format!("/v1/models/{}", path_segment(id));
        let req = crate::raw::empty_request(Method::DELETE, &path, "application/json")?;
        let mut res: ApiResponse<DeleteModelResponse> =
            crate::raw::call_allow_empty(self.client, req).await?;
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
#[derive(Debug, Clone, Copy)]
pub struct Classifiers<'a> {
    client: &'a Client,
}

impl Classifiers<'_> {
    /// Moderates text (`/v1/moderations`).
    pub async fn moderate(
        &self,
        req: ModerationRequest,
    ) -> Result<ApiResponse<ModerationResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/moderations", Some(&req))
            .await
    }

    /// Moderates conversations (`/v1/chat/moderations`).
    pub async fn moderate_chat(
        &self,
        req: ChatModerationRequest,
    ) -> Result<ApiResponse<ModerationResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/chat/moderations", Some(&req))
            .await
    }

    /// Classifies text (`/v1/classifications`).
    pub async fn classify(
        &self,
        req: ClassificationRequest,
    ) -> Result<ApiResponse<ClassificationResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/classifications", Some(&req))
            .await
    }

    /// Classifies conversations (`/v1/chat/classifications`).
    pub async fn classify_chat(
        &self,
        req: ChatClassificationRequest,
    ) -> Result<ApiResponse<ClassificationResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/chat/classifications", Some(&req))
            .await
    }
}

/// OCR (`/v1/ocr`).
#[derive(Debug, Clone, Copy)]
pub struct Ocr<'a> {
    client: &'a Client,
}

impl Ocr<'_> {
    /// Extracts text (and optionally images, tables, annotations) from a document.
    pub async fn process(&self, req: OcrRequest) -> Result<ApiResponse<OcrResponse>, Error> {
        self.client
            .send_json(Method::POST, "/v1/ocr", Some(&req))
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
