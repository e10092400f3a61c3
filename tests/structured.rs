//! Typed structured output against the fake: `chat().parse::<T>()`, its streaming
//! variant, and tools derived from argument types; every request checked against the
//! OpenAPI spec when it is present.

mod support;

use support::client;
use support::spec;

use futures_util::TryStreamExt;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::common::Tool;
use mistral_tower::structured::StructuredEvent;
use mistral_tower::testing::{FakeMistral, FakeResponse};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Book {
    title: String,
    author: String,
    year: Option<u16>,
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Tag {
    name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct WeatherArgs {
    city: String,
    unit: Option<String>,
}

const BOOK: &str = r#"{"title":"The Dispossessed","author":"Ursula K. Le Guin","year":1974,"tags":[{"name":"sf"}]}"#;

fn validate_all(fake: &FakeMistral) {
    if let Some(spec) = spec::spec() {
        for r in fake.requests() {
            spec::validate_request(spec, &r);
        }
    }
}

fn req() -> ChatCompletionRequest {
    ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user("A book?")])
}

#[tokio::test]
async fn parse_sends_a_strict_schema_and_returns_the_typed_value() {
    let fake = FakeMistral::new();
    fake.push(FakeResponse::chat(BOOK));
    let res = client(&fake).chat().parse::<Book>(req()).await.unwrap();
    assert_eq!(res.parsed.title, "The Dispossessed");
    assert_eq!(res.parsed.year, Some(1974));
    assert_eq!(res.parsed.tags, [Tag { name: "sf".into() }]);
    assert_eq!(res.response.text(), BOOK);
    assert!(res.correlation_id().is_some());

    let body = fake.last_body_json().unwrap();
    let rf = &body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "Book");
    assert_eq!(rf["json_schema"]["strict"], true);
    let schema = &rf["json_schema"]["schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"].as_array().unwrap().len(), 4);
    let tag = &schema["properties"]["tags"]["items"];
    assert_eq!(tag["additionalProperties"], false);
    validate_all(&fake);
}

#[tokio::test]
async fn parse_failure_is_a_decode_error_with_the_raw_text() {
    let fake = FakeMistral::new();
    fake.push(FakeResponse::chat("not json at all"));
    let err = client(&fake).chat().parse::<Book>(req()).await.unwrap_err();
    assert!(err.is_decode(), "{err:?}");
    assert_eq!(err.raw_body().unwrap().as_ref(), b"not json at all");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(200));
}

#[tokio::test]
async fn parse_stream_yields_deltas_then_the_typed_value() {
    let fake = FakeMistral::new();
    let (a, b) = BOOK.split_at(20);
    fake.push(FakeResponse::chat_stream([a, b]));
    let events: Vec<StructuredEvent<Book>> = client(&fake)
        .chat()
        .parse_stream::<Book>(req())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            StructuredEvent::Delta(d) => Some(d.as_str()),
            StructuredEvent::Done(_) => None,
        })
        .collect();
    assert_eq!(deltas, BOOK);
    let StructuredEvent::Done(done) = &events[2] else {
        panic!("the last event is Done");
    };
    assert_eq!(done.parsed.author, "Ursula K. Le Guin");
    assert_eq!(fake.last_body_json().unwrap()["stream"], true);
    validate_all(&fake);

    // a stream whose text is not a Book ends with a decode error
    fake.push(FakeResponse::chat_stream(["{\"title\":", "1}"]));
    let got: Vec<_> = futures_util::StreamExt::collect(
        client(&fake)
            .chat()
            .parse_stream::<Book>(req())
            .await
            .unwrap(),
    )
    .await;
    let err = got.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_decode());
    assert_eq!(err.raw_body().unwrap().as_ref(), b"{\"title\":1}");
}

#[tokio::test]
async fn tool_from_type_derives_parameters_and_calls_parse_into_args() {
    let fake = FakeMistral::new();
    let tool = Tool::from_type::<WeatherArgs>("get_weather", "The weather in a city.");
    let req = req().tools(vec![tool]);
    let res = client(&fake).chat().create(req).await.unwrap();
    let body = fake.last_body_json().unwrap();
    let f = &body["tools"][0]["function"];
    assert_eq!(f["name"], "get_weather");
    assert_eq!(f["strict"], true);
    assert_eq!(f["parameters"]["additionalProperties"], false);
    assert_eq!(
        f["parameters"]["required"],
        serde_json::json!(["city", "unit"])
    );
    validate_all(&fake);
    drop(res);

    let call = mistral_tower::common::ToolCall::function(
        "call_1",
        "get_weather",
        r#"{"city":"Paris","unit":null}"#,
    );
    let args: WeatherArgs = call.parse_arguments().unwrap();
    assert_eq!(args.city, "Paris");
    assert_eq!(args.unit, None);
}

#[tokio::test]
async fn function_tools_typed_derive_the_schema_and_bound_the_rounds() {
    use mistral_tower::conversations::{ConversationRequest, FunctionTools};
    let fake = FakeMistral::new();
    let client = client(&fake);
    let tools = FunctionTools::new().typed(
        "get_weather",
        "The weather in a city.",
        |w: WeatherArgs| async move {
            Ok::<_, std::convert::Infallible>(format!("sunny in {}", w.city))
        },
    );
    let run = client
        .conversations()
        .run(
            ConversationRequest::model("m", r#"call:get_weather:{"city":"Oslo","unit":null}"#),
            &tools,
        )
        .await
        .unwrap();
    assert_eq!(run.text(), "result: sunny in Oslo");
    let first = &fake.requests()[0];
    let f = &first.json()["tools"][0]["function"];
    assert_eq!(f["strict"], true);
    assert_eq!(
        f["parameters"]["required"],
        serde_json::json!(["city", "unit"])
    );
    validate_all(&fake);

    let err = client
        .conversations()
        .run(
            ConversationRequest::model("m", r#"call:get_weather:{"city":"Oslo","unit":null}"#),
            &tools.clone().max_rounds(0),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rounds"), "{err}");
}
