//! Typed structured output: asks for a book as a `Book`, then streams another one,
//! then lets the model call a tool whose arguments are a Rust type.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --features schemars --example structured
//! cargo run --features schemars --example structured   # against the in-process fake
//! ```
//!
//! Without `MISTRAL_API_KEY` it runs against `mistral_tower::testing::FakeMistral`
//! with scripted answers (this is how CI runs it).

use futures_util::StreamExt;
use mistral_tower::Client;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::common::{Tool, ToolChoice};
use mistral_tower::structured::StructuredEvent;
use mistral_tower::testing::{FakeMistral, FakeResponse};
use schemars::JsonSchema;
use serde::Deserialize;

/// A book, as the model must answer.
#[derive(Debug, Deserialize, JsonSchema)]
struct Book {
    /// The title.
    title: String,
    /// The author's full name.
    author: String,
    /// The year of first publication, if known.
    year: Option<u16>,
}

/// The arguments of the `find_library` tool.
#[derive(Debug, Deserialize, JsonSchema)]
struct FindLibrary {
    /// A city.
    city: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, fake) = match std::env::var("MISTRAL_API_KEY") {
        Ok(_) => (Client::from_env()?, None),
        Err(_) => {
            let fake = FakeMistral::new();
            let book =
                r#"{"title":"The Left Hand of Darkness","author":"Ursula K. Le Guin","year":1969}"#;
            fake.push(FakeResponse::chat(book));
            fake.push(FakeResponse::chat_stream([&book[..25], &book[25..]]));
            let client = Client::builder()
                .api_key("example")
                .service(fake.service())
                .build()?;
            (client, Some(fake))
        }
    };
    let model = "mistral-small-latest";

    // 1. One call, one typed value.
    let req = ChatCompletionRequest::new(
        model,
        vec![ChatMessage::user("Name one novel by Ursula K. Le Guin.")],
    );
    let res = client.chat().parse::<Book>(req.clone()).await?;
    let book = &res.parsed;
    println!("{} by {} ({:?})", book.title, book.author, book.year);

    // 2. Streamed: the JSON arrives in pieces, then the typed value.
    let mut stream = client.chat().parse_stream::<Book>(req).await?;
    while let Some(event) = stream.next().await {
        match event? {
            StructuredEvent::Delta(text) => print!("{text}"),
            StructuredEvent::Done(done) => println!("\n=> {:?}", done.parsed),
        }
    }

    // 3. A tool whose parameters are derived from `FindLibrary`.
    if let Some(fake) = &fake {
        fake.push(FakeResponse::json(serde_json::json!({
            "id": "cmpl-1", "object": "chat.completion", "model": model, "created": 1,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {
                    "name": "find_library", "arguments": "{\"city\":\"Portland\"}"}}]}}],
        })));
    }
    let req = ChatCompletionRequest::new(
        model,
        vec![ChatMessage::user("Where can I borrow it in Portland?")],
    )
    .tools(vec![Tool::from_type::<FindLibrary>(
        "find_library",
        "Finds a public library in a city.",
    )])
    .tool_choice(ToolChoice::any());
    let res = client.chat().create(req).await?;
    for call in res.choices[0].message.tool_calls() {
        let args: FindLibrary = call.parse_arguments()?;
        println!("the model calls {} for {}", call.function.name, args.city);
    }
    Ok(())
}
