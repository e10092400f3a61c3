//! Embeddings: request and response types.
//!
//! STUB: owned by the types work. The names here are the contract.

use serde::{Deserialize, Serialize};

/// An embeddings request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingRequest {
    /// Model id.
    pub model: String,
    /// Inputs.
    pub input: Vec<String>,
}

impl EmbeddingRequest {
    /// A request for these inputs.
    pub fn new<I, S>(model: impl Into<String>, input: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EmbeddingRequest {
            model: model.into(),
            input: input.into_iter().map(Into::into).collect(),
        }
    }
}

/// An embeddings response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingResponse {
    /// Id.
    pub id: String,
}
