//! Every request type's JSON validates against its schema in Mistral's OpenAPI spec.
//!
//! The spec is not in the repository: it is found at run time through
//! `MISTRAL_OPENAPI_SPEC`, else `../shared/mistral/openapi.yaml` beside the checkout.
//! Without it each test prints `skipped: OpenAPI spec not found (set
//! MISTRAL_OPENAPI_SPEC)` and returns (and fails under
//! `MISTRAL_TOWER_REQUIRE_SERVICES=1`).
//!
//! The request schemas declare `additionalProperties: false`, but some nested ones (guardrails)
//! do not; the tests validate against a *strict* copy of the spec where every object schema with
//! `properties` and no `additionalProperties` forbids other keys, so a misspelt field name fails
//! anywhere. Fully-populated requests must also use every property the spec declares for the
//! schemas they cover, so a field missing from the Rust type is noticed.

mod support;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use mistral_tower::agents::AgentsCompletionRequest;
use mistral_tower::chat::{
    AssistantMessage, ChatCompletionRequest, ChatMessage, Content, ContentChunk, GuardrailConfig,
    ImageDetail, ImageUrl, ImageUrlChunk, ImageUrlObject, JsonSchema, ModerationAction,
    ModerationLlmV1CategoryThresholds, ModerationLlmV1Config, ModerationLlmV2CategoryThresholds,
    ModerationLlmV2Config, Prediction, PromptMode, ReasoningEffort, ReferenceChunk, ReferenceId,
    ResponseFormat, ServiceTier, SystemMessage, TextChunk, ThinkChunk, ThinkingPart, Tool,
    ToolCall, ToolChoice, ToolConfiguration, ToolMessage, ToolReferenceChunk,
};
use mistral_tower::classifiers::{
    ChatClassificationRequest, ChatModerationRequest, ClassificationRequest, ModerationRequest,
};
use mistral_tower::common::{ConnectorAuth, DocumentUrlChunk, Function};
use mistral_tower::embeddings::{EmbeddingDtype, EmbeddingRequest, EncodingFormat};
use mistral_tower::fim::FimCompletionRequest;
use mistral_tower::ocr::{
    ConfidenceScoresGranularity, OcrDocument, OcrPages, OcrRequest, TableFormat,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The spec; every test returns early (skipped) before calling this when it is absent.
fn spec() -> &'static Value {
    support::openapi_spec().expect("checked at the start of the test")
}

/// Returns from the test (printing `skipped: ...`) when the spec is not found.
macro_rules! require_spec {
    () => {
        if support::openapi_spec().is_none() {
            return;
        }
    };
}

/// The spec's components, with `additionalProperties: false` added to every object schema that
/// declares `properties` and says nothing about other keys.
fn strict_components() -> &'static Value {
    static STRICT: OnceLock<Value> = OnceLock::new();
    STRICT.get_or_init(|| {
        fn strictify(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    let is_object_schema = map.get("properties").is_some_and(Value::is_object)
                        && !map.contains_key("additionalProperties");
                    if is_object_schema {
                        map.insert("additionalProperties".into(), Value::Bool(false));
                    }
                    for (key, child) in map.iter_mut() {
                        // `properties` maps names to schemas; `examples` are data, not schemas.
                        if key == "examples" || key == "example" || key == "default" {
                            continue;
                        }
                        strictify(child);
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(strictify),
                _ => {}
            }
        }
        let mut components = spec()["components"].clone();
        strictify(&mut components);
        components
    })
}

fn validate(schema_name: &str, request: &impl Serialize) -> Value {
    let instance = serde_json::to_value(request).unwrap();
    let schema = json!({
        "$ref": format!("#/components/schemas/{schema_name}"),
        "components": strict_components(),
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("compile {schema_name}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema_name} rejects our JSON:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(&instance).unwrap()
    );
    instance
}

fn is_valid(schema_name: &str, instance: &Value) -> bool {
    let schema = json!({
        "$ref": format!("#/components/schemas/{schema_name}"),
        "components": strict_components(),
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap()
        .is_valid(instance)
}

fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.insert(k.clone());
                // Free-form objects (metadata, JSON schemas) are user data, not spec fields.
                if !matches!(k.as_str(), "metadata" | "parameters" | "schema") {
                    keys(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
        _ => {}
    }
}

/// Every property the spec declares for these schemas is used somewhere in `instance`.
fn assert_covers(instance: &Value, schema_names: &[&str]) {
    let mut used = BTreeSet::new();
    keys(instance, &mut used);
    let schemas = &spec()["components"]["schemas"];
    for name in schema_names {
        let props = schemas[*name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"));
        for prop in props.keys() {
            assert!(
                used.contains(prop),
                "fully-populated request does not use {name}.{prop}"
            );
        }
    }
}

fn metadata() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("user".into(), json!("u-1"));
    m
}

fn all_messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::System(SystemMessage {
            content: Content::Chunks(vec![
                ContentChunk::text("You are terse."),
                ContentChunk::Thinking(ThinkChunk {
                    thinking: vec![
                        ThinkingPart::Text(TextChunk {
                            text: "plan".into(),
                        }),
                        ThinkingPart::ToolReference(ToolReferenceChunk {
                            tool: "web_search".into(),
                            title: "t".into(),
                            url: Some("https://x".into()),
                            favicon: Some("https://x/f.ico".into()),
                            description: Some("d".into()),
                        }),
                        ThinkingPart::Reference(ReferenceChunk {
                            reference_ids: vec![
                                ReferenceId::Int(1),
                                ReferenceId::String("a".into()),
                            ],
                        }),
                    ],
                    signature: Some("sig".into()),
                    closed: Some(true),
                }),
            ]),
        }),
        ChatMessage::user(vec![
            ContentChunk::text("Look:"),
            ContentChunk::image_url("data:image/png;base64,iVBORw0"),
            ContentChunk::ImageUrl(ImageUrlChunk {
                image_url: ImageUrl::Object(ImageUrlObject {
                    url: "https://x/i.png".into(),
                    detail: Some(ImageDetail::High),
                }),
            }),
            ContentChunk::DocumentUrl(DocumentUrlChunk {
                document_url: "https://x/d.pdf".into(),
                document_name: Some("d.pdf".into()),
            }),
            ContentChunk::Reference(ReferenceChunk {
                reference_ids: vec![ReferenceId::Int(0)],
            }),
            ContentChunk::file("0b6bfb5b-3d2c-4b1a-9d3e-6f1f5b7c8d9e"),
            ContentChunk::input_audio("UklGRg=="),
        ]),
        ChatMessage::Assistant(AssistantMessage {
            content: Some("Calling.".into()),
            tool_calls: Some(vec![ToolCall {
                index: Some(0),
                ..ToolCall::function("call1", "get_weather", r#"{"city":"Paris"}"#)
            }]),
            prefix: Some(false),
        }),
        ChatMessage::Tool(ToolMessage {
            content: Some("sunny".into()),
            tool_call_id: Some("call1".into()),
            name: Some("get_weather".into()),
        }),
        ChatMessage::assistant_prefix("The weather"),
    ]
}

fn all_tools() -> Vec<Tool> {
    let config = || {
        Some(ToolConfiguration {
            exclude: Some(vec!["a".into()]),
            include: Some(vec!["b".into()]),
            requires_confirmation: Some(vec!["c".into()]),
        })
    };
    vec![
        Tool::from(
            Function::new(
                "get_weather",
                json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            )
            .description("Weather of a city")
            .strict(true),
        ),
        Tool::WebSearch {
            tool_configuration: config(),
        },
        Tool::WebSearchPremium {
            tool_configuration: None,
        },
        Tool::CodeInterpreter {
            tool_configuration: None,
        },
        Tool::ImageGeneration {
            tool_configuration: None,
        },
        Tool::DocumentLibrary {
            library_ids: vec!["lib".into()],
            tool_configuration: None,
        },
        Tool::Connector {
            connector_id: "conn".into(),
            authorization: Some(ConnectorAuth::OAuth2Token {
                value: "tok".into(),
            }),
            tool_configuration: config(),
        },
        Tool::Connector {
            connector_id: "conn2".into(),
            authorization: Some(ConnectorAuth::ApiKey {
                value: "key".into(),
            }),
            tool_configuration: None,
        },
    ]
}

fn all_guardrails() -> Vec<GuardrailConfig> {
    vec![GuardrailConfig {
        block_on_error: Some(false),
        moderation_llm_v1: Some(ModerationLlmV1Config {
            model_name: Some("mistral-moderation-2411".into()),
            custom_category_thresholds: Some(ModerationLlmV1CategoryThresholds {
                sexual: Some(0.1),
                hate_and_discrimination: Some(0.2),
                violence_and_threats: Some(0.3),
                dangerous_and_criminal_content: Some(0.4),
                selfharm: Some(0.5),
                health: Some(0.6),
                financial: Some(0.7),
                law: Some(0.8),
                pii: Some(0.9),
            }),
            ignore_other_categories: Some(false),
            action: Some(ModerationAction::Block),
        }),
        moderation_llm_v2: Some(ModerationLlmV2Config {
            model_name: Some("mistral-moderation-2603".into()),
            custom_category_thresholds: Some(ModerationLlmV2CategoryThresholds {
                sexual: Some(0.1),
                hate_and_discrimination: Some(0.2),
                violence_and_threats: Some(0.3),
                dangerous: Some(0.4),
                criminal: Some(0.4),
                selfharm: Some(0.5),
                health: Some(0.6),
                financial: Some(0.7),
                law: Some(0.8),
                pii: Some(0.9),
                jailbreaking: Some(0.0),
            }),
            ignore_other_categories: Some(true),
            action: Some(ModerationAction::None),
        }),
    }]
}

fn json_schema_format() -> ResponseFormat {
    ResponseFormat::json_schema(
        JsonSchema::new(
            "book",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        )
        .description("A book")
        .strict(true),
    )
}

/// Schemas whose every property the full chat and agents requests must use.
const CHAT_PARTS: &[&str] = &[
    "SystemMessage",
    "UserMessage",
    "AssistantMessage",
    "ToolMessage",
    "TextChunk",
    "ThinkChunk",
    "ToolReferenceChunk",
    "ReferenceChunk",
    "ImageURLChunk",
    "ImageURL",
    "DocumentURLChunk",
    "FileChunk",
    "AudioChunk",
    "ToolCall",
    "FunctionCall",
    "ResponseFormat",
    "JsonSchema",
    "Tool",
    "Function",
    "WebSearchTool",
    "ToolConfiguration",
    "DocumentLibraryTool",
    "CustomConnector",
    "OAuth2TokenAuth",
    "ToolChoice",
    "FunctionName",
    "Prediction",
    "GuardrailConfig",
    "ModerationLLMV1Config",
    "ModerationLLMV1CategoryThresholds",
    "ModerationLLMV2Config",
    "ModerationLLMV2CategoryThresholds",
];

#[test]
fn chat_request_minimal_validates() {
    require_spec!();
    let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user("Hi")]);
    validate("ChatCompletionRequest", &req);
    let streaming = req.stream(true);
    validate("ChatCompletionRequest", &streaming);
}

#[test]
fn chat_request_fully_populated_validates_and_covers_the_spec() {
    require_spec!();
    let req = ChatCompletionRequest::new("mistral-large-latest", all_messages())
        .temperature(0.0)
        .top_p(1.0)
        .max_tokens(0)
        .stream(false)
        .stop(vec!["\n\n", "END"])
        .random_seed(0u64)
        .metadata(metadata())
        .response_format(json_schema_format())
        .tools(all_tools())
        .tool_choice(ToolChoice::function("get_weather"))
        .presence_penalty(0.0)
        .frequency_penalty(-0.5)
        .n(1)
        .prediction(Prediction::content("It is"))
        .parallel_tool_calls(false)
        .reasoning_effort(ReasoningEffort::High)
        .prompt_mode(PromptMode::Reasoning)
        .guardrails(all_guardrails())
        .prompt_cache_key("conversation-42")
        .service_tier(ServiceTier::StandardOnly)
        .safe_prompt(false);
    let instance = validate("ChatCompletionRequest", &req);
    let mut parts = vec!["ChatCompletionRequest"];
    parts.extend_from_slice(CHAT_PARTS);
    assert_covers(&instance, &parts);

    // Each variant of the smaller choices validates too.
    for choice in [
        ToolChoice::auto(),
        ToolChoice::none(),
        ToolChoice::any(),
        ToolChoice::required(),
    ] {
        validate("ChatCompletionRequest", &req.clone().tool_choice(choice));
    }
    for format in [ResponseFormat::text(), ResponseFormat::json_object()] {
        validate(
            "ChatCompletionRequest",
            &req.clone().response_format(format),
        );
    }
    validate("ChatCompletionRequest", &req.clone().stop("END"));
}

#[test]
fn a_misspelt_or_unknown_field_fails_validation() {
    require_spec!();
    let req =
        ChatCompletionRequest::new("m", vec![ChatMessage::user("Hi")]).guardrails(all_guardrails());
    let good = validate("ChatCompletionRequest", &req);
    let mut bad = good.clone();
    bad["temprature"] = json!(0.1);
    assert!(
        !is_valid("ChatCompletionRequest", &bad),
        "top-level typo accepted"
    );
    let mut bad = good.clone();
    bad["messages"][0]["contents"] = json!("x");
    assert!(
        !is_valid("ChatCompletionRequest", &bad),
        "message typo accepted"
    );
    // GuardrailConfig has no `additionalProperties: false` in the spec; the strict copy does.
    let mut bad = good;
    bad["guardrails"][0]["moderation_llm_v1"]["actoin"] = json!("block");
    assert!(
        !is_valid("ChatCompletionRequest", &bad),
        "nested typo accepted"
    );
}

#[test]
fn fim_requests_validate() {
    require_spec!();
    validate(
        "FIMCompletionRequest",
        &FimCompletionRequest::new("codestral-latest", "def"),
    );
    let full = FimCompletionRequest::new("codestral-latest", "def add(a, b):")
        .suffix("return a + b")
        .temperature(0.0)
        .top_p(0.5)
        .max_tokens(0)
        .min_tokens(0u32)
        .stream(true)
        .stop("\n\n")
        .random_seed(7u64)
        .metadata(metadata())
        .prompt_cache_key("k");
    let instance = validate("FIMCompletionRequest", &full);
    assert_covers(&instance, &["FIMCompletionRequest"]);
}

#[test]
fn agents_requests_validate() {
    require_spec!();
    validate(
        "AgentsCompletionRequest",
        &AgentsCompletionRequest::new("ag:123", vec![ChatMessage::user("Hi")]),
    );
    let full = AgentsCompletionRequest::new("ag:123", all_messages())
        .max_tokens(10u32)
        .stream(false)
        .stop(vec!["x"])
        .random_seed(0u64)
        .metadata(metadata())
        .response_format(json_schema_format())
        .tools(all_tools())
        .tool_choice(ToolChoice::function("get_weather"))
        .presence_penalty(0.0)
        .frequency_penalty(0.0)
        .n(2u32)
        .prediction(Prediction::content(""))
        .parallel_tool_calls(true)
        .reasoning_effort(ReasoningEffort::None)
        .prompt_mode(PromptMode::Reasoning)
        .guardrails(all_guardrails())
        .prompt_cache_key("k")
        .service_tier(ServiceTier::Auto);
    let instance = validate("AgentsCompletionRequest", &full);
    let mut parts = vec!["AgentsCompletionRequest"];
    parts.extend_from_slice(CHAT_PARTS);
    assert_covers(&instance, &parts);
}

#[test]
fn embedding_requests_validate() {
    require_spec!();
    validate(
        "EmbeddingRequest",
        &EmbeddingRequest::new("mistral-embed", ["a", "b"]),
    );
    for (dtype, format) in [
        (EmbeddingDtype::Float, EncodingFormat::Float),
        (EmbeddingDtype::Int8, EncodingFormat::Base64),
        (EmbeddingDtype::Uint8, EncodingFormat::Base64),
        (EmbeddingDtype::Binary, EncodingFormat::Base64),
        (EmbeddingDtype::Ubinary, EncodingFormat::Float),
    ] {
        let full = EmbeddingRequest::new("codestral-embed", ["a"])
            .metadata(metadata())
            .output_dimension(256u32)
            .output_dtype(dtype)
            .encoding_format(format);
        let instance = validate("EmbeddingRequest", &full);
        assert_covers(&instance, &["EmbeddingRequest"]);
    }
}

#[test]
fn classifier_requests_validate() {
    require_spec!();
    let text: ModerationRequest = ModerationRequest::new("mistral-moderation-latest", ["a"]);
    validate("ClassificationRequest", &text);
    let full = ClassificationRequest::new("ft:classifier", ["a", "b"]).metadata(metadata());
    let instance = validate("ClassificationRequest", &full);
    assert_covers(&instance, &["ClassificationRequest"]);

    let one = ChatModerationRequest::new("mistral-moderation-latest", all_messages());
    let instance = validate("ChatModerationRequest", &one);
    assert_covers(&instance, &["ChatModerationRequest"]);
    let many = ChatModerationRequest::batch(
        "mistral-moderation-latest",
        vec![
            vec![ChatMessage::user("a")],
            vec![ChatMessage::system("s"), ChatMessage::user("b")],
        ],
    );
    validate("ChatModerationRequest", &many);

    let one = ChatClassificationRequest::new("ft:classifier", all_messages());
    let instance = validate("ChatClassificationRequest", &one);
    assert_covers(&instance, &["ChatClassificationRequest", "InstructRequest"]);
    let many = ChatClassificationRequest::batch(
        "ft:classifier",
        vec![vec![ChatMessage::user("a")], vec![ChatMessage::user("b")]],
    );
    validate("ChatClassificationRequest", &many);
}

#[test]
fn ocr_requests_validate() {
    require_spec!();
    for document in [
        OcrDocument::document_url("https://arxiv.org/pdf/2201.04234"),
        OcrDocument::image_url("data:image/png;base64,iVBORw0"),
        OcrDocument::file("0b6bfb5b-3d2c-4b1a-9d3e-6f1f5b7c8d9e"),
    ] {
        validate(
            "OCRRequest",
            &OcrRequest::new("mistral-ocr-latest", document),
        );
    }
    let full = OcrRequest::new(
        "mistral-ocr-latest",
        OcrDocument::DocumentUrl(DocumentUrlChunk {
            document_url: "https://x/d.pdf".into(),
            document_name: Some("d.pdf".into()),
        }),
    )
    .pages(vec![0, 2])
    .include_image_base64(false)
    .image_limit(0u32)
    .image_min_size(10u32)
    .bbox_annotation_format(json_schema_format())
    .document_annotation_format(json_schema_format())
    .document_annotation_prompt("Extract the title")
    .table_format(TableFormat::Html)
    .extract_header(true)
    .extract_footer(false)
    .include_blocks(false)
    .confidence_scores_granularity(ConfidenceScoresGranularity::Word);
    let instance = validate("OCRRequest", &full);
    assert_covers(&instance, &["OCRRequest"]);
    validate("OCRRequest", &full.clone().pages(OcrPages::from("0-5")));
    let mut no_model = full;
    no_model.model = None;
    let instance = validate("OCRRequest", &no_model);
    assert_eq!(instance["model"], Value::Null);
}
