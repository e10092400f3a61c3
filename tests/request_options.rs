//! Per-call `RequestOptions` through typed handles and raw sends, and the cache
//! status of typed answers, against the fake server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use mistral_tower::agents::AgentsCompletionRequest;
use mistral_tower::cache::{CacheLayer, CacheStatus, MemoryEngine};
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::embeddings::EmbeddingRequest;
use mistral_tower::layers::RetryConfig;
use mistral_tower::testing::{FakeMistral, FakeResponse};
use mistral_tower::{ApiResponse, Body, Client, RequestOptions};

fn req(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest::new(model, vec![ChatMessage::user("How far is the Moon?")])
}

fn fast_retries() -> RetryConfig {
    RetryConfig::default().base_delay(Duration::from_millis(1))
}

/// A client with a memory cache on a clock the test moves.
fn cached(fake: &FakeMistral) -> (Client, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(1_800_000_000_000));
    let n = now.clone();
    let layer = CacheLayer::new(MemoryEngine::new(16 << 20)).clock(move || n.load(SeqCst));
    let client = Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .retry(fast_retries())
        .cache_layer(layer)
        .build()
        .unwrap();
    (client, now)
}

fn plain(fake: &FakeMistral) -> Client {
    Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .retry(fast_retries().max_retries(3))
        .build()
        .unwrap()
}

#[tokio::test]
async fn headers_and_query_parameters_reach_the_api() {
    let fake = FakeMistral::start().await;
    let c = plain(&fake);
    let opts = RequestOptions::new()
        .query("provider", "mistral")
        .query("model", "a b")
        .header("x-request-tag", "nightly");
    c.models().with_options(opts).list().await.unwrap();
    let r = fake.last_request().unwrap();
    assert_eq!(r.path, "/v1/models");
    assert_eq!(r.query.as_deref(), Some("provider=mistral&model=a%20b"));
    assert_eq!(r.headers["x-request-tag"], "nightly");

    // Every handle takes them; a chat call too.
    let opts = RequestOptions::new().header("x-request-tag", "chat");
    c.chat().with_options(opts).create(req("m")).await.unwrap();
    assert_eq!(fake.last_headers().unwrap()["x-request-tag"], "chat");

    // An invalid header is a request error, nothing is sent.
    let calls = fake.total_calls();
    let err = c
        .embeddings()
        .with_options(RequestOptions::new().header("bad name", "x"))
        .create(EmbeddingRequest::new("mistral-embed", ["a"]))
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err}");
    assert_eq!(fake.total_calls(), calls);
}

#[tokio::test]
async fn only_if_cached_miss_is_a_504_error_without_an_upstream_call() {
    let fake = FakeMistral::start().await;
    let (c, _) = cached(&fake);
    let only = || RequestOptions::new().only_if_cached();
    let err = c
        .chat()
        .with_options(only())
        .create(req("m"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert_eq!(fake.total_calls(), 0);

    c.chat().create(req("m")).await.unwrap();
    let res = c
        .chat()
        .with_options(only())
        .create(req("m"))
        .await
        .unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Hit));
    assert_eq!(fake.total_calls(), 1);

    // A management call cannot be answered from the cache: 504 too, never executed.
    let err = c
        .models()
        .with_options(only())
        .get("mistral-small-latest")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert_eq!(fake.total_calls(), 1);
}

#[tokio::test]
async fn no_cache_no_store_namespace_and_the_cache_status() {
    let fake = FakeMistral::start().await;
    let (c, now) = cached(&fake);
    let first = c.chat().create(req("m")).await.unwrap();
    assert_eq!(first.cache_status(), Some(CacheStatus::Miss));
    assert_eq!(first.age(), None);
    now.fetch_add(42_000, SeqCst);
    let hit = c.chat().create(req("m")).await.unwrap();
    assert_eq!(hit.cache_status(), Some(CacheStatus::Hit));
    assert_eq!(hit.age(), Some(Duration::from_secs(42)));

    let fresh = c
        .chat()
        .with_options(RequestOptions::new().no_cache())
        .create(req("m"))
        .await
        .unwrap();
    assert_eq!(fresh.cache_status(), Some(CacheStatus::Refresh));
    let bypass = c
        .chat()
        .with_options(RequestOptions::new().no_store())
        .create(req("m"))
        .await
        .unwrap();
    assert_eq!(bypass.cache_status(), Some(CacheStatus::Bypass));
    assert_eq!(fake.calls("/v1/chat/completions"), 3);

    let ns = || RequestOptions::new().namespace("évals");
    for expected in [CacheStatus::Miss, CacheStatus::Hit] {
        let res = c.chat().with_options(ns()).create(req("m")).await.unwrap();
        assert_eq!(res.cache_status(), Some(expected));
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 4);
    // The directives were consumed by the client's cache.
    assert!(
        fake.last_headers()
            .unwrap()
            .get("x-cache-namespace")
            .is_none()
    );
}

#[tokio::test]
async fn max_age_and_ttl_per_call() {
    let fake = FakeMistral::start().await;
    let (c, now) = cached(&fake);
    let e = || EmbeddingRequest::new("mistral-embed", ["a"]);
    let ttl = RequestOptions::new().ttl(Duration::from_secs(60));
    c.embeddings().with_options(ttl).create(e()).await.unwrap();
    now.fetch_add(30_000, SeqCst);
    let young = RequestOptions::new().max_age(Duration::from_secs(10));
    let res = c
        .embeddings()
        .with_options(young)
        .create(e())
        .await
        .unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Miss), "too old");
    // Stored again at 30 s, with no TTL: still there much later.
    now.fetch_add(3_600_000, SeqCst);
    let res = c.embeddings().create(e()).await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Hit));
    assert_eq!(fake.calls("/v1/embeddings"), 2);

    // The first entry expired after its own 60 s TTL: a new key shows it.
    let f = || EmbeddingRequest::new("mistral-embed", ["b"]);
    let ttl = || RequestOptions::new().ttl(Duration::from_secs(60));
    c.embeddings()
        .with_options(ttl())
        .create(f())
        .await
        .unwrap();
    now.fetch_add(61_000, SeqCst);
    let res = c.embeddings().create(f()).await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Miss));
}

#[tokio::test]
async fn the_model_listing_is_cached_only_with_a_ttl() {
    let fake = FakeMistral::start().await;
    let (c, now) = cached(&fake);
    for _ in 0..2 {
        let res = c.models().list().await.unwrap();
        assert_eq!(res.cache_status(), Some(CacheStatus::Bypass));
    }
    let ttl = || RequestOptions::new().ttl(Duration::from_secs(300));
    for expected in [CacheStatus::Miss, CacheStatus::Hit] {
        let res = c.models().with_options(ttl()).list().await.unwrap();
        assert_eq!(res.cache_status(), Some(expected));
    }
    assert_eq!(fake.calls("/v1/models"), 3);
    now.fetch_add(301_000, SeqCst);
    let res = c.models().with_options(ttl()).list().await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Miss), "expired");
}

#[tokio::test]
async fn agents_completions_are_kept_ten_minutes_at_most() {
    let fake = FakeMistral::start().await;
    let (c, now) = cached(&fake);
    let a =
        || AgentsCompletionRequest::new("ag-1", vec![ChatMessage::user("How far is the Moon?")]);
    c.agents().create(a()).await.unwrap();
    now.fetch_add(9 * 60_000, SeqCst);
    let res = c.agents().create(a()).await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Hit));
    now.fetch_add(2 * 60_000, SeqCst);
    let res = c.agents().create(a()).await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Miss));
    // Even when the call asks for longer.
    let long = RequestOptions::new().ttl(Duration::from_secs(86_400));
    let b = || AgentsCompletionRequest::new("ag-2", vec![ChatMessage::user("Hi")]);
    c.agents().with_options(long).create(b()).await.unwrap();
    now.fetch_add(11 * 60_000, SeqCst);
    let res = c.agents().create(b()).await.unwrap();
    assert_eq!(res.cache_status(), Some(CacheStatus::Miss));
    assert_eq!(fake.calls("/v1/agents/completions"), 4);
}

#[tokio::test]
async fn streams_say_where_they_came_from() {
    let fake = FakeMistral::start().await;
    let (c, now) = cached(&fake);
    let s = c.chat().create_stream(req("m")).await.unwrap();
    assert_eq!(s.cache_status(), Some(CacheStatus::Miss));
    let a: Vec<_> = s.map(Result::unwrap).collect().await;
    now.fetch_add(5_000, SeqCst);
    let s = c.chat().create_stream(req("m")).await.unwrap();
    assert_eq!(s.cache_status(), Some(CacheStatus::Hit));
    assert_eq!(s.age(), Some(Duration::from_secs(5)));
    let b: Vec<_> = s.map(Result::unwrap).collect().await;
    assert_eq!(a, b);
    let s = c
        .chat()
        .with_options(RequestOptions::new().no_store())
        .create_stream(req("m"))
        .await
        .unwrap();
    assert_eq!(s.cache_status(), Some(CacheStatus::Bypass));
    drop(s);

    // Without any cache there is nothing to say.
    let res = plain(&fake).chat().create(req("m")).await.unwrap();
    assert_eq!(res.cache_status(), None);
    assert_eq!(res.age(), None);
}

#[tokio::test]
async fn per_call_retries_reach_the_retry_layer() {
    let fake = FakeMistral::start().await;
    let c = plain(&fake); // 3 retries
    for _ in 0..4 {
        fake.push(FakeResponse::status(503));
    }
    let err = c
        .chat()
        .with_options(RequestOptions::new().max_retries(0))
        .create(req("m"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(fake.total_calls(), 1);
    let err = c
        .chat()
        .with_options(RequestOptions::new().max_retries(1))
        .create(req("m"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(fake.total_calls(), 3);
    // The client's own count applies otherwise (one 503 left, then success).
    c.chat().create(req("m")).await.unwrap();
    assert_eq!(fake.total_calls(), 5);
}

#[tokio::test]
async fn a_per_call_timeout_reaches_the_timeout_layer() {
    let fake = FakeMistral::start().await;
    let c = plain(&fake); // 300 s total timeout
    fake.push(FakeResponse::chat("late").delay(Duration::from_secs(600)));
    let err = c
        .chat()
        .with_options(
            RequestOptions::new()
                .timeout(Duration::from_millis(50))
                .max_retries(0),
        )
        .create(req("m"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn raw_sends_take_options_too() {
    let fake = FakeMistral::start().await;
    let (c, _) = cached(&fake);
    let opts = RequestOptions::new()
        .query("provider", "mistral")
        .ttl(Duration::from_secs(60));
    for expected in [CacheStatus::Miss, CacheStatus::Hit] {
        let res: ApiResponse<serde_json::Value> = c
            .send_json_with_options::<(), _>(Method::GET, "/v1/models", None, &opts)
            .await
            .unwrap();
        assert_eq!(res.cache_status(), Some(expected));
    }
    assert_eq!(
        fake.last_request().unwrap().query.as_deref(),
        Some("provider=mistral")
    );

    let raw = Request::get("/v1/models").body(Body::empty()).unwrap();
    let res = c
        .send_with_options(raw, &RequestOptions::new().only_if_cached())
        .await
        .unwrap();
    // Without a TTL the listing cannot use the cache: 504, and `send` does not check it.
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(fake.calls("/v1/models"), 1);
}

#[tokio::test]
async fn the_beta_handles_take_request_options() {
    use mistral_tower::agents_api::AgentListQuery;
    use mistral_tower::conversations::ConversationListQuery;
    use mistral_tower::libraries::LibraryListQuery;
    use mistral_tower::prompts::PromptListQuery;

    let fake = mistral_tower::testing::FakeMistral::new();
    let client = mistral_tower::Client::builder()
        .api_key("k")
        .service(fake.service())
        .build()
        .unwrap();
    let opts = || {
        RequestOptions::new()
            .header("x-request-tag", "beta")
            .query("trace", 1)
    };
    client
        .conversations()
        .with_options(opts())
        .list(ConversationListQuery::new())
        .await
        .unwrap();
    client
        .agents_api()
        .with_options(opts())
        .list(AgentListQuery::new())
        .await
        .unwrap();
    client
        .libraries()
        .with_options(opts())
        .list(LibraryListQuery::new())
        .await
        .unwrap();
    client
        .prompts()
        .with_options(opts())
        .list(PromptListQuery::new())
        .await
        .unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    for r in requests {
        assert_eq!(r.headers["x-request-tag"], "beta", "{}", r.path);
        assert!(
            r.query.as_deref().unwrap_or("").contains("trace=1"),
            "{} {:?}",
            r.path,
            r.query
        );
    }
}
