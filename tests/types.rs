//! Offline serde tests of the wire types against the repository's fixtures
//! (`tests/fixtures/`) and, when it is found, the examples of Mistral's OpenAPI spec.

mod support;

use mistral_tower::agents::AgentsCompletionRequest;
use mistral_tower::chat::{
    ChatCompletionAccumulator, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse,
    ChatMessage, Content, ContentChunk, FinishReason, ImageUrl, JsonSchema, Prediction,
    ReasoningEffort, ResponseFormat, Role, ServiceTier, ThinkingPart, Tool, ToolCall, ToolChoice,
};
use mistral_tower::classifiers::{
    ChatClassificationRequest, ChatModerationRequest, ClassificationResponse, ModerationRequest,
    ModerationResponse,
};
use mistral_tower::common::{Arguments, UsageInfo};
use mistral_tower::embeddings::{
    Embedding, EmbeddingDtype, EmbeddingRequest, EmbeddingResponse, EncodingFormat,
};
use mistral_tower::fim::{FimCompletionRequest, FimCompletionResponse};
use mistral_tower::models::{DeleteModelResponse, Model, ModelFilter, ModelList};
use mistral_tower::ocr::{OcrDocument, OcrRequest, OcrResponse};
use mistral_tower::testing::fixtures;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The repository's fixtures by file name (`tests/fixtures/`).
const FIXTURES: &[(&str, &str)] = &[
    ("chat.request.json", fixtures::CHAT_REQUEST),
    ("chat.response.json", fixtures::CHAT_RESPONSE),
    ("chat.stream.sse", fixtures::CHAT_STREAM),
    ("tool-call.response.json", fixtures::TOOL_CALL_RESPONSE),
    (
        "prompt-cache.response.json",
        fixtures::PROMPT_CACHE_RESPONSE,
    ),
    ("embeddings.response.json", fixtures::EMBEDDINGS_RESPONSE),
];

fn example(name: &str) -> String {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1
        .to_owned()
}

/// Decodes, re-encodes and decodes again: the two decoded values must be equal.
fn round_trip<T>(json: &str) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let first: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("decode: {e}\n{json}"));
    let again = serde_json::to_string(&first).unwrap();
    let second: T = serde_json::from_str(&again).unwrap();
    assert_eq!(first, second, "round trip changed the value");
    first
}

fn sse_data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .filter(|d| d != "[DONE]")
        .collect()
}

#[test]
fn every_example_decodes_into_its_type() {
    let mut seen = 0;
    // Every fixture file but the error bodies (they belong to the client's error type)
    // and the README is listed here.
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("error.") && n != "README.md")
        .count();
    assert_eq!(on_disk, FIXTURES.len(), "add the new fixture to FIXTURES");
    for (name, text) in FIXTURES {
        let (name, text) = (*name, text.to_string());
        if name.starts_with("embeddings.") {
            let res: EmbeddingResponse = round_trip(&text);
            assert_eq!(res.data.len(), 2);
        } else if name.ends_with(".request.json") {
            let req: ChatCompletionRequest = round_trip(&text);
            assert!(!req.messages.is_empty());
            // Writing is exact: the request re-encodes to the same JSON.
            let original: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_value(&req).unwrap(), original);
        } else if name.ends_with(".response.json") {
            let res: ChatCompletionResponse = round_trip(&text);
            assert!(!res.id.is_empty());
        } else if name.ends_with(".sse") {
            for data in sse_data_lines(&text) {
                round_trip::<ChatCompletionChunk>(&data);
            }
        } else {
            panic!("unexpected example {name}: add it to this test");
        }
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} examples found");
}

#[test]
fn chat_response_example_fields() {
    let res: ChatCompletionResponse = serde_json::from_str(&example("chat.response.json")).unwrap();
    assert_eq!(res.id, "cmpl-5e0c7b2a91f84d6c8a3f2e1d0c9b8a77");
    assert_eq!(res.object, "chat.completion");
    assert_eq!(res.created, Some(1780312200));
    let usage = res.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (27, 71, 98)
    );
    let choice = &res.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(choice.message.tool_calls, None); // `tool_calls: null`
    assert_eq!(choice.message.prefix, Some(false));
    assert!(
        res.text()
            .starts_with("At sea level, where the air pressure is about **101.3 kPa")
    );
}

#[test]
fn tool_call_example_has_string_arguments() {
    let res: ChatCompletionResponse =
        serde_json::from_str(&example("tool-call.response.json")).unwrap();
    let choice = &res.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = &choice.message.tool_calls()[0];
    assert_eq!(call.id.as_deref(), Some("q7Rk2VxPa"));
    assert_eq!(call.function.name, "get_order_status");
    assert_eq!(
        call.function.arguments,
        Arguments::String(r#"{"order_id": "A-2817"}"#.into())
    );
    assert_eq!(
        call.function.arguments.to_value().unwrap(),
        json!({"order_id": "A-2817"})
    );
    #[derive(serde::Deserialize)]
    struct Args {
        order_id: String,
    }
    let args: Args = call.function.arguments.parse().unwrap();
    assert_eq!(args.order_id, "A-2817");
    // Object arguments are accepted as well.
    let call: ToolCall =
        serde_json::from_value(json!({"function": {"name": "f", "arguments": {"a": 1}}})).unwrap();
    assert_eq!(call.function.arguments.to_json_string(), r#"{"a":1}"#);
}

#[test]
fn prompt_cache_usage_keeps_cached_tokens() {
    let res: ChatCompletionResponse = round_trip(&example("prompt-cache.response.json"));
    let usage = res.usage.unwrap();
    assert_eq!(usage.cached_tokens(), Some(2048));
    assert_eq!(usage.total_tokens, 2322);
    assert!(res.choices.is_empty());
    // Unknown usage fields are kept and re-sent.
    let usage: UsageInfo = serde_json::from_value(json!({
        "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
        "prompt_token_details": {"cached_tokens": 0, "future": 1},
        "brand_new": {"x": true}, "prompt_audio_seconds": {}
    }))
    .unwrap();
    assert_eq!(usage.cached_tokens(), Some(0));
    let back = serde_json::to_value(&usage).unwrap();
    assert_eq!(back["brand_new"], json!({"x": true}));
    assert_eq!(back["prompt_token_details"]["future"], 1);
}

#[test]
fn stream_example_accumulates_into_the_final_response() {
    let mut acc = ChatCompletionAccumulator::new();
    let data = sse_data_lines(&example("chat.stream.sse"));
    assert_eq!(data.len(), 5);
    for line in &data {
        let chunk: ChatCompletionChunk = serde_json::from_str(line).unwrap();
        assert_eq!(chunk.object.as_deref(), Some("chat.completion.chunk"));
        acc.push(&chunk);
    }
    let res = acc.finish();
    let expected: ChatCompletionResponse = serde_json::from_value(json!({
        "id": "cmpl-b41f0a9d6c2e47d3a8e5f1c7d9b20e64",
        "object": "chat.completion",
        "model": "mistral-small-latest",
        "created": 1780312260,
        "usage": {"prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21},
        "choices": [{"index": 0, "message": {"content": fixtures::CHAT_STREAM_TEXT}, "finish_reason": "stop"}]
    }))
    .unwrap();
    assert_eq!(res, expected);
}

fn chunk(value: Value) -> ChatCompletionChunk {
    serde_json::from_value(value).unwrap()
}

#[test]
fn accumulator_merges_tool_calls_chunk_content_and_choices() {
    let mut acc = ChatCompletionAccumulator::new();
    // n = 2: two choices interleaved; choice 1 streams chunk arrays and a split tool call.
    acc.push(&chunk(json!({"id": "x", "model": "m", "created": 5, "p": "padding", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null},
        {"index": 1, "delta": {"role": "assistant", "content": [{"type": "text", "text": "A"}]}, "finish_reason": null}
    ]})));
    acc.push(&chunk(json!({"id": "x", "model": "m", "choices": [
        {"index": 1, "delta": {"content": "B", "tool_calls": [
            {"id": "c1", "type": "function", "index": 0, "function": {"name": "get", "arguments": "{\"ci"}}
        ]}, "finish_reason": null},
        {"index": 0, "delta": {"content": "lo", "tool_calls": null}, "finish_reason": null}
    ]})));
    acc.push(&chunk(json!({"id": "x", "model": "m", "choices": [
        {"index": 1, "delta": {"content": [{"type": "image_url", "image_url": "https://i"}], "tool_calls": [
            {"index": 0, "function": {"arguments": "ty\":1}"}},
            {"id": "c2", "type": "function", "index": 1, "function": {"name": "put", "arguments": "{}"}}
        ]}, "finish_reason": "tool_calls"}
    ]})));
    acc.push(&chunk(json!({"id": "x", "model": "m", "choices": [
        {"index": 0, "delta": {"content": "!"}, "finish_reason": "length"}
    ], "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}})));
    let res = acc.finish();
    assert_eq!(
        (res.id.as_str(), res.model.as_str(), res.created),
        ("x", "m", Some(5))
    );
    assert_eq!(res.usage.unwrap().total_tokens, 9);
    assert_eq!(res.choices.len(), 2);

    let first = &res.choices[0];
    assert_eq!(first.index, 0);
    assert_eq!(first.message.content, Some(Content::Text("Hello!".into())));
    assert_eq!(first.message.tool_calls, None);
    assert_eq!(first.finish_reason, Some(FinishReason::Length));

    let second = &res.choices[1];
    assert_eq!(
        second.message.content,
        Some(Content::Chunks(vec![
            ContentChunk::text("AB"),
            ContentChunk::image_url("https://i"),
        ]))
    );
    let calls = second.message.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id.as_deref(), Some("c1"));
    assert_eq!(calls[0].function.name, "get");
    assert_eq!(
        calls[0].function.arguments.to_value().unwrap(),
        json!({"city": 1})
    );
    assert_eq!(calls[1].id.as_deref(), Some("c2"));
    assert_eq!(calls[1].function.name, "put");
    assert_eq!(second.finish_reason, Some(FinishReason::ToolCalls));
}

#[test]
fn accumulator_separates_whole_tool_calls_with_the_same_index() {
    // Mistral sends each tool call whole, possibly with the same `index` in separate chunks.
    let mut acc = ChatCompletionAccumulator::new();
    for (id, name) in [("a", "one"), ("b", "two")] {
        acc.push(&chunk(
            json!({"id": "x", "model": "m", "choices": [{"index": 0, "delta": {
            "tool_calls": [{"id": id, "index": 0, "function": {"name": name, "arguments": "{}"}}]
        }, "finish_reason": null}]}),
        ));
    }
    let res = acc.finish();
    let names: Vec<&str> = res.choices[0]
        .message
        .tool_calls()
        .iter()
        .map(|c| c.function.name.as_str())
        .collect();
    assert_eq!(names, ["one", "two"]);
}

#[test]
fn unset_fields_are_omitted_and_zero_false_are_sent() {
    let req = ChatCompletionRequest::new("m", vec![ChatMessage::user("hi")]);
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    );
    let req = req
        .temperature(0.0)
        .top_p(1.0)
        .max_tokens(0)
        .random_seed(0u64)
        .presence_penalty(0.0)
        .frequency_penalty(0.0)
        .stream(false)
        .safe_prompt(false)
        .parallel_tool_calls(false);
    let v = serde_json::to_value(&req).unwrap();
    for (key, want) in [
        ("temperature", json!(0.0)),
        ("max_tokens", json!(0)),
        ("random_seed", json!(0)),
        ("presence_penalty", json!(0.0)),
        ("frequency_penalty", json!(0.0)),
        ("stream", json!(false)),
        ("safe_prompt", json!(false)),
        ("parallel_tool_calls", json!(false)),
    ] {
        assert_eq!(v[key], want, "{key}");
    }
    assert!(v.get("n").is_none());
    assert!(v.get("tools").is_none());

    let fim = FimCompletionRequest::new("codestral-latest", "def")
        .temperature(0.0)
        .min_tokens(0u32);
    assert_eq!(
        serde_json::to_value(&fim).unwrap(),
        json!({"model": "codestral-latest", "prompt": "def", "temperature": 0.0, "min_tokens": 0})
    );
    let emb = EmbeddingRequest::new("mistral-embed", ["a"]);
    assert_eq!(
        serde_json::to_value(&emb).unwrap(),
        json!({"model": "mistral-embed", "input": ["a"]})
    );
    let agents = AgentsCompletionRequest::new("ag", vec![]).stream(false);
    assert_eq!(
        serde_json::to_value(&agents).unwrap(),
        json!({"agent_id": "ag", "messages": [], "stream": false})
    );
    let ocr = OcrRequest::new("mistral-ocr-latest", OcrDocument::file("f")).extract_header(false);
    assert_eq!(
        serde_json::to_value(&ocr).unwrap(),
        json!({"model": "mistral-ocr-latest", "document": {"type": "file", "file_id": "f"}, "extract_header": false})
    );
}

#[test]
fn unknown_fields_are_ignored_in_responses() {
    let res: ChatCompletionResponse = serde_json::from_value(json!({
        "id": "a", "object": "chat.completion", "model": "m", "created": 1, "new_top": [1],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": "hi", "tool_calls": null, "new_msg": 1}}]
    }))
    .unwrap();
    assert_eq!(res.text(), "hi");
    let model: Model = serde_json::from_value(json!({
        "id": "m", "capabilities": {"completion_chat": true, "teleport": true, "vision": null},
        "something": "else"
    }))
    .unwrap();
    assert!(model.capabilities.completion_chat);
    assert!(!model.capabilities.vision);
}

#[test]
fn unknown_enum_values_are_kept_and_reserialized() {
    let chunk: ChatCompletionChunk = serde_json::from_value(json!({
        "id": "a", "model": "m",
        "choices": [{"index": 0, "delta": {"role": "critic", "content": "x"}, "finish_reason": "new_reason"}]
    }))
    .unwrap();
    let choice = &chunk.choices[0];
    assert_eq!(
        choice.finish_reason,
        Some(FinishReason::Other("new_reason".into()))
    );
    assert_eq!(choice.delta.role, Some(Role::Other("critic".into())));
    let back = serde_json::to_value(&chunk).unwrap();
    assert_eq!(back["choices"][0]["finish_reason"], "new_reason");
    assert_eq!(back["choices"][0]["delta"]["role"], "critic");

    let effort: ReasoningEffort = serde_json::from_str(r#""ultra""#).unwrap();
    assert_eq!(effort, ReasoningEffort::Other("ultra".into()));
    assert_eq!(serde_json::to_string(&effort).unwrap(), r#""ultra""#);
    let dtype: EmbeddingDtype = serde_json::from_str(r#""int4""#).unwrap();
    assert_eq!(dtype.as_str(), "int4");
    // Known values still map to their variants.
    let tier: ServiceTier = serde_json::from_str(r#""standard_only""#).unwrap();
    assert_eq!(tier, ServiceTier::StandardOnly);
}

#[test]
fn content_as_string_and_as_chunks() {
    let text: ChatMessage =
        serde_json::from_value(json!({"role": "user", "content": "hi"})).unwrap();
    assert_eq!(text, ChatMessage::user("hi"));
    let chunks = json!({"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}},
        {"type": "document_url", "document_url": "https://x/doc.pdf", "document_name": "doc"},
        {"type": "reference", "reference_ids": [1, "two"]},
        {"type": "file", "file_id": "0b6bfb5b-3d2c-4b1a-9d3e-6f1f5b7c8d9e"},
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}, {"type": "mystery"}], "signature": "s", "closed": true},
        {"type": "input_audio", "input_audio": "UklGRg=="},
        {"type": "hologram", "depth": 3},
        {"type": "text"}
    ]});
    let msg: ChatMessage = serde_json::from_value(chunks.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&msg).unwrap(),
        chunks,
        "chunks re-encode unchanged"
    );
    let content = msg.content().unwrap();
    let parts = content.chunks();
    assert!(
        matches!(&parts[1], ContentChunk::ImageUrl(c) if matches!(c.image_url, ImageUrl::Url(_)))
    );
    assert!(
        matches!(&parts[2], ContentChunk::ImageUrl(c) if matches!(c.image_url, ImageUrl::Object(_)))
    );
    assert!(matches!(parts[3], ContentChunk::DocumentUrl(_)));
    assert!(matches!(parts[4], ContentChunk::Reference(_)));
    assert!(matches!(parts[5], ContentChunk::File(_)));
    let ContentChunk::Thinking(think) = &parts[6] else {
        panic!("not thinking: {:?}", parts[6]);
    };
    assert!(matches!(think.thinking[1], ThinkingPart::Unknown(_)));
    assert!(matches!(parts[7], ContentChunk::InputAudio(_)));
    assert_eq!(
        parts[8],
        ContentChunk::Unknown(json!({"type": "hologram", "depth": 3}))
    );
    // A known type in an unexpected shape is kept too.
    assert_eq!(parts[9], ContentChunk::Unknown(json!({"type": "text"})));
    assert_eq!(content.text(), "What is this?");
    assert_eq!(msg.role(), Role::User);
}

#[test]
fn message_constructors() {
    let msgs = vec![
        ChatMessage::system("sys"),
        ChatMessage::user(vec![
            ContentChunk::text("a"),
            ContentChunk::document_url("https://d"),
        ]),
        ChatMessage::assistant("ok"),
        ChatMessage::assistant_prefix("Sure"),
        ChatMessage::tool("call1", "42"),
    ];
    assert_eq!(
        serde_json::to_value(&msgs).unwrap(),
        json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "document_url", "document_url": "https://d"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "assistant", "content": "Sure", "prefix": true},
            {"role": "tool", "content": "42", "tool_call_id": "call1"}
        ])
    );
    // An assistant answer goes back into the conversation.
    let res: ChatCompletionResponse =
        serde_json::from_str(&example("tool-call.response.json")).unwrap();
    let history = ChatMessage::from(res.choices[0].message.clone());
    let v = serde_json::to_value(&history).unwrap();
    assert_eq!(v["role"], "assistant");
    assert_eq!(
        v["tool_calls"][0]["function"]["arguments"],
        r#"{"order_id": "A-2817"}"#
    );
}

#[test]
fn tools_tool_choice_and_response_formats() {
    let req = ChatCompletionRequest::new("m", vec![ChatMessage::user("x")])
        .tools(vec![
            Tool::function("get", "Gets", json!({"type": "object", "properties": {}})),
            Tool::WebSearch {
                tool_configuration: None,
            },
        ])
        .tool_choice(ToolChoice::function("get"))
        .response_format(ResponseFormat::json_schema(
            JsonSchema::new("book", json!({"type": "object"})).strict(true),
        ))
        .prediction(Prediction::content("draft"));
    let v = serde_json::to_value(&req).unwrap();
    assert_eq!(
        v["tools"],
        json!([
            {"type": "function", "function": {"name": "get", "description": "Gets", "parameters": {"type": "object", "properties": {}}}},
            {"type": "web_search"}
        ])
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "function", "function": {"name": "get"}})
    );
    assert_eq!(
        v["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "book", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(
        v["prediction"],
        json!({"type": "content", "content": "draft"})
    );
    assert_eq!(
        serde_json::to_value(ToolChoice::any()).unwrap(),
        json!("any")
    );
    assert_eq!(
        serde_json::to_value(ResponseFormat::json_object()).unwrap(),
        json!({"type": "json_object"})
    );
    let back: ChatCompletionRequest = serde_json::from_value(v).unwrap();
    assert_eq!(back, req);
    let unknown: Tool = serde_json::from_value(json!({"type": "teleporter", "range": 2})).unwrap();
    assert_eq!(
        unknown,
        Tool::Unknown(json!({"type": "teleporter", "range": 2}))
    );
}

#[test]
fn embeddings_float_and_base64() {
    let req = EmbeddingRequest::new("mistral-embed", vec![String::from("a"), "b".into()])
        .output_dimension(8u32)
        .output_dtype(EmbeddingDtype::Int8)
        .encoding_format(EncodingFormat::Base64);
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 8, "output_dtype": "int8", "encoding_format": "base64"})
    );

    use base64::Engine as _;
    let floats: Vec<u8> = [0.5f32, -1.25, 3.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&floats);
    let res: EmbeddingResponse = round_trip(
        &json!({
            "id": "e", "object": "list", "model": "mistral-embed",
            "usage": {"prompt_tokens": 2, "total_tokens": 2, "completion_tokens": 0, "prompt_token_details": {"cached_tokens": 0}},
            "data": [
                {"object": "embedding", "index": 0, "embedding": b64},
                {"object": "embedding", "index": 1, "embedding": [0.1, -2, 3]},
                {"object": "embedding", "index": 2, "embedding": "/wB/gA=="}
            ]
        })
        .to_string(),
    );
    let d = &res.data;
    assert_eq!(
        d[0].embedding.to_f32(&EmbeddingDtype::Float).unwrap(),
        vec![0.5, -1.25, 3.0]
    );
    assert_eq!(d[0].embedding.to_bytes().unwrap(), floats);
    assert_eq!(d[1].embedding, Embedding::Float(vec![0.1, -2.0, 3.0]));
    assert_eq!(
        d[2].embedding.to_bytes().unwrap(),
        vec![0xff, 0x00, 0x7f, 0x80]
    );
    assert_eq!(
        d[2].embedding.to_f32(&EmbeddingDtype::Int8).unwrap(),
        vec![-1.0, 0.0, 127.0, -128.0]
    );
    assert_eq!(
        d[2].embedding.to_f32(&EmbeddingDtype::Ubinary).unwrap(),
        vec![255.0, 0.0, 127.0, 128.0]
    );
    // 4 bytes decode as one float; a length that is not a multiple of 4 is an error.
    assert!(
        Embedding::Base64("AAA=".into())
            .to_f32(&EmbeddingDtype::Float)
            .is_err()
    );
    assert!(Embedding::Base64("not base64!".into()).to_bytes().is_err());
    assert_eq!(res.usage.unwrap().cached_tokens(), Some(0));
}

#[test]
fn models_list_get_delete_and_filter() {
    let list: ModelList = round_trip(
        &json!({"object": "list", "data": [
            {"id": "mistral-small-latest", "object": "model", "created": 1, "owned_by": "mistralai",
             "capabilities": {"completion_chat": true, "function_calling": true, "vision": true, "new": true},
             "aliases": ["small"], "max_context_length": 32768, "type": "base", "deprecation": null},
            {"id": "codestral-latest", "capabilities": {"completion_chat": true, "completion_fim": true}},
            {"id": "ft:open-mistral-7b:1", "capabilities": {"completion_chat": true, "fine_tuning": false},
             "job": "j", "root": "open-mistral-7b", "archived": false, "type": "fine-tuned"}
        ]})
        .to_string(),
    );
    let ids =
        |f: &ModelFilter| -> Vec<String> { list.search(f).iter().map(|m| m.id.clone()).collect() };
    assert_eq!(ids(&ModelFilter::new()).len(), 3);
    assert_eq!(
        ids(&ModelFilter::new().vision(true)),
        ["mistral-small-latest"]
    );
    assert_eq!(
        ids(&ModelFilter::new().completion_fim(true)),
        ["codestral-latest"]
    );
    assert_eq!(
        ids(&ModelFilter::new()
            .completion_chat(true)
            .function_calling(false)),
        ["codestral-latest", "ft:open-mistral-7b:1"]
    );
    assert_eq!(
        ids(&ModelFilter::new().fine_tuned(true)),
        ["ft:open-mistral-7b:1"]
    );
    assert_eq!(list.get("small").unwrap().id, "mistral-small-latest");

    let del: DeleteModelResponse =
        serde_json::from_value(json!({"id": "ft:x", "object": "model", "deleted": true})).unwrap();
    assert!(del.deleted);
}

/// Every 200 example the spec gives for these operations decodes into its type.
#[test]
fn spec_response_examples_decode() {
    let Some(spec) = support::openapi_spec() else {
        return;
    };
    let example = |path: &str, method: &str| -> Value {
        spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["examples"]
            ["userExample"]["value"]
            .clone()
    };
    let list: ModelList = serde_json::from_value(example("/v1/models", "get")).unwrap();
    assert_eq!(list.data.len(), 1); // the spec's example is a bare array
    assert!(list.data[0].is_fine_tuned());
    let model: Model = serde_json::from_value(example("/v1/models/{model_id}", "get")).unwrap();
    assert!(model.capabilities.completion_chat);
    let del: DeleteModelResponse =
        serde_json::from_value(example("/v1/models/{model_id}", "delete")).unwrap();
    assert!(del.deleted);
    let fim: FimCompletionResponse =
        serde_json::from_value(example("/v1/fim/completions", "post")).unwrap();
    assert!(fim.text().starts_with("add_numbers"));
    let agents: ChatCompletionResponse =
        serde_json::from_value(example("/v1/agents/completions", "post")).unwrap();
    assert_eq!(agents.usage.unwrap().prompt_audio_seconds, Some(json!({})));
    let emb: EmbeddingResponse = serde_json::from_value(example("/v1/embeddings", "post")).unwrap();
    assert_eq!(emb.data.len(), 2);
    for path in ["/v1/moderations", "/v1/chat/moderations"] {
        let m: ModerationResponse = serde_json::from_value(example(path, "post")).unwrap();
        assert!(!m.results[0].category_scores.is_empty());
        assert!(!m.results[0].flagged());
    }
    let ocr: OcrResponse = serde_json::from_value(example("/v1/ocr", "post")).unwrap();
    assert_eq!(ocr.usage_info.pages_processed, 29);
    assert_eq!(ocr.pages[1].images[0].id, "img-0.jpeg");
}

#[test]
fn classifiers_requests_and_responses() {
    let req = ModerationRequest::new("mistral-moderation-latest", ["a", "b"]);
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"model": "mistral-moderation-latest", "input": ["a", "b"]})
    );
    // A single string input is accepted when reading.
    let one: ModerationRequest =
        serde_json::from_value(json!({"model": "m", "input": "solo"})).unwrap();
    assert_eq!(one.input, ["solo"]);
    let chat = ChatModerationRequest::batch("m", vec![vec![ChatMessage::user("a")]]);
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({"model": "m", "input": [[{"role": "user", "content": "a"}]]})
    );
    round_trip::<ChatModerationRequest>(&serde_json::to_string(&chat).unwrap());
    let cls = ChatClassificationRequest::new("m", vec![ChatMessage::user("a")]);
    assert_eq!(
        serde_json::to_value(&cls).unwrap(),
        json!({"model": "m", "input": {"messages": [{"role": "user", "content": "a"}]}})
    );
    let res: ClassificationResponse = round_trip(
        &json!({"id": "c", "model": "m", "results": [{"intent": {"scores": {"buy": 0.9, "sell": 0.1}}}]})
            .to_string(),
    );
    assert_eq!(res.results[0]["intent"].scores["buy"], 0.9);
}

#[test]
fn ocr_documents_and_response() {
    for (doc, ty) in [
        (OcrDocument::document_url("https://x/a.pdf"), "document_url"),
        (OcrDocument::image_url("https://x/a.png"), "image_url"),
        (OcrDocument::file("f"), "file"),
    ] {
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["type"], ty);
        assert_eq!(serde_json::from_value::<OcrDocument>(v).unwrap(), doc);
    }
    let res: OcrResponse = round_trip(
        &json!({"model": "mistral-ocr-latest", "usage_info": {"pages_processed": 1, "doc_size_bytes": null},
            "pages": [{"index": 0, "markdown": "# T", "images": [], "dimensions": {},
                "blocks": [{"type": "title", "top_left_x": 0, "top_left_y": 0, "bottom_right_x": 1, "bottom_right_y": 1, "content": "T"},
                           {"type": "sticker", "top_left_x": 0, "top_left_y": 0, "bottom_right_x": 1, "bottom_right_y": 1, "content": ""}]}]})
        .to_string(),
    );
    let blocks = res.pages[0].blocks.as_ref().unwrap();
    assert_eq!(blocks[1].r#type.as_str(), "sticker");
}

#[test]
fn requests_round_trip() {
    let req = ChatCompletionRequest::new(
        "m",
        vec![
            ChatMessage::system("s"),
            ChatMessage::user("u"),
            ChatMessage::Assistant(mistral_tower::chat::AssistantMessage {
                content: None,
                tool_calls: Some(vec![ToolCall::function("c", "f", "{}")]),
                prefix: None,
            }),
            ChatMessage::tool("c", "r"),
        ],
    )
    .stop(vec!["a", "b"])
    .n(2u32);
    round_trip::<ChatCompletionRequest>(&serde_json::to_string(&req).unwrap());
    let fim = FimCompletionRequest::new("c", "p").suffix("s").stop("x");
    round_trip::<FimCompletionRequest>(&serde_json::to_string(&fim).unwrap());
    let agents = AgentsCompletionRequest::new("a", vec![ChatMessage::user("u")]).n(1);
    round_trip::<AgentsCompletionRequest>(&serde_json::to_string(&agents).unwrap());
    let emb = EmbeddingRequest::new("e", ["x"]);
    round_trip::<EmbeddingRequest>(&serde_json::to_string(&emb).unwrap());
    let ocr = OcrRequest::new("o", OcrDocument::file("f")).pages(vec![0, 1]);
    round_trip::<OcrRequest>(&serde_json::to_string(&ocr).unwrap());
}

#[test]
fn builder_setters_take_plain_literals_and_strings() {
    let req = ChatCompletionRequest::new("m", vec![ChatMessage::user("x")])
        .max_tokens(64)
        .n(2)
        .random_seed(7)
        .temperature(0.2)
        .stop("END")
        .reasoning_effort("high")
        .tool_choice(mistral_tower::common::ToolChoiceMode::Auto)
        .prompt_cache_key(String::from("k"));
    assert_eq!(req.max_tokens, Some(64));
    assert_eq!(req.reasoning_effort, Some(ReasoningEffort::High));
    assert_eq!(req.tool_choice, Some(ToolChoice::auto()));
    let chunk: ChatCompletionChunk = serde_json::from_value(
        json!({"id": "a", "model": "m", "choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": "hi"}]}}]}),
    )
    .unwrap();
    assert_eq!(chunk.text(), "hi");
}

mod accumulator_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However content and tool-call arguments are split across chunks (strings or chunk
        /// arrays, arguments in pieces), the accumulated text and arguments are the originals.
        #[test]
        fn splitting_does_not_change_the_result(
            text in "[a-zA-Z0-9 .,!{}\"]{0,40}",
            args in "[a-z0-9:{}\",]{0,30}",
            text_cuts in proptest::collection::vec((0usize..41, any::<bool>()), 0..6),
            arg_cuts in proptest::collection::vec(0usize..31, 0..5),
        ) {
            let mut acc = ChatCompletionAccumulator::new();
            let mut cuts: Vec<(usize, bool)> = text_cuts.into_iter().map(|(c, a)| (c.min(text.len()), a)).collect();
            cuts.sort();
            let mut start = 0;
            for (cut, as_chunks) in cuts.into_iter().chain([(text.len(), false)]) {
                let piece = &text[start..cut.max(start)];
                start = cut.max(start);
                let content = if as_chunks {
                    json!([{"type": "text", "text": piece}])
                } else {
                    json!(piece)
                };
                acc.push(&chunk(json!({"id": "x", "model": "m", "choices": [
                    {"index": 0, "delta": {"content": content}, "finish_reason": null}]})));
            }
            let mut cuts: Vec<usize> = arg_cuts.into_iter().map(|c| c.min(args.len())).collect();
            cuts.sort();
            let mut start = 0;
            for (i, cut) in cuts.into_iter().chain([args.len()]).enumerate() {
                let piece = &args[start..cut.max(start)];
                start = cut.max(start);
                let call = if i == 0 {
                    json!({"id": "c", "type": "function", "index": 0, "function": {"name": "f", "arguments": piece}})
                } else {
                    json!({"index": 0, "function": {"arguments": piece}})
                };
                acc.push(&chunk(json!({"id": "x", "model": "m", "choices": [
                    {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]})));
            }
            let res = acc.finish();
            let message = &res.choices[0].message;
            prop_assert_eq!(message.text(), text);
            let calls = message.tool_calls();
            prop_assert_eq!(calls.len(), 1);
            prop_assert_eq!(&calls[0].function.name, "f");
            prop_assert_eq!(calls[0].function.arguments.to_json_string(), args);
        }
    }
}
