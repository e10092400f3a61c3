//! The `CacheLayer` over every engine: chat completions and streamed chat
//! completions served from cache, and fail-open when the backend goes away.
//!
//! Shared engines need the variables described in `tests/engines.rs`
//! (`REDIS_URL`, `REDIS_CLUSTER_URL`, `DATABASE_URL`, `MISTRAL_TOWER_S3_URL`);
//! the Redis fault test starts its own `redis-server` on a free port.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mistral_tower::Body;
use mistral_tower::cache::{CacheEngine, CacheLayer, FileEngine, MemoryEngine, TieredEngine};
use support::engine_suite::unique;
use tower::{Layer, Service, ServiceExt};

use mistral_tower::testing::fixtures::{CHAT_REQUEST, CHAT_RESPONSE, CHAT_STREAM};

/// Guards against hangs only; never an assertion on speed.
const GUARD: Duration = Duration::from_secs(120);

/// A fake Mistral upstream that counts its calls: JSON for plain requests, the
/// recorded SSE stream (one event per chunk) when the body asks for `"stream":true`.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service<ReqB>(
        &self,
    ) -> impl Service<Request<ReqB>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
    where
        ReqB: http_body::Body<Data = Bytes> + Send + 'static,
        ReqB::Error: std::fmt::Debug,
    {
        let calls = self.calls.clone();
        tower::service_fn(move |req: Request<ReqB>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let stream = std::str::from_utf8(&body)
                    .unwrap_or_default()
                    .replace(' ', "")
                    .contains("\"stream\":true");
                let resp = if stream {
                    let events: Vec<Result<http_body::Frame<Bytes>, Infallible>> = CHAT_STREAM
                        .split_inclusive("\n\n")
                        .map(|e| Ok(http_body::Frame::data(Bytes::copy_from_slice(e.as_bytes()))))
                        .collect();
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::new(http_body_util::StreamBody::new(
                            futures_util::stream::iter(events),
                        )))
                        .unwrap()
                } else {
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::full(Bytes::from_static(CHAT_RESPONSE.as_bytes())))
                        .unwrap()
                };
                Ok::<_, Infallible>(resp)
            }
        })
    }
}

fn chat_request(stream: bool, marker: &str) -> Request<Body> {
    let mut json: serde_json::Value = serde_json::from_str(CHAT_REQUEST).unwrap();
    json["stream"] = serde_json::Value::Bool(stream);
    // A distinct request per test run, so shared backends never serve an old run.
    json["metadata_marker"] = serde_json::Value::String(marker.to_owned());
    Request::builder()
        .method("POST")
        .uri("http://127.0.0.1/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer test-key")
        .body(Body::full(Bytes::from(serde_json::to_vec(&json).unwrap())))
        .unwrap()
}

/// Sends `req` and returns (status, x-cache, body).
async fn send<S, ResB>(svc: &S, req: Request<Body>) -> (StatusCode, String, Bytes)
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone,
    S::Error: std::fmt::Debug,
    ResB: http_body::Body<Data = Bytes>,
    ResB::Error: std::fmt::Debug,
{
    let resp = svc
        .clone()
        .oneshot(req)
        .await
        .expect("request through the layer");
    let status = resp.status();
    let x_cache = resp
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, x_cache, body)
}

/// Repeats `req()` until the answer is a HIT (the store may finish after the
/// response body ends); returns the hit's body.
#[cfg(feature = "redis")]
async fn until_hit<S, ResB>(svc: &S, req: impl Fn() -> Request<Body>) -> Bytes
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone,
    S::Error: std::fmt::Debug,
    ResB: http_body::Body<Data = Bytes>,
    ResB::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        let (status, x_cache, body) = send(svc, req()).await;
        assert_eq!(status, StatusCode::OK);
        if x_cache.eq_ignore_ascii_case("HIT") {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no cache HIT after 100 tries");
}

/// The layer over `engine` serves a chat completion and a streamed chat
/// completion from cache, byte-identical, without calling upstream again.
async fn serves_chat_and_stream_from_cache<E: CacheEngine>(name: &str, engine: E) {
    let upstream = Upstream::default();
    let layer = CacheLayer::new(engine);
    let svc = layer.layer(upstream.service());
    let marker = unique("layer");
    // The store finishes after the response body ends: wait for it through the
    // layer's counters (bounded), so every later request must be a hit.
    let stored = async |n: u64| {
        for _ in 0..200 {
            if layer.metrics().stores >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{name}: entry {n} was not stored (metrics: {:?})",
            layer.metrics()
        );
    };
    tokio::time::timeout(GUARD, async {
        // JSON
        let (status, x_cache, body) = send(&svc, chat_request(false, &marker)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            x_cache.eq_ignore_ascii_case("MISS"),
            "{name}: first request x-cache {x_cache}"
        );
        assert_eq!(body, CHAT_RESPONSE.as_bytes());
        assert_eq!(upstream.calls(), 1);
        stored(1).await;
        let (status, x_cache, hit) = send(&svc, chat_request(false, &marker)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            x_cache.eq_ignore_ascii_case("HIT"),
            "{name}: x-cache {x_cache}"
        );
        assert_eq!(hit, CHAT_RESPONSE.as_bytes(), "{name}: JSON hit differs");
        assert_eq!(upstream.calls(), 1, "{name}: a hit called upstream");

        // SSE
        let (status, _, body) = send(&svc, chat_request(true, &marker)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, CHAT_STREAM.as_bytes());
        assert_eq!(upstream.calls(), 2);
        stored(2).await;
        let (status, x_cache, hit) = send(&svc, chat_request(true, &marker)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            x_cache.eq_ignore_ascii_case("HIT"),
            "{name}: stream x-cache {x_cache}"
        );
        assert_eq!(
            hit,
            CHAT_STREAM.as_bytes(),
            "{name}: replayed stream differs"
        );
        assert_eq!(upstream.calls(), 2, "{name}: a stream hit called upstream");
    })
    .await
    .expect("test did not finish within its guard");
    println!("layer served chat and stream from cache: {name}");
}

#[tokio::test]
async fn layer_over_memory_engine() {
    serves_chat_and_stream_from_cache("memory", MemoryEngine::new(64 << 20)).await;
}

#[tokio::test]
async fn layer_over_file_engine() {
    let dir = tempfile::tempdir().unwrap();
    serves_chat_and_stream_from_cache("file", FileEngine::new(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn layer_over_tiered_memory_engines() {
    let e = TieredEngine::new(MemoryEngine::new(1 << 20), MemoryEngine::new(64 << 20));
    serves_chat_and_stream_from_cache("tiered", e).await;
}

#[cfg(feature = "redis")]
mod redis_layer {
    use super::*;
    use crate::support::engine_suite::{add_query, env_or_skip, reachable_or_skip};
    use mistral_tower::cache::RedisEngine;
    use mistral_tower::cache::engine_from_url;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};

    #[tokio::test]
    async fn layer_over_redis() {
        let Some(url) = env_or_skip("REDIS_URL") else {
            return;
        };
        let e = RedisEngine::new(&url)
            .unwrap()
            .with_prefix(format!("{}:", unique("layer_redis")))
            .with_timeout(Duration::from_secs(5));
        if !reachable_or_skip(&e, "Redis at REDIS_URL").await {
            return;
        }
        serves_chat_and_stream_from_cache("redis", e.clone()).await;
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn layer_over_redis_cluster() {
        let Some(url) = env_or_skip("REDIS_CLUSTER_URL") else {
            return;
        };
        let prefix = format!("{}:", unique("layer_cluster"));
        let e = engine_from_url(&add_query(
            &add_query(&url, "prefix", &prefix),
            "timeout",
            "5s",
        ))
        .await
        .unwrap();
        if !reachable_or_skip(&e, "Redis Cluster at REDIS_CLUSTER_URL").await {
            return;
        }
        serves_chat_and_stream_from_cache("redis cluster", e.clone()).await;
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn layer_over_tiered_memory_redis() {
        let Some(url) = env_or_skip("REDIS_URL") else {
            return;
        };
        let prefix = format!("{}:", unique("layer_tiered"));
        let e = engine_from_url(&format!(
            "tiered+{}",
            add_query(&add_query(&url, "prefix", &prefix), "timeout", "5s")
        ))
        .await
        .unwrap();
        if !reachable_or_skip(&e, "Redis at REDIS_URL").await {
            return;
        }
        serves_chat_and_stream_from_cache("tiered memory/redis", e.clone()).await;
        crate::support::engine_suite::clear(&e).await;
    }

    /// A `redis-server` owned by the test, killed on drop.
    struct OwnRedis {
        child: Child,
    }

    impl OwnRedis {
        fn start(port: u16, dir: &std::path::Path) -> std::io::Result<Self> {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            for _ in 0..200 {
                if TcpStream::connect(addr).is_ok() {
                    return Ok(OwnRedis { child });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(std::io::Error::other(
                "redis-server did not accept connections",
            ))
        }

        fn kill(mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn redis_server_available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[tokio::test]
    async fn redis_killed_mid_run_fails_open_then_caches_again_after_restart() {
        if !redis_server_available() {
            if crate::support::engine_suite::require_services() {
                panic!("redis-server not found, and MISTRAL_TOWER_REQUIRE_SERVICES=1");
            }
            println!("skipped: redis-server not found");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = OwnRedis::start(port, dir.path()).expect("start redis-server");
        let engine = RedisEngine::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let upstream = Upstream::default();
        let svc = CacheLayer::new(engine).layer(upstream.service());

        tokio::time::timeout(GUARD, async {
            // Cached while the server is up.
            let marker = unique("fault_before");
            let (status, _, _) = send(&svc, chat_request(false, &marker)).await;
            assert_eq!(status, StatusCode::OK);
            until_hit(&svc, || chat_request(false, &marker)).await;
            let calls_before = upstream.calls();

            // The server dies mid-run: every request still succeeds, from upstream.
            server.kill();
            for i in 0..10 {
                let (status, x_cache, body) = send(
                    &svc,
                    chat_request(i % 2 == 1, &format!("{marker}-down-{}", i / 2)),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "request {i} with Redis down");
                assert!(
                    !x_cache.eq_ignore_ascii_case("HIT"),
                    "request {i}: {x_cache}"
                );
                let expected = if i % 2 == 1 {
                    CHAT_STREAM
                } else {
                    CHAT_RESPONSE
                };
                assert_eq!(body, expected.as_bytes(), "request {i} body");
            }
            assert_eq!(
                upstream.calls(),
                calls_before + 10,
                "every request reached upstream"
            );
            // The cached entry is gone with the server, and that is a miss, not an error.
            let (status, _, body) = send(&svc, chat_request(false, &marker)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, CHAT_RESPONSE.as_bytes());

            // Back on the same port (empty): entries are cached again.
            let _server = OwnRedis::start(port, dir.path()).expect("restart redis-server");
            let marker = unique("fault_after");
            let mut cached = false;
            for _ in 0..100 {
                let (status, x_cache, _) = send(&svc, chat_request(false, &marker)).await;
                assert_eq!(status, StatusCode::OK);
                if x_cache.eq_ignore_ascii_case("HIT") {
                    cached = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(cached, "no HIT after Redis came back");
            let calls = upstream.calls();
            let hit = until_hit(&svc, || chat_request(false, &marker)).await;
            assert_eq!(hit, CHAT_RESPONSE.as_bytes());
            assert_eq!(upstream.calls(), calls);
        })
        .await
        .expect("test did not finish within its guard");
    }
}

#[cfg(feature = "postgres")]
mod postgres_layer {
    use super::*;
    use crate::support::engine_suite::{add_query, env_or_skip, reachable_or_skip};
    use mistral_tower::cache::engine_from_url;

    #[tokio::test]
    async fn layer_over_postgres() {
        let Some(url) = env_or_skip("DATABASE_URL") else {
            return;
        };
        let table = unique("layer_pg");
        let e = engine_from_url(&add_query(
            &add_query(&url, "table", &table),
            "timeout",
            "10s",
        ))
        .await
        .unwrap();
        if !reachable_or_skip(&e, "PostgreSQL at DATABASE_URL").await {
            return;
        }
        serves_chat_and_stream_from_cache("postgres", e).await;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn postgres_on_a_closed_port_fails_open_through_the_layer() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let engine = engine_from_url(&format!(
            "postgres://postgres@127.0.0.1:{port}/test?timeout=2s"
        ))
        .await
        .unwrap();
        let upstream = Upstream::default();
        let svc = CacheLayer::new(engine).layer(upstream.service());
        let marker = unique("pg_closed");
        tokio::time::timeout(GUARD, async {
            for i in 0..4 {
                let stream = i % 2 == 1;
                let (status, x_cache, body) = send(&svc, chat_request(stream, &marker)).await;
                assert_eq!(status, StatusCode::OK, "request {i}");
                assert!(
                    !x_cache.eq_ignore_ascii_case("HIT"),
                    "request {i}: {x_cache}"
                );
                let expected = if stream { CHAT_STREAM } else { CHAT_RESPONSE };
                assert_eq!(body, expected.as_bytes(), "request {i}");
            }
            assert_eq!(
                upstream.calls(),
                4,
                "nothing can be cached, everything reaches upstream"
            );
        })
        .await
        .expect("test did not finish within its guard");
    }
}

#[cfg(feature = "s3")]
mod object_store_layer {
    use super::*;
    use crate::support::engine_suite::{add_path, add_query, reachable_or_skip};
    use mistral_tower::cache::ObjectStoreEngine;
    use mistral_tower::cache::engine_from_url;

    #[tokio::test]
    async fn layer_over_object_store_in_memory() {
        let store = Arc::new(object_store::memory::InMemory::new());
        serves_chat_and_stream_from_cache(
            "object_store in-memory",
            ObjectStoreEngine::new(store, "c"),
        )
        .await;
    }

    #[tokio::test]
    async fn layer_over_s3() {
        let Some(url) = crate::support::engine_suite::s3_url_or_skip() else {
            return;
        };
        let url = add_query(&add_path(&url, &unique("layer_s3")), "timeout", "30s");
        let e = engine_from_url(&url).await.unwrap();
        if !reachable_or_skip(&e, "S3 at MISTRAL_TOWER_S3_URL").await {
            return;
        }
        serves_chat_and_stream_from_cache("s3", e.clone()).await;
        crate::support::engine_suite::clear(&e).await;
    }
}
