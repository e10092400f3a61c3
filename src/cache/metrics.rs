//! Counters of what the cache did, shared by every service built from one layer.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! let layer = CacheLayer::new(MemoryEngine::new(1 << 20));
//! let m = layer.metrics();
//! assert_eq!(m.hits + m.misses, 0);
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A point-in-time copy of the cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests answered from the cache (including answers shared from an in-flight request).
    pub hits: u64,
    /// Requests that looked up the cache and found nothing usable.
    pub misses: u64,
    /// Requests that joined an identical in-flight request instead of calling upstream.
    pub coalesced: u64,
    /// Requests that did not use the cache (not cacheable, `no-store`, body over the limit).
    pub bypasses: u64,
    /// Requests that skipped the read to refresh the entry (`no-cache`, write-only mode).
    pub refreshes: u64,
    /// Entries written.
    pub stores: u64,
    /// Entries that could not be written (engine error or timeout).
    pub store_errors: u64,
    /// Engine errors and timeouts on read (each also counted as a miss).
    pub engine_errors: u64,
    /// Stored entries that did not decode (corrupt, truncated, other version).
    pub corrupt_entries: u64,
    /// Entries refused because their signature was missing or matched no accepted
    /// secret (see [`CacheLayer::sign_entries`](super::CacheLayer::sign_entries));
    /// each also counted as a miss.
    pub entries_rejected_signature: u64,
    /// Body bytes served from the cache.
    pub bytes_served: u64,
    /// Keys taken from the index of byte-identical repeats instead of being derived
    /// (see [`CacheLayer::raw_key_index`](super::CacheLayer::raw_key_index)).
    pub raw_key_reuses: u64,
    /// The engine's circuit breaker (see [`CacheLayer::circuit_breaker`](super::CacheLayer::circuit_breaker)).
    pub breaker: super::BreakerState,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Engine reads and writes skipped while the breaker was open (a skipped read is a
    /// miss, a skipped write a store error).
    pub engine_skips: u64,
    /// Misses that led their flight for the whole fleet (took the engine's lease).
    pub fleet_leaders: u64,
    /// Misses answered by a flight another process leads (also counted as coalesced).
    pub fleet_followers: u64,
    /// Times a follower took over from a fleet leader that failed or died before its head.
    pub fleet_takeovers: u64,
    /// Misses that called upstream alone because the engine's fleet calls failed.
    pub fleet_fail_opens: u64,
    /// Fleet events refused by a signing layer (unsigned, modified or forged in the
    /// store): the follower called upstream itself, or, past the head, ended its body
    /// with [`SharedResponseFailed`](super::SharedResponseFailed).
    pub fleet_events_rejected_signature: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) bypasses: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) engine_errors: AtomicU64,
    pub(crate) corrupt_entries: AtomicU64,
    pub(crate) entries_rejected_signature: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) raw_key_reuses: AtomicU64,
    pub(crate) fleet_leaders: AtomicU64,
    pub(crate) fleet_followers: AtomicU64,
    pub(crate) fleet_takeovers: AtomicU64,
    pub(crate) fleet_fail_opens: AtomicU64,
    pub(crate) fleet_events_rejected_signature: AtomicU64,
}

impl Metrics {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            bypasses: self.bypasses.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            stores: self.stores.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            engine_errors: self.engine_errors.load(Relaxed),
            corrupt_entries: self.corrupt_entries.load(Relaxed),
            entries_rejected_signature: self.entries_rejected_signature.load(Relaxed),
            bytes_served: self.bytes_served.load(Relaxed),
            raw_key_reuses: self.raw_key_reuses.load(Relaxed),
            fleet_leaders: self.fleet_leaders.load(Relaxed),
            fleet_followers: self.fleet_followers.load(Relaxed),
            fleet_takeovers: self.fleet_takeovers.load(Relaxed),
            fleet_fail_opens: self.fleet_fail_opens.load(Relaxed),
            fleet_events_rejected_signature: self.fleet_events_rejected_signature.load(Relaxed),
            ..MetricsSnapshot::default()
        }
    }
}
