//! Criterion benches of the cache layer, each group next to a baseline and a peer, so
//! the report reads as ratios.
//!
//! Groups: `hit`, `miss`, `key`, `stream_replay`, `single_flight` (see BENCHMARKS.md).
//! Every group runs on one shared current-thread tokio runtime; requests, engines and
//! warm-up happen outside the timed region, and every "hit" bench checks afterwards
//! that its inner service was called exactly once (the warm-up), so every measured
//! request really was a hit.
//!
//! ```text
//! cargo bench --all-features --bench cache -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(missing_docs, unreachable_pub)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use futures_util::future::join_all;
use http::{Request, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use mistral_tower::cache::{
    CacheLayer, DefaultKeyFn, KeyFn, KeyInput, MemoryEngine, engine_from_url,
};
use sha2::{Digest, Sha256};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use support::{
    AUTHORIZATION, chat_post, chat_request, chat_response, json_response, rt, sse_events,
};

/// Request sizes of the `hit` group (2 and 32 KiB are the targets; the others draw the curve).
const HIT_SIZES: [usize; 4] = [2 * 1024, 8 * 1024, 32 * 1024, 128 * 1024];
const MISS_SIZES: [usize; 2] = [2 * 1024, 32 * 1024];
const KEY_SIZES_KIB: [usize; 5] = [1, 2, 8, 32, 128];
const RESPONSE_SIZE: usize = 4 * 1024;
const MEMORY_BUDGET: u64 = 256 * 1024 * 1024;

/// A fresh request body per call (for misses): `salt` makes every key distinct.
fn unique_body(size: usize) -> Bytes {
    static SALT: AtomicU64 = AtomicU64::new(1);
    chat_request(size, SALT.fetch_add(1, Ordering::Relaxed))
}

/// The inner service: answers every request with the 4 KiB completion (with
/// cacheable headers, for the HTTP-semantics peer) and counts its calls.
fn inner_json<B>(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ 'static {
    let response = chat_response(RESPONSE_SIZE);
    service_fn(move |_req: Request<B>| {
        calls.fetch_add(1, Ordering::Relaxed);
        // A fresh buffer per answer, as a network client reads one: a cache keeping
        // the body alive keeps its own copy of it, not one buffer shared by all.
        let response = Bytes::copy_from_slice(&response);
        async move { Ok::<_, Infallible>(json_response(response)) }
    })
}

type EventStream = StreamBody<
    futures_util::stream::Map<
        futures_util::stream::Iter<std::ops::Range<usize>>,
        Box<dyn FnMut(usize) -> Result<Frame<Bytes>, Infallible> + Send>,
    >,
>;

/// An inner service answering with a streamed completion: `events` SSE frames,
/// produced lazily from a shared list (so the inner's own cost stays small).
fn inner_sse<B>(
    calls: Arc<AtomicUsize>,
    events: usize,
) -> impl Service<Request<B>, Response = Response<EventStream>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ 'static {
    let frames: Arc<[Bytes]> = sse_events(events).into();
    service_fn(move |_req: Request<B>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let frames = frames.clone();
        let next: Box<dyn FnMut(usize) -> Result<Frame<Bytes>, Infallible> + Send> =
            Box::new(move |i| Ok(Frame::data(frames[i].clone())));
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(StreamBody::new(
                        futures_util::stream::iter(0..events).map(next),
                    ))
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

fn x_cache<B>(res: &Response<B>) -> String {
    res.headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Sends `req()` through `svc` until the answer is a cache hit (the store may finish
/// on a spawned task after the first answer), and returns the inner call count then,
/// which must not change while the hit bench runs.
fn warm<S, B>(svc: &S, req: impl Fn() -> Request<Full<Bytes>>, calls: &AtomicUsize) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    rt().block_on(async {
        for _ in 0..100 {
            let res = svc.clone().oneshot(req()).await.unwrap();
            let hit = x_cache(&res).to_ascii_uppercase().contains("HIT");
            assert_eq!(drain(res).await.len(), RESPONSE_SIZE);
            if hit {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no cache hit after 100 requests");
    });
    calls.load(Ordering::Relaxed)
}

/// The floor of a hit: the body's SHA-256 as the key, one moka read (with the memory
/// engine's hasher), the stored answer sent back with `x-cache: HIT`.
fn floor_service(
    body: &Bytes,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
+ Clone
+ 'static {
    let cache: moka::sync::Cache<[u8; 32], Bytes, ahash::RandomState> =
        moka::sync::Cache::builder()
            .max_capacity(1000)
            .build_with_hasher(ahash::RandomState::new());
    cache.insert(Sha256::digest(body).into(), chat_response(RESPONSE_SIZE));
    service_fn(move |req: Request<Full<Bytes>>| {
        let cache = cache.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let key: [u8; 32] = Sha256::digest(&body).into();
            let data = cache.get(&key).expect("the floor's entry");
            let res = Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-cache", "HIT")
                .body(Full::new(data))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    })
}

fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit");
    let file_dir = tempfile::tempdir().unwrap();
    for size in HIT_SIZES {
        let body = chat_request(size, 0);
        let label = format!("{}KiB", size / 1024);
        let post = || chat_post(body.clone());

        // (a) baseline: the bare inner service, one oneshot per request.
        let calls = Arc::new(AtomicUsize::new(0));
        let bare = inner_json(calls.clone());
        group.bench_function(BenchmarkId::new("bare_service_fn", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (bare.clone(), post()),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });

        // (b) the crate: CacheLayer + MemoryEngine, POST hit keyed on the body.
        let calls = Arc::new(AtomicUsize::new(0));
        let memory = ServiceBuilder::new()
            .layer(CacheLayer::new(MemoryEngine::new(MEMORY_BUDGET)))
            .service(inner_json(calls.clone()));
        let warmed = warm(&memory, post, &calls);
        group.bench_function(BenchmarkId::new("cache_layer_memory", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (memory.clone(), post()),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(
            calls.load(Ordering::Relaxed),
            warmed,
            "memory bench was not all hits"
        );

        // (b') the same without the index of byte-identical repeats: every hit
        // canonicalizes its body.
        let calls = Arc::new(AtomicUsize::new(0));
        let canonical = ServiceBuilder::new()
            .layer(CacheLayer::new(MemoryEngine::new(MEMORY_BUDGET)).raw_key_index(0))
            .service(inner_json(calls.clone()));
        let warmed = warm(&canonical, post, &calls);
        group.bench_function(
            BenchmarkId::new("cache_layer_memory_no_raw_index", &label),
            |b| {
                b.to_async(rt()).iter_batched(
                    || (canonical.clone(), post()),
                    |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                    BatchSize::SmallInput,
                )
            },
        );
        assert_eq!(
            calls.load(Ordering::Relaxed),
            warmed,
            "no-index bench was not all hits"
        );

        // (e) floor: a hand-written hit: SHA-256 of the raw body, a moka lookup (the
        // memory engine's map and hasher), the stored answer as the response.
        let floor = floor_service(&body);
        group.bench_function(BenchmarkId::new("floor_sha256_moka", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (floor.clone(), post()),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });

        // (c) peer: http-cache-tower + moka on a GET hit (it cannot key on a POST body).
        let calls = Arc::new(AtomicUsize::new(0));
        let peer = ServiceBuilder::new()
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
        let warmed = warm(&peer, get, &calls);
        group.bench_function(BenchmarkId::new("http_cache_tower_get", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (peer.clone(), get()),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(
            calls.load(Ordering::Relaxed),
            warmed,
            "peer bench was not all hits"
        );

        // (d) the crate: CacheLayer + the engine `file://` builds (the proxy's default:
        // FileEngine with its hot tier), and (e) at 2 KiB the same without the hot tier
        // (every hit reads its file on the blocking pool; warm page cache).
        let variants: &[(&str, &str)] = if size == 2 * 1024 {
            &[
                ("cache_layer_file", ""),
                ("cache_layer_file_no_hot", "?hot_bytes=0"),
            ]
        } else {
            &[("cache_layer_file", "")]
        };
        for &(name, query) in variants {
            let dir = file_dir.path().join(format!("{name}-{size}"));
            let url = format!("file://{}{query}", dir.display());
            let engine = rt().block_on(engine_from_url(&url)).unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let file = ServiceBuilder::new()
                .layer(CacheLayer::new(engine))
                .service(inner_json(calls.clone()));
            let warmed = warm(&file, post, &calls);
            group.bench_function(BenchmarkId::new(name, &label), |b| {
                b.to_async(rt()).iter_batched(
                    || (file.clone(), post()),
                    |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                    BatchSize::SmallInput,
                )
            });
            assert_eq!(
                calls.load(Ordering::Relaxed),
                warmed,
                "{name} bench was not all hits"
            );
        }
    }
    group.finish();
}

/// The budget of the memory engine of the `miss` group (filled before measuring).
const MISS_BUDGET: u64 = 32 * 1024 * 1024;

/// Sends distinct requests through `svc` until `engine` is at its byte budget.
fn fill<S, B>(svc: &S, engine: &MemoryEngine, size: usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    rt().block_on(async {
        let mut n = 0u64;
        loop {
            for _ in 0..256 {
                drain(
                    svc.clone()
                        .oneshot(chat_post(unique_body(size)))
                        .await
                        .unwrap(),
                )
                .await;
            }
            n += 256;
            // Full once within 64 KiB of the budget.
            if engine.weighted_size() + 64 * 1024 >= engine.max_bytes() || n > 1 << 20 {
                break;
            }
        }
    });
}

fn miss(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss");
    for size in MISS_SIZES {
        let label = format!("{}KiB", size / 1024);

        let calls = Arc::new(AtomicUsize::new(0));
        let bare = inner_json(calls.clone());
        group.bench_function(BenchmarkId::new("bare_service_fn", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (bare.clone(), chat_post(unique_body(size))),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });

        // Every request has a new body, so every one is a miss: buffer, key, lookup,
        // call, tee the 4 KiB answer and store it into the memory engine. The engine is
        // filled to its budget first, so every measured store also evicts (the steady
        // state of a busy cache, not the page faults of a heap growing from empty).
        let calls = Arc::new(AtomicUsize::new(0));
        let engine = MemoryEngine::new(MISS_BUDGET);
        let layer = CacheLayer::new(engine.clone());
        let memory = ServiceBuilder::new()
            .layer(layer.clone())
            .service(inner_json(calls.clone()));
        fill(&memory, &engine, size);
        group.bench_function(BenchmarkId::new("cache_layer_memory", &label), |b| {
            b.to_async(rt()).iter_batched(
                || (memory.clone(), chat_post(unique_body(size))),
                |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
                BatchSize::SmallInput,
            )
        });
        let m = layer.metrics();
        assert_eq!(m.hits, 0, "miss bench hit the cache");
        assert_eq!(m.misses as usize, calls.load(Ordering::Relaxed));
    }

    // Time to the first frame of a streamed (SSE) miss: the tee must not delay it.
    let sse_label = "sse_first_frame";
    let calls = Arc::new(AtomicUsize::new(0));
    let bare = inner_sse(calls.clone(), 1000);
    group.bench_function(BenchmarkId::new("bare_service_fn", sse_label), |b| {
        b.to_async(rt()).iter_batched(
            || (bare.clone(), chat_post(unique_body(2048))),
            |(svc, req)| async move {
                let mut body = svc.oneshot(req).await.unwrap().into_body();
                body.frame().await.unwrap().unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let memory = ServiceBuilder::new()
        .layer(CacheLayer::new(MemoryEngine::new(MEMORY_BUDGET)))
        .service(inner_sse(calls.clone(), 1000));
    group.bench_function(BenchmarkId::new("cache_layer_memory", sse_label), |b| {
        b.to_async(rt()).iter_batched(
            || (memory.clone(), chat_post(unique_body(2048))),
            |(svc, req)| async move {
                let mut body = svc.oneshot(req).await.unwrap().into_body();
                body.frame().await.unwrap().unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn key(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    let req = chat_post(Bytes::new());
    let (parts, _) = req.into_parts();
    for kib in KEY_SIZES_KIB {
        let body = chat_request(kib * 1024, 0);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let label = format!("{kib}KiB");
        group.bench_with_input(
            BenchmarkId::new("sha256_floor", &label),
            &body,
            |b, body| b.iter(|| Sha256::digest(body)),
        );
        group.bench_with_input(
            BenchmarkId::new("default_key_fn", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    DefaultKeyFn.key(&KeyInput {
                        method: &parts.method,
                        uri: &parts.uri,
                        headers: &parts.headers,
                        body,
                        namespace: "",
                        tenant: AUTHORIZATION.as_bytes(),
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("serde_value_sha256", &label),
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

fn stream_replay(c: &mut Criterion) {
    const EVENTS: usize = 1000;
    let mut group = c.benchmark_group("stream_replay");
    let total: usize = sse_events(EVENTS).iter().map(Bytes::len).sum();
    group.throughput(Throughput::Bytes(total as u64));
    let body = chat_request(2048, 0);
    let post = || chat_post(body.clone());

    // Baseline: the inner service producing the same frames from memory.
    let calls = Arc::new(AtomicUsize::new(0));
    let bare = inner_sse(calls.clone(), EVENTS);
    group.bench_function(BenchmarkId::new("bare_service_fn", "1000_events"), |b| {
        b.to_async(rt()).iter_batched(
            || (bare.clone(), post()),
            |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
            BatchSize::SmallInput,
        )
    });

    let calls = Arc::new(AtomicUsize::new(0));
    let memory = ServiceBuilder::new()
        .layer(CacheLayer::new(MemoryEngine::new(MEMORY_BUDGET)))
        .service(inner_sse(calls.clone(), EVENTS));
    rt().block_on(async {
        let first = drain(memory.clone().oneshot(post()).await.unwrap()).await;
        assert_eq!(first.len(), total);
        // The store may finish on a spawned task: wait until the entry is served.
        let mut res = memory.clone().oneshot(post()).await.unwrap();
        for _ in 0..100 {
            if x_cache(&res) == "HIT" {
                break;
            }
            drain(res).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            res = memory.clone().oneshot(post()).await.unwrap();
        }
        assert_eq!(x_cache(&res), "HIT");
        // The replay keeps the event boundaries: one frame per stored event.
        let mut body = res.into_body();
        let mut frames = 0;
        while let Some(f) = body.frame().await {
            if f.unwrap().is_data() {
                frames += 1;
            }
        }
        assert_eq!(frames, EVENTS);
    });
    let warmed = calls.load(Ordering::Relaxed);
    group.bench_function(BenchmarkId::new("cache_layer_memory", "1000_events"), |b| {
        b.to_async(rt()).iter_batched(
            || (memory.clone(), post()),
            |(svc, req)| async move { drain(svc.oneshot(req).await.unwrap()).await },
            BatchSize::SmallInput,
        )
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        warmed,
        "replay bench was not all hits"
    );
    group.finish();
}

fn single_flight(c: &mut Criterion) {
    const N: usize = 64;
    let mut group = c.benchmark_group("single_flight");
    group.throughput(Throughput::Elements(N as u64));

    // The inner yields once before answering, as a real upstream would, so the 63
    // followers arrive while the leader's call is in flight.
    fn slow_inner<B: Send + 'static>(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<B>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let inner = inner_json(calls);
        service_fn(move |req: Request<B>| {
            let fut = inner.clone().oneshot(req);
            async move {
                tokio::task::yield_now().await;
                fut.await
            }
        })
    }

    let calls = Arc::new(AtomicUsize::new(0));
    let bare = slow_inner(calls.clone());
    group.bench_function(BenchmarkId::new("bare_service_fn", "64_identical"), |b| {
        b.to_async(rt()).iter_batched(
            || {
                let body = unique_body(2048);
                (0..N)
                    .map(|_| (bare.clone(), chat_post(body.clone())))
                    .collect::<Vec<_>>()
            },
            |reqs| async move {
                join_all(
                    reqs.into_iter().map(|(svc, req)| async move {
                        drain(svc.oneshot(req).await.unwrap()).await
                    }),
                )
                .await
            },
            BatchSize::SmallInput,
        )
    });

    let calls = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(AtomicUsize::new(0));
    let memory = ServiceBuilder::new()
        .layer(CacheLayer::new(MemoryEngine::new(MEMORY_BUDGET)))
        .service(slow_inner(calls.clone()));
    group.bench_function(
        BenchmarkId::new("cache_layer_memory", "64_identical"),
        |b| {
            b.to_async(rt()).iter_batched(
                || {
                    batches.fetch_add(1, Ordering::Relaxed);
                    let body = unique_body(2048);
                    (0..N)
                        .map(|_| (memory.clone(), chat_post(body.clone())))
                        .collect::<Vec<_>>()
                },
                |reqs| async move {
                    join_all(reqs.into_iter().map(|(svc, req)| async move {
                        drain(svc.oneshot(req).await.unwrap()).await
                    }))
                    .await
                },
                BatchSize::SmallInput,
            )
        },
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed),
        "64 identical misses must make exactly one inner call"
    );
    group.finish();
}

criterion_group!(benches, hit, miss, key, stream_replay, single_flight);
criterion_main!(benches);
