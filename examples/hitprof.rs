//! A profiling harness for the cache-hit path (for callgrind / dhat, not a benchmark).
//!
//! ```text
//! cargo build --release --example hitprof --all-features
//! valgrind --tool=callgrind --toggle-collect='*hitprof::one_*' \
//!     target/release/examples/hitprof layer 2048 10000
//! valgrind --tool=dhat target/release/examples/hitprof layer 2048 10000
//! ```
//!
//! Modes (first argument), each running `N` iterations on a `SIZE`-byte chat request:
//! - `layer`: a hit through `CacheLayer` + `MemoryEngine` (request in, body collected),
//!   a byte-identical repeat (its key comes from the index of such repeats);
//!   `layernoindex`: the same with that index off (every hit canonicalizes the body);
//! - `floor`: the hand-written floor: SHA-256 of the body, a moka get, the response built
//!   and its body collected;
//! - `key`: the default key derivation alone; `sha`: plain SHA-256 of the body;
//! - `base`: building and dropping the request only (the setup cost the other modes
//!   include in their allocation counts);
//! - `miss`: a miss through `CacheLayer` + `MemoryEngine` (a new body every iteration:
//!   buffer, key, lookup, single-flight registration, inner call, tee of the 4 KiB answer,
//!   entry encoding and store), body collected; `missbare`: the same requests through the
//!   bare inner service; `missbase`: building (before the loop) and dropping the same
//!   requests only. Subtract `missbase` from `miss` in dhat's totals for the per-request
//!   allocations of the layer.
//!
//! Every iteration runs in `one_*` functions marked `#[inline(never)]`, so callgrind's
//! `--toggle-collect` counts only the measured work; the futures are polled with a no-op
//! waker (a memory hit never waits), so no runtime is in the measured region.

#![allow(missing_docs)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use mistral_tower::cache::{CacheLayer, DefaultKeyFn, KeyFn, KeyInput, MemoryEngine};
use sha2::{Digest, Sha256};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the measured future is not ready on its first poll"),
    }
}

#[inline(never)]
fn one_layer<S, B>(svc: &S, req: Request<Full<Bytes>>) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    now(async {
        let res = svc.clone().oneshot(req).await.unwrap();
        debug_assert_eq!(res.headers()["x-cache"], "HIT");
        res.into_body().collect().await.unwrap().to_bytes().len()
    })
}

#[inline(never)]
fn one_miss<S, Q, B>(svc: &S, req: Request<Q>) -> usize
where
    S: Service<Request<Q>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    now(async {
        let res = svc.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap().to_bytes().len()
    })
}

/// The inner service of the miss modes: the 4 KiB completion with cacheable headers
/// (as in the `miss` bench), counting its calls.
fn miss_inner(
    calls: Arc<AtomicUsize>,
    response: Bytes,
) -> impl Service<
    Request<mistral_tower::cache::RequestBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(
        move |_req: Request<mistral_tower::cache::RequestBody<Full<Bytes>>>| {
            calls.fetch_add(1, Ordering::Relaxed);
            let r = response.clone();
            async move { Ok::<_, Infallible>(support::json_response(r)) }
        },
    )
}

/// `n` requests with distinct bodies of about `size` bytes (built before the loop).
fn miss_requests(size: usize, n: usize) -> Vec<Request<Full<Bytes>>> {
    (0..n)
        .map(|i| support::chat_post(support::chat_request(size, i as u64 + 1)))
        .collect()
}

#[inline(never)]
fn one_floor(
    cache: &moka::sync::Cache<[u8; 32], Bytes, ahash::RandomState>,
    req: Request<Full<Bytes>>,
) -> usize {
    now(async {
        let (_parts, body) = req.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let key: [u8; 32] = Sha256::digest(&body).into();
        let data = cache.get(&key).unwrap();
        let mut res = Response::new(Full::new(data));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert("x-cache", HeaderValue::from_static("HIT"));
        res.into_body().collect().await.unwrap().to_bytes().len()
    })
}

#[inline(never)]
fn one_key(parts: &http::request::Parts, body: &[u8]) -> String {
    DefaultKeyFn.key(&KeyInput {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body,
        namespace: "",
        tenant: support::AUTHORIZATION.as_bytes(),
    })
}

#[inline(never)]
fn one_sha(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

fn report(mode: &str, start: std::time::Instant, n: usize) {
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("{mode}: {ns:.0} ns/iter (wall clock, includes building the request)");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("layer", String::as_str);
    let size: usize = args.get(2).map_or(2048, |s| s.parse().unwrap());
    let n: usize = args.get(3).map_or(10_000, |s| s.parse().unwrap());
    let body = match std::env::var("HITPROF_BODY") {
        Ok(path) => Bytes::from(std::fs::read(path).unwrap()),
        Err(_) => support::chat_request(size, 0),
    };
    let response = support::chat_response(4096);
    let mut sink = 0usize;
    let start = std::time::Instant::now();
    match mode {
        "layer" | "layernoindex" => {
            let calls = Arc::new(AtomicUsize::new(0));
            let c2 = calls.clone();
            // No `Cache-Control` here (unlike `support::json_response`): the hit
            // figures in BENCHMARKS.md were measured with this answer.
            let inner = service_fn(move |_req: Request<_>| {
                c2.fetch_add(1, Ordering::Relaxed);
                let r = response.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(Full::new(r))
                            .unwrap(),
                    )
                }
            });
            let mut layer = CacheLayer::new(MemoryEngine::new(256 << 20));
            if mode == "layernoindex" {
                layer = layer.raw_key_index(0);
            }
            let svc = ServiceBuilder::new().layer(layer).service(inner);
            // Warm up: a miss, then a hit that enters the request in the index of
            // byte-identical repeats (the store of a memory engine finishes inline).
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    for _ in 0..2 {
                        let res = svc
                            .clone()
                            .oneshot(support::chat_post(body.clone()))
                            .await
                            .unwrap();
                        res.into_body().collect().await.unwrap();
                    }
                });
            let start = std::time::Instant::now();
            for _ in 0..n {
                sink += one_layer(&svc, support::chat_post(body.clone()));
            }
            assert_eq!(calls.load(Ordering::Relaxed), 1, "not all hits");
            report(mode, start, n);
        }
        "miss" | "missbare" | "missbase" => {
            let reqs = miss_requests(size, n);
            let calls = Arc::new(AtomicUsize::new(0));
            let inner = miss_inner(calls.clone(), response);
            let layer = CacheLayer::new(MemoryEngine::new(256 << 20));
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(inner.clone());
            let start = std::time::Instant::now();
            match mode {
                "miss" => {
                    for req in reqs {
                        sink += one_miss(&svc, req);
                    }
                    let m = layer.metrics();
                    assert_eq!((m.misses, m.stores), (n as u64, n as u64), "{m:?}");
                }
                "missbare" => {
                    for req in reqs {
                        let (parts, body) = req.into_parts();
                        let req = Request::from_parts(
                            parts,
                            mistral_tower::cache::RequestBody::full(
                                now(body.collect()).unwrap().to_bytes(),
                            ),
                        );
                        sink += one_miss(&inner, req);
                    }
                }
                _ => sink += black_box(reqs).len(),
            }
            report(mode, start, n);
        }
        "floor" => {
            // The memory engine's map and hasher.
            let cache = moka::sync::Cache::builder()
                .max_capacity(1000)
                .build_with_hasher(ahash::RandomState::new());
            cache.insert(Sha256::digest(&body).into(), response);
            for _ in 0..n {
                sink += one_floor(&cache, support::chat_post(body.clone()));
            }
        }
        "key" => {
            let (parts, _) = support::chat_post(Bytes::new()).into_parts();
            for _ in 0..n {
                sink += one_key(&parts, black_box(&body)).len();
            }
        }
        "sha" => {
            for _ in 0..n {
                sink += one_sha(black_box(&body))[0] as usize;
            }
        }
        "base" => {
            for _ in 0..n {
                sink += black_box(support::chat_post(body.clone())).headers().len();
            }
        }
        other => panic!("unknown mode {other}"),
    }
    if !matches!(
        mode,
        "layer" | "layernoindex" | "miss" | "missbare" | "missbase"
    ) {
        report(mode, start, n);
    }
    println!("{mode} size={} n={n} sink={sink}", body.len());
}
