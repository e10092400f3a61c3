//! Sends one chat completion and prints the answer.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --example chat -- "What is the capital of France?"
//! ```
//!
//! `MISTRAL_BASE_URL` points it elsewhere (a proxy, the `mistral-cache` server, a
//! fake server in tests).

use mistral_tower::Client;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};

/// Asks `prompt` and returns the answer's text.
pub(crate) async fn run(client: &Client, prompt: &str) -> Result<String, mistral_tower::Error> {
    let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user(prompt)])
        .temperature(0.2);
    let res = client.chat().create(req).await?;
    if let Some(id) = res.correlation_id() {
        eprintln!("correlation id: {id}");
    }
    if let Some(usage) = &res.usage {
        eprintln!("tokens: {usage:?}");
    }
    Ok(res.text())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is the distance between the Earth and the Moon?".into());
    println!("{}", run(&client, &prompt).await?);
    Ok(())
}
