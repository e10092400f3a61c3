//! A fake Mistral API for testing applications offline (feature `testing`).
//!
//! [`FakeMistral`] answers chat (JSON and SSE), FIM, agents completions,
//! embeddings, models, moderations, classifiers and OCR with canned bodies from
//! [`fixtures`], or with responses you script ([`FakeResponse`]). It can inject
//! errors (any status, `Retry-After`, cut or stalled streams, latency) and records
//! every request it receives, so a test can assert on what the application sent.
//!
//! Use it as a local server ([`FakeMistral::start`], then
//! `Client::builder().base_url(fake.url())`) or in-process as a tower service
//! ([`FakeMistral::service`], then `Client::builder().service(fake.service())`);
//! both share one state, so scripting and recording work the same way.
//!
//! # Example
//!
//! ```
//! use mistral_tower::Client;
//! use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
//! use mistral_tower::testing::{FakeMistral, FakeResponse};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeMistral::start().await;
//! let client = Client::builder()
//!     .api_key("test-key")
//!     .base_url(fake.url())
//!     .build()?;
//!
//! // A scripted answer for the next chat call, then a rate limit.
//! fake.push(FakeResponse::chat("Paris."));
//! fake.push(FakeResponse::status(429).retry_after(1));
//!
//! let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user("Capital of France?")]);
//! assert_eq!(client.chat().create(req.clone()).await?.text(), "Paris.");
//!
//! let recorded = fake.last_request().unwrap();
//! assert_eq!(recorded.path, "/v1/chat/completions");
//! assert_eq!(recorded.json()["messages"][0]["content"], "Capital of France?");
//! assert_eq!(recorded.headers["authorization"], "Bearer test-key");
//! # Ok(())
//! # }
//! ```
//!
//! # Scenarios
//!
//! Besides scripted responses, a request picks a canned behaviour with the header
//! `x-fake-scenario`, or with its body's `model` when that is one of these names
//! (so a typed call can choose one without touching headers):
//!
//! | scenario | behaviour |
//! |---|---|
//! | `error-invalid-request` | 400, the `{object, message, type, param, code}` envelope |
//! | `error-validation` | 400 whose `message` holds a `detail` list |
//! | `error-string-message` | 400 with a string message and a numeric-string code |
//! | `error-401` | 401 `{"detail": ...}` |
//! | `error-invalid-model` | 400 invalid model, code `1500` |
//! | `error-429-legacy` | 429 `{"message": ...}` |
//! | `error-429` | 429 with `type: rate_limited`, `code: "1300"` |
//! | `error-422` | 422 with a FastAPI `{"detail": [{loc, msg, type}]}` body |
//! | `error-500-text` | 500 with a `text/plain` body that is not JSON |
//! | `status-<code>` | that status with the error envelope |
//! | `fail-<code>-<n>` | the first `n` calls with this scenario on this path fail with `<code>` (429 uses the rate-limit body), later calls succeed |
//! | `fail-<code>-<n>-after-<secs>` | same, with `Retry-After: <secs>` |
//! | `slow-<ms>` | waits `ms` before the response headers |
//! | `hang` | never answers |
//! | `tool-call` | a tool-call answer (non-streaming) |
//! | `prompt-cache` | an answer whose usage reports server-side prompt-cache tokens |
//! | `unknown-fields` | responses and chunks with extra fields and unknown enum values |
//! | `stream-delay-<ms>` | the canned stream with `ms` between events |
//! | `stream-truncated` | two events, then the body ends cleanly without `[DONE]` |
//! | `stream-abort` | two events, then the connection is cut (a body error) |
//! | `stream-stall` | one event, then nothing (for idle timeouts) |
//! | `stream-error-event` | one event, then `event: error` with an error envelope |
//! | `stream-bad-json` | one event, then a `data:` line that is not JSON |
//! | `stream-endless` | an event every 10 ms forever (for cancellation) |
//!
//! # Endpoints
//!
//! `POST /v1/chat/completions`, `/v1/fim/completions`, `/v1/agents/completions`
//! (the canned answer, or the canned stream when the body has `"stream": true`),
//! `POST /v1/embeddings` (one 3-dimension vector per input; base64 with
//! `encoding_format: "base64"`), `GET /v1/models`, `GET|DELETE /v1/models/{id}`
//! (404 `{"detail": ...}` for an unknown id), `POST /v1/moderations`,
//! `/v1/chat/moderations`, `/v1/classifications`, `/v1/chat/classifications` and
//! `POST /v1/ocr`. Anything else answers 404. Every response carries
//! `mistral-correlation-id: fake-<n>`, where `n` counts requests from 1.

mod fake;
pub mod fixtures;

pub use fake::{FakeMistral, FakeResponse, FakeService, RecordedRequest};
