//! The optional fleet capability of an engine: a lease lock and a frame log per key, so
//! that cache layers in several processes sharing one store make one upstream call for
//! identical concurrent misses.
//!
//! An engine that can coordinate processes returns itself from
//! [`CacheEngine::fleet`](super::CacheEngine::fleet); the Redis (single node and
//! cluster) and PostgreSQL engines do. The cache layer drives the protocol (see
//! [`CacheLayer::fleet_flight`](crate::cache::CacheLayer::fleet_flight)); an engine only
//! stores:
//!
//! - a **lease** per key: [`acquire`](SharedFlight::acquire) either takes it (the caller
//!   leads: it calls upstream) or names the flight that holds it (the caller follows).
//!   A lease carries a fencing number, increasing per key, and a random token; it
//!   expires unless [`renew`](SharedFlight::renew)ed, and [`release`](SharedFlight::release)
//!   removes it only if it is still the caller's (compare-and-delete);
//! - a **log of events** per flight ([`FleetEvent`]: the response head, body frames, the
//!   end or a failure), appended by the leader with [`publish`](SharedFlight::publish)
//!   (refused once the lease is no longer the leader's) and read by followers with
//!   [`read`](SharedFlight::read), together with whether the lease is still held. Logs
//!   expire after the `ttl` given on each write, so nothing leaks.
//!
//! # Example
//!
//! ```
//! use mistral_tower::cache::engine::{CacheEngine, MemoryEngine};
//! // An engine local to one process has no fleet: single-flight stays per process.
//! assert!(MemoryEngine::new(1 << 20).fleet().is_none());
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::contract::CacheError;

/// A boxed future, as [`SharedFlight`] (an object-safe trait) returns them.
pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'a>>;

/// One flight's lease on a key: its fencing number (increasing per key) and a random
/// token. Two leases are the same flight only if both match.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetLease {
    /// Increases with every lease taken on the key.
    pub fence: u64,
    /// A random token (hex) chosen by the leader.
    pub token: String,
}

impl FleetLease {
    /// A lease with a fresh random token (the fence is assigned by the store).
    pub fn new_token() -> String {
        format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }

    /// `fence:token`, the value stored under the lock.
    pub fn value(&self) -> String {
        format!("{}:{}", self.fence, self.token)
    }

    /// Parses [`value`](Self::value).
    pub fn parse(value: &str) -> Option<Self> {
        let (fence, token) = value.split_once(':')?;
        let token_ok = !token.is_empty()
            && token.len() <= 64
            && token.bytes().all(|b| b.is_ascii_alphanumeric());
        let fence = fence.parse().ok()?;
        token_ok.then(|| FleetLease {
            fence,
            token: token.to_owned(),
        })
    }
}

impl fmt::Debug for FleetLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLease")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`SharedFlight::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller took the lease: it leads.
    Leader(FleetLease),
    /// Another flight holds the lease: the caller follows it.
    Follower(FleetLease),
}

/// One entry of a flight's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetEvent {
    /// The response head, encoded by the cache layer (opaque to engines).
    Head(Bytes),
    /// A body frame, exactly as the leader's caller got it.
    Data(Bytes),
    /// The body ended cleanly.
    End,
    /// The flight failed. The cache layer's leaders do not publish it (they remove their
    /// lease, which followers read the same way) but followers accept it.
    Failed,
}

impl FleetEvent {
    /// A one-byte tag and the payload, for engines that store events as fields.
    pub fn to_parts(&self) -> (&'static str, Bytes) {
        match self {
            FleetEvent::Head(b) => ("h", b.clone()),
            FleetEvent::Data(b) => ("d", b.clone()),
            FleetEvent::End => ("e", Bytes::new()),
            FleetEvent::Failed => ("f", Bytes::new()),
        }
    }

    /// The inverse of [`to_parts`](Self::to_parts); `None` for an unknown tag.
    pub fn from_parts(tag: &str, payload: Bytes) -> Option<Self> {
        Some(match tag {
            "h" => FleetEvent::Head(payload),
            "d" => FleetEvent::Data(payload),
            "e" => FleetEvent::End,
            "f" => FleetEvent::Failed,
            _ => return None,
        })
    }

    /// `true` for [`End`](Self::End) and [`Failed`](Self::Failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self, FleetEvent::End | FleetEvent::Failed)
    }
}

/// What [`SharedFlight::read`] found: events after the cursor (at most a batch), and
/// whether the lease read was still the flight's, both seen at one instant.
#[derive(Debug, Clone, Default)]
pub struct FleetRead {
    /// The events after the cursor, in order.
    pub events: Vec<FleetEvent>,
    /// `true` while the flight still holds its lease.
    pub alive: bool,
    /// `true` when `events` may not be all of them (read again before concluding).
    pub more: bool,
}

/// A store that coordinates single-flight across processes (see the [module
/// docs](self)). Event sequence numbers start at 1 and are given by the leader, one per
/// event, in order.
pub trait SharedFlight: Send + Sync {
    /// Takes the lease on `key` for `lease`, or names the flight holding it.
    fn acquire<'a>(&'a self, key: &'a str, lease: Duration) -> FleetFuture<'a, Acquired>;

    /// Extends the lease by `lease` (and the log's life by `ttl`); `false` when it is no
    /// longer the caller's.
    fn renew<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        lease: Duration,
        ttl: Duration,
    ) -> FleetFuture<'a, bool>;

    /// Appends `events` (numbered from `first_seq`) to the flight's log, kept for `ttl`;
    /// `false` (nothing written) when the lease is no longer the caller's.
    fn publish<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        first_seq: u64,
        events: &'a [FleetEvent],
        ttl: Duration,
    ) -> FleetFuture<'a, bool>;

    /// Gives the lease up if it is still the caller's: removes it, or with `linger` lets
    /// it expire after that long (late arrivals then follow the finished log).
    fn release<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        linger: Option<Duration>,
    ) -> FleetFuture<'a, ()>;

    /// The flight's events numbered after `after`, and whether it still holds its lease.
    fn read<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        after: u64,
    ) -> FleetFuture<'a, FleetRead>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_round_trip_and_reject_junk() {
        let l = FleetLease {
            fence: 7,
            token: FleetLease::new_token(),
        };
        assert_eq!(FleetLease::parse(&l.value()), Some(l.clone()));
        assert!(!format!("{l:?}").contains(&l.token));
        for bad in ["", "7", "x:abc", "7:", "7:a-b", "7:a:b"] {
            assert_eq!(FleetLease::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_round_trip() {
        for e in [
            FleetEvent::Head(Bytes::from_static(b"h")),
            FleetEvent::Data(Bytes::from_static(b"d")),
            FleetEvent::End,
            FleetEvent::Failed,
        ] {
            let (t, p) = e.to_parts();
            assert_eq!(FleetEvent::from_parts(t, p), Some(e));
        }
        assert_eq!(FleetEvent::from_parts("z", Bytes::new()), None);
    }
}
