//! The savings ledger: what proxies served from the cache, persisted in the engine (one
//! record per instance) and summed by `mistral-cache stats` ("served from the cache"),
//! continued across restarts, kept apart from entries by `list`, `purge` and
//! `inspect`, and refused when its signature is wrong.
#![cfg(feature = "server")]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use mistral_tower::cache::{CacheEngine, CacheEntry, EntryKind, EntrySecrets, FileEngine};
use mistral_tower::server::{Config, tenant_label};
use mistral_tower::testing::FakeMistral;
use mistral_tower::testing::fixtures::CHAT_REQUEST;
use serde_json::Value;
use support::proxy::{RunningProxy, guard, start_proxy};

mod support;

const SECRET: &str = "ledger-entry-secret-0123456789";
const MODEL: &str = "mistral-small-latest";
/// The usage of the fake's answer to `CHAT_REQUEST`.
const PROMPT: u64 = 27;
const COMPLETION: u64 = 71;

/// What `hits` hits on the chat answer would have cost at the built-in list price of
/// mistral-small ($0.1 / $0.3 per million tokens).
fn usd(hits: u64) -> f64 {
    hits as f64 * (PROMPT as f64 * 0.1 + COMPLETION as f64 * 0.3) / 1e6
}

fn bin(args: &[&str], engine: &str, secret: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mistral-cache"));
    cmd.args(args)
        .args(["--engine", engine])
        .env_remove("MISTRAL_CACHE_ENGINE")
        .env_remove("MISTRAL_CACHE_PRICES")
        .env_remove("MISTRAL_CACHE_PREVIOUS_ENTRY_SECRETS")
        .env("RUST_LOG", "warn");
    match secret {
        Some(s) => cmd.env("MISTRAL_CACHE_ENTRY_SECRET", s),
        None => cmd.env_remove("MISTRAL_CACHE_ENTRY_SECRET"),
    };
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    support::success_stdout(out)
}

fn stats(engine: &str, secret: Option<&str>) -> Value {
    serde_json::from_str(&stdout(&bin(&["stats", "--json"], engine, secret))).unwrap()
}

/// Posts the chat request with `key` as the API key; returns `x-cache`.
async fn chat(proxy: &RunningProxy, key: &str) -> String {
    let client = Hyper::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("{}/v1/chat/completions", proxy.url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from_static(CHAT_REQUEST.as_bytes())))
        .unwrap();
    let res = guard(client.request(req)).await.unwrap();
    assert_eq!(res.status(), 200);
    let state = support::x_cache(&res);
    guard(res.into_body().collect()).await.unwrap();
    state
}

fn tenant(key: &str) -> String {
    tenant_label(Some(
        &http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    ))
}

/// Waits until the file engine in `dir` holds `n` keys.
async fn wait_for_keys(dir: &Path, n: usize) {
    let engine = FileEngine::new(dir).unwrap();
    guard(async {
        while engine.keys().await.unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A proxy in front of `fake` on the file engine at `engine`, as `instance`.
async fn proxy(
    fake: &FakeMistral,
    engine: &str,
    instance: &str,
    tweak: impl FnOnce(&mut Config),
) -> RunningProxy {
    let (engine, instance) = (engine.to_owned(), instance.to_owned());
    start_proxy(&fake.url(), move |c| {
        c.engine = engine;
        c.instance = Some(instance);
        tweak(c);
    })
    .await
}

/// The keys of the engine that are not the chat entries: the ledger records.
async fn record_keys(dir: &Path, entries: &BTreeSet<String>) -> Vec<String> {
    let keys = FileEngine::new(dir).unwrap().keys().await.unwrap();
    keys.into_iter().filter(|k| !entries.contains(k)).collect()
}

fn entry_keys(engine: &str) -> BTreeSet<String> {
    let text = stdout(&bin(&["list", "--json"], engine, None));
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    items
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_served(v: &Value, hits: u64) {
    let m = &v["served"]["models"][MODEL];
    assert_eq!(m["hits"], hits, "{v:#}");
    assert_eq!(m["prompt_tokens"], hits * PROMPT, "{v:#}");
    assert_eq!(m["completion_tokens"], hits * COMPLETION, "{v:#}");
    let got = m["usd"].as_f64().unwrap();
    assert!((got - usd(hits)).abs() < 1e-12, "{got} {v:#}");
    assert_eq!(v["served"]["hits"], hits, "{v:#}");
}

#[tokio::test]
async fn stats_sums_what_every_instance_served_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;

    // Replica a: a miss, then two hits; its record is written at shutdown.
    let a = proxy(&fake, &engine, "replica-a", |_| {}).await;
    assert_eq!(chat(&a, "sk-a").await, "MISS");
    wait_for_keys(dir.path(), 1).await;
    assert_eq!(chat(&a, "sk-a").await, "HIT");
    assert_eq!(chat(&a, "sk-a").await, "HIT");
    a.shutdown().await;

    let v = stats(&engine, None);
    assert_eq!(v["entries"], 1, "the record is not an entry: {v:#}");
    assert_eq!(v["unreadable"], 0, "{v:#}");
    assert_eq!(v["served"]["instances"], serde_json::json!(["replica-a"]));
    assert_served(&v, 2);
    let t = &v["served"]["tenants"][tenant("sk-a")];
    assert_eq!((&t["hits"], &t["prompt_tokens"]), (&2.into(), &54.into()));
    // The potential savings of the stored entries are still there.
    assert_eq!(v["saved_per_hit"][MODEL]["entries"], 1, "{v:#}");

    // Replica a again: the totals continue from its record.
    let a = proxy(&fake, &engine, "replica-a", |_| {}).await;
    assert_eq!(chat(&a, "sk-a").await, "HIT");
    a.shutdown().await;
    assert_served(&stats(&engine, None), 3);

    // Replica b, another tenant: its own record, summed with a's.
    let b = proxy(&fake, &engine, "replica-b", |_| {}).await;
    assert_eq!(chat(&b, "sk-b").await, "MISS");
    wait_for_keys(dir.path(), 3).await;
    assert_eq!(chat(&b, "sk-b").await, "HIT");
    b.shutdown().await;
    let v = stats(&engine, None);
    assert_eq!(
        v["served"]["instances"],
        serde_json::json!(["replica-a", "replica-b"])
    );
    assert_served(&v, 4);
    assert_eq!(v["served"]["tenants"][tenant("sk-a")]["hits"], 3, "{v:#}");
    assert_eq!(v["served"]["tenants"][tenant("sk-b")]["hits"], 1, "{v:#}");
    assert_eq!(v["entries"], 2, "{v:#}");
    let text = stdout(&bin(&["stats"], &engine, None));
    for line in [
        "served from the cache (all time, 2 instances: replica-a, replica-b):",
        &format!(
            "  model {MODEL}: 4 hits, 108 prompt + 284 completion tokens, ${:.6}",
            usd(4)
        ),
        &format!(
            "  tenant {}: 1 hits, 27 prompt + 71 completion tokens",
            tenant("sk-b")
        ),
        "saved per hit",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }

    // list leaves the records out (and says so); inspect shows one.
    let entries = entry_keys(&engine);
    assert_eq!(entries.len(), 2);
    let text = stdout(&bin(&["list"], &engine, None));
    assert!(
        text.trim_end()
            .ends_with("2 entries (2 savings ledger records not listed: see `stats`)"),
        "{text}"
    );
    let records = record_keys(dir.path(), &entries).await;
    assert_eq!(records.len(), 2);
    let shown: Vec<String> = records
        .iter()
        .map(|k| stdout(&bin(&["inspect", k], &engine, None)))
        .collect();
    assert!(
        shown
            .iter()
            .any(|o| o.contains("record:     savings ledger of instance \"replica-b\"")),
        "{shown:?}"
    );

    // Filtered purges keep the records (they have no expiry); a full one deletes them.
    let filters: [&[&str]; 3] = [
        &["--expired"],
        &["--namespace", "default"],
        &["--older-than", "0"],
    ];
    for filter in filters {
        let mut args = vec!["purge"];
        args.extend_from_slice(filter);
        let out = stdout(&bin(&args, &engine, None));
        assert!(!out.contains("ledger"), "{filter:?}: {out}");
        assert_served(&stats(&engine, None), 4);
    }
    let out = stdout(&bin(&["purge"], &engine, None));
    assert!(
        out.contains("(all entries) and 2 savings ledger records"),
        "{out}"
    );
    let v = stats(&engine, None);
    assert_eq!(v["served"]["hits"], 0, "{v:#}");
    assert_eq!(v["served"]["instances"], serde_json::json!([]), "{v:#}");
}

#[tokio::test]
async fn the_record_is_written_every_interval_while_the_proxy_runs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;
    let p = proxy(&fake, &engine, "periodic", |c| {
        c.ledger_interval = Some(Duration::from_millis(20));
    })
    .await;
    assert_eq!(chat(&p, "sk").await, "MISS");
    wait_for_keys(dir.path(), 1).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    // No shutdown: the running proxy writes its record by itself.
    wait_for_keys(dir.path(), 2).await;
    guard(async {
        while stats(&engine, None)["served"]["hits"] != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    p.shutdown().await;
    assert_served(&stats(&engine, None), 1);
}

#[tokio::test]
async fn no_record_with_the_ledger_off() {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;
    let p = proxy(&fake, &engine, "off", |c| c.ledger_interval = None).await;
    assert_eq!(chat(&p, "sk").await, "MISS");
    wait_for_keys(dir.path(), 1).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    p.shutdown().await;
    let keys = FileEngine::new(dir.path()).unwrap().keys().await.unwrap();
    assert_eq!(keys.len(), 1, "only the entry: {keys:?}");
    assert_eq!(stats(&engine, None)["served"]["hits"], 0);
}

#[tokio::test]
async fn a_record_forged_under_signing_is_refused_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;
    let signed = |c: &mut Config| c.entry_secret = Some(SECRET.to_owned());

    let p = proxy(&fake, &engine, "signed", signed).await;
    assert_eq!(chat(&p, "sk").await, "MISS");
    wait_for_keys(dir.path(), 1).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    p.shutdown().await;
    let v = stats(&engine, Some(SECRET));
    assert_served(&v, 1);
    assert_eq!(v["signature_invalid"], 0, "{v:#}");

    // Someone with write access to the store but not the secret inflates the record.
    let entries = entry_keys(&engine);
    let records = record_keys(dir.path(), &entries).await;
    let [key] = &records[..] else {
        panic!("one record expected: {records:?}")
    };
    let files = FileEngine::new(dir.path()).unwrap();
    let stored = CacheEntry::decode(&files.get(key).await.unwrap()).unwrap();
    let mut doc: Value = serde_json::from_slice(&stored.body()).unwrap();
    doc["served"][0]["hits"] = 1000.into();
    let (status, headers, _) = stored.clone().into_parts();
    let forged = CacheEntry::new(EntryKind::Json, status, headers)
        .with_frames(vec![Bytes::from(doc.to_string())])
        .with_times(stored.created_ms(), None)
        .with_request(stored.namespace(), stored.method(), stored.path());
    let forged = EntrySecrets::new("not-the-proxy-secret-0123456").sign(&forged);
    files.set(key, forged).await.unwrap();

    let v = stats(&engine, Some(SECRET));
    assert_eq!(v["served"]["hits"], 0, "refused, not counted: {v:#}");
    assert_eq!(v["served"]["unreadable_records"], 1, "{v:#}");
    assert_eq!(v["signature_invalid"], 1, "{v:#}");
    assert_eq!(v["entries"], 1, "{v:#}");
    let text = stdout(&bin(&["stats"], &engine, Some(SECRET)));
    assert!(
        text.contains("1 ledger records unreadable or with a refused signature, not counted"),
        "{text}"
    );
    // Without the secret nothing is checked: the forged numbers show.
    assert_eq!(stats(&engine, None)["served"]["hits"], 1000);
    let out = stdout(&bin(&["inspect", key], &engine, Some(SECRET)));
    assert!(out.contains("signature invalid"), "{out}");

    // The proxy neither continues from a refused record nor overwrites it (it may be
    // the only copy of what the instance served, signed with a secret not given)...
    let before = files.get(key).await.unwrap();
    let p = proxy(&fake, &engine, "signed", signed).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    p.shutdown().await;
    assert_eq!(files.get(key).await.unwrap(), before, "left as it is");
    // ... nor does `purge --expired` delete it; once it is deleted, the proxy records
    // again.
    stdout(&bin(&["purge", "--expired"], &engine, Some(SECRET)));
    assert_eq!(
        files.get(key).await.unwrap(),
        before,
        "kept by purge --expired"
    );
    files.delete(key).await.unwrap();
    let p = proxy(&fake, &engine, "signed", signed).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    p.shutdown().await;
    let v = stats(&engine, Some(SECRET));
    assert_served(&v, 1);
    assert_eq!(v["served"]["unreadable_records"], 0, "{v:#}");
}

/// A record signed with a secret being rotated out is continued from (the old secret
/// given as a previous one) and written again signed with the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_signed_with_a_previous_secret_is_continued_and_re_signed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;
    let p = proxy(&fake, &engine, "rotating", |c| {
        c.entry_secret = Some(SECRET.to_owned());
    })
    .await;
    assert_eq!(chat(&p, "sk").await, "MISS");
    wait_for_keys(dir.path(), 1).await;
    assert_eq!(chat(&p, "sk").await, "HIT");
    p.shutdown().await;

    const NEW: &str = "the-rotated-in-secret-0123456789";
    let p = proxy(&fake, &engine, "rotating", |c| {
        c.entry_secret = Some(NEW.to_owned());
        c.previous_entry_secrets = vec![SECRET.to_owned()];
    })
    .await;
    // No request: the record is written again only to sign it with the new secret.
    p.shutdown().await;
    let v = stats(&engine, Some(NEW));
    assert_served(&v, 1);
    assert_eq!(v["served"]["unreadable_records"], 0, "{v:#}");
}

/// Two replicas serving at once from one shared store: each writes its own record, and
/// `stats` counts both (no replica overwrites the other's totals).
async fn replicas_on_a_shared_store_keep_their_own_records(engine: &str) {
    let fake = FakeMistral::start().await;
    let a = proxy(&fake, engine, "shared-a", |_| {}).await;
    let b = proxy(&fake, engine, "shared-b", |_| {}).await;
    assert_eq!(chat(&a, "sk").await, "MISS");
    let store = mistral_tower::cache::engine_from_url(engine).await.unwrap();
    guard(async {
        while store.keys().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for p in [&a, &b, &b, &a, &b] {
        assert_eq!(chat(p, "sk").await, "HIT");
    }
    tokio::join!(a.shutdown(), b.shutdown());

    let v = stats(engine, None);
    assert_eq!(
        v["served"]["instances"],
        serde_json::json!(["shared-a", "shared-b"])
    );
    assert_served(&v, 5);
    assert_eq!(v["served"]["tenants"][tenant("sk")]["hits"], 5, "{v:#}");
    assert_eq!(v["entries"], 1, "{v:#}");
    stdout(&bin(&["purge"], engine, None));
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn replicas_on_one_redis_keep_their_own_records() {
    use support::engine_suite::{add_query, env_or_skip, reachable_or_skip, unique};
    let Some(url) = env_or_skip("REDIS_URL") else {
        return;
    };
    let url = add_query(&url, "prefix", &format!("{}:", unique("ledger")));
    let store = mistral_tower::cache::engine_from_url(&url).await.unwrap();
    if !reachable_or_skip(&store, "Redis at REDIS_URL").await {
        return;
    }
    replicas_on_a_shared_store_keep_their_own_records(&url).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn replicas_on_one_postgres_keep_their_own_records() {
    use support::engine_suite::{add_query, env_or_skip, reachable_or_skip, unique};
    let Some(base) = env_or_skip("DATABASE_URL") else {
        return;
    };
    let table = unique("ledger");
    let url = add_query(&base, "table", &table);
    let store = mistral_tower::cache::engine_from_url(&url).await.unwrap();
    if !reachable_or_skip(&store, "PostgreSQL at DATABASE_URL").await {
        return;
    }
    replicas_on_a_shared_store_keep_their_own_records(&url).await;
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS \"{table}\", \"{table}_fleet_locks\", \"{table}_fleet_events\""
        ))
        .await
        .unwrap();
}
