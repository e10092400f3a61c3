//! Which Mistral API operations a cache may store: one table, used by the
//! [`Client`](crate::Client)'s cache and by the `mistral-cache` proxy.
//!
//! # Example
//!
//! ```
//! use http::Method;
//! use mistral_tower::cacheable::{Operation, operation};
//!
//! assert_eq!(operation(&Method::POST, "/v1/chat/completions"), Operation::Generation);
//! assert_eq!(operation(&Method::POST, "/v1/batch/jobs"), Operation::Management);
//! assert_eq!(operation(&Method::GET, "/v1/models"), Operation::ModelList);
//! assert_eq!(operation(&Method::GET, "/v1/models/mistral-small-latest"), Operation::Management);
//! ```
//!
//! # The rule
//!
//! | operation | stored |
//! |---|---|
//! | generation: `POST` chat, FIM, embeddings, moderations, classifications, OCR, audio transcription ([`GENERATION_PATHS`]) | yes, with the cache's TTL |
//! | agents completions (`POST /v1/agents/completions`) | yes, for at most [`DEFAULT_AGENTS_TTL`] (an agent can be edited server-side) |
//! | model listing (`GET /v1/models`) | only when the request sets its own TTL (`x-cache-ttl`, [`RequestOptions::ttl`](crate::RequestOptions::ttl)) |
//! | everything else: models by id, files, batch, fine-tuning, conversations, agents CRUD, libraries, ... | never, whatever the method |
//!
//! A request carrying `Range` is never cached either.

use std::time::Duration;

use http::Method;
use http::request::Parts;

use crate::cache::{Cacheable, Storage};

/// The paths of the generation operations (all `POST`), cached by default: the
/// answer depends on the request body only.
pub const GENERATION_PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/fim/completions",
    "/v1/embeddings",
    "/v1/moderations",
    "/v1/chat/moderations",
    "/v1/classifications",
    "/v1/chat/classifications",
    "/v1/ocr",
    "/v1/audio/transcriptions",
    AGENTS_COMPLETIONS_PATH,
];

/// The agents completions path: generation, but from an agent whose instructions
/// and tools can change server-side without the request changing.
pub const AGENTS_COMPLETIONS_PATH: &str = "/v1/agents/completions";

/// The model listing path.
pub const MODELS_PATH: &str = "/v1/models";

/// The longest time an agents completion is kept by default: 10 minutes, so that an
/// edited agent is answered by its new version soon after.
pub const DEFAULT_AGENTS_TTL: Duration = Duration::from_secs(600);

/// The kind of a Mistral API call, as far as caching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A generation call whose answer depends only on the request (chat, FIM,
    /// embeddings, moderations, classifications, OCR, audio transcription).
    Generation,
    /// An agents completion: generation from server-side state.
    AgentsCompletion,
    /// `GET /v1/models`: changes when models are added or removed.
    ModelList,
    /// Anything that reads or changes server-side state (models by id, files,
    /// batch, fine-tuning, conversations, agents, libraries, ...).
    Management,
}

/// Classifies a request by method and path (a trailing `/` is ignored; the query is
/// not part of `path`).
pub fn operation(method: &Method, path: &str) -> Operation {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    if *method == Method::POST && GENERATION_PATHS.contains(&path) {
        if path == AGENTS_COMPLETIONS_PATH {
            Operation::AgentsCompletion
        } else {
            Operation::Generation
        }
    } else if *method == Method::GET && path == MODELS_PATH {
        Operation::ModelList
    } else {
        Operation::Management
    }
}

/// The [`Cacheable`] predicate of the Mistral API (see the [module docs](self)): set
/// by [`ClientBuilder::cache`](crate::ClientBuilder::cache) and by the proxy.
///
/// ```
/// use mistral_tower::cache::{CacheLayer, MemoryEngine};
/// use mistral_tower::cacheable::MistralCacheable;
/// use std::time::Duration;
///
/// let layer = CacheLayer::new(MemoryEngine::new(1 << 20))
///     .cacheable(MistralCacheable::new().agents_ttl(Duration::from_secs(60)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MistralCacheable {
    agents_ttl: Duration,
}

impl Default for MistralCacheable {
    fn default() -> Self {
        MistralCacheable {
            agents_ttl: DEFAULT_AGENTS_TTL,
        }
    }
}

impl MistralCacheable {
    /// The default rule ([`DEFAULT_AGENTS_TTL`] for agents completions).
    pub fn new() -> Self {
        MistralCacheable::default()
    }

    /// The longest time an agents completion is kept (default [`DEFAULT_AGENTS_TTL`]).
    pub fn agents_ttl(mut self, ttl: Duration) -> Self {
        self.agents_ttl = ttl;
        self
    }
}

impl Cacheable for MistralCacheable {
    fn is_cacheable(&self, parts: &Parts) -> bool {
        operation(&parts.method, parts.uri.path()) != Operation::Management
            && !parts.headers.contains_key(http::header::RANGE)
    }

    fn storage(&self, parts: &Parts) -> Storage {
        match operation(&parts.method, parts.uri.path()) {
            Operation::AgentsCompletion => Storage::AtMost(self.agents_ttl),
            Operation::ModelList => Storage::RequestTtlOnly,
            _ => Storage::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn generation_is_cached_and_management_never_whatever_the_method() {
        let c = MistralCacheable::new();
        for path in GENERATION_PATHS {
            assert!(c.is_cacheable(&parts(Method::POST, path)), "{path}");
            assert!(!c.is_cacheable(&parts(Method::GET, path)), "GET {path}");
        }
        assert!(c.is_cacheable(&parts(Method::POST, "/v1/chat/completions/")));
        for method in [
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
        ] {
            for path in [
                "/v1/models/ft:open-mistral-7b:abc",
                "/v1/files",
                "/v1/files/f-1/content",
                "/v1/batch/jobs",
                "/v1/batch/jobs/j-1/cancel",
                "/v1/fine_tuning/jobs",
                "/v1/conversations",
                "/v1/conversations/c-1",
                "/v1/agents",
                "/v1/agents/ag-1",
                "/v1/libraries",
                "/v1/chat/completions/extra",
            ] {
                assert!(
                    !c.is_cacheable(&parts(method.clone(), path)),
                    "{method} {path}"
                );
            }
        }
        let mut ranged = parts(Method::POST, "/v1/embeddings");
        ranged.headers.insert("range", "bytes=0-1".parse().unwrap());
        assert!(!c.is_cacheable(&ranged));
    }

    #[test]
    fn agents_are_bounded_and_model_listing_needs_a_request_ttl() {
        let c = MistralCacheable::new().agents_ttl(Duration::from_secs(30));
        assert_eq!(
            c.storage(&parts(Method::POST, AGENTS_COMPLETIONS_PATH)),
            Storage::AtMost(Duration::from_secs(30))
        );
        assert_eq!(
            c.storage(&parts(Method::GET, "/v1/models?provider=mistral")),
            Storage::RequestTtlOnly
        );
        assert_eq!(
            c.storage(&parts(Method::POST, "/v1/chat/completions")),
            Storage::Default
        );
    }
}
