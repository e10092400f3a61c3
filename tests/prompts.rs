//! Prompts against the fake: all nine operations and rendering with variables, each
//! request checked against the OpenAPI spec when it is present.

mod support;

use support::client;
use support::spec::validate_all;

use mistral_tower::chat::ChatMessage;
use mistral_tower::prompts::{
    CreatePromptRequest, CreatePromptVersionRequest, MissingVariables, PromptDefinition,
    PromptListQuery, PromptVersionRef, SharingScope, UpdatePromptRequest,
    UpdatePromptVersionRequest,
};
use mistral_tower::testing::FakeMistral;

#[tokio::test]
async fn prompts_create_list_get_update_versions_render_delete() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let prompts = client.prompts();

    let p = prompts
        .create(
            CreatePromptRequest::new(
                "greeting",
                PromptDefinition::new("Say hello to {{name}} in {{ language }}.")
                    .variables(["name", "language"]),
            )
            .title("Greeting")
            .sharing_scope(SharingScope::Workspace)
            .aliases(vec!["stable".into()]),
        )
        .await
        .unwrap();
    assert_eq!(p.version, Some(1));
    assert_eq!(p.sharing_scope, Some(SharingScope::Workspace));
    prompts
        .create(CreatePromptRequest::new(
            "other",
            PromptDefinition::new("x"),
        ))
        .await
        .unwrap();

    let page = prompts
        .list(PromptListQuery::new().page_size(1))
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    let token = page.next_page_token.clone().unwrap();
    let page = prompts
        .list(PromptListQuery::new().page_size(1).page_token(token))
        .await
        .unwrap();
    assert_eq!(page.data[0].name, "other");

    let updated = prompts
        .update(&p.id, UpdatePromptRequest::new().description("Greets."))
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("Greets."));

    let v2 = prompts
        .create_version(
            &p.id,
            CreatePromptVersionRequest::new(PromptDefinition::new(
                r#"[{"role":"system","content":"You are {{persona}}."},{"role":"user","content":"Hello {{name}}"}]"#,
            ))
            .notes("as messages"),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, Some(2));
    assert_eq!(v2.deduplicated, Some(false));
    assert_eq!(prompts.versions(&p.id).await.unwrap().data.len(), 2);
    let one = prompts.get_version(&p.id, 1).await.unwrap();
    assert!(one.definition.content.starts_with("Say hello"));
    let one = prompts
        .update_version(
            &p.id,
            1,
            UpdatePromptVersionRequest::new()
                .notes("the first")
                .aliases(["stable", "v1"]),
        )
        .await
        .unwrap();
    assert_eq!(one.notes.as_deref(), Some("the first"));
    let latest = prompts.get(&p.id, None).await.unwrap();
    assert_eq!(latest.version, Some(2));
    assert_eq!(latest.latest_version, Some(2));
    let stable = prompts
        .get(&p.id, Some(PromptVersionRef::from("stable")))
        .await
        .unwrap();
    assert_eq!(stable.version, Some(1));

    // render: the stable version, then the latest (messages)
    let messages = prompts
        .render(
            &p.id,
            Some("stable".into()),
            [("name", "Ada"), ("language", "French")],
        )
        .await
        .unwrap();
    assert_eq!(messages, [ChatMessage::user("Say hello to Ada in French.")]);
    let messages = prompts
        .render(&p.id, None, [("persona", "a pirate"), ("name", "Ada")])
        .await
        .unwrap();
    assert_eq!(
        messages,
        [
            ChatMessage::system("You are a pirate."),
            ChatMessage::user("Hello Ada")
        ]
    );
    let err = prompts
        .render(&p.id, Some(1.into()), [("language", "French")])
        .await
        .unwrap_err();
    let missing = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<MissingVariables>())
        .expect("a MissingVariables source");
    assert_eq!(missing.names, ["name"]);
    assert!(
        err.to_string().ends_with("missing prompt variable: `name`"),
        "{err}"
    );

    prompts.delete(&p.id).await.unwrap();
    let err = prompts.get(&p.id, None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let ops = validate_all(&fake);
    if !ops.is_empty() {
        for op in [
            "POST /v2/prompts",
            "GET /v2/prompts",
            "GET /v2/prompts/{prompt_id}",
            "PATCH /v2/prompts/{prompt_id}",
            "DELETE /v2/prompts/{prompt_id}",
            "GET /v2/prompts/{prompt_id}/versions",
            "POST /v2/prompts/{prompt_id}/versions",
            "GET /v2/prompts/{prompt_id}/versions/{version}",
            "PATCH /v2/prompts/{prompt_id}/versions/{version}",
        ] {
            assert!(ops.iter().any(|o| o == op), "{op} not exercised: {ops:?}");
        }
    }
}
