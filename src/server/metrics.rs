//! The proxy's counters and their Prometheus text rendering.

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// Counters of a running proxy; rendered by [`Metrics::render`] in the Prometheus
/// text exposition format.
#[derive(Debug, Default)]
pub struct Metrics {
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

/// Token counts read from a stored `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: u64,
    /// `usage.completion_tokens`.
    pub completion_tokens: u64,
    /// `usage.total_tokens`.
    pub total_tokens: u64,
}

impl Metrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
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

/// Reads the token usage from a response body: a JSON object with a `usage`
/// member, or an SSE stream whose events carry one (the last one wins).
///
/// Runs on every cache hit, so it deserializes only the `usage` object: the rest of
/// the document is skipped without building a `serde_json::Value` tree.
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        return serde_json::from_slice::<UsageOnly>(trimmed)
            .ok()?
            .into_usage();
    }
    let mut found = None;
    // The crate's one event-stream framing (LF, CRLF or lone-CR line ends).
    crate::sse::for_each_event([body], |ev| {
        let data = ev.data.trim();
        if data == "[DONE]" || !data.starts_with('{') || !data.contains("\"usage\"") {
            return ControlFlow::Continue(());
        }
        if let Ok(v) = serde_json::from_str::<UsageOnly>(data)
            && let Some(u) = v.into_usage()
        {
            found = Some(u);
        }
        ControlFlow::Continue(())
    });
    found
}

/// The only member of a response [`usage_from_body`] reads; every other member is
/// skipped by the deserializer.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// A `usage` object. The counts are kept as JSON values so a count that is not an
/// unsigned integer reads as absent instead of failing the whole object.
#[derive(serde::Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<serde_json::Value>,
    #[serde(default)]
    completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    total_tokens: Option<serde_json::Value>,
}

impl UsageOnly {
    fn into_usage(self) -> Option<Usage> {
        let usage = self.usage?;
        let count = |v: Option<serde_json::Value>| v.as_ref().and_then(serde_json::Value::as_u64);
        let prompt_tokens = count(usage.prompt_tokens).unwrap_or(0);
        let completion_tokens = count(usage.completion_tokens).unwrap_or(0);
        let total_tokens = count(usage.total_tokens).unwrap_or(prompt_tokens + completion_tokens);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens,
        })
    }
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
    fn usage_from_json_and_sse() {
        let json: &[u8] = include_bytes!("../../tests/fixtures/chat.response.json");
        assert_eq!(
            usage_from_body(json),
            Some(Usage {
                prompt_tokens: 27,
                completion_tokens: 71,
                total_tokens: 98
            })
        );
        let sse: &[u8] = include_bytes!("../../tests/fixtures/chat.stream.sse");
        let usage = usage_from_body(sse).expect("the last chunk carries usage");
        assert!(usage.total_tokens > 0);
        assert_eq!(usage_from_body(b"not json"), None);
        assert_eq!(usage_from_body(br#"{"usage":null}"#), None);
        assert_eq!(usage_from_body(br#"{"usage":3}"#), None);
        assert_eq!(usage_from_body(br#"[{"usage":{"total_tokens":3}}]"#), None);
        // Other members of any shape are skipped; odd counts read as absent.
        assert_eq!(
            usage_from_body(
                br#"{"id":"x","choices":[{"message":{"content":"a \"usage\": {}"}}],"usage":{"prompt_tokens":2,"completion_tokens":1.5,"details":{"a":[1]}}}"#
            ),
            Some(Usage {
                prompt_tokens: 2,
                completion_tokens: 0,
                total_tokens: 2
            })
        );
        assert_eq!(
            usage_from_body(
                b"data: [1]\n\ndata: {\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n"
            ),
            Some(Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 7
            })
        );
    }

    #[test]
    fn usage_from_sse_with_lone_cr_line_ends() {
        assert_eq!(
            usage_from_body(b"data: {\"usage\":{\"total_tokens\":5}}\r\rdata: [DONE]\r\r")
                .map(|u| u.total_tokens),
            Some(5)
        );
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
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
