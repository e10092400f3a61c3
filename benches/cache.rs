//! Criterion benches of the cache layer, each group next to a baseline and a peer.
//!
//! Groups: `hit`, `miss`, `key`, `stream_replay`, `single_flight`. See BENCHMARKS.md.

#![allow(missing_docs, unreachable_pub)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tower::{Service, ServiceExt, service_fn};

use support::{AUTHORIZATION, chat_request, chat_response, rt};

const HIT_SIZES: [usize; 2] = [2 * 1024, 32 * 1024];
const RESPONSE_SIZE: usize = 4 * 1024;

fn chat_post(body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, AUTHORIZATION)
        .body(Full::new(body))
        .unwrap()
}

/// The bare inner service: answers every request with the 4 KiB completion and
/// counts its calls.
fn inner_json(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let response = chat_response(RESPONSE_SIZE);
    service_fn(move |_req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let response = response.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "public, max-age=3600")
                    .body(Full::new(response))
                    .unwrap(),
            )
        }
    })
}

async fn drain<B>(res: Response<B>) -> Bytes
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    res.into_body().collect().await.unwrap().to_bytes()
}

fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit");
    for size in HIT_SIZES {
        let body = chat_request(size, 0);
        let label = format!("{}KiB", size / 1024);

        // (a) baseline: the bare inner service, one oneshot per request.
        let calls = Arc::new(AtomicUsize::new(0));
        let bare = inner_json(calls.clone());
        group.bench_function(BenchmarkId::new("bare_service_fn", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (bare.clone(), chat_post(body.clone())),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });

        // (c) peer: http-cache-tower + moka on a GET hit (it cannot key on a POST body).
        let calls = Arc::new(AtomicUsize::new(0));
        let peer = tower::ServiceBuilder::new()
            .layer(http_cache_tower::HttpCacheLayer::new(
                http_cache::MokaManager::default(),
            ))
            .service(inner_json(calls.clone()));
        let get = || {
            Request::builder()
                .method("GET")
                .uri("http://127.0.0.1/v1/models/mistral-large-latest")
                .header(header::AUTHORIZATION, AUTHORIZATION)
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        rt().block_on(async {
            for _ in 0..2 {
                let res = peer.clone().oneshot(get()).await.unwrap();
                assert_eq!(drain(res).await.len(), RESPONSE_SIZE);
            }
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1, "peer did not cache");
        group.bench_function(BenchmarkId::new("http_cache_tower_get", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (peer.clone(), get()),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1, "peer bench was not all hits");
    }
    group.finish();
}

fn key(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    for kib in [1usize, 2, 8, 32, 128] {
        let body = chat_request(kib * 1024, 0);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let label = format!("{kib}KiB");
        group.bench_with_input(BenchmarkId::new("sha256_floor", &label), &body, |b, body| {
            b.iter(|| Sha256::digest(body))
        });
        group.bench_with_input(
            BenchmarkId::new("serde_value_sort_sha256", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    // The naive approach: parse to a Value (serde_json's map is a
                    // BTreeMap, so keys come out sorted), re-serialize, hash.
                    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                    Sha256::digest(serde_json::to_vec(&v).unwrap())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, hit, key);
criterion_main!(benches);
