//! The proxy's counters and their Prometheus text rendering, with the tokens and
//! money cache hits saved (see [`Metrics::record_saved`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cache::SavedTokens;
pub use crate::cache::{Usage, usage_from_body};

use super::prices::PriceTable;

/// Upper bounds (seconds) of the upstream latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// What the cache did for one request, as reported by the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Answered from the cache.
    Hit,
    /// Not in the cache: forwarded upstream (and stored if cacheable).
    Miss,
    /// Forwarded without reading the cache (`no-cache`), the fresh answer stored.
    Refresh,
    /// Forwarded without consulting the cache (not cacheable, `no-store`, too large...).
    Bypass,
    /// Answered by joining an identical request already in flight (no upstream call
    /// of its own).
    Coalesced,
    /// Any other state the cache layer reports.
    Other,
    /// The route is not cached by the proxy at all.
    Uncached,
    /// The upstream could not be reached or timed out (answered 502/504 by the proxy).
    Error,
}

impl CacheState {
    /// Reads the state from an `x-cache` header value (`None`: no header).
    pub fn from_header(value: Option<&str>) -> Self {
        let Some(v) = value else {
            return CacheState::Uncached;
        };
        let v = v.trim();
        let word = v.split([' ', ',', ';']).next().unwrap_or("");
        let is = |name: &str| word.eq_ignore_ascii_case(name);
        if is("HIT") || is("STALE") {
            CacheState::Hit
        } else if is("COALESCED") {
            CacheState::Coalesced
        } else if is("MISS") {
            CacheState::Miss
        } else if is("REFRESH") {
            CacheState::Refresh
        } else if is("BYPASS") {
            CacheState::Bypass
        } else {
            CacheState::Other
        }
    }

    /// Whether the answer came from the cache (a stored entry or a shared in-flight
    /// answer) rather than from an upstream call of its own.
    pub fn is_from_cache(self) -> bool {
        matches!(self, CacheState::Hit | CacheState::Coalesced)
    }

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheState::Hit => "hit",
            CacheState::Coalesced => "coalesced",
            CacheState::Miss => "miss",
            CacheState::Refresh => "refresh",
            CacheState::Bypass => "bypass",
            CacheState::Other => "other",
            CacheState::Uncached => "uncached",
            CacheState::Error => "error",
        }
    }
}

/// Distinct `(model, tenant)` pairs counted in the savings metrics; more are counted
/// under `model="(other)", tenant="(other)"`, so entries written by others cannot grow
/// the metrics without bound.
pub(super) const MAX_SAVED_SERIES: usize = 1024;

/// The label of savings whose model or tenant is not known.
const UNKNOWN: &str = "unknown";

/// Tokens saved for one `(model, tenant)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SavedCount {
    /// Hits counted.
    pub hits: u64,
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

impl SavedCount {
    /// Adds `other`'s counts (saturating).
    pub(crate) fn add(&mut self, other: SavedCount) {
        self.hits = self.hits.saturating_add(other.hits);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
    }
}

/// Saved tokens by model, then by tenant.
type SavedByModel = BTreeMap<String, BTreeMap<String, SavedCount>>;

/// Counters of a running proxy; rendered by [`Metrics::render`] in the Prometheus
/// text exposition format.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Tokens saved by hits, by model and tenant (nested, so a hit on a known
    /// series allocates nothing), and the number of series.
    saved: Mutex<(SavedByModel, usize)>,
    /// The prices the saved tokens are valued at.
    prices: PriceTable,
    requests: AtomicU64,
    hits: AtomicU64,
    coalesced: AtomicU64,
    misses: AtomicU64,
    refreshes: AtomicU64,
    bypasses: AtomicU64,
    uncached: AtomicU64,
    errors: AtomicU64,
    other: AtomicU64,
    engine_errors: AtomicU64,
    upstream_errors_connect: AtomicU64,
    upstream_errors_timeout: AtomicU64,
    upstream_errors_other: AtomicU64,
    upstream_latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    upstream_latency_count: AtomicU64,
    upstream_latency_sum_micros: AtomicU64,
    bytes_served_from_cache: AtomicU64,
    bytes_served: AtomicU64,
    prompt_tokens_from_cache: AtomicU64,
    completion_tokens_from_cache: AtomicU64,
    total_tokens_from_cache: AtomicU64,
    in_flight: AtomicU64,
    ledger_conflicts: AtomicU64,
}

/// The kind of upstream failure, for [`Metrics::record_upstream_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The upstream could not be reached.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// Anything else.
    Other,
}

impl Metrics {
    /// Fresh counters, all zero, valuing saved tokens at the built-in list prices.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fresh counters valuing saved tokens at `prices`.
    pub fn with_prices(prices: PriceTable) -> Self {
        Metrics {
            prices,
            ..Self::default()
        }
    }

    /// The prices saved tokens are valued at.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Counts the tokens a hit saved: the answer's `model` (`unknown` when it has
    /// none) and the tenant (a digest of the caller's API key, see [`tenant_label`]).
    pub fn record_saved(&self, saved: &SavedTokens, tenant: &str) {
        let count = SavedCount {
            hits: 1,
            prompt_tokens: saved.usage.prompt_tokens,
            completion_tokens: saved.usage.completion_tokens,
        };
        let model = saved.model.as_deref().unwrap_or(UNKNOWN);
        let mut guard = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let (map, series) = &mut *guard;
        if let Some(c) = map.get_mut(model).and_then(|t| t.get_mut(tenant)) {
            c.add(count);
            return;
        }
        let (model, tenant) = if *series >= MAX_SAVED_SERIES {
            ("(other)", "(other)")
        } else {
            (model, tenant)
        };
        let tenants = map.entry(model.to_owned()).or_default();
        if !tenants.contains_key(tenant) {
            *series += 1;
        }
        tenants.entry(tenant.to_owned()).or_default().add(count);
    }

    /// Counts a savings-ledger record found written by another process with this
    /// instance's name; returns how many so far.
    pub(crate) fn record_ledger_conflict(&self) -> u64 {
        self.ledger_conflicts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The tokens saved so far, by `(model, tenant)`.
    pub fn saved(&self) -> Vec<((String, String), SavedCount)> {
        let guard = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(guard.1);
        for (model, tenants) in &guard.0 {
            for (tenant, c) in tenants {
                out.push(((model.clone(), tenant.clone()), *c));
            }
        }
        out
    }

    /// Appends the savings metrics: tokens and what they would have cost.
    fn render_saved(&self, out: &mut String) {
        type Values<'a> = &'a dyn Fn(&str, &SavedCount) -> Option<[String; 2]>;
        let saved = self.saved();
        let tokens = |_: &str, c: &SavedCount| {
            Some([c.prompt_tokens.to_string(), c.completion_tokens.to_string()])
        };
        let usd = |model: &str, c: &SavedCount| {
            let (p, q) = self.prices.get(model)?.cost(&Usage {
                prompt_tokens: c.prompt_tokens,
                completion_tokens: c.completion_tokens,
                total_tokens: 0,
            });
            Some([p.to_string(), q.to_string()])
        };
        let families: [(&str, &str, Values<'_>); 2] = [
            (
                "mistral_cache_saved_tokens_total",
                "Tokens answered from the cache instead of upstream, from the stored usage, by model, kind and tenant (a digest of the API key).",
                &tokens,
            ),
            (
                "mistral_cache_saved_usd_total",
                "What the saved tokens would have cost upstream at list prices (models with a known price only), US dollars.",
                &usd,
            ),
        ];
        for (name, help, values) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((model, tenant), c) in &saved {
                let Some(values) = values(model, c) else {
                    continue;
                };
                let (model, tenant) = (label(model), label(tenant));
                for (kind, v) in ["prompt", "completion"].into_iter().zip(values) {
                    let _ = writeln!(
                        out,
                        "{name}{{model=\"{model}\",kind=\"{kind}\",tenant=\"{tenant}\"}} {v}"
                    );
                }
            }
        }
    }

    /// Counts one proxied request by its cache state.
    pub fn record_request(&self, state: CacheState) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match state {
            CacheState::Hit => &self.hits,
            CacheState::Coalesced => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                &self.coalesced
            }
            CacheState::Miss => &self.misses,
            CacheState::Refresh => &self.refreshes,
            CacheState::Bypass => &self.bypasses,
            CacheState::Uncached => &self.uncached,
            CacheState::Error => &self.errors,
            CacheState::Other => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts body bytes sent to a client, and whether they came from the cache.
    pub fn record_bytes(&self, bytes: u64, from_cache: bool) {
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
        if from_cache {
            self.bytes_served_from_cache
                .fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts tokens answered from the cache (read from the stored `usage`).
    pub fn record_cached_usage(&self, usage: Usage) {
        self.prompt_tokens_from_cache
            .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        self.completion_tokens_from_cache
            .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        self.total_tokens_from_cache
            .fetch_add(usage.total_tokens, Ordering::Relaxed);
    }

    /// Records how long the upstream took to answer with headers.
    pub fn record_upstream_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS
            .iter()
            .zip(self.upstream_latency_buckets.iter())
        {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.upstream_latency_count.fetch_add(1, Ordering::Relaxed);
        self.upstream_latency_sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts an upstream failure (answered to the client as 502/504).
    pub fn record_upstream_error(&self, kind: UpstreamErrorKind) {
        let counter = match kind {
            UpstreamErrorKind::Connect => &self.upstream_errors_connect,
            UpstreamErrorKind::Timeout => &self.upstream_errors_timeout,
            UpstreamErrorKind::Other => &self.upstream_errors_other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts cache engine failures (reads and writes; the proxy fails open).
    pub fn record_engine_errors(&self, n: u64) {
        self.engine_errors.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn in_flight_inc(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight_dec(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests answered so far, by state: `(requests, hits, misses, bypasses)`.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypasses: self.bypasses.load(Ordering::Relaxed),
            uncached: self.uncached.load(Ordering::Relaxed),
            bytes_served_from_cache: self.bytes_served_from_cache.load(Ordering::Relaxed),
            total_tokens_from_cache: self.total_tokens_from_cache.load(Ordering::Relaxed),
        }
    }

    /// Renders every metric in the Prometheus text exposition format (0.0.4),
    /// with the cache layer's own counters when a cache is configured.
    pub fn render(&self, cache: Option<crate::cache::MetricsSnapshot>) -> String {
        let cache = cache.unwrap_or_default();
        let extra_engine_errors = cache.engine_errors + cache.store_errors;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "mistral_cache_requests_total",
            "Requests proxied, by cache state.",
            &[
                (r#"{cache="hit"}"#, load(&self.hits) - load(&self.coalesced)),
                (r#"{cache="coalesced"}"#, load(&self.coalesced)),
                (r#"{cache="miss"}"#, load(&self.misses)),
                (r#"{cache="refresh"}"#, load(&self.refreshes)),
                (r#"{cache="bypass"}"#, load(&self.bypasses)),
                (r#"{cache="uncached"}"#, load(&self.uncached)),
                (r#"{cache="error"}"#, load(&self.errors)),
                (r#"{cache="other"}"#, load(&self.other)),
            ],
        );
        counter(
            "mistral_cache_ledger_conflicts_total",
            "Times this proxy found its savings ledger record written by another process with the same instance name (give each replica its own --instance).",
            &[("", load(&self.ledger_conflicts))],
        );
        counter(
            "mistral_cache_hits_total",
            "Requests answered from the cache (stored entries and shared in-flight answers).",
            &[("", load(&self.hits))],
        );
        counter(
            "mistral_cache_misses_total",
            "Cacheable requests not found in the cache (forwarded upstream).",
            &[("", load(&self.misses))],
        );
        counter(
            "mistral_cache_bypasses_total",
            "Requests on cached routes forwarded without the cache (no-store, too large, not cacheable).",
            &[("", load(&self.bypasses))],
        );
        counter(
            "mistral_cache_engine_errors_total",
            "Cache engine failures (the proxy fails open: the request is forwarded).",
            &[("", load(&self.engine_errors) + extra_engine_errors)],
        );
        counter(
            "mistral_cache_coalesced_total",
            "Requests answered by joining an identical request in flight (counted as hits too).",
            &[("", load(&self.coalesced))],
        );
        counter(
            "mistral_cache_stores_total",
            "Entries written to the engine.",
            &[("", cache.stores)],
        );
        counter(
            "mistral_cache_store_errors_total",
            "Entries that could not be written (engine error or timeout).",
            &[("", cache.store_errors)],
        );
        counter(
            "mistral_cache_corrupt_entries_total",
            "Stored entries that did not decode (treated as misses and overwritten).",
            &[("", cache.corrupt_entries)],
        );
        counter(
            "mistral_cache_entries_rejected_signature_total",
            "Stored entries refused for a missing or invalid signature (--entry-secret; treated as misses and overwritten).",
            &[("", cache.entries_rejected_signature)],
        );
        counter(
            "mistral_cache_fleet_total",
            "Single-flight across replicas through the engine: misses that led for the fleet, followed another replica, took over from a failed or dead leader, or failed open.",
            &[
                (r#"{role="leader"}"#, cache.fleet_leaders),
                (r#"{role="follower"}"#, cache.fleet_followers),
                (r#"{role="takeover"}"#, cache.fleet_takeovers),
                (r#"{role="fail_open"}"#, cache.fleet_fail_opens),
            ],
        );
        counter(
            "mistral_cache_fleet_events_rejected_signature_total",
            "Fleet events refused for a missing or invalid signature (--entry-secret): the replica called upstream itself, or ended a followed stream with an error.",
            &[("", cache.fleet_events_rejected_signature)],
        );
        counter(
            "mistral_cache_upstream_errors_total",
            "Requests that failed to reach the upstream, by kind.",
            &[
                (r#"{kind="connect"}"#, load(&self.upstream_errors_connect)),
                (r#"{kind="timeout"}"#, load(&self.upstream_errors_timeout)),
                (r#"{kind="other"}"#, load(&self.upstream_errors_other)),
            ],
        );
        counter(
            "mistral_cache_response_bytes_total",
            "Response body bytes sent to clients.",
            &[("", load(&self.bytes_served))],
        );
        counter(
            "mistral_cache_bytes_from_cache_total",
            "Response body bytes sent to clients from the cache.",
            &[("", load(&self.bytes_served_from_cache))],
        );
        counter(
            "mistral_cache_tokens_from_cache_total",
            "Tokens answered from the cache, from the stored usage object.",
            &[
                (r#"{kind="prompt"}"#, load(&self.prompt_tokens_from_cache)),
                (
                    r#"{kind="completion"}"#,
                    load(&self.completion_tokens_from_cache),
                ),
                (r#"{kind="total"}"#, load(&self.total_tokens_from_cache)),
            ],
        );

        let name = "mistral_cache_upstream_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time until the upstream answered with response headers."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BUCKETS
            .iter()
            .zip(self.upstream_latency_buckets.iter())
        {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.upstream_latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = load(&self.upstream_latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");

        self.render_saved(&mut out);

        let name = "mistral_cache_in_flight_requests";
        let _ = writeln!(out, "# HELP {name} Requests currently being answered.");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", load(&self.in_flight));
        out
    }
}

/// A copy of the main counters, for tests and status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests proxied.
    pub requests: u64,
    /// Answered from the cache.
    pub hits: u64,
    /// Cacheable, not found, forwarded.
    pub misses: u64,
    /// On a cached route but forwarded without the cache.
    pub bypasses: u64,
    /// On a route the proxy does not cache.
    pub uncached: u64,
    /// Body bytes sent from the cache.
    pub bytes_served_from_cache: u64,
    /// `usage.total_tokens` summed over cache hits.
    pub total_tokens_from_cache: u64,
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> std::borrow::Cow<'_, str> {
    if v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        v.into()
    }
}

/// The tenant label of a request: the first 12 hex digits of the SHA-256 of its
/// `Authorization` value (never the key itself), or `default` without one (the
/// proxy's own key, if configured, is then used).
pub fn tenant_label(authorization: Option<&http::HeaderValue>) -> String {
    use sha2::{Digest, Sha256};
    let Some(v) = authorization else {
        return "default".to_owned();
    };
    crate::cache::key::hex_lower(&Sha256::digest(v.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_header() {
        assert_eq!(CacheState::from_header(Some("HIT")), CacheState::Hit);
        assert_eq!(
            CacheState::from_header(Some("COALESCED")),
            CacheState::Coalesced
        );
        assert_eq!(CacheState::from_header(Some("miss")), CacheState::Miss);
        assert_eq!(CacheState::from_header(Some("BYPASS")), CacheState::Bypass);
        assert_eq!(
            CacheState::from_header(Some("REFRESH")),
            CacheState::Refresh
        );
        assert_eq!(CacheState::from_header(None), CacheState::Uncached);
        assert_eq!(CacheState::from_header(Some("WEIRD")), CacheState::Other);
        assert_eq!(CacheState::from_header(Some(" stale, x")), CacheState::Hit);
        assert_eq!(CacheState::from_header(Some("")), CacheState::Other);
    }

    #[test]
    fn renders_savings_by_model_and_tenant_with_prices() {
        let mut prices = PriceTable::empty();
        prices.insert(
            "m",
            crate::server::Price {
                input: 2.0,
                output: 10.0,
            },
        );
        let m = Metrics::with_prices(prices);
        let usage = Usage {
            prompt_tokens: 500_000,
            completion_tokens: 100_000,
            total_tokens: 600_000,
        };
        m.record_saved(&SavedTokens::new(usage, Some("m-latest".into())), "t1");
        m.record_saved(&SavedTokens::new(usage, Some("m-latest".into())), "t1");
        m.record_saved(&SavedTokens::new(usage, None), "t2");
        let text = m.render(None);
        assert!(text.contains(
            "mistral_cache_saved_tokens_total{model=\"m-latest\",kind=\"prompt\",tenant=\"t1\"} 1000000\n"
        ));
        assert!(text.contains(
            "mistral_cache_saved_tokens_total{model=\"unknown\",kind=\"completion\",tenant=\"t2\"} 100000\n"
        ));
        assert!(text.contains(
            "mistral_cache_saved_usd_total{model=\"m-latest\",kind=\"prompt\",tenant=\"t1\"} 2\n"
        ));
        assert!(text.contains(
            "mistral_cache_saved_usd_total{model=\"m-latest\",kind=\"completion\",tenant=\"t1\"} 2\n"
        ));
        assert!(
            !text.contains("saved_usd_total{model=\"unknown\""),
            "{text}"
        );
        assert_eq!(m.saved().len(), 2);
        // Past the series limit, new pairs share one series.
        for i in 0..MAX_SAVED_SERIES + 5 {
            m.record_saved(&SavedTokens::new(usage, None), &i.to_string());
        }
        assert_eq!(m.saved().len(), MAX_SAVED_SERIES + 1);
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn tenant_labels_are_short_digests() {
        let v = http::HeaderValue::from_static("Bearer sk-secret");
        let t = tenant_label(Some(&v));
        assert_eq!(t.len(), 12);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()) && !t.contains("secret"));
        assert_eq!(t, tenant_label(Some(&v)));
        assert_ne!(
            t,
            tenant_label(Some(&http::HeaderValue::from_static("Bearer x")))
        );
        assert_eq!(tenant_label(None), "default");
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.record_request(CacheState::Hit);
        m.record_request(CacheState::Miss);
        m.record_bytes(10, true);
        m.record_cached_usage(Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
        });
        m.record_upstream_latency(Duration::from_millis(30));
        let cache = crate::cache::MetricsSnapshot {
            engine_errors: 1,
            store_errors: 1,
            ..Default::default()
        };
        let text = m.render(Some(cache));
        assert!(text.contains("mistral_cache_hits_total 1\n"));
        assert!(text.contains("mistral_cache_misses_total 1\n"));
        assert!(text.contains("mistral_cache_engine_errors_total 2\n"));
        assert!(text.contains("mistral_cache_bytes_from_cache_total 10\n"));
        assert!(text.contains("mistral_cache_tokens_from_cache_total{kind=\"total\"} 3\n"));
        assert!(text.contains("mistral_cache_upstream_latency_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("mistral_cache_upstream_latency_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("mistral_cache_upstream_latency_seconds_count 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(!line.contains("saved_usd"), "no savings, no money: {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
