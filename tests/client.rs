//! The client end to end against the fake Mistral server: every resource, error
//! shapes, tolerant reading, exact writing, secrets, user layers and services.

mod support;

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat_example;
#[allow(dead_code)]
#[path = "../examples/stream.rs"]
mod stream_example;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use mistral_tower::agents::AgentsCompletionRequest;
use mistral_tower::chat::{
    ChatCompletionAccumulator, ChatCompletionRequest, ChatMessage, FinishReason,
};
use mistral_tower::classifiers::{
    ChatClassificationRequest, ChatModerationRequest, ClassificationRequest, ModerationRequest,
};
use mistral_tower::embeddings::{EmbeddingDtype, EmbeddingRequest, EncodingFormat};
use mistral_tower::fim::FimCompletionRequest;
use mistral_tower::models::ModelFilter;
use mistral_tower::ocr::{OcrDocument, OcrRequest};
use mistral_tower::testing::{FakeMistral, fixtures};
use mistral_tower::{Body, BoxError, Client, Error};
use tower::{ServiceExt, service_fn};

const KEY: &str = "test-key-0123456789";

fn client(fake: &FakeMistral) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(fake.base_url())
        .build()
        .unwrap()
}

fn chat_req(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest::new(model, vec![ChatMessage::user("How far is the Moon?")])
}

#[tokio::test]
async fn chat_create_end_to_end() {
    let fake = FakeMistral::start().await;
    let res = client(&fake)
        .chat()
        .create(chat_req("mistral-large-latest"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.id, "cmpl-5e0c7b2a91f84d6c8a3f2e1d0c9b8a77");
    assert!(res.text().contains("100 °C (212 °F)"));
    assert_eq!(res.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(res.correlation_id(), Some("fake-1"));

    let req = fake.last_request().unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(req.headers["content-type"], "application/json");
    assert!(
        req.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("mistral-tower/")
    );
    let body = req.json();
    assert_eq!(body["model"], "mistral-large-latest");
    assert!(
        body.get("stream").is_none(),
        "unset fields are not sent: {body}"
    );
}

#[tokio::test]
async fn chat_tool_call_response() {
    let fake = FakeMistral::start().await;
    let res = client(&fake)
        .chat()
        .create(chat_req("tool-call"))
        .await
        .unwrap();
    assert_eq!(res.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let calls = res.choices[0].message.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function.name, "get_order_status");
}

#[tokio::test]
async fn chat_stream_end_to_end() {
    let fake = FakeMistral::start().await;
    let mut stream = client(&fake)
        .chat()
        .create_stream(chat_req("mistral-large-latest"))
        .await
        .unwrap();
    assert_eq!(stream.correlation_id(), Some("fake-1"));
    let mut acc = ChatCompletionAccumulator::new();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
        n += 1;
    }
    assert_eq!(n, 5);
    let res = acc.finish();
    assert_eq!(res.text(), fixtures::CHAT_STREAM_TEXT);
    assert_eq!(res.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(res.usage.as_ref().unwrap().total_tokens, 21);
    let req = fake.last_request().unwrap();
    assert_eq!(req.json()["stream"], true);
    assert_eq!(req.headers["accept"], "text/event-stream");
    assert_eq!(fake.streams_completed(), 1);
}

#[tokio::test]
async fn fim_create_and_stream() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let req = FimCompletionRequest::new("codestral-latest", "def add(a, b):").suffix("return c");
    let res = c.fim().create(req.clone()).await.unwrap();
    assert!(!res.choices.is_empty());
    let body = fake.last_body_json().unwrap();
    assert_eq!(body["prompt"], "def add(a, b):");
    assert_eq!(body["suffix"], "return c");
    let chunks: Vec<_> = c.fim().create_stream(req).await.unwrap().collect().await;
    assert_eq!(chunks.len(), 5);
    assert!(chunks.iter().all(Result::is_ok));
    assert_eq!(fake.calls("/v1/fim/completions"), 2);
    assert_eq!(fake.last_body_json().unwrap()["stream"], true);
}

#[tokio::test]
async fn agents_create_and_stream() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let req = AgentsCompletionRequest::new("ag:123", vec![ChatMessage::user("Hi")]);
    let res = c.agents().create(req.clone()).await.unwrap();
    assert!(res.text().contains("boils"));
    assert_eq!(fake.last_body_json().unwrap()["agent_id"], "ag:123");
    let chunks: Vec<_> = c.agents().create_stream(req).await.unwrap().collect().await;
    assert_eq!(chunks.len(), 5);
    assert_eq!(fake.calls("/v1/agents/completions"), 2);
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let res = c
        .embeddings()
        .create(EmbeddingRequest::new("mistral-embed", ["a", "b"]))
        .await
        .unwrap();
    assert_eq!(res.data.len(), 2);
    assert_eq!(
        res.data[1]
            .embedding
            .to_f32(&EmbeddingDtype::Float)
            .unwrap(),
        vec![0.2, 0.2, 0.3]
    );
    let req = EmbeddingRequest::new("mistral-embed", ["a"])
        .encoding_format(EncodingFormat::Base64)
        .output_dimension(3u32);
    let res = c.embeddings().create(req).await.unwrap();
    assert_eq!(
        res.data[0]
            .embedding
            .to_f32(&EmbeddingDtype::Float)
            .unwrap(),
        vec![0.1, 0.2, 0.3]
    );
    let body = fake.last_body_json().unwrap();
    assert_eq!(body["encoding_format"], "base64");
    assert_eq!(body["output_dimension"], 3);
}

#[tokio::test]
async fn models_list_get_delete_search() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let list = c.models().list().await.unwrap();
    assert_eq!(list.data.len(), 4);
    let m = c.models().get("codestral-latest").await.unwrap();
    assert!(m.capabilities.completion_fim);
    let ft = "ft:open-mistral-7b:abc123:20240101:def";
    assert_eq!(c.models().get(ft).await.unwrap().id, ft);
    assert_eq!(
        fake.last_request().unwrap().path,
        format!("/v1/models/{ft}")
    );
    let del = c.models().delete(ft).await.unwrap();
    assert!(del.deleted);
    assert_eq!(fake.last_request().unwrap().method, "DELETE");
    let fim = c
        .models()
        .search(&ModelFilter::new().completion_fim(true))
        .await
        .unwrap();
    assert_eq!(
        fim.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["codestral-latest"]
    );
    let err = c.models().get("nope").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.api_error().unwrap().message, "Model not found: nope");
}

#[tokio::test]
async fn classifiers_end_to_end() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let res = c
        .classifiers()
        .moderate(ModerationRequest::new(
            "mistral-moderation-latest",
            ["x", "y"],
        ))
        .await
        .unwrap();
    assert_eq!(res.results.len(), 2);
    assert!(res.results[0].flagged());
    assert!(!res.results[1].flagged());
    let res = c
        .classifiers()
        .moderate_chat(ChatModerationRequest::new(
            "mistral-moderation-latest",
            vec![ChatMessage::user("hi")],
        ))
        .await
        .unwrap();
    assert_eq!(res.results.len(), 1);
    assert_eq!(fake.last_request().unwrap().path, "/v1/chat/moderations");
    let res = c
        .classifiers()
        .classify(ClassificationRequest::new("ft:classifier", ["hello?"]))
        .await
        .unwrap();
    assert_eq!(res.results[0]["intent"].scores["question"], 0.8);
    let res = c
        .classifiers()
        .classify_chat(ChatClassificationRequest::new(
            "ft:classifier",
            vec![ChatMessage::user("hello?")],
        ))
        .await
        .unwrap();
    assert_eq!(res.results.len(), 1);
    assert_eq!(fake.calls("/v1/classifications"), 1);
    assert_eq!(fake.calls("/v1/chat/classifications"), 1);
    assert_eq!(fake.calls("/v1/moderations"), 1);
}

#[tokio::test]
async fn ocr_end_to_end() {
    let fake = FakeMistral::start().await;
    let res = client(&fake)
        .ocr()
        .process(OcrRequest::new(
            "mistral-ocr-latest",
            OcrDocument::document_url("https://example.com/doc.pdf"),
        ))
        .await
        .unwrap();
    assert_eq!(res.pages.len(), 1);
    assert!(res.pages[0].markdown.contains("Hello from OCR"));
    assert_eq!(res.usage_info.pages_processed, 1);
    let body = fake.last_body_json().unwrap();
    assert_eq!(
        body["document"]["document_url"],
        "https://example.com/doc.pdf"
    );
}

#[tokio::test]
async fn every_error_shape_is_typed() {
    let fake = FakeMistral::start().await;
    let c = Client::builder()
        .api_key(KEY)
        .base_url(fake.base_url())
        .no_retry()
        .build()
        .unwrap();
    // (scenario, status, message, type, code)
    type Case = (
        &'static str,
        u16,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            "error-invalid-request",
            400,
            "is not available to this workspace",
            Some("invalid_request_error"),
            Some("model_not_available"),
        ),
        (
            "error-validation",
            400,
            "Extra inputs are not permitted",
            Some("invalid_request_error"),
            None,
        ),
        (
            "error-string-message",
            400,
            "above the maximum of 3072",
            Some("invalid_request_invalid_args"),
            Some("3051"),
        ),
        ("error-401", 401, "Invalid or expired API key", None, None),
        (
            "error-invalid-model",
            400,
            "Invalid model: mistral-imaginary-latest",
            Some("invalid_model"),
            Some("1500"),
        ),
        ("error-429-legacy", 429, "Too many requests", None, None),
        (
            "error-429",
            429,
            "Rate limit exceeded for this workspace",
            Some("rate_limited"),
            Some("1300"),
        ),
        ("error-422", 422, "body.model: Field required", None, None),
    ];
    for &(scenario, status, message, ty, code) in cases {
        let err = c.chat().create(chat_req(scenario)).await.unwrap_err();
        assert!(err.is_status(), "{scenario}: {err:?}");
        assert_eq!(err.status().unwrap().as_u16(), status, "{scenario}");
        assert_eq!(err.is_retryable(), status == 429, "{scenario}");
        assert!(err.correlation_id().unwrap().starts_with("fake-"));
        assert!(err.headers().unwrap().contains_key("content-type"));
        let api = err
            .api_error()
            .unwrap_or_else(|| panic!("{scenario}: no api error"));
        assert!(api.message.contains(message), "{scenario}: {}", api.message);
        assert_eq!(api.error_type.as_deref(), ty, "{scenario}");
        assert_eq!(api.code.as_deref(), code, "{scenario}");
        assert!(err.raw_body().is_some());
    }
    let err = c
        .chat()
        .create(chat_req("error-validation"))
        .await
        .unwrap_err();
    assert_eq!(err.api_error().unwrap().detail.len(), 2);
    let err = c.chat().create(chat_req("error-429")).await.unwrap_err();
    assert_eq!(err.api_error().unwrap().raw_status_code, Some(429));

    // a body that is not JSON: no API error, the raw body is kept
    let err = c
        .chat()
        .create(chat_req("error-500-text"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(err.api_error().is_none());
    assert_eq!(
        err.raw_body().unwrap(),
        &Bytes::from_static(b"upstream connect error or disconnect/reset before headers")
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unknown_fields_and_enum_values_tolerated() {
    let fake = FakeMistral::start().await;
    let c = client(&fake);
    let res = c.chat().create(chat_req("unknown-fields")).await.unwrap();
    assert_eq!(
        res.choices[0].finish_reason,
        Some(FinishReason::Other("brand_new_reason".into()))
    );
    let chunks: Vec<_> = c
        .chat()
        .create_stream(chat_req("unknown-fields"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(chunks.len(), 5);
    assert!(chunks.iter().all(Result::is_ok));
    let res = c
        .embeddings()
        .create(EmbeddingRequest::new("unknown-fields", ["a"]))
        .await
        .unwrap();
    assert_eq!(res.data.len(), 1);
    // models carry an unknown `future_field`
    assert_eq!(c.models().list().await.unwrap().data.len(), 4);
}

#[tokio::test]
async fn zero_and_false_are_sent_unset_fields_are_not() {
    let fake = FakeMistral::start().await;
    let req = chat_req("mistral-small-latest")
        .temperature(0.0)
        .safe_prompt(false)
        .random_seed(0u64)
        .parallel_tool_calls(false);
    client(&fake).chat().create(req).await.unwrap();
    let body = fake.last_body_json().unwrap();
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["safe_prompt"], false);
    assert_eq!(body["random_seed"], 0);
    assert_eq!(body["parallel_tool_calls"], false);
    for unset in [
        "top_p",
        "max_tokens",
        "stream",
        "tools",
        "n",
        "prompt_cache_key",
    ] {
        assert!(body.get(unset).is_none(), "{unset} was sent: {body}");
    }
}

#[tokio::test]
async fn the_key_never_appears_in_debug_output() {
    let fake = FakeMistral::start().await;
    let builder = Client::builder().api_key(KEY).base_url(fake.base_url());
    assert!(!format!("{builder:?}").contains(KEY));
    let c = builder.no_retry().build().unwrap();
    assert!(!format!("{c:?}").contains(KEY));
    let err = c.chat().create(chat_req("error-401")).await.unwrap_err();
    assert!(!format!("{err:?}").contains(KEY));
    assert!(!err.to_string().contains(KEY));
    let stream = c.chat().create_stream(chat_req("x")).await.unwrap();
    assert!(!format!("{stream:?}").contains(KEY));
    // the header on the wire is the key, and hyper saw it marked sensitive
    assert_eq!(
        fake.last_headers().unwrap()["authorization"],
        format!("Bearer {KEY}")
    );
}

#[tokio::test]
async fn from_env_requires_the_key() {
    // Runs itself in a child process with a controlled environment (tests may not
    // mutate their own environment).
    if std::env::var_os("FROM_ENV_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(&exe)
        .args([
            "--exact",
            "from_env_child",
            "--nocapture",
            "--include-ignored",
        ])
        .env("FROM_ENV_CHILD", "missing")
        .env_remove("MISTRAL_API_KEY")
        .env_remove("MISTRAL_BASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));

    let fake = FakeMistral::start().await;
    // tokio's Command: the fake server runs on this runtime while the child talks to it
    let out = tokio::process::Command::new(&exe)
        .args([
            "--exact",
            "from_env_child",
            "--nocapture",
            "--include-ignored",
        ])
        .env("FROM_ENV_CHILD", "present")
        .env("MISTRAL_API_KEY", "env-key")
        .env("MISTRAL_BASE_URL", fake.base_url())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        fake.calls("/v1/chat/completions"),
        2,
        "chat example + stream example"
    );
    assert_eq!(
        fake.last_headers().unwrap()["authorization"],
        "Bearer env-key"
    );
}

/// The child half of `from_env_requires_the_key`; does nothing on its own.
#[tokio::test]
#[ignore = "run by from_env_requires_the_key in a child process"]
async fn from_env_child() {
    match std::env::var("FROM_ENV_CHILD").as_deref() {
        Ok("missing") => {
            let err = Client::from_env().unwrap_err();
            assert!(err.is_config());
            assert!(err.to_string().contains("MISTRAL_API_KEY"), "{err}");
        }
        Ok("present") => {
            // What the examples' `main` does: `Client::from_env()` then their `run`.
            let c = Client::from_env().unwrap();
            let text = chat_example::run(&c, "hi").await.unwrap();
            assert!(text.contains("100 °C (212 °F)"));
            let mut out = Vec::new();
            let res = stream_example::run(&c, "hi", &mut out).await.unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{}\n", fixtures::CHAT_STREAM_TEXT)
            );
            assert_eq!(res.text(), fixtures::CHAT_STREAM_TEXT);
        }
        _ => {}
    }
}

#[tokio::test]
async fn user_layers_are_called_outermost_first() {
    let fake = FakeMistral::start().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let tag = |name: &'static str| {
        let order = order.clone();
        tower::layer::layer_fn(move |inner: mistral_tower::client::HttpService| {
            let order = order.clone();
            service_fn(move |mut req: Request<Body>| {
                order.lock().unwrap().push(name);
                req.headers_mut()
                    .append("x-layers", http::HeaderValue::from_static(name));
                inner.clone().oneshot(req)
            })
        })
    };
    let c = Client::builder()
        .api_key(KEY)
        .base_url(fake.base_url())
        .layer(tag("outer"))
        .layer(tag("inner"))
        .build()
        .unwrap();
    c.models().list().await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["outer", "inner"]);
    let seen: Vec<_> = fake
        .last_headers()
        .unwrap()
        .get_all("x-layers")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["outer", "inner"]);
}

#[tokio::test]
async fn service_replaces_the_transport() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let transport = service_fn(move |req: Request<Body>| {
        c2.fetch_add(1, Ordering::SeqCst);
        *s.lock().unwrap() = Some((req.uri().clone(), req.headers().clone()));
        async move {
            let body = mistral_tower::testing::fixtures::CHAT_RESPONSE;
            Ok::<_, BoxError>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let c = Client::builder()
        .api_key(KEY)
        .base_url("https://gateway.example/mistral")
        .service(transport)
        .build()
        .unwrap();
    let res = c.chat().create(chat_req("m")).await.unwrap();
    assert!(res.text().contains("boils"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (uri, headers) = seen.lock().unwrap().take().unwrap();
    assert_eq!(uri, "https://gateway.example/mistral/v1/chat/completions");
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    assert!(headers["authorization"].is_sensitive());
}

#[tokio::test]
async fn build_service_keeps_request_authorization_for_the_proxy() {
    let fake = FakeMistral::start().await;
    let svc = Client::builder()
        .api_key("proxy-own-key")
        .base_url(fake.base_url())
        .keep_request_authorization(true)
        .build_service()
        .unwrap();
    let req = Request::builder()
        .uri("/v1/models")
        .header("authorization", "Bearer caller-key")
        .header("host", "proxy.local:8080")
        .body(Body::empty())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let h = fake.last_headers().unwrap();
    assert_eq!(h["authorization"], "Bearer caller-key");
    assert_eq!(h["host"], fake.addr().to_string());
    let req = Request::builder()
        .uri("/v1/models")
        .body(Body::empty())
        .unwrap();
    svc.oneshot(req).await.unwrap();
    assert_eq!(
        fake.last_headers().unwrap()["authorization"],
        "Bearer proxy-own-key"
    );
}

#[tokio::test]
async fn invalid_configuration_is_a_config_error() {
    let err = Client::builder().base_url("not a url").build().unwrap_err();
    assert!(err.is_config(), "{err:?}");
    let err = Client::builder().api_key("bad\nkey").build().unwrap_err();
    assert!(err.is_config());
    let _: Error = err;
}

// ---------------------------------------------------------------------------

/// Adversarial review of the client stack: extreme configuration values and
/// hostile upstream answers must give errors, never panics or hangs.
mod adversarial {

    use std::time::Duration;

    use futures_util::StreamExt;
    use mistral_tower::Client;
    use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
    use mistral_tower::testing::FakeMistral;

    async fn guard<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("did not finish within 10 s")
    }

    #[tokio::test]
    async fn huge_timeouts_do_not_overflow() {
        // `mistral-cache serve --stream-idle-timeout 18446744073709551615` reaches this.
        let fake = FakeMistral::start().await;
        let client = Client::builder()
            .api_key("k")
            .base_url(fake.base_url())
            .timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .stream_idle_timeout(Duration::MAX)
            .build()
            .unwrap();
        let req = ChatCompletionRequest::new("m", vec![ChatMessage::user("hi")]);
        guard(client.chat().create(req.clone())).await.unwrap();
        let mut stream = guard(client.chat().create_stream(req)).await.unwrap();
        let mut n = 0;
        while let Some(chunk) = guard(stream.next()).await {
            chunk.unwrap();
            n += 1;
        }
        assert!(n > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_rate_limit_period_does_not_overflow() {
        use tower::{Layer, Service, ServiceExt};
        let layer = mistral_tower::layers::limit::RateLimitLayer::new(1, Duration::MAX);
        let mut svc = layer.layer(tower::service_fn(|()| async {
            Ok::<_, std::convert::Infallible>(())
        }));
        svc.ready().await.unwrap().call(()).await.unwrap();
        // The window is used up and never reopens: the second call waits (without a panic).
        let second = tokio::time::timeout(Duration::from_secs(3600), svc.ready()).await;
        assert!(second.is_err(), "a second request got through the window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_left_open_after_done_does_not_hang_the_stream() {
        use bytes::Bytes;
        use http_body_util::StreamBody;
        use mistral_tower::Body;
        // An upstream (or a middlebox) that keeps the response open after `[DONE]`,
        // sending keep-alive comments now and then.
        let svc = tower::service_fn(|_req: http::Request<Body>| async {
            let events = futures_util::stream::iter([
            "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ])
        .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s))));
            let keepalive = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Some((
                    Ok(http_body::Frame::data(Bytes::from_static(b": ping\n\n"))),
                    (),
                ))
            });
            let body = Body::new(StreamBody::new(events.chain(keepalive)));
            Ok::<_, mistral_tower::BoxError>(
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(body)
                    .unwrap(),
            )
        });
        let client = Client::builder().api_key("k").service(svc).build().unwrap();
        let req = ChatCompletionRequest::new("m", vec![ChatMessage::user("hi")]);
        let mut stream = guard(client.chat().create_stream(req)).await.unwrap();
        let first = guard(stream.next()).await.unwrap().unwrap();
        assert_eq!(first.choices.len(), 1);
        // The stream ends after `[DONE]` (virtual time: 10 s would be the guard).
        assert!(guard(stream.next()).await.is_none());
    }
}
