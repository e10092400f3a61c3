//! Resource handles: thin views over the [`Client`] for each API area.

use http::Method;

use super::{ApiResponse, Client, EventStream};
use crate::Error;
use crate::chat::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};

impl Client {
    /// Chat completions.
    pub fn chat(&self) -> Chat<'_> {
        Chat { client: self }
    }
    /// Embeddings.
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings { client: self }
    }
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
    /// arrive.
    pub async fn create_stream(
        &self,
        mut req: ChatCompletionRequest,
    ) -> Result<EventStream<ChatCompletionChunk>, Error> {
        req.stream = Some(true);
        self.client.send_stream("/v1/chat/completions", &req).await
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
