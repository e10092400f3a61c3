//! Savings you can see: `x-cache-saved-tokens` and `x-cache-key` on the cache layer's
//! answers, and the proxy's saved tokens and dollars in `/metrics` (built-in prices,
//! `--prices FILE`, a bad prices file).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mistral_tower::cache::{
    CacheEngine, CacheLayer, KeyInput, MemoryEngine, RequestBody, SavedTokens, X_CACHE_KEY,
    X_CACHE_SAVED_TOKENS,
};
use mistral_tower::testing::fixtures::{CHAT_RESPONSE, CHAT_STREAM};
use tower::{Layer, ServiceExt};

mod support;

/// An upstream answering every request with `body` (as `content_type`), counting calls.
fn upstream(
    body: &'static str,
    content_type: &'static str,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<RequestBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = Response::builder()
                .header("content-type", content_type)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    })
}

fn chat(body: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn header(res: &Response<impl Sized>, name: &http::HeaderName) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn x_cache_key_is_the_stored_key_on_miss_and_hit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = MemoryEngine::new(1 << 20);
    let layer = CacheLayer::new(engine.clone());
    let svc = layer.layer(upstream(CHAT_RESPONSE, "application/json", calls.clone()));

    let miss = svc
        .clone()
        .oneshot(chat(r#"{"model":"m","n":1}"#))
        .await
        .unwrap();
    assert_eq!(support::x_cache(&miss), "MISS");
    let key = header(&miss, &X_CACHE_KEY).expect("a miss carries its key");
    miss.into_body().collect().await.unwrap();
    tokio::task::yield_now().await;

    let hit = svc
        .clone()
        .oneshot(chat(r#"{ "n": 1, "model": "m" }"#))
        .await
        .unwrap();
    assert_eq!(support::x_cache(&hit), "HIT");
    assert_eq!(header(&hit, &X_CACHE_KEY).as_deref(), Some(key.as_str()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The hex SHA-256 digest the engine stores under: no key material, no credential.
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(engine.keys().await.unwrap(), vec![key.clone()]);
    assert!(!key.contains("sk-test"));

    // Another request, another key; a bypassed request has none.
    let other = svc
        .clone()
        .oneshot(chat(r#"{"model":"m","n":2}"#))
        .await
        .unwrap();
    assert_ne!(header(&other, &X_CACHE_KEY).unwrap(), key);
    let mut bypass = chat(r#"{"model":"m","n":1}"#);
    bypass
        .headers_mut()
        .insert("x-cache-control", "no-store".parse().unwrap());
    let bypass = svc.clone().oneshot(bypass).await.unwrap();
    assert_eq!(support::x_cache(&bypass), "BYPASS");
    assert_eq!(header(&bypass, &X_CACHE_KEY), None);
}

#[tokio::test]
async fn a_custom_key_that_is_not_a_digest_is_not_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20))
        .key_fn(|k: &KeyInput<'_>| format!("custom-{}-{}", k.uri.path().len(), k.body.len()));
    let svc = layer.layer(upstream(CHAT_RESPONSE, "application/json", calls));
    for expected in ["MISS", "HIT"] {
        let res = svc.clone().oneshot(chat(r#"{"secret":1}"#)).await.unwrap();
        assert_eq!(support::x_cache(&res), expected);
        assert_eq!(header(&res, &X_CACHE_KEY), None, "{expected}");
        res.into_body().collect().await.unwrap();
        tokio::task::yield_now().await;
    }
}

/// Miss then hit of one request; returns the hit's `x-cache-saved-tokens`.
async fn saved_on_hit(body: &'static str, content_type: &'static str) -> Option<String> {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
    let svc = layer.layer(upstream(body, content_type, calls.clone()));
    let miss = svc.clone().oneshot(chat(r#"{"model":"m"}"#)).await.unwrap();
    assert_eq!(support::x_cache(&miss), "MISS");
    assert_eq!(
        header(&miss, &X_CACHE_SAVED_TOKENS),
        None,
        "a miss saved nothing"
    );
    assert_eq!(miss.into_body().collect().await.unwrap().to_bytes(), body);
    tokio::task::yield_now().await;
    let hit = svc.clone().oneshot(chat(r#"{"model":"m"}"#)).await.unwrap();
    assert_eq!(support::x_cache(&hit), "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let saved = header(&hit, &X_CACHE_SAVED_TOKENS);
    assert_eq!(
        hit.into_body().collect().await.unwrap().to_bytes(),
        body,
        "body unchanged"
    );
    saved
}

#[tokio::test]
async fn a_hit_of_a_json_answer_tells_the_tokens_it_saved() {
    let saved = saved_on_hit(CHAT_RESPONSE, "application/json").await;
    assert_eq!(
        saved.as_deref(),
        Some(r#"98; prompt=27; completion=71; model="mistral-small-latest""#)
    );
    let parsed = SavedTokens::from_header(&saved.unwrap().parse().unwrap()).unwrap();
    assert_eq!(parsed.usage.total_tokens, 98);
}

#[tokio::test]
async fn a_hit_of_a_stream_tells_the_tokens_of_its_last_usage() {
    let saved = saved_on_hit(CHAT_STREAM, "text/event-stream").await;
    assert_eq!(
        saved.as_deref(),
        Some(r#"21; prompt=15; completion=6; model="mistral-small-latest""#)
    );
}

#[tokio::test]
async fn a_hit_of_an_answer_without_usage_tells_nothing() {
    assert_eq!(
        saved_on_hit(r#"{"id":"x"}"#, "application/json").await,
        None
    );
    // An upstream that is itself a cache: its own header is not stored as ours.
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = Response::builder()
                .header("content-type", "application/json")
                .header("x-cache-saved-tokens", "999; prompt=999; completion=0")
                .header("x-cache-key", "f".repeat(64))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    });
    let svc = CacheLayer::new(MemoryEngine::new(1 << 20)).layer(inner);
    let miss = svc.clone().oneshot(chat("{}")).await.unwrap();
    let key = header(&miss, &X_CACHE_KEY).unwrap();
    assert_ne!(
        key,
        "f".repeat(64),
        "the cache's own key replaces the upstream's"
    );
    miss.into_body().collect().await.unwrap();
    tokio::task::yield_now().await;
    let hit = svc.clone().oneshot(chat("{}")).await.unwrap();
    assert_eq!(support::x_cache(&hit), "HIT");
    assert_eq!(header(&hit, &X_CACHE_SAVED_TOKENS), None);
    assert_eq!(header(&hit, &X_CACHE_KEY), Some(key));
}

#[cfg(feature = "server")]
mod proxy {
    use mistral_tower::server::{Config, Proxy, ServerError, tenant_label};
    use mistral_tower::testing::FakeMistral;

    use super::support::proxy::{guard, start_proxy};

    /// Posts the fixture chat request `n` times through the proxy at `url` with `key`;
    /// returns the `x-cache` values.
    async fn chat_n(url: &str, key: &str, n: usize) -> Vec<String> {
        let client = reqwest_like::Client::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let (status, headers, _body) = client
                .post_json(
                    &format!("{url}/v1/chat/completions"),
                    key,
                    mistral_tower::testing::fixtures::CHAT_REQUEST,
                )
                .await;
            assert_eq!(status, 200);
            out.push(headers["x-cache"].to_str().unwrap().to_owned());
        }
        out
    }

    async fn metrics_text(url: &str) -> String {
        let client = reqwest_like::Client::new();
        let (status, _, body) = client.get(&format!("{url}/_mistral-cache/metrics")).await;
        assert_eq!(status, 200);
        body
    }

    /// The value of the sample line starting with `prefix` (labels included).
    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }

    #[tokio::test]
    async fn metrics_show_saved_tokens_and_dollars_after_a_hit() {
        let fake = FakeMistral::start().await;
        let proxy = start_proxy(&fake.url(), |_| {}).await;
        let states = guard(chat_n(&proxy.url, "Bearer sk-one", 3)).await;
        assert_eq!(states, ["MISS", "HIT", "HIT"]);
        assert_eq!(fake.calls("/v1/chat/completions"), 1);
        let text = metrics_text(&proxy.url).await;
        let tenant = tenant_label(Some(&"Bearer sk-one".parse().unwrap()));
        let labels = |kind: &str| {
            format!(r#"{{model="mistral-small-latest",kind="{kind}",tenant="{tenant}"}}"#)
        };
        // Two hits of 27 prompt + 71 completion tokens.
        let tokens = "mistral_cache_saved_tokens_total";
        assert_eq!(
            sample(&text, &format!("{tokens}{}", labels("prompt"))),
            Some(54.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("{tokens}{}", labels("completion"))),
            Some(142.0)
        );
        // At the built-in price of mistral-small ($0.1 in, $0.3 out per million).
        let usd = "mistral_cache_saved_usd_total";
        let p = sample(&text, &format!("{usd}{}", labels("prompt"))).unwrap();
        let c = sample(&text, &format!("{usd}{}", labels("completion"))).unwrap();
        assert!((p - 54.0 * 0.1 / 1e6).abs() < 1e-15, "{p}");
        assert!((c - 142.0 * 0.3 / 1e6).abs() < 1e-15, "{c}");
        assert!(!text.contains("sk-one"));
        // Another API key is another tenant.
        guard(chat_n(&proxy.url, "Bearer sk-two", 2)).await;
        let text = metrics_text(&proxy.url).await;
        let two = tenant_label(Some(&"Bearer sk-two".parse().unwrap()));
        assert!(
            text.contains(&format!(r#"kind="prompt",tenant="{two}"}} 27"#)),
            "{text}"
        );
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn a_prices_file_overrides_the_built_in_price() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        std::fs::write(
            &path,
            "[mistral-small-latest]\ninput = 1000\noutput = 2000\n",
        )
        .unwrap();
        let fake = FakeMistral::start().await;
        let p2 = path.clone();
        let proxy = start_proxy(&fake.url(), move |c| c.prices = Some(p2)).await;
        guard(chat_n(&proxy.url, "Bearer k", 2)).await;
        let text = metrics_text(&proxy.url).await;
        let tenant = tenant_label(Some(&"Bearer k".parse().unwrap()));
        let line = |kind: &str| {
            format!(
                r#"mistral_cache_saved_usd_total{{model="mistral-small-latest",kind="{kind}",tenant="{tenant}"}}"#
            )
        };
        // 27 prompt tokens at $1000 per million, 71 completion tokens at $2000.
        assert!(
            (sample(&text, &line("prompt")).unwrap() - 0.027).abs() < 1e-12,
            "{text}"
        );
        assert!((sample(&text, &line("completion")).unwrap() - 0.142).abs() < 1e-12);
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn a_bad_prices_file_is_a_clear_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(&path, r#"{"mistral-small-latest":{"input":"cheap"}}"#).unwrap();
        let mut config = Config::default();
        config.engine = "memory://".into();
        config.prices = Some(path.clone());
        let err = Proxy::new(config).await.unwrap_err();
        assert!(matches!(err, ServerError::Config(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("prices.json") && text.contains("input must be a number"),
            "{text}"
        );
        // The binary exits with the configuration status and says why.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-cache"))
            .args(["serve", "--listen", "127.0.0.1:0", "--engine", "memory://"])
            .arg("--prices")
            .arg(dir.path().join("missing.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot read the prices file"), "{stderr}");
    }

    /// A tiny HTTP/1 client over hyper-util for these tests.
    mod reqwest_like {
        use bytes::Bytes;
        use http_body_util::{BodyExt, Full};
        use hyper_util::client::legacy::Client as Hyper;
        use hyper_util::client::legacy::connect::HttpConnector;
        use hyper_util::rt::TokioExecutor;

        pub(super) struct Client(Hyper<HttpConnector, Full<Bytes>>);

        impl Client {
            pub(super) fn new() -> Self {
                Client(Hyper::builder(TokioExecutor::new()).build_http())
            }

            async fn send(
                &self,
                req: http::Request<Full<Bytes>>,
            ) -> (u16, http::HeaderMap, String) {
                let res = self.0.request(req).await.unwrap();
                let (parts, body) = res.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                (
                    parts.status.as_u16(),
                    parts.headers,
                    String::from_utf8_lossy(&body).into_owned(),
                )
            }

            pub(super) async fn post_json(
                &self,
                url: &str,
                key: &str,
                body: &str,
            ) -> (u16, http::HeaderMap, String) {
                let req = http::Request::post(url)
                    .header("content-type", "application/json")
                    .header("authorization", key)
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap();
                self.send(req).await
            }

            pub(super) async fn get(&self, url: &str) -> (u16, http::HeaderMap, String) {
                let req = http::Request::get(url)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                self.send(req).await
            }
        }
    }
}
