//! A conversation with a local function tool, run to completion, then a streamed
//! follow-up printed as it arrives.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --example conversation
//! cargo run --example conversation   # against the in-process fake
//! ```
//!
//! Without `MISTRAL_API_KEY` it runs against `mistral_tower::testing::FakeMistral`
//! (this is how CI runs it), whose model calls a function when asked
//! `call:NAME:ARGS`.

use std::io::Write;

use futures_util::TryStreamExt;
use mistral_tower::Client;
use mistral_tower::conversations::{ConversationEvent, ConversationRequest, FunctionTools};
use mistral_tower::testing::FakeMistral;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Weather {
    city: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, question) = match std::env::var("MISTRAL_API_KEY") {
        Ok(_) => (Client::from_env()?, "What is the weather in Paris?"),
        Err(_) => {
            let fake = FakeMistral::new();
            let client = Client::builder()
                .api_key("example")
                .service(fake.service())
                .build()?;
            (client, r#"call:get_weather:{"city":"Paris"}"#)
        }
    };

    let tools = FunctionTools::new().function(
        "get_weather",
        "The current weather in a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        |w: Weather| async move {
            Ok::<_, std::convert::Infallible>(
                json!({"city": w.city, "sky": "clear", "celsius": 21}).to_string(),
            )
        },
    );
    let run = client
        .conversations()
        .run(
            ConversationRequest::model("mistral-medium-latest", question),
            &tools,
        )
        .await?;
    println!("[{} round(s) of tool calls] {}", run.rounds, run.text());

    let mut events = client
        .conversations()
        .append_stream(&run.conversation_id, "Thanks! Anything else?".into())
        .await?;
    let mut out = std::io::stdout();
    while let Some(event) = events.try_next().await? {
        match event {
            ConversationEvent::MessageOutputDelta(d) => {
                write!(out, "{}", d.content.text())?;
                out.flush()?;
            }
            ConversationEvent::ResponseDone(done) => {
                writeln!(out, "\n[{} tokens]", done.usage.total_tokens)?;
            }
            ConversationEvent::ResponseError(e) => return Err(e.message.into()),
            _ => {}
        }
    }
    Ok(())
}
