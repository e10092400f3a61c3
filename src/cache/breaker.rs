//! A circuit breaker in front of the engine: after consecutive failures the layer
//! stops asking a failing or hanging engine for a while, then lets one request probe it.
//!
//! Without it, every request during an engine outage waits for its full get timeout
//! before going upstream (issue 16: ~500 ms per request with Redis stopped). With it,
//! after [`DEFAULT_BREAKER_FAILURES`] failures in a row (errors and timeouts; a miss is
//! an answer) the breaker *opens*: reads are skipped (a miss) and writes are dropped,
//! so a request costs about what an uncached request costs. After the cool-down it is
//! *half-open*: one read or write probes the engine; success closes the breaker and
//! caching resumes, failure opens it for another cool-down.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::cache::{BreakerState, CacheLayer, MemoryEngine};
//!
//! let layer = CacheLayer::new(MemoryEngine::new(1 << 20))
//!     .circuit_breaker(3, Duration::from_secs(5)); // 0 failures turns it off
//! assert_eq!(layer.metrics().breaker, BreakerState::Closed);
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::MetricsSnapshot;

/// Default consecutive engine failures that open the breaker: 5.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time the breaker stays open before a probe: 10 s.
pub const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(10);

/// The state of the engine's circuit breaker (see [`CacheLayer::circuit_breaker`]).
///
/// [`CacheLayer::circuit_breaker`]: super::CacheLayer::circuit_breaker
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// The engine is used.
    #[default]
    Closed,
    /// The engine failed repeatedly and is skipped until the cool-down ends.
    Open,
    /// The cool-down ended: the next request probes the engine.
    HalfOpen,
}

impl BreakerState {
    /// `0` closed, `1` open, `2` half-open (the Prometheus gauge value).
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// "Not set" for the millisecond times below.
const NONE: u64 = u64::MAX;

/// The breaker's shared state; times are milliseconds since `base`, plus one (so `0`
/// can mean "closed").
#[derive(Debug)]
pub(crate) struct Breaker {
    base: Instant,
    threshold: AtomicU32,
    cool_down_ms: AtomicU64,
    failures: AtomicU32,
    /// When the open breaker turns half-open; `0`: closed.
    open_until: AtomicU64,
    /// When the probe in flight started ([`NONE`]: none). A probe that never reports
    /// (its request was dropped) is replaced after a cool-down.
    probe_at: AtomicU64,
    opens: AtomicU64,
    skipped: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            base: Instant::now(),
            threshold: AtomicU32::new(DEFAULT_BREAKER_FAILURES),
            cool_down_ms: AtomicU64::new(DEFAULT_BREAKER_COOL_DOWN.as_millis() as u64),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_at: AtomicU64::new(NONE),
            opens: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }
}

/// Permission to use the engine once: report the outcome with [`Breaker::record`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Admit {
    probe: bool,
}

impl Breaker {
    /// Sets the threshold (`0` disables the breaker) and the cool-down.
    pub(crate) fn configure(&self, failures: u32, cool_down: Duration) {
        self.threshold.store(failures, Ordering::Relaxed);
        let ms = u64::try_from(cool_down.as_millis()).unwrap_or(NONE / 2);
        self.cool_down_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(NONE / 2)
            .saturating_add(1)
    }

    /// Whether the engine may be used now: always while closed, never while open, once
    /// (a probe) when half-open. A refusal is counted.
    pub(crate) fn admit(&self) -> Option<Admit> {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Some(Admit { probe: false });
        }
        let now = self.now();
        let probe = self.probe_at.load(Ordering::Acquire);
        let cool = self.cool_down_ms.load(Ordering::Relaxed);
        let may_probe = now >= open_until && (probe == NONE || now >= probe.saturating_add(cool));
        if may_probe
            && self
                .probe_at
                .compare_exchange(probe, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(Admit { probe: true });
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Reports how the admitted use went: `ok` is an answer (a miss included), not an
    /// error or a timeout.
    pub(crate) fn record(&self, admit: Admit, ok: bool) {
        let threshold = self.threshold.load(Ordering::Relaxed);
        if threshold == 0 {
            return;
        }
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            if self.open_until.swap(0, Ordering::AcqRel) != 0 {
                self.probe_at.store(NONE, Ordering::Release);
                tracing::info!("the cache engine answers again; circuit breaker closed");
            }
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let cool = self.cool_down_ms.load(Ordering::Relaxed);
        let until = self.now().saturating_add(cool);
        if admit.probe {
            self.open_until.store(until, Ordering::Release);
            self.probe_at.store(NONE, Ordering::Release);
            self.opens.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                cool_down_ms = cool,
                "the cache engine still fails; circuit breaker open again"
            );
        } else if failures >= threshold
            && self
                .open_until
                .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.opens.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                failures,
                cool_down_ms = cool,
                "the cache engine failed repeatedly; circuit breaker open, requests skip the cache"
            );
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> BreakerState {
        match self.open_until.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            until if self.now() < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Copies the state and counters into a metrics snapshot.
    pub(crate) fn fill(&self, m: &mut MetricsSnapshot) {
        m.breaker = self.state();
        m.breaker_opens = self.opens.load(Ordering::Relaxed);
        m.engine_skips = self.skipped.load(Ordering::Relaxed);
    }
}

/// The Prometheus text of the breaker's state and counters in `m`.
#[cfg(feature = "server")]
pub(crate) fn render_prometheus(m: &MetricsSnapshot, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP mistral_cache_engine_breaker_state The cache engine's circuit breaker: 0 closed, 1 open (the engine is skipped), 2 half-open (probing).\n\
         # TYPE mistral_cache_engine_breaker_state gauge\n\
         mistral_cache_engine_breaker_state {}\n\
         # HELP mistral_cache_engine_breaker_opens_total Times the circuit breaker opened.\n\
         # TYPE mistral_cache_engine_breaker_opens_total counter\n\
         mistral_cache_engine_breaker_opens_total {}\n\
         # HELP mistral_cache_engine_skipped_total Engine reads and writes skipped while the circuit breaker was open.\n\
         # TYPE mistral_cache_engine_skipped_total counter\n\
         mistral_cache_engine_skipped_total {}",
        m.breaker.as_gauge(),
        m.breaker_opens,
        m.engine_skips
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_probes_and_closes() {
        let b = Breaker::default();
        b.configure(3, Duration::from_secs(10));
        // Failures interrupted by an answer do not open it.
        for ok in [false, false, true, false, false] {
            b.record(b.admit().unwrap(), ok);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(b.admit().unwrap(), false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_none(), "skipped while open");

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.admit().expect("one probe");
        assert!(b.admit().is_none(), "one probe at a time");
        b.record(probe, false);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");

        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.admit().unwrap();
        b.record(probe, true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_some());

        let mut m = MetricsSnapshot::default();
        b.fill(&mut m);
        assert_eq!((m.breaker_opens, m.engine_skips), (2, 2));
        #[cfg(feature = "server")]
        {
            let mut text = String::new();
            render_prometheus(&m, &mut text);
            assert!(
                text.contains("mistral_cache_engine_breaker_state 0\n"),
                "{text}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_is_replaced() {
        let b = Breaker::default();
        b.configure(1, Duration::from_secs(1));
        b.record(b.admit().unwrap(), false);
        tokio::time::advance(Duration::from_secs(1)).await;
        let _lost = b.admit().unwrap(); // its request was dropped
        assert!(b.admit().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.admit().is_some(), "another probe after a cool-down");
    }

    #[test]
    fn zero_failures_disables_it() {
        let b = Breaker::default();
        b.configure(0, Duration::from_secs(1));
        for _ in 0..100 {
            b.record(b.admit().unwrap(), false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
