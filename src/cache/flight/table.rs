//! The single-flight table: flights by key, and the guards of their leaders and
//! waiting followers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::state::{Flight, Outcome};

/// The role of a request in its flight.
pub(crate) enum Role<U> {
    /// Leads the flight registered under the key (shared with the table).
    Leader(LeaderGuard<U>),
    /// Joined the flight of another request.
    Follower(Joined<U>),
}

/// The table of flights by key.
pub(crate) struct Flights<U> {
    /// Seeded like the memory engine's map (see `MemoryEngine::new`).
    map: Mutex<FlightMap<U>>,
}

type FlightMap<U> = HashMap<Arc<str>, Arc<Flight<U>>, ahash::RandomState>;

impl<U> Default for Flights<U> {
    fn default() -> Self {
        Flights {
            map: Mutex::default(),
        }
    }
}

impl<U> std::fmt::Debug for Flights<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl<U> Flights<U> {
    fn lock(&self) -> MutexGuard<'_, FlightMap<U>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight for `key`, or starts one. A completed flight (whose entry is
    /// still being written) is joined only when `accept_complete`; otherwise (a refresh)
    /// a new flight replaces it.
    pub(crate) fn join_or_lead(self: &Arc<Self>, key: &str, accept_complete: bool) -> Role<U> {
        let mut map = self.lock();
        if let Some(f) = map.get(key) {
            let mut st = f.lock();
            if st.outcome == Outcome::Running
                || (st.outcome == Outcome::Complete && accept_complete)
            {
                st.waiting += 1;
                drop(st);
                return Role::Follower(Joined { flight: f.clone() });
            }
        }
        let f = Arc::new(Flight::new());
        let key: Arc<str> = Arc::from(key);
        map.insert(key.clone(), f.clone());
        Role::Leader(LeaderGuard {
            flights: self.clone(),
            key,
            flight: f,
            armed: true,
        })
    }

    /// Leads a flight that is not registered (single-flight is off): nobody can join it.
    pub(crate) fn lead_alone(self: &Arc<Self>, key: &str) -> LeaderGuard<U> {
        LeaderGuard {
            flights: self.clone(),
            key: Arc::from(key),
            flight: Arc::new(Flight::new()),
            armed: true,
        }
    }

    /// Removes `flight` from the table if it is still the one registered under `key`.
    pub(crate) fn remove(&self, key: &str, flight: &Arc<Flight<U>>) {
        let mut map = self.lock();
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }
}

/// Fails and removes a leader's flight unless disarmed (the leader's future or body was
/// dropped, or the upstream call failed).
pub(crate) struct LeaderGuard<U> {
    flights: Arc<Flights<U>>,
    key: Arc<str>,
    flight: Arc<Flight<U>>,
    armed: bool,
}

impl<U> LeaderGuard<U> {
    /// The key of the flight.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The flight this guard leads.
    pub(crate) fn flight(&self) -> &Arc<Flight<U>> {
        &self.flight
    }

    /// The flight ended cleanly: it stays in the table (until its entry is written).
    pub(crate) fn disarm(mut self) -> (Arc<str>, Arc<Flight<U>>) {
        self.armed = false;
        (self.key.clone(), self.flight.clone())
    }
}

impl<U> Drop for LeaderGuard<U> {
    fn drop(&mut self) {
        if self.armed {
            self.flight.fail();
            self.flights.remove(&self.key, &self.flight);
        }
    }
}

impl<U> std::fmt::Debug for LeaderGuard<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("key", &self.key)
            .finish()
    }
}

/// A request that joined another's flight and waits for its head; counted in the
/// flight's `waiting` until it gets its body (or gives up), so that a leader's body
/// dropped meanwhile is read to its end for it.
pub(crate) struct Joined<U> {
    flight: Arc<Flight<U>>,
}

impl<U> Joined<U> {
    /// The flight joined.
    pub(crate) fn flight(&self) -> &Arc<Flight<U>> {
        &self.flight
    }
}

impl<U> Drop for Joined<U> {
    fn drop(&mut self) {
        let mut st = self.flight.lock();
        st.waiting = st.waiting.saturating_sub(1);
    }
}

impl<U> std::fmt::Debug for Joined<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").finish_non_exhaustive()
    }
}
