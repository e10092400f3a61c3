//! Adversarial review of the client stack: extreme configuration values and
//! hostile upstream answers must give errors, never panics or hangs.

mod support;

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
