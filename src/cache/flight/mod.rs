//! Single-flight: identical concurrent misses share one upstream call.
//!
//! The first miss for a key becomes the *leader*: it calls the inner service and, if the
//! answer is cacheable, publishes the head and every body frame to a [`Flight`] as they
//! arrive. Identical requests arriving meanwhile become *followers*: they wait for the
//! head (bounded by the layer's `flight_wait`) and then read the frames published so far
//! followed by the rest, so a late joiner of a stream gets the prefix and then the live
//! tail. The upstream body is not owned by the leader's response body but by the flight:
//! whichever reader (leader or follower) has read everything published reads the
//! upstream and publishes what it gets, so a leader whose client stops reading does not
//! stall its followers. If the leader fails before the head (error, non-cacheable answer, dropped
//! future), the flight is marked failed and removed, and each follower starts over: one
//! of them becomes the new leader and the others follow it. A flight that completed stays
//! in the table until its entry has been written, so requests arriving in between are
//! answered from it.
//!
//! # Example
//!
//! The table is internal; see the `single_flight` tests of the layer for its behaviour.
//!
//! ```
//! use mistral_tower::cache::{CacheLayer, MemoryEngine};
//! use std::time::Duration;
//! let _layer = CacheLayer::new(MemoryEngine::new(1 << 20)).flight_wait(Duration::from_secs(30));
//! ```
//!
//! # Layout
//!
//! From the bottom up: [`state`] (one flight: head, frames, outcome, wakers, the slot of
//! the upstream body), [`table`] (flights by key, the leader's guard, a waiting
//! follower's ticket), [`recorder`] (the leader's upstream body teed into its flight),
//! [`reader`] (a response body's cursor into a flight) and [`commit`] (the entry a
//! completed flight stores). Each imports only the ones before it.

mod commit;
mod reader;
mod recorder;
mod state;
mod table;

pub(crate) use commit::{EntryMeta, encode};
pub(crate) use reader::Reader;
pub use reader::SharedResponseFailed;
pub(crate) use recorder::{Commit, Flight, Flights, LeaderGuard, Recorder, TeeBody};
pub(crate) use state::Head;

/// A request's role in its flight.
pub(crate) type Role = table::Role<Recorder>;
/// A follower's ticket while it waits for the head.
pub(crate) type Joined = table::Joined<Recorder>;
