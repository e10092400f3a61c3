//! Conversations against the fake: every operation, the typed event streams that end
//! without `[DONE]`, and the function-tools run helper; every request is checked
//! against the OpenAPI spec when it is present.

mod support;

use support::client;
use support::spec;
use support::spec::validate_all;

use futures_util::{StreamExt, TryStreamExt};
use mistral_tower::Client;
use mistral_tower::conversations::{
    AppendConversationRequest, CompletionArgs, ConversationEntry, ConversationEvent,
    ConversationListQuery, ConversationRequest, FunctionTools, HandoffExecution,
    RestartConversationRequest,
};
use mistral_tower::testing::FakeMistral;
use serde::Deserialize;
use serde_json::json;

fn scenario_client(fake: &FakeMistral, scenario: &'static str) -> Client {
    Client::builder()
        .api_key("test-key")
        .service(fake.service())
        .layer(tower::util::MapRequestLayer::new(
            move |mut req: http::Request<mistral_tower::Body>| {
                req.headers_mut()
                    .insert("x-fake-scenario", http::HeaderValue::from_static(scenario));
                req
            },
        ))
        .build()
        .unwrap()
}

/// Every recorded request validates against the spec; returns the operations seen.
#[tokio::test]
async fn conversations_start_append_restart_list_get_history_messages_delete() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let conv = client.conversations();

    let req = ConversationRequest::model("mistral-medium-latest", "Hello")
        .instructions("Be brief.")
        .name("greeting")
        .store(true)
        .handoff_execution(HandoffExecution::Server)
        .completion_args(CompletionArgs::new().temperature(0.2).max_tokens(50));
    let res = conv.start(req).await.unwrap();
    assert_eq!(res.text(), "echo: Hello");
    assert_eq!(res.usage.total_tokens, 14);
    let id = res.conversation_id.clone();
    let body = fake.last_body_json().unwrap();
    assert_eq!(body["inputs"], "Hello");
    assert_eq!(
        body["completion_args"],
        json!({"temperature": 0.2, "max_tokens": 50})
    );
    assert!(body.get("stream").is_none());

    let res = conv
        .append(
            &id,
            AppendConversationRequest::new(vec![ConversationEntry::user("Again")]),
        )
        .await
        .unwrap();
    assert_eq!(res.text(), "echo: Again");

    let history = conv.history(&id).await.unwrap();
    assert_eq!(history.entries.len(), 4);
    assert!(matches!(
        history.entries[0],
        ConversationEntry::MessageInput(_)
    ));
    assert!(matches!(
        history.entries[1],
        ConversationEntry::MessageOutput(_)
    ));
    let messages = conv.messages(&id).await.unwrap();
    assert_eq!(messages.messages.len(), 4);

    let got = conv.get(&id).await.unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.model.as_deref(), Some("mistral-medium-latest"));
    assert_eq!(got.name.as_deref(), Some("greeting"));

    // restart from the second user message: a new conversation
    let ConversationEntry::MessageInput(second) = &history.entries[2] else {
        panic!("an input entry");
    };
    let from = second.id.clone().unwrap();
    let restarted = conv
        .restart(&id, RestartConversationRequest::new(from, "Instead"))
        .await
        .unwrap();
    assert_ne!(restarted.conversation_id, id);
    assert_eq!(restarted.text(), "echo: Instead");
    assert_eq!(
        conv.history(&restarted.conversation_id)
            .await
            .unwrap()
            .entries
            .len(),
        4
    );

    // list: pages of one, walked to the end
    let first = conv
        .list(ConversationListQuery::new().page_size(1))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let all: Vec<_> = first.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);

    conv.delete(&id).await.unwrap();
    let err = conv.get(&id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let ops = validate_all(&fake);
    if !ops.is_empty() {
        for op in [
            "POST /v1/conversations",
            "POST /v1/conversations/{conversation_id}",
            "POST /v1/conversations/{conversation_id}/restart",
            "GET /v1/conversations",
            "GET /v1/conversations/{conversation_id}",
            "GET /v1/conversations/{conversation_id}/history",
            "GET /v1/conversations/{conversation_id}/messages",
            "DELETE /v1/conversations/{conversation_id}",
        ] {
            assert!(ops.iter().any(|o| o == op), "{op} not exercised: {ops:?}");
        }
    }
}

#[tokio::test]
async fn conversation_streams_are_typed_and_end_cleanly_without_done() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let conv = client.conversations();

    let events: Vec<ConversationEvent> = conv
        .start_stream(ConversationRequest::agent("ag_1", "Stream me"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ConversationEvent::ResponseStarted(started) = &events[0] else {
        panic!("{events:?}")
    };
    let id = started.conversation_id.clone();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ConversationEvent::MessageOutputDelta(d) => Some(d.content.text().into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "echo: Stream me");
    let ConversationEvent::ResponseDone(done) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(done.usage.total_tokens, 14);
    assert_eq!(fake.last_body_json().unwrap()["stream"], true);

    let events: Vec<ConversationEvent> = conv
        .append_stream(&id, "More".into())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(matches!(
        events.last(),
        Some(ConversationEvent::ResponseDone(_))
    ));

    let history = conv.history(&id).await.unwrap();
    let from = match &history.entries[0] {
        ConversationEntry::MessageInput(m) => m.id.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    let events: Vec<ConversationEvent> = conv
        .restart_stream(&id, RestartConversationRequest::new(from, "Redo"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(matches!(
        events.last(),
        Some(ConversationEvent::ResponseDone(_))
    ));

    // a function call arrives as function.call.delta
    let events: Vec<ConversationEvent> = conv
        .append_stream(&id, r#"call:lookup:{"q":"x"}"#.into())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        ConversationEvent::FunctionCallDelta(f) if f.name == "lookup" && f.arguments == r#"{"q":"x"}"#
    )));

    let ops = validate_all(&fake);
    if !ops.is_empty() {
        for op in [
            "POST /v1/conversations#stream",
            "POST /v1/conversations/{conversation_id}#stream",
            "POST /v1/conversations/{conversation_id}/restart#stream",
        ] {
            assert!(ops.iter().any(|o| o == op), "{op} not exercised: {ops:?}");
        }
    }
}

#[tokio::test]
async fn conversation_stream_error_event_and_truncation() {
    let fake = FakeMistral::new();
    let events: Vec<ConversationEvent> = scenario_client(&fake, "conversation-error")
        .conversations()
        .start_stream(ConversationRequest::model("m", "x"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ConversationEvent::ResponseError(e) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(e.code, 3000);

    let got: Vec<_> = scenario_client(&fake, "stream-truncated")
        .conversations()
        .start_stream(ConversationRequest::model("m", "x"))
        .await
        .unwrap()
        .collect()
        .await;
    let err = got.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_stream(), "{err:?}");
}

#[derive(Debug, Deserialize)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[tokio::test]
async fn run_executes_local_functions_to_completion() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let tools = FunctionTools::new().function(
        "add",
        "Adds two numbers.",
        json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
               "required": ["a", "b"]}),
        |args: AddArgs| async move { Ok::<_, std::convert::Infallible>((args.a + args.b).to_string()) },
    );
    let run = client
        .conversations()
        .run(
            ConversationRequest::model("mistral-medium-latest", r#"call:add:{"a":2,"b":3}"#),
            &tools,
        )
        .await
        .unwrap();
    assert_eq!(run.rounds, 1);
    assert_eq!(run.text(), "result: 5");
    assert_eq!(run.entries.len(), 3, "{:?}", run.entries);
    assert!(matches!(run.entries[1], ConversationEntry::FunctionResult(ref r) if r.result == "5"));

    let reqs = fake.requests();
    assert_eq!(reqs[0].json()["tools"][0]["function"]["name"], "add");
    assert_eq!(reqs[1].json()["inputs"][0]["type"], "function.result");
    assert_eq!(reqs[1].json()["inputs"][0]["result"], "5");

    // a failing function reports its error to the model
    let tools = FunctionTools::new().function(
        "fail",
        "Fails.",
        json!({"type": "object", "properties": {}}),
        |_: serde_json::Value| async move { Err::<String, _>("boom") },
    );
    let run = client
        .conversations()
        .run(ConversationRequest::model("m", "call:fail:{}"), &tools)
        .await
        .unwrap();
    assert_eq!(run.text(), r#"result: {"error":"boom"}"#);

    // an unregistered function ends the run with the call left to the caller
    let run = client
        .conversations()
        .run(ConversationRequest::model("m", "call:other:{}"), &tools)
        .await
        .unwrap();
    assert_eq!(run.rounds, 0);
    assert_eq!(run.response.function_calls().next().unwrap().name, "other");
    validate_all(&fake);
}

#[tokio::test]
async fn the_fake_stream_events_match_the_spec() {
    let Some(spec) = spec::spec() else {
        return;
    };
    let fake = FakeMistral::new();
    let client = client(&fake);
    for (scenario, input) in [
        ("", "hello there"),
        ("", r#"call:f:{"a":1}"#),
        ("conversation-error", "x"),
    ] {
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/v1/conversations")
            .header("content-type", "application/json")
            .header("accept", "text/event-stream");
        if !scenario.is_empty() {
            req = req.header("x-fake-scenario", scenario);
        }
        let body = json!({"inputs": input, "model": "m", "stream": true}).to_string();
        let res = client
            .send(req.body(mistral_tower::Body::full(body)).unwrap())
            .await
            .unwrap();
        let bytes = res.into_body().collect_bytes().await.unwrap();
        let events = mistral_tower::sse::SseParser::new().feed(&bytes);
        assert!(events.len() >= 3);
        for ev in events {
            let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            assert_eq!(data["type"], ev.event.as_str());
            spec::check(
                spec,
                &json!({"$ref": "#/components/schemas/ConversationEvents"}),
                &json!({"event": ev.event, "data": data}),
                "a conversation event",
            );
        }
    }
}
