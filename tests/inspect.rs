//! Inspection: `mistral-cache list` (filters, columns, `--json`) over entries the proxy
//! stored in a file engine, and `mistral-cache inspect` with a key `list` printed or
//! the `x-cache-key` of an answer.
#![cfg(feature = "server")]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use mistral_tower::cache::{CacheEngine, FileEngine};
use mistral_tower::testing::FakeMistral;
use mistral_tower::testing::fixtures::CHAT_REQUEST;
use support::proxy::{RunningProxy, guard, start_proxy};

mod support;

fn bin(args: &[&str], engine: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mistral-cache"))
        .args(args)
        .args(["--engine", engine])
        .env_remove("MISTRAL_CACHE_ENGINE")
        .env_remove("MISTRAL_CACHE_PRICES")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    support::success_stdout(out)
}

fn list_json(engine: &str, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(filters);
    let text = stdout(&bin(&args, engine));
    let v: serde_json::Value = serde_json::from_str(&text).expect("list --json is JSON");
    v.as_array().expect("an array").clone()
}

fn keys_of(items: &[serde_json::Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

/// Posts `body` to `path` through the proxy; returns the answer's `x-cache-key`.
async fn post(url: &str, path: &str, body: &str, namespace: Option<&str>) -> String {
    let client = Hyper::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-list");
    if let Some(ns) = namespace {
        req = req.header("x-cache-namespace", ns);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let key = res.headers()["x-cache-key"].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    key
}

/// Waits until the file engine in `dir` holds `n` entries (the proxy stores after
/// the answer ends).
async fn wait_for_entries(dir: &Path, n: usize) {
    let engine = FileEngine::new(dir).unwrap();
    guard(async {
        while engine.keys().await.unwrap().len() < n {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A proxy in front of a fake Mistral API, storing in a file engine in a new
/// directory: `(directory, engine URL, fake, proxy)`.
async fn proxy_on_file_engine() -> (tempfile::TempDir, String, FakeMistral, RunningProxy) {
    let dir = tempfile::tempdir().unwrap();
    let engine = format!("file://{}", dir.path().display());
    let fake = FakeMistral::start().await;
    let e2 = engine.clone();
    let proxy = start_proxy(&fake.url(), move |c| c.engine = e2).await;
    (dir, engine, fake, proxy)
}

#[tokio::test]
async fn list_filters_and_inspect_takes_its_keys() {
    let (dir, engine, _fake, proxy) = proxy_on_file_engine().await;

    let chat = guard(post(&proxy.url, "/v1/chat/completions", CHAT_REQUEST, None)).await;
    let mut stream: serde_json::Value = serde_json::from_str(CHAT_REQUEST).unwrap();
    stream["stream"] = true.into();
    let stream = guard(post(
        &proxy.url,
        "/v1/chat/completions",
        &stream.to_string(),
        None,
    ))
    .await;
    let embed = guard(post(
        &proxy.url,
        "/v1/embeddings",
        r#"{"model":"mistral-embed","input":["a"]}"#,
        Some("team-b"),
    ))
    .await;
    wait_for_entries(dir.path(), 3).await;
    // A hit carries the same key as the miss that stored it.
    assert_eq!(
        guard(post(&proxy.url, "/v1/chat/completions", CHAT_REQUEST, None)).await,
        chat
    );
    proxy.shutdown().await;

    // --json: every entry, under the keys the answers named.
    let all = list_json(&engine, &[]);
    assert_eq!(
        keys_of(&all),
        BTreeSet::from([chat.clone(), stream.clone(), embed.clone()])
    );
    let by_key = |k: &str| all.iter().find(|i| i["key"] == k).unwrap().clone();
    let c = by_key(&chat);
    assert_eq!(c["route"], "/v1/chat/completions");
    assert_eq!(c["method"], "POST");
    assert_eq!(c["kind"], "json");
    assert_eq!(c["model"], "mistral-small-latest");
    assert_eq!(
        (
            &c["prompt_tokens"],
            &c["completion_tokens"],
            &c["total_tokens"]
        ),
        (&27.into(), &71.into(), &98.into())
    );
    assert_eq!(c["expires"], serde_json::Value::Null);
    assert!(c["size"].as_u64().unwrap() > c["body_bytes"].as_u64().unwrap());
    let s = by_key(&stream);
    assert_eq!(
        (&s["kind"], &s["total_tokens"]),
        (&"sse".into(), &21.into())
    );
    assert_eq!(by_key(&embed)["namespace"], "team-b");

    // Filters.
    let only = |filters: &[&str]| keys_of(&list_json(&engine, filters));
    assert_eq!(
        only(&["--route", "/v1/embeddings"]),
        BTreeSet::from([embed.clone()])
    );
    assert_eq!(
        only(&["--route", "/v1/chat*"]),
        BTreeSet::from([chat.clone(), stream.clone()])
    );
    assert_eq!(only(&["--route", "/v1/chat"]), BTreeSet::new());
    assert_eq!(
        only(&["--model", "mistral-small*"]),
        BTreeSet::from([chat.clone(), stream.clone()])
    );
    assert_eq!(
        only(&["--namespace", "team-b"]),
        BTreeSet::from([embed.clone()])
    );
    assert_eq!(only(&["--namespace", "default"]).len(), 2);
    assert_eq!(only(&["--older-than", "1h"]), BTreeSet::new());
    assert_eq!(only(&["--newer-than", "1h"]).len(), 3);
    assert_eq!(
        only(&["--newer-than", "1h", "--route", "/v1/embeddings"]).len(),
        1
    );
    let bad = bin(&["list", "--older-than", "7 days"], &engine);
    assert_eq!(bad.status.code(), Some(2));

    // The text listing: a header, one row per entry, a count.
    let text = stdout(&bin(&["list"], &engine));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("KEY") && lines[0].contains("TOKENS"),
        "{text}"
    );
    // The proxy's savings ledger record (it served a hit) is not an entry.
    assert_eq!(
        lines.last(),
        Some(&"3 entries (1 savings ledger records not listed: see `stats`)")
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&chat[..16]))
        .unwrap_or_else(|| panic!("no row for {chat}: {text}"));
    for column in [
        "POST /v1/chat/completions",
        "mistral-small-latest",
        " 98 ",
        "never",
    ] {
        assert!(row.contains(column), "{column:?} in {row:?}");
    }

    // inspect takes the 16-character prefix the listing shows, and full keys.
    let out = stdout(&bin(&["inspect", &chat[..16]], &engine));
    assert!(out.contains(&format!("key:        {chat}")), "{out}");
    assert!(
        out.contains("27 prompt + 71 completion = 98 tokens"),
        "{out}"
    );
    assert!(out.contains("model:      mistral-small-latest"), "{out}");
    let out = stdout(&bin(&["inspect", &embed], &engine));
    assert!(out.contains("namespace:  team-b"), "{out}");
}

#[tokio::test]
async fn stats_values_the_stored_answers() {
    let (dir, engine, _fake, proxy) = proxy_on_file_engine().await;
    guard(post(&proxy.url, "/v1/chat/completions", CHAT_REQUEST, None)).await;
    wait_for_entries(dir.path(), 1).await;
    proxy.shutdown().await;

    let v: serde_json::Value =
        serde_json::from_str(&stdout(&bin(&["stats", "--json"], &engine))).unwrap();
    let m = &v["saved_per_hit"]["mistral-small-latest"];
    assert_eq!(
        (&m["entries"], &m["prompt_tokens"]),
        (&1.into(), &27.into())
    );
    let usd = m["usd"].as_f64().unwrap();
    assert!(
        (usd - (27.0 * 0.1 + 71.0 * 0.3) / 1e6).abs() < 1e-15,
        "{usd}"
    );

    let prices_dir = tempfile::tempdir().unwrap();
    let prices = prices_dir.path().join("prices.json");
    std::fs::write(
        &prices,
        r#"{"mistral-small-latest":{"input":1e6,"output":0}}"#,
    )
    .unwrap();
    let out = stdout(&bin(
        &["stats", "--prices", prices.to_str().unwrap()],
        &engine,
    ));
    assert!(
        out.contains(
            "mistral-small-latest: 1 entries, 27 prompt + 71 completion tokens, $27.000000"
        ),
        "{out}"
    );
}
