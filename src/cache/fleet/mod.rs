//! Single-flight across processes: cache layers in several processes (proxy replicas,
//! app instances) on one shared engine make one upstream call for identical concurrent
//! misses, streams included.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use std::time::Duration;
//! // On by default for engines with a fleet capability (Redis, PostgreSQL); a memory
//! // engine has none, so this layer keeps per-process single-flight.
//! let _layer = CacheLayer::new(MemoryEngine::new(1 << 20))
//!     .fleet_flight(true)
//!     .fleet_lease(Duration::from_secs(10));
//! ```
//!
//! # How
//!
//! It sits on top of the per-process single-flight (`flight/`): only the local leader of
//! a flight, the one request per process that would call upstream, asks the engine's
//! [`SharedFlight`](crate::cache::engine::SharedFlight) for the key's lease.
//!
//! - **Leader** (it took the lease): calls upstream as usual; if the answer is
//!   cacheable, a task publishes its head and then every body frame as it reaches the
//!   caller, then the end, renewing the lease every third of it, and finally releases
//!   the lease: after a clean end it lingers a few seconds (late arrivals follow the
//!   finished log while the entry is written); on a failure (upstream error, answer not
//!   cacheable or over the size limit, caller gone) it is removed at once. Publishing
//!   never delays the caller.
//! - **Follower** (another process holds it): reads that flight's log, waiting for the
//!   head at most the layer's `flight_wait`, and then serves its frames as they are
//!   published (byte for byte what the leader's caller got; `x-cache: COALESCED`) to
//!   its caller and to the requests of its own process that joined it. It does not store
//!   the entry again: the leader does.
//! - **Takeover**: if the leader fails or dies before its head (its lease is removed,
//!   or expires without an end: a killed process stops renewing), the followers ask for
//!   the lease again and one of them calls upstream. After the head, a follower whose leader dies
//!   ends its body with [`SharedResponseFailed`](crate::cache::SharedResponseFailed)
//!   within a lease; nothing is stored.
//! - **Fail-open**: if the engine fails (down, timeout), the request leads by itself,
//!   as without a fleet.
//! - **Signed**: a layer that signs its entries
//!   ([`sign_entries`](crate::cache::CacheLayer::sign_entries)) signs every event it
//!   publishes (an HMAC over the key, the lease, the event's position and its bytes)
//!   and refuses every event that one of its accepted secrets did not sign: before the
//!   head it calls upstream itself, after it ends its body with
//!   [`SharedResponseFailed`](crate::cache::SharedResponseFailed). Replicas must share
//!   a secret (rotation as for entries) to share flights.
//!
//! The counters are in [`MetricsSnapshot`](crate::cache::MetricsSnapshot):
//! `fleet_leaders`, `fleet_followers`, `fleet_takeovers`, `fleet_fail_opens`,
//! `fleet_events_rejected_signature`.

mod follower;
mod head;
mod leader;
mod seal;

use std::sync::Arc;

use follower::{Follow, Stop};
pub(crate) use leader::Publisher;
use seal::Seal;

use super::Chain;
use super::breaker::BreakerState;
use super::config::{Config, Shared};
use super::engine::{Acquired, CacheEngine, FleetLease};
use super::flight::{Commit, Flight, Head, TeeBody};
use super::lookup::bounded;
use super::metrics::Metrics;

/// A local leader's role in the fleet.
pub(crate) enum FleetRole {
    /// No fleet (none configured, or the engine failed): lead as a single process does.
    Alone,
    /// Lead, publishing to the fleet.
    Leader(Publisher),
    /// Another process leads: its head, and its body as it is published.
    Follower(Head, TeeBody),
}

/// Asks the engine who leads `key` in the fleet, following (and if it fails before its
/// head, taking over from) another process's flight.
pub(crate) async fn join<E: CacheEngine>(
    shared: &Arc<Shared<E>>,
    cfg: &Config,
    key: &str,
) -> FleetRole {
    let (Some(fleet), Some(wait)) = (shared.engine.fleet(), cfg.flight_wait) else {
        return FleetRole::Alone;
    };
    if !cfg.fleet {
        return FleetRole::Alone;
    }
    let m = &shared.metrics;
    // While the circuit breaker keeps reads and writes off the engine, the fleet stays off
    // it too: a flight published there could not be stored, and its lease would keep
    // other requests following finished flights instead of reading entries.
    if shared.breaker.state() != BreakerState::Closed {
        Metrics::inc(&m.fleet_fail_opens);
        return FleetRole::Alone;
    }
    let key: Arc<str> = Arc::from(key);
    let lease_len = cfg.fleet_lease;
    // A signing layer signs the events it publishes and refuses unsigned ones.
    let seal = |lease: &_| {
        let secrets = cfg.secrets.clone()?;
        let lease = FleetLease::clone(lease);
        Some(Seal::new(secrets, key.clone(), lease, cfg.clock.clone()))
    };
    for _attempt in 0..3 {
        let acquired = bounded(fleet.acquire(&key, lease_len), cfg.get_timeout).await;
        match acquired {
            Some(Ok(Acquired::Leader(lease))) => {
                Metrics::inc(&m.fleet_leaders);
                let seal = seal(&lease);
                let p = Publisher::start(shared.clone(), key.clone(), lease, lease_len, seal);
                return FleetRole::Leader(p);
            }
            Some(Ok(Acquired::Follower(lease))) => {
                let seal = seal(&lease);
                let mut follow =
                    Follow::new(shared.clone(), key.clone(), lease, lease_len, wait, seal);
                match bounded(follow.head(), wait).await {
                    Some(Ok(head)) => {
                        Metrics::inc(&m.fleet_followers);
                        return FleetRole::Follower(head, follow.into_body());
                    }
                    Some(Err(Stop::Failed)) => {
                        tracing::debug!(
                            key = &*key,
                            "fleet leader failed before its head; taking over"
                        );
                        Metrics::inc(&m.fleet_takeovers);
                    }
                    Some(Err(Stop::Refused)) => {
                        // Not a flight this layer can follow (a refused signature is
                        // counted and logged by the follower): call upstream alone
                        // rather than wait for a forger's lease.
                        return FleetRole::Alone;
                    }
                    Some(Err(Stop::Engine(e))) => {
                        tracing::debug!(key = &*key, error = %Chain(&e), "fleet engine failed; calling upstream");
                        Metrics::inc(&m.fleet_fail_opens);
                        return FleetRole::Alone;
                    }
                    Some(Err(Stop::Stalled)) | None => {
                        tracing::debug!(key = &*key, "waited too long for the fleet leader");
                        return FleetRole::Alone;
                    }
                }
            }
            Some(Err(e)) => {
                tracing::debug!(key = &*key, error = %Chain(&e), "fleet engine failed; calling upstream");
                Metrics::inc(&m.fleet_fail_opens);
                return FleetRole::Alone;
            }
            None => {
                tracing::debug!(key = &*key, "fleet engine timed out; calling upstream");
                Metrics::inc(&m.fleet_fail_opens);
                return FleetRole::Alone;
            }
        }
    }
    FleetRole::Alone
}

/// The commit of a flight followed from another process: the leader stores the entry,
/// this process only removes its flight.
pub(crate) struct NoStore<E> {
    pub(crate) shared: Arc<Shared<E>>,
}

impl<E: CacheEngine> Commit for NoStore<E> {
    fn commit(&self, key: Arc<str>, flight: Arc<Flight>) {
        self.shared.flights.remove(&key, &flight);
    }
}
