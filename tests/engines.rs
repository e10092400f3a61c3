//! The engine contract suite against every engine: in-process ones always, the
//! shared ones against real servers named by environment variables:
//!
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379`),
//! - `REDIS_CLUSTER_URL` (e.g. `redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103`),
//! - `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! - `MISTRAL_TOWER_S3_URL` (e.g. `s3://bucket/prefix?endpoint=http://127.0.0.1:7110&region=us-east-1&allow_http=true`,
//!   credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
//!
//! `bash .ci/services.sh start` starts them all and prints these variables.
//! An unset variable prints `skipped: VAR not set`, unless
//! `MISTRAL_TOWER_REQUIRE_SERVICES=1`, which turns it into a failure.

mod support;

use std::time::Duration;

use mistral_tower::cache::{FileEngine, MemoryEngine, TieredEngine, engine_from_url};
use support::engine_suite::{Caps, contract};

/// Guards against hangs only; never an assertion on speed.
const GUARD: Duration = Duration::from_secs(120);

async fn guarded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("test did not finish within its 120 s guard");
}

#[tokio::test]
async fn memory_engine_contract() {
    guarded(contract("memory", &MemoryEngine::new(64 << 20), Caps::ALL)).await;
}

#[tokio::test]
async fn file_engine_contract() {
    let dir = tempfile::tempdir().unwrap();
    let engine = FileEngine::new(dir.path().join("cache")).unwrap();
    guarded(contract("file", &engine, Caps::ALL)).await;
}

#[tokio::test]
async fn engines_from_memory_and_file_urls_pass_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}", dir.path().join("c").display());
    for url in ["memory://?max_bytes=67108864", file_url.as_str()] {
        let e = engine_from_url(url).await.unwrap();
        guarded(contract(url, &e, Caps::ALL)).await;
    }
}

#[tokio::test]
async fn tiered_memory_over_memory_contract() {
    let e = TieredEngine::new(MemoryEngine::new(16 << 20), MemoryEngine::new(64 << 20));
    guarded(contract("tiered memory/memory", &e, Caps::ALL)).await;
}

// ---------------------------------------------------------------------------
// Redis

#[cfg(feature = "redis")]
mod redis_engine {
    use super::*;
    use crate::support::engine_suite::{add_query, env_or_skip, reachable_or_skip, unique};
    use bytes::Bytes;
    use mistral_tower::cache::RedisEngine;
    use mistral_tower::cache::{CacheEngine, CacheError};

    fn redis_url() -> Option<String> {
        env_or_skip("REDIS_URL")
    }

    #[tokio::test]
    async fn redis_contract_via_url() {
        let Some(url) = redis_url() else { return };
        let prefix = format!("{}:", unique("redis"));
        let url = add_query(&add_query(&url, "prefix", &prefix), "timeout", "5s");
        let e = engine_from_url(&url).await.unwrap();
        if !reachable_or_skip(&e, "Redis at REDIS_URL").await {
            return;
        }
        guarded(contract("redis", &e, Caps::ALL)).await;
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn redis_stores_under_the_prefix_with_a_native_ttl() {
        let Some(url) = redis_url() else { return };
        let prefix = format!("{}:", unique("redis_native"));
        let e = RedisEngine::new(&url)
            .unwrap()
            .with_prefix(prefix.clone())
            .with_timeout(Duration::from_secs(5));
        if !reachable_or_skip(&e, "Redis at REDIS_URL").await {
            return;
        }
        e.set_with_ttl(
            "k",
            Bytes::from_static(b"v"),
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();
        e.set("forever", Bytes::from_static(b"v")).await.unwrap();
        // Look with a plain client: the key is prefixed and Redis holds the TTL.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let raw: Vec<u8> = redis::cmd("GET")
            .arg(format!("{prefix}k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(raw, b"v");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 600_000, "PTTL {pttl}");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}forever"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(pttl, -1, "set without TTL must not expire");
        // Another prefix does not see these keys.
        let other = e.clone().with_prefix(format!("{prefix}other:"));
        assert!(other.get("k").await.unwrap_err().is_miss());
        assert!(other.keys().await.unwrap().is_empty());
        assert_eq!(
            e.keys().await.unwrap(),
            vec!["forever".to_owned(), "k".to_owned()]
        );
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn redis_cluster_contract_via_url() {
        let Some(url) = env_or_skip("REDIS_CLUSTER_URL") else {
            return;
        };
        let prefix = format!("{}:", unique("cluster"));
        let url = add_query(&add_query(&url, "prefix", &prefix), "timeout", "5s");
        let e = engine_from_url(&url).await.unwrap();
        if !reachable_or_skip(&e, "Redis Cluster at REDIS_CLUSTER_URL").await {
            return;
        }
        guarded(contract("redis cluster", &e, Caps::ALL)).await;
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn redis_cluster_keys_come_from_every_master() {
        let Some(url) = env_or_skip("REDIS_CLUSTER_URL") else {
            return;
        };
        let prefix = format!("{}:", unique("cluster_keys"));
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
        // 60 keys land in slots owned by all three masters.
        let mut written: Vec<String> = (0..60).map(|i| format!("key-{i:02}")).collect();
        for k in &written {
            e.set(k, Bytes::from(k.clone())).await.unwrap();
        }
        let mut listed = e.keys().await.unwrap();
        written.sort();
        listed.sort();
        assert_eq!(listed, written);
        crate::support::engine_suite::clear(&e).await;
        assert!(e.keys().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn tiered_memory_over_redis_contract() {
        let Some(url) = redis_url() else { return };
        let l2 = RedisEngine::new(&url)
            .unwrap()
            .with_prefix(format!("{}:", unique("tiered")))
            .with_timeout(Duration::from_secs(5));
        if !reachable_or_skip(&l2, "Redis at REDIS_URL").await {
            return;
        }
        let e = TieredEngine::new(MemoryEngine::new(16 << 20), l2.clone());
        guarded(contract("tiered memory/redis", &e, Caps::ALL)).await;
        // A value written by another instance reaches this one through L2.
        l2.set("from-elsewhere", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(e.get("from-elsewhere").await.unwrap(), "x");
        assert_eq!(
            e.l1().get("from-elsewhere").await.unwrap(),
            "x",
            "L1 filled"
        );
        crate::support::engine_suite::clear(&l2).await;
    }

    #[tokio::test]
    async fn redis_url_with_wrong_password_is_an_error_per_operation() {
        let Some(url) = redis_url() else { return };
        // The machine's Redis has no password: AUTH with one fails.
        let Some(rest) = url.strip_prefix("redis://") else {
            println!("skipped: REDIS_URL is not a plain redis:// URL");
            return;
        };
        let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let e = engine_from_url(&format!("redis://nobody:wrong@{rest}"))
            .await
            .unwrap();
        assert!(!format!("{e:?}").contains("wrong"));
        let err = e.get("k").await.unwrap_err();
        assert!(
            matches!(err, CacheError::Backend(_) | CacheError::Timeout(_)),
            "{err:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL

#[cfg(feature = "postgres")]
mod postgres_engine {
    use super::*;
    use crate::support::engine_suite::{add_query, env_or_skip, reachable_or_skip, unique};
    use bytes::Bytes;
    use mistral_tower::cache::PostgresEngine;
    use mistral_tower::cache::{CacheEngine, CacheError};

    async fn raw_client(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect with tokio-postgres");
        tokio::spawn(conn);
        client
    }

    async fn drop_table(url: &str, table: &str) {
        let client = raw_client(url).await;
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn postgres_contract_via_url() {
        let Some(url) = env_or_skip("DATABASE_URL") else {
            return;
        };
        let table = unique("pg");
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
        guarded(contract("postgres", &e, Caps::ALL)).await;
        drop_table(&url, &table).await;
    }

    #[tokio::test]
    async fn postgres_ignores_expired_rows_and_the_sweeper_deletes_them() {
        let Some(url) = env_or_skip("DATABASE_URL") else {
            return;
        };
        let table = unique("pg_sweep");
        let e = PostgresEngine::new(&url)
            .unwrap()
            .with_table(&table)
            .unwrap()
            .with_timeout(Duration::from_secs(10));
        if !reachable_or_skip(&e, "PostgreSQL at DATABASE_URL").await {
            return;
        }
        let client = raw_client(&url).await;
        // Columns as documented.
        let cols: Vec<(String, String, String)> = client
            .query(
                "SELECT column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["key", "value", "expires_at", "created_at"]);
        assert_eq!(cols[1].1, "bytea");
        assert_eq!(cols[2].2, "YES");

        // A row that expired already: still in the table, but a miss.
        client
            .execute(
                &format!(
                    "INSERT INTO \"{table}\" (key, value, expires_at) \
                     VALUES ('old', '\\x00'::bytea, now() - interval '1 minute')"
                ),
                &[],
            )
            .await
            .unwrap();
        e.set_with_ttl(
            "fresh",
            Bytes::from_static(b"f"),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        e.set("forever", Bytes::from_static(b"p")).await.unwrap();
        assert!(e.get("old").await.unwrap_err().is_miss());
        assert_eq!(e.keys().await.unwrap(), ["forever", "fresh"]);

        let count_sql = format!("SELECT count(*) FROM \"{table}\"");
        let count = async || -> i64 { client.query_one(&count_sql, &[]).await.unwrap().get(0) };
        assert_eq!(count().await, 3);
        let sweeper = e.spawn_sweeper(Duration::from_millis(50));
        let mut swept = false;
        for _ in 0..200 {
            if count().await == 2 {
                swept = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(sweeper);
        assert!(swept, "the sweeper did not delete the expired row");
        assert_eq!(e.get("fresh").await.unwrap(), "f");
        assert_eq!(e.sweep_expired().await.unwrap(), 0);
        drop_table(&url, &table).await;
    }

    #[tokio::test]
    async fn postgres_on_a_closed_port_fails_per_operation() {
        // Building is lazy; each operation fails quickly with an error.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = engine_from_url(&format!(
            "postgres://postgres:secret@127.0.0.1:{port}/test?timeout=5s"
        ))
        .await
        .unwrap();
        assert!(!format!("{e:?}").contains("secret"));
        for r in [
            e.get("k").await.map(|_| ()),
            e.set("k", Bytes::from_static(b"v")).await,
            e.delete("k").await,
        ] {
            let err = r.unwrap_err();
            assert!(
                matches!(err, CacheError::Backend(_) | CacheError::Timeout(_)),
                "{err:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Object storage

#[cfg(feature = "s3")]
mod object_store_engine {
    use super::*;
    use crate::support::engine_suite::{add_path, add_query, reachable_or_skip, unique};
    use bytes::Bytes;
    use mistral_tower::cache::ObjectStoreEngine;
    use mistral_tower::cache::{BoxEngine, CacheEngine, CacheError};
    use object_store::ObjectStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn object_store_in_memory_contract() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let e = ObjectStoreEngine::new(store, "some/prefix");
        guarded(contract("object_store in-memory", &e, Caps::ALL)).await;
    }

    #[tokio::test]
    async fn object_store_local_filesystem_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let e = ObjectStoreEngine::new(store, "cache");
        guarded(contract("object_store local", &e, Caps::ALL)).await;
    }

    #[tokio::test]
    async fn s3_contract_via_url() {
        let Some(url) = support::engine_suite::s3_url_or_skip() else {
            return;
        };
        let url = add_query(&add_path(&url, &unique("s3")), "timeout", "30s");
        let e = engine_from_url(&url).await.unwrap();
        if !reachable_or_skip(&e, "S3 at MISTRAL_TOWER_S3_URL").await {
            return;
        }
        guarded(contract("s3", &e, Caps::ALL)).await;
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn s3_objects_carry_the_expiry_header() {
        let Some(url) = support::engine_suite::s3_url_or_skip() else {
            return;
        };
        let url = add_query(&add_path(&url, &unique("s3_header")), "timeout", "30s");
        let boxed: BoxEngine = engine_from_url(&url).await.unwrap();
        if !reachable_or_skip(&boxed, "S3 at MISTRAL_TOWER_S3_URL").await {
            return;
        }
        // Build the same engine typed, to reach the store underneath.
        let (bucket_and_prefix, query) = url["s3://".len()..].split_once('?').unwrap();
        let (bucket, prefix) = bucket_and_prefix.split_once('/').unwrap();
        let endpoint = query
            .split('&')
            .find_map(|p| p.strip_prefix("endpoint="))
            .unwrap();
        let e = ObjectStoreEngine::s3(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_endpoint(endpoint)
                .with_allow_http(true),
            prefix,
        )
        .unwrap();
        e.set_with_ttl(
            "k",
            Bytes::from_static(b"value"),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        let raw = e
            .store()
            .get(&object_store::path::Path::from(format!("{prefix}/k")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&raw[..4], b"MTC1");
        assert_eq!(&raw[12..], b"value");
        let expiry = u64::from_be_bytes(raw[4..12].try_into().unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            expiry > now && expiry <= now + 60_000,
            "expiry {expiry}, now {now}"
        );
        // An object some other program wrote is not served as a value.
        e.store()
            .put(
                &object_store::path::Path::from(format!("{prefix}/foreign")),
                Bytes::from_static(b"plain").into(),
            )
            .await
            .unwrap();
        assert!(matches!(
            e.get("foreign").await,
            Err(CacheError::Backend(_))
        ));
        crate::support::engine_suite::clear(&e).await;
    }

    #[tokio::test]
    async fn tiered_memory_over_s3_contract() {
        let Some(url) = support::engine_suite::s3_url_or_skip() else {
            return;
        };
        let url = add_query(&add_path(&url, &unique("s3_tiered")), "timeout", "30s");
        let tiered_url = format!("tiered+{url}");
        let e = engine_from_url(&tiered_url).await.unwrap();
        if !reachable_or_skip(&e, "S3 at MISTRAL_TOWER_S3_URL").await {
            return;
        }
        guarded(contract("tiered memory/s3", &e, Caps::ALL)).await;
        crate::support::engine_suite::clear(&e).await;
    }
}
