//! `mistral_tower::testing`: the fake Mistral API as a user's tests meet it.

use std::time::Duration;

use futures_util::StreamExt;
use mistral_tower::Client;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::embeddings::EmbeddingRequest;
use mistral_tower::testing::{FakeMistral, FakeResponse, fixtures};
use tower::{Service, ServiceExt};

fn req(text: &str) -> ChatCompletionRequest {
    ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user(text)])
}

fn client_over_socket(fake: &FakeMistral) -> Client {
    Client::builder()
        .api_key("test-key")
        .base_url(fake.url())
        .no_retry()
        .build()
        .unwrap()
}

#[tokio::test]
async fn scripted_answers_come_first_then_the_canned_ones() {
    let fake = FakeMistral::start().await;
    let c = client_over_socket(&fake);
    fake.push(FakeResponse::chat("scripted"));
    assert_eq!(fake.pending_scripted(), 1);
    assert_eq!(c.chat().create(req("a")).await.unwrap().text(), "scripted");
    assert_eq!(fake.pending_scripted(), 0);
    let canned = c.chat().create(req("b")).await.unwrap();
    assert!(canned.text().contains("100 °C (212 °F)"));
    let sent: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| r.json()["messages"][0]["content"].clone())
        .collect();
    assert_eq!(sent, ["a", "b"]);
}

#[tokio::test]
async fn push_for_answers_only_its_path() {
    let fake = FakeMistral::start().await;
    let c = client_over_socket(&fake);
    fake.push_for("/v1/embeddings", FakeResponse::status(400));
    // The chat call does not consume the embeddings script.
    c.chat().create(req("a")).await.unwrap();
    assert_eq!(fake.pending_scripted(), 1);
    let err = c
        .embeddings()
        .create(EmbeddingRequest::new("mistral-embed", ["x"]))
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);
    assert_eq!(err.api_error().unwrap().code.as_deref(), Some("400"));
}

#[tokio::test]
async fn the_in_process_service_shares_the_script_and_the_record() {
    let fake = FakeMistral::new();
    let c = Client::builder()
        .api_key("svc-key")
        .service(fake.service())
        .build()
        .unwrap();
    fake.push(
        FakeResponse::status(429)
            .retry_after(0)
            .header("x-test", "1"),
    );
    fake.push(FakeResponse::json(fixtures::CHAT_RESPONSE).header("x-test", "2"));
    // The client's default retry takes the 429, then gets the scripted answer.
    let res = c.chat().create(req("hi")).await.unwrap();
    assert_eq!(res.headers()["x-test"], "2");
    assert_eq!(res.correlation_id(), Some("fake-2"));
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
    assert_eq!(
        fake.last_headers().unwrap()["authorization"],
        "Bearer svc-key"
    );
}

#[tokio::test]
async fn the_service_answers_plain_http_requests() {
    let fake = FakeMistral::new();
    let mut svc = fake.service();
    type Req = http::Request<http_body_util::Empty<bytes::Bytes>>;
    let ready = ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    let res = ready
        .call(
            http::Request::get("/v1/models")
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "list");
}

#[tokio::test]
async fn a_scripted_stream_delivers_its_deltas() {
    let fake = FakeMistral::start().await;
    let c = client_over_socket(&fake);
    fake.push(FakeResponse::chat_stream(["Hel", "lo", "!"]).event_gap(Duration::from_millis(1)));
    let mut stream = c.chat().create_stream(req("hi")).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk.unwrap().text());
    }
    assert_eq!(text, "Hello!");
    assert_eq!(fake.streams_completed(), 1);
}

#[tokio::test]
async fn a_cut_stream_is_an_error_after_its_first_events() {
    let fake = FakeMistral::start().await;
    let c = client_over_socket(&fake);
    fake.push(FakeResponse::chat_stream(["a", "b", "c"]).cut_after(2));
    let mut stream = c.chat().create_stream(req("hi")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().text(), "a");
    assert_eq!(stream.next().await.unwrap().unwrap().text(), "b");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_stream(), "{err:?}");
}

#[tokio::test]
async fn a_stream_without_done_is_reported_truncated() {
    let fake = FakeMistral::start().await;
    let c = client_over_socket(&fake);
    fake.push(FakeResponse::chat_stream(["a"]).without_done());
    let mut stream = c.chat().create_stream(req("hi")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().text(), "a");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_stream(), "{err:?}");
}

#[tokio::test]
async fn a_delayed_answer_trips_the_client_timeout() {
    let fake = FakeMistral::start().await;
    let c = Client::builder()
        .api_key("k")
        .base_url(fake.url())
        .no_retry()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    fake.push(FakeResponse::chat("late").delay(Duration::from_secs(5)));
    let err = c.chat().create(req("hi")).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
#[should_panic(expected = "use FakeMistral::start()")]
async fn a_fake_without_a_server_has_no_url() {
    let _ = FakeMistral::new().url();
}
