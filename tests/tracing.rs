//! The trace layer's span per request, checked with a global subscriber.
//!
//! This is the only test in its binary on purpose: `tracing` caches each
//! callsite's interest process-wide, so a thread-local subscriber installed by
//! one test races the other tests of the same binary registering the same
//! callsites under no subscriber, and events go missing at random. A global
//! subscriber in a binary of its own sees every callsite.

mod support;

use std::sync::{Arc, Mutex};

use mistral_tower::Client;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::testing::FakeMistral;

const KEY: &str = "test-key-0123456789";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tracing_span_per_request_without_the_key_or_bodies() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let fake = FakeMistral::start().await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(fake.base_url())
        .build()
        .unwrap();
    let req = ChatCompletionRequest::new(
        "mistral-large-latest",
        vec![ChatMessage::user("How far is the Moon?")],
    );
    client.chat().create(req).await.unwrap();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("mistral.request"), "{logs}");
    assert!(logs.contains("method=POST"), "{logs}");
    assert!(logs.contains("path=/v1/chat/completions"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("correlation_id=\"fake-1\""), "{logs}");
    assert!(logs.contains("latency_ms="), "{logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    assert!(
        !logs.contains("How far is the Moon"),
        "a body leaked into the logs"
    );
}
