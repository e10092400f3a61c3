//! The client's resilience against the fake Mistral server: retries, Retry-After,
//! each timeout kind, broken and cancelled streams, limits.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use http::StatusCode;
use mistral_tower::chat::{ChatCompletionRequest, ChatMessage};
use mistral_tower::error::TimeoutKind;
use mistral_tower::layers::RetryConfig;
use mistral_tower::testing::FakeMistral;
use mistral_tower::{Client, ClientBuilder};

fn builder(fake: &FakeMistral) -> ClientBuilder {
    Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .retry(RetryConfig::default().base_delay(Duration::from_millis(1)))
}

fn req(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest::new(model, vec![ChatMessage::user("Hi")])
}

/// Guards against hangs only; never used to assert on durations.
async fn within_10s<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the test hung")
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(2).build().unwrap();
    let res = c.chat().create(req("fail-503-2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(fake.calls("/v1/chat/completions"), 3);
}

#[tokio::test]
async fn gives_up_after_max_retries_with_the_last_error() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(2).build().unwrap();
    let err = c.chat().create(req("fail-429-5")).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(err.api_error().unwrap().code.as_deref(), Some("1300"));
    assert!(err.is_retryable());
    assert_eq!(fake.calls("/v1/chat/completions"), 3);
}

#[tokio::test]
async fn no_retry_means_one_call() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).no_retry().build().unwrap();
    assert!(c.chat().create(req("fail-503-1")).await.is_err());
    assert_eq!(fake.calls("/v1/chat/completions"), 1);
}

#[tokio::test]
async fn non_retryable_statuses_are_not_retried() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(3).build().unwrap();
    for s in ["status-400", "status-401", "status-404", "status-501"] {
        assert!(c.chat().create(req(s)).await.is_err());
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 4);
}

#[tokio::test]
async fn retry_after_header_is_used() {
    // Retry-After: 0 (the wait itself is covered with paused time in the retry
    // layer's unit tests; here the header path end to end).
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(1).build().unwrap();
    let res = within_10s(c.chat().create(req("fail-429-1-after-0"))).await;
    assert!(res.is_ok());
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
    // a Retry-After far in the future is capped by max_retry_after
    let c = Client::builder()
        .api_key("k")
        .base_url(fake.base_url())
        .retry(
            RetryConfig::default()
                .max_retries(1)
                .max_retry_after(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let res = within_10s(c.chat().create(req("fail-429-1-after-3600"))).await;
    assert!(res.is_ok());
    assert_eq!(fake.calls("/v1/chat/completions"), 4);
}

#[tokio::test]
async fn stream_request_retried_before_the_stream_starts() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(2).build().unwrap();
    let chunks: Vec<_> = c
        .chat()
        .create_stream(req("fail-503-1"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(chunks.len(), 5);
    assert!(chunks.iter().all(Result::is_ok));
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn no_retry_after_the_first_stream_byte() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).max_retries(3).build().unwrap();
    for scenario in ["stream-abort", "stream-truncated"] {
        let items: Vec<_> = within_10s(
            c.chat()
                .create_stream(req(scenario))
                .await
                .unwrap()
                .collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(items.len(), 3, "{scenario}: two chunks then one error");
        assert!(items[0].is_ok() && items[1].is_ok());
        let err = items[2].as_ref().unwrap_err();
        assert!(err.is_stream(), "{scenario}: {err:?}");
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(StatusCode::OK));
        assert!(err.correlation_id().is_some());
    }
    assert_eq!(
        fake.calls("/v1/chat/completions"),
        2,
        "neither stream was retried"
    );
}

#[tokio::test]
async fn stream_error_event_and_bad_json() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).build().unwrap();
    let items: Vec<_> = c
        .chat()
        .create_stream(req("stream-error-event"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    let err = items[1].as_ref().unwrap_err();
    assert!(err.is_stream());
    let api = err.api_error().unwrap();
    assert_eq!(api.message, "Internal server error");
    assert_eq!(api.code.as_deref(), Some("3000"));

    let items: Vec<_> = c
        .chat()
        .create_stream(req("stream-bad-json"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    let err = items[1].as_ref().unwrap_err();
    assert!(err.is_decode(), "{err:?}");
    assert_eq!(err.raw_body().unwrap(), "{not json");
}

#[tokio::test]
async fn stream_error_status_is_an_error_before_the_stream() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).no_retry().build().unwrap();
    let err = c.chat().create_stream(req("error-429")).await.unwrap_err();
    assert!(err.is_status());
    assert_eq!(
        err.api_error().unwrap().error_type.as_deref(),
        Some("rate_limited")
    );
}

#[tokio::test]
async fn total_timeout_on_slow_headers_is_not_retried() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake)
        .max_retries(3)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for scenario in ["slow-3000", "hang"] {
        let err = within_10s(c.chat().create(req(scenario)))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{scenario}: {err:?}");
        assert_eq!(err.timeout_kind(), Some(TimeoutKind::Total));
        assert!(!err.is_retryable() && !err.is_connect());
    }
    assert_eq!(fake.calls("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn stream_idle_timeout_on_a_stalled_stream() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake)
        .timeout(Duration::from_secs(30))
        .stream_idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let items: Vec<_> = within_10s(
        c.chat()
            .create_stream(req("stream-stall"))
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    let err = items[1].as_ref().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::StreamIdle));
}

#[tokio::test]
async fn a_long_stream_is_not_cut_by_the_total_timeout() {
    let fake = FakeMistral::start().await;
    // 5 gaps of 80 ms: the stream lasts far longer than the 50 ms total timeout.
    let c = builder(&fake)
        .timeout(Duration::from_millis(50))
        .stream_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let items: Vec<_> = within_10s(
        c.chat()
            .create_stream(req("stream-delay-80"))
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(Result::is_ok), "{items:?}");
}

#[tokio::test]
async fn dropping_a_stream_closes_the_connection() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).build().unwrap();
    let mut stream = c.chat().create_stream(req("stream-endless")).await.unwrap();
    for _ in 0..3 {
        within_10s(stream.next()).await.unwrap().unwrap();
    }
    assert_eq!(fake.streams_dropped(), 0);
    drop(stream);
    assert_eq!(fake.wait_for_dropped_streams(1).await, 1);
    assert_eq!(fake.streams_completed(), 0);
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder()
        .api_key("k")
        .base_url(format!("http://{addr}"))
        .retry(RetryConfig::default().base_delay(Duration::from_millis(1)))
        .build()
        .unwrap();
    let err = within_10s(c.models().list()).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.is_timeout() && !err.is_status());
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn connect_timeout_against_a_full_backlog() {
    // A listener that never accepts, with its accept queue filled: further SYNs
    // are dropped by the kernel, so a connect hangs until the connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut saturated = false;
    for _ in 0..64 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(_)) | Err(_) => {
                saturated = true;
                break;
            }
        }
    }
    if !saturated {
        println!("skipped: cannot reach a full accept backlog on this system");
        return;
    }
    let c = Client::builder()
        .api_key("k")
        .base_url(format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(200))
        .no_retry()
        .build()
        .unwrap();
    let err = within_10s(c.models().list()).await.unwrap_err();
    if !err.is_timeout() && err.is_connect() {
        // the kernel answered with a reset instead of dropping the SYN
        println!("skipped: the kernel resets connections to a full backlog");
        return;
    }
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Connect));
    assert!(err.is_connect() && err.is_retryable());
    drop(held);
}

#[tokio::test]
async fn rate_limit_is_shared_by_client_clones() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake)
        .rate_limit(2, Duration::from_secs(3600))
        .build()
        .unwrap();
    c.models().list().await.unwrap();
    c.clone().models().list().await.unwrap();
    let third = c.clone();
    let blocked = tokio::time::timeout(Duration::from_millis(300), async move {
        third.models().list().await
    })
    .await;
    assert!(
        blocked.is_err(),
        "the third request must wait for the next window"
    );
    assert_eq!(fake.calls("/v1/models"), 2);
}

#[tokio::test]
async fn concurrency_limit_queues_requests() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).concurrency_limit(1).build().unwrap();
    // one request hangs and holds the only slot
    let hanging = c.clone();
    let task = tokio::spawn(async move { hanging.chat().create(req("hang")).await });
    for _ in 0..500 {
        if fake.total_calls() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.total_calls(), 1);
    let queued = tokio::time::timeout(Duration::from_millis(300), c.models().list()).await;
    assert!(queued.is_err(), "the second request waits for the slot");
    assert_eq!(fake.total_calls(), 1);
    task.abort();
    let _ = task.await;
    // the slot is released when the first request is dropped
    within_10s(c.models().list()).await.unwrap();
    assert_eq!(fake.calls("/v1/models"), 1);
}

#[tokio::test]
async fn an_open_stream_holds_its_concurrency_slot() {
    let fake = FakeMistral::start().await;
    let c = builder(&fake).concurrency_limit(1).build().unwrap();
    let mut stream = c.chat().create_stream(req("stream-endless")).await.unwrap();
    within_10s(stream.next()).await.unwrap().unwrap();
    let queued = tokio::time::timeout(Duration::from_millis(300), c.models().list()).await;
    assert!(queued.is_err(), "the stream still holds the only slot");
    assert_eq!(fake.calls("/v1/models"), 0);
    drop(stream);
    within_10s(c.models().list()).await.unwrap();
    assert_eq!(fake.calls("/v1/models"), 1);
}
