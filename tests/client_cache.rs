//! The client with a response cache in its cache slot, against the fake server.

mod support;

use std::sync::Arc;

use futures_util::StreamExt;
use mistral_tower::Client;
use mistral_tower::cache::{CacheLayer, MemoryEngine};
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::embeddings::EmbeddingRequest;
use mistral_tower::layers::RetryConfig;
use mistral_tower::testing::FakeMistral;

fn req(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest::new(model, vec![ChatMessage::user("How far is the Moon?")])
}

fn cached(fake: &FakeMistral, key: &str, engine: Arc<MemoryEngine>) -> Client {
    Client::builder()
        .api_key(key)
        .base_url(fake.base_url())
        .retry(RetryConfig::default().base_delay(std::time::Duration::from_millis(1)))
        .cache(engine)
        .build()
        .unwrap()
}

#[tokio::test]
async fn chat_stream_and_embeddings_served_from_cache() {
    let fake = FakeMistral::start().await;
    let c = cached(&fake, "k1", Arc::new(MemoryEngine::new(16 << 20)));

    let first = c.chat().create(req("mistral-large-latest")).await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    let second = c.chat().create(req("mistral-large-latest")).await.unwrap();
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert_eq!(*first, *second);
    assert_eq!(fake.calls("/v1/chat/completions"), 1);

    let collect = |c: Client| async move {
        let s = c
            .chat()
            .create_stream(req("mistral-small-latest"))
            .await
            .unwrap();
        let cache = s.headers()["x-cache"].to_str().unwrap().to_owned();
        let chunks: Vec<_> = s.map(Result::unwrap).collect().await;
        (cache, chunks)
    };
    let (miss, a) = collect(c.clone()).await;
    let (hit, b) = collect(c.clone()).await;
    assert_eq!((miss.as_str(), hit.as_str()), ("MISS", "HIT"));
    assert_eq!(a.len(), 5);
    assert_eq!(a, b);
    assert_eq!(
        fake.calls("/v1/chat/completions"),
        2,
        "one upstream call per request shape"
    );

    for expected in ["MISS", "HIT"] {
        let res = c
            .embeddings()
            .create(EmbeddingRequest::new("mistral-embed", ["a", "b"]))
            .await
            .unwrap();
        assert_eq!(res.headers()["x-cache"], expected);
        assert_eq!(res.data.len(), 2);
    }
    assert_eq!(fake.calls("/v1/embeddings"), 1);
}

#[tokio::test]
async fn two_api_keys_do_not_share_entries() {
    let fake = FakeMistral::start().await;
    let engine = Arc::new(MemoryEngine::new(16 << 20));
    let a = cached(&fake, "key-a", engine.clone());
    let b = cached(&fake, "key-b", engine.clone());
    a.chat().create(req("m")).await.unwrap();
    let res = b.chat().create(req("m")).await.unwrap();
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
    // the same key in another client shares them
    let a2 = cached(&fake, "key-a", engine);
    assert_eq!(
        a2.chat().create(req("m")).await.unwrap().headers()["x-cache"],
        "HIT"
    );
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn retries_run_inside_the_cache_and_errors_are_not_stored() {
    let fake = FakeMistral::start().await;
    let c = cached(&fake, "k", Arc::new(MemoryEngine::new(16 << 20)));
    // 503 once, retried with the buffered body, then stored
    let res = c.chat().create(req("fail-503-1")).await.unwrap();
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
    assert_eq!(
        fake.requests()[0].body,
        fake.requests()[1].body,
        "the retry replays the same body"
    );
    let res = c.chat().create(req("fail-503-1")).await.unwrap();
    assert_eq!(res.headers()["x-cache"], "HIT");
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
    // an error is never stored
    let c = Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .no_retry()
        .cache(MemoryEngine::new(16 << 20))
        .build()
        .unwrap();
    assert!(c.chat().create(req("error-invalid-request")).await.is_err());
    assert!(c.chat().create(req("error-invalid-request")).await.is_err());
    assert_eq!(fake.calls("/v1/chat/completions"), 4);
}

#[tokio::test]
async fn a_truncated_stream_is_not_stored() {
    let fake = FakeMistral::start().await;
    let c = cached(&fake, "k", Arc::new(MemoryEngine::new(16 << 20)));
    for _ in 0..2 {
        let items: Vec<_> = c
            .chat()
            .create_stream(req("stream-truncated"))
            .await
            .unwrap()
            .collect()
            .await;
        assert!(items.last().unwrap().as_ref().unwrap_err().is_stream());
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn cache_layer_with_settings() {
    let fake = FakeMistral::start().await;
    let layer = CacheLayer::new(MemoryEngine::new(16 << 20)).namespace("tests");
    let c = Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .cache_layer(layer.clone())
        .build()
        .unwrap();
    c.chat().create(req("m")).await.unwrap();
    c.chat().create(req("m")).await.unwrap();
    assert_eq!(fake.calls("/v1/chat/completions"), 1);
    let m = layer.metrics();
    assert_eq!((m.hits, m.misses), (1, 1));
}

#[tokio::test]
async fn proxy_style_cache_scopes_by_the_callers_authorization() {
    use http::Request;
    use mistral_tower::Body;
    use tower::ServiceExt;
    let fake = FakeMistral::start().await;
    // `.cache` before `.keep_request_authorization`: the order does not matter
    let svc = Client::builder()
        .api_key("proxy-key")
        .base_url(fake.base_url())
        .cache(MemoryEngine::new(16 << 20))
        .keep_request_authorization(true)
        .build_service()
        .unwrap();
    let send = |auth: &'static str| {
        let svc = svc.clone();
        async move {
            // The model listing is cached on the request's own opt-in (a TTL).
            let req = Request::get("/v1/models")
                .header("authorization", auth)
                .header("x-cache-ttl", "60")
                .body(Body::empty())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            let x_cache = res.headers()["x-cache"].to_str().unwrap().to_owned();
            // the cache stores an answer once its body was read to the end
            res.into_body().collect_bytes().await.unwrap();
            x_cache
        }
    };
    assert_eq!(send("Bearer caller-a").await, "MISS");
    assert_eq!(send("Bearer caller-b").await, "MISS");
    assert_eq!(send("Bearer caller-a").await, "HIT");
    assert_eq!(fake.calls("/v1/models"), 2);
    assert_eq!(
        fake.last_headers().unwrap()["authorization"],
        "Bearer caller-b"
    );
}

#[tokio::test]
async fn management_calls_are_executed_not_replayed() {
    use http::Method;
    use mistral_tower::testing::FakeResponse;
    let fake = FakeMistral::start().await;
    let c = cached(&fake, "k1", Arc::new(MemoryEngine::new(16 << 20)));

    // A model by id is read again after a delete.
    for _ in 0..2 {
        let m = c.models().get("mistral-small-latest").await.unwrap();
        assert_eq!(m.headers()["x-cache"], "BYPASS");
    }
    c.models().delete("mistral-small-latest").await.unwrap();
    c.models().get("mistral-small-latest").await.unwrap();
    assert_eq!(fake.calls("/v1/models/mistral-small-latest"), 4);

    // The listing is not frozen.
    c.models().list().await.unwrap();
    c.models().list().await.unwrap();
    assert_eq!(fake.calls("/v1/models"), 2);

    // A POST to a management endpoint is executed every time.
    let job = serde_json::json!({"input_files": ["f-1"], "endpoint": "/v1/chat/completions"});
    for n in 1..=2 {
        fake.push_for(
            "/v1/batch/jobs",
            FakeResponse::json(format!(r#"{{"id":"job-{n}"}}"#)),
        );
        let res: mistral_tower::ApiResponse<serde_json::Value> = c
            .send_json(Method::POST, "/v1/batch/jobs", Some(&job))
            .await
            .unwrap();
        assert_eq!(res["id"], format!("job-{n}"));
        assert_eq!(res.headers()["x-cache"], "BYPASS");
    }
    assert_eq!(fake.calls("/v1/batch/jobs"), 2);

    // Generation is still cached.
    c.chat().create(req("m")).await.unwrap();
    let res = c.chat().create(req("m")).await.unwrap();
    assert_eq!(res.headers()["x-cache"], "HIT");
}

#[tokio::test]
async fn a_layer_with_its_own_predicate_keeps_it() {
    let fake = FakeMistral::start().await;
    let c = Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .cache_layer(
            CacheLayer::new(MemoryEngine::new(1 << 20))
                .cacheable(|p: &http::request::Parts| p.method == http::Method::GET),
        )
        .build()
        .unwrap();
    c.models().list().await.unwrap();
    let res = c.models().list().await.unwrap();
    assert_eq!(res.headers()["x-cache"], "HIT");
    let res = c.chat().create(req("m")).await.unwrap();
    assert_eq!(res.headers()["x-cache"], "BYPASS");
}

#[tokio::test]
async fn beta_management_and_conversations_are_never_replayed() {
    use mistral_tower::agents_api::AgentListQuery;
    use mistral_tower::conversations::ConversationRequest;
    use mistral_tower::prompts::PromptListQuery;

    let fake = FakeMistral::start().await;
    let c = cached(&fake, "k1", Arc::new(MemoryEngine::new(16 << 20)));
    for _ in 0..2 {
        let res = c.agents_api().list(AgentListQuery::new()).await.unwrap();
        assert_eq!(res.headers()["x-cache"], "BYPASS");
        let res = c.prompts().list(PromptListQuery::new()).await.unwrap();
        assert_eq!(res.headers()["x-cache"], "BYPASS");
        // A conversation turn is executed each time, not answered from the cache.
        let res = c
            .conversations()
            .start(ConversationRequest::model("mistral-small-latest", "hello"))
            .await
            .unwrap();
        assert_eq!(res.headers()["x-cache"], "BYPASS");
    }
    assert_eq!(fake.calls("/v1/agents"), 2);
    assert_eq!(fake.calls("/v2/prompts"), 2);
    assert_eq!(fake.calls("/v1/conversations"), 2);
}
