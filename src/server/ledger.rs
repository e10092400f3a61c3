//! The savings ledger: what a proxy served from the cache (hits, prompt and completion
//! tokens per model and tenant), kept in its engine as one record per proxy instance,
//! so `mistral-cache stats` adds up what every replica served, across restarts.
//!
//! # Record
//!
//! A record is an ordinary [`CacheEntry`] (signed with the entry secrets when
//! `--entry-secret` is set, exactly as entries are), with no expiry, stored under
//! [`ledger_key`]: the hex SHA-256 of `mistral-cache ledger v1\0<instance>`, which no
//! entry key (the SHA-256 of a canonical request) can equal. It is recognised by its
//! namespace [`LEDGER_NAMESPACE`] and path [`LEDGER_PATH`]; its body is a small
//! versioned JSON document:
//!
//! ```json
//! {"version":1,"instance":"host@0.0.0.0:8080","updated_ms":1764600000000,
//!  "served":[{"model":"mistral-small-latest","tenant":"3f2a9c01b7d4","hits":2,
//!             "prompt_tokens":54,"completion_tokens":142}]}
//! ```
//!
//! The proxy reads its own record at start-up and continues from it; it writes it
//! every [`DEFAULT_LEDGER_INTERVAL`] when its counters changed, as soon as a shutdown
//! is signalled, and once more when the proxy has drained (bounded in time). Each
//! instance writes only its own record, so replicas sharing a store never overwrite
//! each other's totals; two processes given the same instance name would, and the
//! record carries a random writer id per process, so a proxy that finds another writer's
//! record where its own should be logs a warning and counts it
//! (`mistral_cache_ledger_conflicts_total`). A write that fails is logged and tried
//! again at the next interval; serving never waits for it.
//!
//! A record that is there but cannot be used (it does not decode, has a newer version,
//! or its signature is refused, e.g. after a secret rotation without
//! `--previous-entry-secret`) is never overwritten: the proxy logs an error and keeps
//! looking at every interval, and continues once it can read it (the secret restored)
//! or it is gone (deleted by hand, or by an unfiltered `purge`). What the proxy served
//! meanwhile is not lost: it is written then.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::metrics::{MAX_SAVED_SERIES, Metrics, SavedCount};
use super::prices::PriceTable;
use crate::cache::{BoxEngine, CacheEngine, CacheEntry, CacheError, EntryKind, EntrySecrets};

/// The namespace of ledger records (entries have the caller's namespace, `""` by default).
pub(crate) const LEDGER_NAMESPACE: &str = "_mistral-cache";
/// The request path recorded in ledger records (under the proxy's own reserved prefix).
pub(crate) const LEDGER_PATH: &str = "/_mistral-cache/ledger";
/// The version of the record's JSON document.
const LEDGER_VERSION: u32 = 1;
/// How often a proxy writes its record when its counters changed (`--ledger-interval`).
pub const DEFAULT_LEDGER_INTERVAL: Duration = Duration::from_secs(10);
/// The longest a ledger read or write may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);
/// The label of rows beyond [`MAX_SAVED_SERIES`] (as in the savings metrics).
const OTHER: &str = "(other)";

/// The engine key of `instance`'s record.
pub(crate) fn ledger_key(instance: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mistral-cache ledger v1\0");
    h.update(instance.as_bytes());
    crate::cache::key::hex_lower(&h.finalize())
}

/// The instance name of a proxy listening on `listen` when none is given: the host
/// name and the configured address, stable across restarts of the same replica.
pub(crate) fn default_instance(listen: SocketAddr) -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}@{listen}")
}

/// The JSON document of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// [`LEDGER_VERSION`].
    pub(crate) version: u32,
    /// The instance that writes it.
    pub(crate) instance: String,
    /// When it was written, unix milliseconds.
    pub(crate) updated_ms: u64,
    /// A random id of the process that wrote it (empty in records from before it).
    #[serde(default)]
    pub(crate) writer: String,
    /// What the instance served, by model and tenant.
    pub(crate) served: Vec<Served>,
}

/// What one instance served for one `(model, tenant)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Served {
    pub(crate) model: String,
    pub(crate) tenant: String,
    pub(crate) hits: u64,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
}

/// Served counts by `(model, tenant)`.
type Totals = BTreeMap<(String, String), SavedCount>;

/// `true` for an entry that is a ledger record (whether or not it is well formed).
pub(crate) fn is_record(entry: &CacheEntry) -> bool {
    entry.namespace() == LEDGER_NAMESPACE && entry.path() == LEDGER_PATH
}

/// The record in `entry`, read from under `key`: its JSON must decode, have a known
/// version, and name the instance whose key it is stored under (a record copied under
/// another instance's key would be counted twice).
pub(crate) fn parse(key: &str, entry: &CacheEntry) -> Result<Record, String> {
    let record: Record = serde_json::from_slice(&entry.body())
        .map_err(|e| format!("the ledger record does not decode: {e}"))?;
    if record.version != LEDGER_VERSION {
        return Err(format!(
            "unsupported ledger record version {}",
            record.version
        ));
    }
    if ledger_key(&record.instance) != key {
        return Err(format!(
            "the ledger record of {:?} is stored under another key",
            record.instance
        ));
    }
    Ok(record)
}

/// `record` as stored: an entry without expiry, signed when `secrets` are given.
pub(crate) fn encode(record: &Record, secrets: Option<&EntrySecrets>) -> Bytes {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(record).expect("a ledger record serializes");
    let entry = CacheEntry::new(EntryKind::Json, StatusCode::OK, headers)
        .with_frames(vec![Bytes::from(body)])
        .with_times(record.updated_ms, None)
        .with_request(LEDGER_NAMESPACE, "PUT", LEDGER_PATH);
    match secrets {
        Some(s) => s.sign(&entry),
        None => entry.encode(),
    }
}

/// Reads stored bytes as `key`'s record: signature (with `secrets`), entry, document.
fn decode(key: &str, bytes: &Bytes, secrets: Option<&EntrySecrets>) -> Result<Record, String> {
    if let Some(s) = secrets {
        s.verify(bytes).map_err(|e| e.to_string())?;
    }
    let entry = CacheEntry::decode(bytes).map_err(|e| e.to_string())?;
    if !is_record(&entry) {
        return Err("not a ledger record".to_owned());
    }
    parse(key, &entry)
}

/// `base` plus `current`, as record rows; past [`MAX_SAVED_SERIES`] rows the rest are
/// summed under `(other)`, so the record stays small whatever the tenants.
fn merge(base: &Totals, current: &[((String, String), SavedCount)]) -> Vec<Served> {
    let mut all = base.clone();
    for (k, c) in current {
        let key = if all.len() >= MAX_SAVED_SERIES && !all.contains_key(k) {
            (OTHER.to_owned(), OTHER.to_owned())
        } else {
            k.clone()
        };
        all.entry(key).or_default().add(*c);
    }
    all.into_iter()
        .map(|((model, tenant), c)| Served {
            model,
            tenant,
            hits: c.hits,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
        })
        .collect()
}

/// What `current` counted since `start` (the same counters, earlier).
fn since(
    current: &[((String, String), SavedCount)],
    start: &[((String, String), SavedCount)],
) -> Vec<((String, String), SavedCount)> {
    let start: BTreeMap<_, _> = start.iter().map(|(k, c)| (k, c)).collect();
    current
        .iter()
        .map(|(k, c)| {
            let s = start.get(k).copied().copied().unwrap_or_default();
            let d = SavedCount {
                hits: c.hits.saturating_sub(s.hits),
                prompt_tokens: c.prompt_tokens.saturating_sub(s.prompt_tokens),
                completion_tokens: c.completion_tokens.saturating_sub(s.completion_tokens),
            };
            (k.clone(), d)
        })
        .collect()
}

fn totals(record: Record) -> Totals {
    let mut t = Totals::new();
    for s in record.served {
        t.entry((s.model, s.tenant)).or_default().add(SavedCount {
            hits: s.hits,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
        });
    }
    t
}

/// What a proxy needs to keep its record: where, as whom, how often.
#[derive(Debug, Clone)]
pub(crate) struct LedgerConfig {
    pub(crate) engine: BoxEngine,
    pub(crate) instance: String,
    pub(crate) secrets: Option<EntrySecrets>,
    pub(crate) interval: Duration,
}

/// A proxy's ledger: its record's totals at start-up and what it has written since.
struct Ledger {
    config: LedgerConfig,
    key: String,
    metrics: Arc<Metrics>,
    /// The record as this process found it (`None` until it could be read).
    base: Option<Totals>,
    /// The savings counters when the ledger started: the record gets what was counted
    /// since (the counters may be shared with an earlier run of the same proxy).
    start: Vec<((String, String), SavedCount)>,
    /// The counters at the last successful write; `None` after reading a stored
    /// record, so it is written again at once (signed with the current secret).
    written: Option<Vec<((String, String), SavedCount)>>,
    /// Whether this process wrote the record yet (from then on, another writer id in
    /// it is another process with this instance's name).
    wrote: bool,
    /// This process's writer id.
    writer: String,
    /// Whether the unusable record was reported already.
    reported: bool,
}

/// The running ledger of a proxy: [`finish`](Self::finish) writes the record one last
/// time and stops.
pub(crate) struct LedgerTask {
    done: oneshot::Sender<()>,
    now: mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The longest [`LedgerTask::finish`] waits for the last write.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

impl LedgerTask {
    /// Reads the record, then writes it every interval when `metrics`' savings changed.
    pub(crate) fn start(config: LedgerConfig, metrics: Arc<Metrics>) -> LedgerTask {
        let (done, stop) = oneshot::channel();
        let (now, sync_now) = mpsc::unbounded_channel();
        let ledger = Ledger {
            key: ledger_key(&config.instance),
            config,
            start: metrics.saved(),
            written: Some(metrics.saved()),
            metrics,
            base: None,
            wrote: false,
            writer: format!("{:016x}", fastrand::u64(..)),
            reported: false,
        };
        LedgerTask {
            done,
            now,
            task: tokio::spawn(ledger.run(stop, sync_now)),
        }
    }

    /// Writes the record now (if the counters changed), without waiting for it: at
    /// the shutdown signal, before the drain, which may outlast the process's grace.
    pub(crate) fn sync_now(&self) {
        let _ = self.now.send(());
    }

    /// Writes the record a last time (if the counters changed) and stops, waiting at
    /// most [`FINISH_TIMEOUT`].
    pub(crate) async fn finish(self) {
        let _ = self.done.send(());
        let mut task = self.task;
        if tokio::time::timeout(FINISH_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            task.abort();
            tracing::warn!(
                timeout_secs = FINISH_TIMEOUT.as_secs(),
                "the last write of the savings ledger did not finish in time"
            );
        }
    }
}

impl Ledger {
    async fn run(mut self, mut stop: oneshot::Receiver<()>, mut now: mpsc::UnboundedReceiver<()>) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(()) = now.recv() => self.sync().await,
                _ = tick.tick() => self.sync().await,
            }
        }
        self.sync().await;
    }

    /// Reads the record if not done yet, then writes it if the counters changed since
    /// the last write. Failures are logged; the next call tries again.
    async fn sync(&mut self) {
        if self.base.is_none() {
            match self.load().await {
                Ok(Some(base)) => self.base = Some(base),
                Ok(None) => return,
                Err(e) => {
                    let instance = self.config.instance.as_str();
                    tracing::warn!(instance, error = %e, "cannot read the savings ledger; trying again at the next interval");
                    return;
                }
            }
        } else if self.wrote {
            self.check_writer().await;
        }
        let instance = self.config.instance.as_str();
        let Some(base) = &self.base else { return };
        let current = self.metrics.saved();
        if self.written.as_ref() == Some(&current) {
            return;
        }
        let record = Record {
            version: LEDGER_VERSION,
            instance: instance.to_owned(),
            updated_ms: super::admin::now_ms(),
            writer: self.writer.clone(),
            served: merge(base, &since(&current, &self.start)),
        };
        let bytes = encode(&record, self.config.secrets.as_ref());
        // No timeout of its own: a write abandoned while still running (a file
        // engine's blocking write) could land after a newer one. The engine bounds its
        // operations; the last write at shutdown is bounded by `finish`.
        match self.config.engine.set(&self.key, bytes).await {
            Ok(()) => {
                self.written = Some(current);
                self.wrote = true;
            }
            Err(e) => {
                tracing::warn!(instance, error = %e, "cannot write the savings ledger; trying again at the next interval");
            }
        }
    }

    /// Warns when another process wrote this instance's record since this one did
    /// (two processes with one instance name: the last writer's totals win).
    async fn check_writer(&self) {
        let read = self.config.engine.get(&self.key);
        let Ok(Ok(bytes)) = tokio::time::timeout(ENGINE_TIMEOUT, read).await else {
            return;
        };
        let Ok(record) = decode(&self.key, &bytes, self.config.secrets.as_ref()) else {
            return;
        };
        if record.writer != self.writer {
            let n = self.metrics.record_ledger_conflict();
            if n.is_power_of_two() {
                tracing::warn!(
                    instance = %self.config.instance,
                    conflicts = n,
                    "another process writes this instance's savings ledger: give every replica its own --instance, or their totals overwrite each other"
                );
            }
        }
    }

    /// The totals of this instance's record: none yet (a new instance), or what it
    /// holds; `Ok(None)` for a record that is there but cannot be used (logged once;
    /// it is never overwritten).
    async fn load(&mut self) -> Result<Option<Totals>, CacheError> {
        let read = self.config.engine.get(&self.key);
        let bytes = match tokio::time::timeout(ENGINE_TIMEOUT, read).await {
            Err(_) => return Err(CacheError::Timeout(ENGINE_TIMEOUT)),
            Ok(Err(CacheError::Miss)) => return Ok(Some(Totals::new())),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(bytes)) => bytes,
        };
        match decode(&self.key, &bytes, self.config.secrets.as_ref()) {
            Ok(record) => {
                tracing::info!(
                    instance = %self.config.instance,
                    "continuing the savings ledger from its stored record"
                );
                self.written = None;
                Ok(Some(totals(record)))
            }
            Err(why) => {
                if !self.reported {
                    self.reported = true;
                    tracing::error!(
                        instance = %self.config.instance,
                        key = %self.key,
                        error = %why,
                        "the stored savings ledger of this instance cannot be used (newer version, or signed with a secret not given: add it with --previous-entry-secret); it is left as it is and no savings are recorded until it can be read or is deleted"
                    );
                }
                Ok(None)
            }
        }
    }
}

/// One line of the served totals.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    hits: u64,
    prompt: u64,
    completion: u64,
    /// What the priced tokens would have cost.
    usd: f64,
    /// Tokens of models without a price (not in `usd`).
    unpriced: u64,
}

impl Tally {
    fn add(&mut self, s: &Served, usd: Option<f64>) {
        self.hits = self.hits.saturating_add(s.hits);
        self.prompt = self.prompt.saturating_add(s.prompt_tokens);
        self.completion = self.completion.saturating_add(s.completion_tokens);
        match usd {
            Some(d) => self.usd += d,
            None => {
                self.unpriced = self
                    .unpriced
                    .saturating_add(s.prompt_tokens)
                    .saturating_add(s.completion_tokens);
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "hits": self.hits,
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "usd": self.usd,
            "unpriced_tokens": self.unpriced,
        })
    }

    fn text(&self) -> String {
        let unpriced = if self.unpriced > 0 {
            format!(" (+ {} tokens without a price)", self.unpriced)
        } else {
            String::new()
        };
        format!(
            "{} hits, {} prompt + {} completion tokens, ${:.6}{unpriced}",
            self.hits, self.prompt, self.completion, self.usd
        )
    }
}

/// The records of every instance in a store, summed for `mistral-cache stats`.
#[derive(Debug, Default)]
pub(crate) struct ServedTotals {
    instances: BTreeSet<String>,
    models: BTreeMap<String, Tally>,
    tenants: BTreeMap<String, Tally>,
    total: Tally,
    /// Records that did not decode or whose signature was refused (not counted).
    pub(crate) unreadable: u64,
}

impl ServedTotals {
    /// Counts one instance's record, valued at `prices`.
    pub(crate) fn add(&mut self, record: &Record, prices: &PriceTable) {
        self.instances.insert(record.instance.clone());
        for s in &record.served {
            let usd = prices.usd(&s.model, s.prompt_tokens, s.completion_tokens);
            self.models.entry(s.model.clone()).or_default().add(s, usd);
            self.tenants
                .entry(s.tenant.clone())
                .or_default()
                .add(s, usd);
            self.total.add(s, usd);
        }
    }

    /// The `"served"` member of `stats --json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        let map = |m: &BTreeMap<String, Tally>| {
            m.iter()
                .map(|(k, t)| (k.clone(), t.json()))
                .collect::<serde_json::Map<_, _>>()
        };
        let mut v = self.total.json();
        v["instances"] = self.instances.iter().cloned().collect();
        v["unreadable_records"] = self.unreadable.into();
        v["models"] = map(&self.models).into();
        v["tenants"] = map(&self.tenants).into();
        v
    }

    /// The "served from the cache" section of `stats`.
    pub(crate) fn write_text(&self, out: &mut String) {
        if self.instances.is_empty() && self.unreadable == 0 {
            let _ = writeln!(
                out,
                "served from the cache: nothing recorded yet (proxies record it every --ledger-interval and at shutdown)"
            );
            return;
        }
        let names: Vec<&str> = self.instances.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "served from the cache (all time, {} instances: {}):",
            names.len(),
            names.join(", ")
        );
        for (model, t) in &self.models {
            let _ = writeln!(out, "  model {model}: {}", t.text());
        }
        for (tenant, t) in &self.tenants {
            let _ = writeln!(out, "  tenant {tenant}: {}", t.text());
        }
        let _ = writeln!(out, "  total: {}", self.total.text());
        if self.unreadable > 0 {
            let _ = writeln!(
                out,
                "  ({} ledger records unreadable or with a refused signature, not counted)",
                self.unreadable
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Price;

    fn record(instance: &str, served: Vec<Served>) -> Record {
        Record {
            version: LEDGER_VERSION,
            instance: instance.to_owned(),
            updated_ms: 1_764_600_000_000,
            writer: "w".to_owned(),
            served,
        }
    }

    fn row(model: &str, tenant: &str, hits: u64, p: u64, c: u64) -> Served {
        Served {
            model: model.to_owned(),
            tenant: tenant.to_owned(),
            hits,
            prompt_tokens: p,
            completion_tokens: c,
        }
    }

    #[test]
    fn keys_are_domain_separated_digests() {
        let k = ledger_key("a");
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k, ledger_key("b"));
        assert_eq!(k, ledger_key("a"));
        assert!(default_instance("127.0.0.1:8080".parse().unwrap()).ends_with("@127.0.0.1:8080"));
    }

    #[test]
    fn records_round_trip_signed_and_are_bound_to_their_key() {
        let rec = record("i1", vec![row("m", "t", 2, 10, 20)]);
        let key = ledger_key("i1");
        let secrets = EntrySecrets::new("ledger-test-secret-0123");
        let bytes = encode(&rec, Some(&secrets));
        assert_eq!(decode(&key, &bytes, Some(&secrets)), Ok(rec.clone()));
        let entry = CacheEntry::decode(&bytes).unwrap();
        assert!(is_record(&entry) && entry.is_signed() && entry.expires_ms().is_none());
        // Under another instance's key: refused (it would be counted twice).
        assert!(decode(&ledger_key("i2"), &bytes, Some(&secrets)).is_err());
        // Another secret, or unsigned with signing on: refused.
        let other = EntrySecrets::new("another-secret-0123456");
        assert!(decode(&key, &bytes, Some(&other)).is_err());
        assert!(decode(&key, &encode(&rec, None), Some(&secrets)).is_err());
        assert_eq!(decode(&key, &encode(&rec, None), None), Ok(rec));
        // An unknown version is not read.
        let mut v2 = record("i1", Vec::new());
        v2.version = 2;
        assert!(decode(&key, &encode(&v2, None), None).is_err());
    }

    #[test]
    fn merging_adds_the_base_and_caps_the_rows() {
        let base = totals(record("i", vec![row("m", "t", 1, 10, 20)]));
        let c = SavedCount {
            hits: 2,
            prompt_tokens: 1,
            completion_tokens: 2,
        };
        let current = vec![
            (("m".to_owned(), "t".to_owned()), c),
            (("n".to_owned(), "t".to_owned()), c),
        ];
        assert_eq!(
            merge(&base, &current),
            vec![row("m", "t", 3, 11, 22), row("n", "t", 2, 1, 2)]
        );
        let many: Vec<_> = (0..MAX_SAVED_SERIES + 3)
            .map(|i| ((i.to_string(), "t".to_owned()), c))
            .collect();
        let rows = merge(&Totals::new(), &many);
        assert_eq!(rows.len(), MAX_SAVED_SERIES + 1);
        let other = rows.iter().find(|r| r.model == OTHER).unwrap();
        assert_eq!(other.hits, 6);
    }

    /// A store whose reads and writes fail while `down` is set.
    #[derive(Default)]
    struct Flaky {
        map: std::sync::Mutex<std::collections::HashMap<String, Bytes>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Flaky {
        fn up(&self) -> Result<(), CacheError> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                Err(CacheError::Unsupported("down"))
            } else {
                Ok(())
            }
        }
    }

    impl CacheEngine for Flaky {
        async fn get(&self, key: &str) -> Result<Bytes, CacheError> {
            self.up()?;
            self.map
                .lock()
                .unwrap()
                .get(key)
                .cloned()
                .ok_or(CacheError::Miss)
        }
        async fn set(&self, key: &str, data: Bytes) -> Result<(), CacheError> {
            self.up()?;
            self.map.lock().unwrap().insert(key.to_owned(), data);
            Ok(())
        }
    }

    fn ledger(engine: &Arc<Flaky>, metrics: &Arc<Metrics>) -> Ledger {
        Ledger {
            config: LedgerConfig {
                engine: BoxEngine::new(engine.clone()),
                instance: "i".to_owned(),
                secrets: None,
                interval: DEFAULT_LEDGER_INTERVAL,
            },
            key: ledger_key("i"),
            start: metrics.saved(),
            written: Some(metrics.saved()),
            metrics: metrics.clone(),
            base: None,
            wrote: false,
            writer: format!("{:016x}", fastrand::u64(..)),
            reported: false,
        }
    }

    fn hit(metrics: &Metrics) {
        let usage = crate::cache::Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
        };
        metrics.record_saved(
            &crate::cache::SavedTokens::new(usage, Some("m".into())),
            "t",
        );
    }

    fn stored(engine: &Flaky) -> Option<Record> {
        let bytes = engine.map.lock().unwrap().get(&ledger_key("i")).cloned()?;
        Some(decode(&ledger_key("i"), &bytes, None).unwrap())
    }

    #[tokio::test]
    async fn failed_reads_and_writes_are_retried_and_a_restart_continues() {
        let engine = Arc::new(Flaky::default());
        let metrics = Arc::new(Metrics::new());
        let mut l = ledger(&engine, &metrics);
        l.sync().await;
        assert_eq!(stored(&engine), None, "nothing served, nothing written");

        // The store is down: neither the read nor the write happens, nothing is lost.
        engine
            .down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        hit(&metrics);
        let mut fresh = ledger(&engine, &metrics);
        fresh.sync().await;
        assert!(fresh.base.is_none());
        l.sync().await;
        assert_eq!(l.written, Some(Vec::new()));
        engine
            .down
            .store(false, std::sync::atomic::Ordering::Relaxed);
        l.sync().await;
        assert_eq!(
            stored(&engine).unwrap().served,
            vec![row("m", "t", 1, 3, 4)]
        );

        // A restart (fresh counters) reads the record and adds to it.
        let metrics = Arc::new(Metrics::new());
        let mut restarted = ledger(&engine, &metrics);
        hit(&metrics);
        hit(&metrics);
        restarted.sync().await;
        assert_eq!(
            stored(&engine).unwrap().served,
            vec![row("m", "t", 3, 9, 12)]
        );
        // Unchanged counters: not written again.
        engine.map.lock().unwrap().clear();
        restarted.sync().await;
        assert_eq!(stored(&engine), None);
    }

    #[tokio::test]
    async fn a_second_run_on_the_same_counters_does_not_count_them_twice() {
        let engine = Arc::new(Flaky::default());
        let metrics = Arc::new(Metrics::new());
        let mut first = ledger(&engine, &metrics);
        hit(&metrics);
        first.sync().await;
        assert_eq!(stored(&engine).unwrap().served[0].hits, 1);
        // A second ledger over the same (not reset) counters, as a second
        // `Proxy::run` of one proxy has: it adds only what it counted since.
        let mut second = ledger(&engine, &metrics);
        hit(&metrics);
        second.sync().await;
        assert_eq!(stored(&engine).unwrap().served[0].hits, 2);
    }

    #[tokio::test]
    async fn another_writer_of_the_same_instance_is_reported() {
        let engine = Arc::new(Flaky::default());
        let (ma, mb) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
        let (mut a, mut b) = (ledger(&engine, &ma), ledger(&engine, &mb));
        hit(&ma);
        a.sync().await;
        hit(&mb);
        b.sync().await; // reads a's record (not a conflict: b has not written yet)
        hit(&ma);
        a.sync().await; // finds b's writer id where its own should be
        assert!(
            ma.render(None)
                .contains("mistral_cache_ledger_conflicts_total 1\n")
        );
        assert!(
            mb.render(None)
                .contains("mistral_cache_ledger_conflicts_total 0\n")
        );
    }

    #[tokio::test]
    async fn an_unusable_record_is_never_overwritten() {
        let engine = Arc::new(Flaky::default());
        let mut v2 = record("i", vec![row("m", "t", 9, 9, 9)]);
        v2.version = LEDGER_VERSION + 1;
        let bytes = encode(&v2, None);
        engine
            .map
            .lock()
            .unwrap()
            .insert(ledger_key("i"), bytes.clone());
        let metrics = Arc::new(Metrics::new());
        let mut l = ledger(&engine, &metrics);
        hit(&metrics);
        l.sync().await;
        l.sync().await;
        assert!(l.base.is_none());
        assert_eq!(engine.map.lock().unwrap()[&ledger_key("i")], bytes);
        // Deleted by hand: the next sync writes what was served meanwhile.
        engine.map.lock().unwrap().clear();
        l.sync().await;
        assert_eq!(
            stored(&engine).unwrap().served,
            vec![row("m", "t", 1, 3, 4)]
        );
    }

    #[test]
    fn served_totals_sum_instances_by_model_and_tenant() {
        let mut prices = PriceTable::empty();
        prices.insert(
            "m",
            Price {
                input: 1.0,
                output: 2.0,
            },
        );
        let mut s = ServedTotals::default();
        s.add(
            &record(
                "a",
                vec![row("m", "t1", 1, 1_000_000, 0), row("x", "t1", 1, 5, 5)],
            ),
            &prices,
        );
        s.add(&record("b", vec![row("m", "t2", 2, 0, 1_000_000)]), &prices);
        let v = s.json();
        assert_eq!(v["instances"], serde_json::json!(["a", "b"]));
        assert_eq!(v["hits"], 4);
        assert_eq!(v["usd"], 3.0);
        assert_eq!(v["unpriced_tokens"], 10);
        assert_eq!(v["models"]["m"]["hits"], 3);
        assert_eq!(v["tenants"]["t1"]["usd"], 1.0);
        assert_eq!(v["tenants"]["t2"]["completion_tokens"], 1_000_000);
        let mut text = String::new();
        s.write_text(&mut text);
        assert!(text.contains("2 instances: a, b"), "{text}");
        assert!(
            text.contains(
                "  model m: 3 hits, 1000000 prompt + 1000000 completion tokens, $3.000000"
            ),
            "{text}"
        );
        assert!(text.contains("(+ 10 tokens without a price)"), "{text}");
    }
}
