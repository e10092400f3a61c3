//! Storing a completed flight's answer: the [`Commit`] of the leader's recorder, which
//! encodes the entry and writes it without delaying the caller.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use super::Chain;
use super::config::{Config, Shared};
use super::engine::{CacheEngine, CacheError, Token};
use super::flight::{Commit, EntryMeta, Flight, encode};
use super::metrics::Metrics;

/// What the leader needs to store the entry once its body ended.
pub(crate) struct StoreCtx<E> {
    pub(crate) shared: Arc<Shared<E>>,
    pub(crate) config: Arc<Config>,
    pub(crate) ttl: Option<Duration>,
    /// The request's `x-cache-namespace`, if any (otherwise the layer's).
    pub(crate) namespace: Option<String>,
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) path: String,
}

impl<E: CacheEngine> Commit for StoreCtx<E> {
    fn commit(&self, key: Arc<str>, flight: Arc<Flight>) {
        let shared = &self.shared;
        let created_ms = self.config.clock.now_ms();
        let expires_ms = self
            .ttl
            .map(|t| created_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let meta = EntryMeta {
            namespace: self.namespace.as_deref().unwrap_or(&self.config.namespace),
            method: &self.method,
            path: &self.path,
            created_ms,
            expires_ms,
            secrets: self.config.secrets.as_deref(),
        };
        // Encoded straight from the flight (no copy of its head or frames first).
        let data = flight.with_recorded(|head, frames| encode(&key, head, frames, &meta));
        let Some(data) = data else {
            shared.flights.remove(&key, &flight);
            return;
        };
        store(shared, self.config.set_timeout, key, data, self.ttl, flight);
    }
}

fn record_store<E>(shared: &Shared<E>, key: &str, res: Result<(), CacheError>) {
    match res {
        Ok(()) => {
            Metrics::inc(&shared.metrics.stores);
            tracing::debug!(key, "cache store");
        }
        Err(e) => {
            Metrics::inc(&shared.metrics.store_errors);
            tracing::warn!(key, error = %Chain(&e), "cache engine set failed; entry not stored");
        }
    }
}

/// Writes an entry without delaying the caller: inline into an engine kept whole in
/// memory (see [`CacheEngine::resident`]), otherwise polled once inline (other
/// in-memory engines finish there) and finished on a spawned tokio task under
/// `timeout`. The flight is removed from the table once the write is over.
fn store<E: CacheEngine>(
    shared: &Arc<Shared<E>>,
    timeout: Duration,
    key: Arc<str>,
    data: Bytes,
    ttl: Option<Duration>,
    flight: Arc<Flight>,
) {
    if let Some(r) = shared.engine.resident(Token(()))
        && r.complete
    {
        r.store.set_trusted(&key, data, ttl);
        record_store(shared, &key, Ok(()));
        shared.flights.remove(&key, &flight);
        return;
    }
    // An engine that keeps failing is not written to for a while.
    let Some(admit) = shared.breaker.admit() else {
        Metrics::inc(&shared.metrics.store_errors);
        shared.flights.remove(&key, &flight);
        return;
    };
    let shared = shared.clone();
    let s2 = shared.clone();
    let k2 = key.clone();
    let f2 = flight.clone();
    let mut fut = Box::pin(async move {
        let res = shared.engine.set_with_ttl(&key, data, ttl).await;
        shared.breaker.record(admit, res.is_ok());
        record_store(&shared, &key, res);
        shared.flights.remove(&key, &flight);
    });
    let mut cx = Context::from_waker(Waker::noop());
    if fut.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                if tokio::time::timeout(timeout, fut).await.is_err() {
                    s2.breaker.record(admit, false);
                    record_store(&s2, &k2, Err(CacheError::Timeout(timeout)));
                    s2.flights.remove(&k2, &f2);
                }
            });
        }
        Err(_) => {
            drop(fut);
            record_store(
                &s2,
                &k2,
                Err(CacheError::backend(
                    "engine set is pending and no tokio runtime is running",
                )),
            );
            s2.flights.remove(&k2, &f2);
        }
    }
}
