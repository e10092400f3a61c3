//! Streams a chat completion, printing the text as it arrives, then the
//! accumulated response's finish reason and usage.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --example stream -- "Write a haiku about tower middleware"
//! ```

use std::io::Write;

use futures_util::StreamExt;
use mistral_tower::Client;
use mistral_tower::chat::{
    ChatCompletionAccumulator, ChatCompletionRequest, ChatCompletionResponse, ChatMessage,
};

/// Streams the answer to `prompt` into `out` and returns the accumulated response.
pub(crate) async fn run(
    client: &Client,
    prompt: &str,
    out: &mut impl Write,
) -> Result<ChatCompletionResponse, Box<dyn std::error::Error>> {
    let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user(prompt)]);
    let mut stream = client.chat().create_stream(req).await?;
    let mut acc = ChatCompletionAccumulator::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(content) = &choice.delta.content {
                write!(out, "{}", content.text())?;
                out.flush()?;
            }
        }
        acc.push(&chunk);
    }
    writeln!(out)?;
    Ok(acc.finish())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 128 times 3?".into());
    let res = run(&client, &prompt, &mut std::io::stdout()).await?;
    if let Some(choice) = res.choices.first() {
        eprintln!("finish reason: {:?}", choice.finish_reason);
    }
    eprintln!("usage: {:?}", res.usage);
    Ok(())
}
