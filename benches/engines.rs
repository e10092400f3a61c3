//! Criterion benches of the cache engines: `get` and `set` of 4 KiB and 32 KiB values,
//! each next to the raw client call to the same server (a plain Redis `GET`, a plain
//! Postgres `SELECT`, a plain object-store `GET`), so the engine's own overhead shows.
//!
//! The memory and file engines always run, and so does `file_check` (Linux): what the file
//! engine's hot tier can check per hit that a file is unchanged.
//!
//! The server-backed engines run when their server is configured and reachable, and
//! otherwise print one `skipped: ...` line: `REDIS_URL` (e.g. `redis://127.0.0.1:6379`),
//! `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`) and `MISTRAL_TOWER_S3_URL`
//! (e.g. `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true`,
//! credentials from `AWS_*`).
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --all-features --bench engines
//! ```

#![allow(missing_docs, unreachable_pub)]

mod support;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use mistral_tower::cache::{CacheEngine, FileEngine, MemoryEngine};

use support::{chat_response, rt};

const SIZES: [usize; 2] = [4 * 1024, 32 * 1024];
/// A key in the layer's format (64 lowercase hex characters).
const KEY: &str = "6c0d3c2b7f1e4a5d9e8f00112233445566778899aabbccddeeff001122334455";

fn label(size: usize) -> String {
    format!("{}KiB", size / 1024)
}

/// Benches `engine.get` and `engine.set` for every size under `name`.
fn bench_engine<E: CacheEngine>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, engine: &E) {
    for size in SIZES {
        let value = chat_response(size);
        let key = format!("{KEY}-{size}");
        rt().block_on(engine.set(&key, value.clone()))
            .expect("engine set");
        assert_eq!(rt().block_on(engine.get(&key)).expect("engine get"), value);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new(format!("{name}/get"), label(size)), |b| {
            b.to_async(rt())
                .iter(|| async { engine.get(&key).await.unwrap() })
        });
        group.bench_function(BenchmarkId::new(format!("{name}/set"), label(size)), |b| {
            b.to_async(rt())
                .iter(|| async { engine.set(&key, value.clone()).await.unwrap() })
        });
    }
}

/// Benches a raw client `get`/`set` pair (the same operations without the engine).
fn bench_raw<G, GF, S, SF>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, get: G, set: S)
where
    G: Fn(String) -> GF,
    GF: Future<Output = Bytes>,
    S: Fn(String, Bytes) -> SF,
    SF: Future<Output = ()>,
{
    for size in SIZES {
        let value = chat_response(size);
        let key = format!("{KEY}-{size}");
        rt().block_on(set(key.clone(), value.clone()));
        assert_eq!(rt().block_on(get(key.clone())), value);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new(format!("{name}/get"), label(size)), |b| {
            b.to_async(rt()).iter(|| get(key.clone()))
        });
        group.bench_function(BenchmarkId::new(format!("{name}/set"), label(size)), |b| {
            b.to_async(rt()).iter(|| set(key.clone(), value.clone()))
        });
    }
}

fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            println!("skipped: {var} not set");
            None
        }
    }
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("engines");
    let memory = MemoryEngine::new(256 * 1024 * 1024);
    bench_engine(&mut group, "memory", &memory);
    let dir = tempfile::tempdir().unwrap();
    // The engine `file://` builds (the proxy's default): a 64 MiB hot tier in front.
    let file = FileEngine::new(dir.path().join("hot"))
        .unwrap()
        .with_hot_tier(64 << 20);
    bench_engine(&mut group, "file", &file);
    // Without the hot tier: every read and write on tokio's blocking pool.
    let no_hot = FileEngine::new(dir.path().join("no_hot")).unwrap();
    bench_engine(&mut group, "file_no_hot", &no_hot);
    // The floor of a direct read on the runtime thread (the alternative to a hot tier):
    // `std::fs::read` of the same file (open, fstat, read, close), no spawn_blocking.
    bench_raw(
        &mut group,
        "fs_read_inline",
        |key| {
            let path = no_hot.path_for(&key).unwrap();
            async move { Bytes::from(std::fs::read(path).unwrap()).slice(16..) }
        },
        |key, value| {
            let e = no_hot.clone();
            async move { e.set(&key, value).await.unwrap() }
        },
    );
    group.finish();
}

fn redis(c: &mut Criterion) {
    use mistral_tower::cache::RedisEngine;
    let Some(url) = env("REDIS_URL") else { return };
    let raw = rt().block_on(async {
        let client = redis::Client::open(url.as_str()).ok()?;
        tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager())
            .await
            .ok()?
            .ok()
    });
    let Some(raw) = raw else {
        println!("skipped: cannot reach Redis at REDIS_URL");
        return;
    };
    let mut group = c.benchmark_group("engines");
    let engine = RedisEngine::new(&url)
        .unwrap()
        .with_prefix("mistral-tower-bench:");
    bench_engine(&mut group, "redis", &engine);
    // The raw client: the same ConnectionManager type the engine uses, plain GET/SET.
    bench_raw(
        &mut group,
        "redis_raw",
        |key| {
            let mut conn = raw.clone();
            async move {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(format!("mistral-tower-bench-raw:{key}"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                Bytes::from(v)
            }
        },
        |key, value| {
            let mut conn = raw.clone();
            async move {
                let () = redis::cmd("SET")
                    .arg(format!("mistral-tower-bench-raw:{key}"))
                    .arg(value.as_ref())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        },
    );
    group.finish();
}

fn postgres(c: &mut Criterion) {
    use mistral_tower::cache::PostgresEngine;
    use std::sync::Arc;
    let Some(url) = env("DATABASE_URL") else {
        return;
    };
    const TABLE: &str = "mistral_tower_bench";
    let raw = rt().block_on(async {
        let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
        let (client, conn) = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .ok()?
            .ok()?;
        tokio::spawn(conn);
        Some(Arc::new(client))
    });
    let Some(raw) = raw else {
        println!("skipped: cannot reach Postgres at DATABASE_URL");
        return;
    };
    let engine = PostgresEngine::new(&url)
        .unwrap()
        .with_table(TABLE)
        .unwrap();
    rt().block_on(engine.create_table()).expect("create table");
    let mut group = c.benchmark_group("engines");
    bench_engine(&mut group, "postgres", &engine);
    // The raw client: one tokio-postgres connection, prepared statements equivalent to
    // the engine's (same table, same expiry check).
    let (get, set) = rt().block_on(async {
        let get = raw
            .prepare(&format!(
                "SELECT value FROM {TABLE} WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())"
            ))
            .await
            .unwrap();
        let set = raw
            .prepare(&format!(
                "INSERT INTO {TABLE} (key, value, expires_at, created_at) VALUES ($1, $2, NULL, now()) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                 expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at"
            ))
            .await
            .unwrap();
        (get, set)
    });
    bench_raw(
        &mut group,
        "postgres_raw",
        |key| {
            let (raw, get) = (raw.clone(), get.clone());
            async move {
                let row = raw.query_one(&get, &[&format!("raw-{key}")]).await.unwrap();
                Bytes::from(row.get::<_, Vec<u8>>(0))
            }
        },
        |key, value| {
            let (raw, set) = (raw.clone(), set.clone());
            async move {
                raw.execute(&set, &[&format!("raw-{key}"), &value.as_ref()])
                    .await
                    .unwrap();
            }
        },
    );
    group.finish();
}

fn s3(c: &mut Criterion) {
    use mistral_tower::cache::ObjectStoreEngine;
    use object_store::ObjectStore;
    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path;
    let Some(url) = env("MISTRAL_TOWER_S3_URL") else {
        return;
    };
    // s3://bucket/prefix?endpoint=...&region=...&allow_http=true
    let Some(rest) = url.strip_prefix("s3://") else {
        println!("skipped: MISTRAL_TOWER_S3_URL is not an s3:// URL");
        return;
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        builder = match k {
            "endpoint" => builder.with_endpoint(v),
            "region" => builder.with_region(v),
            "allow_http" => builder.with_allow_http(v == "true"),
            _ => builder,
        };
    }
    let prefix = format!("{}/bench", prefix.trim_matches('/'));
    let engine = ObjectStoreEngine::s3(builder, &prefix).unwrap();
    let store = engine.store().clone();
    let reachable = rt().block_on(async {
        let probe = engine.set("probe", Bytes::from_static(b"x"));
        matches!(
            tokio::time::timeout(Duration::from_secs(3), probe).await,
            Ok(Ok(()))
        )
    });
    if !reachable {
        println!("skipped: cannot reach S3 at MISTRAL_TOWER_S3_URL");
        return;
    }
    let mut group = c.benchmark_group("engines");
    bench_engine(&mut group, "s3", &engine);
    let raw_path = move |key: &str| Path::from(format!("{prefix}-raw/{key}"));
    bench_raw(
        &mut group,
        "s3_raw",
        |key| {
            let (store, path) = (store.clone(), raw_path(&key));
            async move { store.get(&path).await.unwrap().bytes().await.unwrap() }
        },
        |key, value| {
            let (store, path) = (store.clone(), raw_path(&key));
            async move {
                store.put(&path, value.into()).await.unwrap();
            }
        },
    );
    group.finish();
}

/// What the file engine's hot tier could check per hit that the file is still the version
/// it holds (it does the first): a `stat` of the entry's path, a `stat` of its name in an
/// open shard directory, an `fstat` of an open descriptor of the file (which sees a purge
/// or replacement only as a link count of 0), and a system call that does nothing.
#[cfg(target_os = "linux")]
fn file_check(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = FileEngine::new(dir.path()).unwrap();
    let key = format!("{:064x}", 0xfeed_u64);
    rt().block_on(engine.set(&key, chat_response(4096)))
        .unwrap();
    let path = engine.path_for(&key).unwrap();
    let shard = std::fs::File::open(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().to_owned();
    let file = std::fs::File::open(&path).unwrap();

    let mut group = c.benchmark_group("file_check");
    group.bench_function("stat_path", |b| {
        b.iter(|| std::fs::metadata(&path).unwrap().len())
    });
    group.bench_function("fstatat_shard_dir", |b| {
        b.iter(|| {
            rustix::fs::statat(&shard, name.as_os_str(), rustix::fs::AtFlags::empty())
                .unwrap()
                .st_size
        })
    });
    group.bench_function("fstat_open_file", |b| {
        b.iter(|| file.metadata().unwrap().len())
    });
    group.bench_function("syscall_getppid", |b| b.iter(rustix::process::getppid));
    group.finish();
}

#[cfg(not(target_os = "linux"))]
fn file_check(_: &mut Criterion) {}

criterion_group!(benches, local, file_check, redis, postgres, s3);
criterion_main!(benches);
