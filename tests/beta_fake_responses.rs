//! The fake's beta answers validate against the OpenAPI spec's response schemas
//! (when the spec is present), so the typed handles are tested against realistic
//! bodies.

mod support;

use support::spec;

use http::Method;
use mistral_tower::Client;
use mistral_tower::agents_api::CreateAgentRequest;
use mistral_tower::conversations::ConversationRequest;
use mistral_tower::libraries::{CreateLibraryRequest, DocumentUpload};
use mistral_tower::prompts::{CreatePromptRequest, PromptDefinition};
use mistral_tower::testing::FakeMistral;
use serde_json::Value;

#[tokio::test]
async fn beta_answers_match_the_spec() {
    let Some(spec) = spec::spec() else {
        return;
    };
    let fake = FakeMistral::new();
    let client = Client::builder()
        .api_key("test-key")
        .service(fake.service())
        .build()
        .unwrap();
    let conv = client
        .conversations()
        .start(ConversationRequest::model("m", "hi"))
        .await
        .unwrap();
    let agent = client
        .agents_api()
        .create(CreateAgentRequest::new("m", "a"))
        .await
        .unwrap();
    client
        .agents_api()
        .set_alias(&agent.id, "prod", 0)
        .await
        .unwrap();
    let lib = client
        .libraries()
        .create(CreateLibraryRequest::new("l"))
        .await
        .unwrap();
    let doc = client
        .documents()
        .upload(&lib.id, DocumentUpload::bytes("a.txt", "x"))
        .await
        .unwrap();
    let prompt = client
        .prompts()
        .create(CreatePromptRequest::new("p", PromptDefinition::new("c")))
        .await
        .unwrap();

    let c = &conv.conversation_id;
    let (a, l, d, p) = (&agent.id, &lib.id, &doc.id, &prompt.id);
    let gets = [
        ("/v1/conversations".to_owned(), false),
        (format!("/v1/conversations/{c}"), false),
        (format!("/v1/conversations/{c}/history"), false),
        (format!("/v1/conversations/{c}/messages"), false),
        ("/v1/agents".to_owned(), false),
        ("/v1/agents/pages".to_owned(), false),
        (format!("/v1/agents/{a}"), false),
        (format!("/v1/agents/{a}/versions"), false),
        (format!("/v1/agents/{a}/versions/0"), false),
        (format!("/v1/agents/{a}/aliases"), false),
        ("/v1/libraries".to_owned(), false),
        (format!("/v1/libraries/{l}"), false),
        (format!("/v1/libraries/{l}/documents"), false),
        (format!("/v1/libraries/{l}/documents/{d}"), false),
        (format!("/v1/libraries/{l}/documents/{d}/status"), false),
        (
            format!("/v1/libraries/{l}/documents/{d}/text_content"),
            false,
        ),
        (format!("/v1/libraries/{l}/documents/{d}/signed-url"), false),
        (format!("/v1/libraries/{l}/share"), false),
        ("/v2/prompts".to_owned(), false),
        (format!("/v2/prompts/{p}"), false),
        (format!("/v2/prompts/{p}/versions"), false),
        (format!("/v2/prompts/{p}/versions/1"), false),
    ];
    for (path, streaming) in gets {
        let body: Value = client
            .send_json::<(), Value>(Method::GET, &path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_data();
        spec::check_response(spec, "GET", &path, streaming, &body);
    }
    // a turn's answer
    let body: Value = client
        .send_json::<Value, Value>(
            Method::POST,
            &format!("/v1/conversations/{c}"),
            Some(&serde_json::json!({"inputs": "again"})),
        )
        .await
        .unwrap()
        .into_data();
    spec::check_response(
        spec,
        "POST",
        &format!("/v1/conversations/{c}"),
        false,
        &body,
    );
}
