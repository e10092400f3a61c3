//! Agents management against the fake: all twelve operations, each request checked
//! against the OpenAPI spec when it is present.

mod support;

use support::client;
use support::spec::validate_all;

use futures_util::TryStreamExt;
use mistral_tower::agents_api::{
    AgentListQuery, AgentSource, AgentVersion, CreateAgentRequest, UpdateAgentRequest,
};
use mistral_tower::common::Tool;
use mistral_tower::conversations::{CompletionArgs, ConversationRequest};
use mistral_tower::testing::FakeMistral;

#[tokio::test]
async fn agents_create_list_get_update_versions_aliases_delete() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let agents = client.agents_api();

    let a = agents
        .create(
            CreateAgentRequest::new("mistral-medium-latest", "librarian")
                .instructions("Find books.")
                .description("A librarian.")
                .tools(vec![Tool::function(
                    "search",
                    "Searches the catalogue.",
                    serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
                )])
                .completion_args(CompletionArgs::new().temperature(0.3))
                .version_message("first"),
        )
        .await
        .unwrap();
    assert_eq!(a.name, "librarian");
    assert_eq!(a.version, 0);
    assert_eq!(a.source, Some(AgentSource::Api));
    let b = agents
        .create(CreateAgentRequest::new("mistral-small-latest", "clerk"))
        .await
        .unwrap();

    // list by page number, walked to the end; by token
    let first = agents
        .list(
            AgentListQuery::new()
                .page_size(1)
                .sources(vec![AgentSource::Api]),
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let all: Vec<_> = first.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let page = agents
        .list_pages(AgentListQuery::new().page_size(1))
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    let token = page.next_page_token.clone().unwrap();
    let page = agents
        .list_pages(AgentListQuery::new().page_size(1).page_token(token))
        .await
        .unwrap();
    assert_eq!(page.data[0].id, b.id);
    assert!(page.next_page_token.is_none());

    // update: a new version
    let updated = agents
        .update(
            &a.id,
            UpdateAgentRequest::new()
                .description("A better librarian.")
                .deployment_chat(false),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 1);
    assert_eq!(updated.versions, [0, 1]);
    assert_eq!(updated.description.as_deref(), Some("A better librarian."));

    let v = agents.versions(&a.id, None, Some(10)).await.unwrap();
    assert_eq!(v.items.len(), 2);
    let v0 = agents.get_version(&a.id, 0).await.unwrap();
    assert_eq!(v0.description.as_deref(), Some("A librarian."));

    // back to version 0, then aliases
    let back = agents.update_version(&a.id, 0).await.unwrap();
    assert_eq!(back.version, 0);
    let alias = agents.set_alias(&a.id, "prod", 1).await.unwrap();
    assert_eq!((alias.alias.as_str(), alias.version), ("prod", 1));
    let by_alias = agents
        .get(&a.id, Some(AgentVersion::from("prod")))
        .await
        .unwrap();
    assert_eq!(by_alias.version, 1);
    let by_alias = agents.get_version(&a.id, "prod").await.unwrap();
    assert_eq!(by_alias.version, 1);
    assert_eq!(agents.aliases(&a.id).await.unwrap().len(), 1);
    agents.delete_alias(&a.id, "prod").await.unwrap();
    assert!(agents.aliases(&a.id).await.unwrap().is_empty());

    // talk to it through a conversation
    let res = client
        .conversations()
        .start(ConversationRequest::agent(&a.id, "Hi").agent_version(0))
        .await
        .unwrap();
    assert_eq!(res.text(), "echo: Hi");

    let got = agents.get(&a.id, None).await.unwrap();
    assert_eq!(got.version, 0);
    agents.delete(&a.id).await.unwrap();
    let err = agents.get(&a.id, None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let ops = validate_all(&fake);
    if !ops.is_empty() {
        for op in [
            "POST /v1/agents",
            "GET /v1/agents",
            "GET /v1/agents/pages",
            "GET /v1/agents/{agent_id}",
            "PATCH /v1/agents/{agent_id}",
            "DELETE /v1/agents/{agent_id}",
            "PATCH /v1/agents/{agent_id}/version",
            "GET /v1/agents/{agent_id}/versions",
            "GET /v1/agents/{agent_id}/versions/{version}",
            "PUT /v1/agents/{agent_id}/aliases",
            "GET /v1/agents/{agent_id}/aliases",
            "DELETE /v1/agents/{agent_id}/aliases",
        ] {
            assert!(ops.iter().any(|o| o == op), "{op} not exercised: {ops:?}");
        }
    }
}
