//! Single-flight across processes on PostgreSQL: [`SharedFlight`] for
//! [`PostgresEngine`].
//!
//! Two tables beside the engine's (`T`), created with it:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS T_fleet_locks (
//!     key text PRIMARY KEY, fence bigint NOT NULL, token text NOT NULL,
//!     expires_at timestamptz NOT NULL);
//! CREATE TABLE IF NOT EXISTS T_fleet_events (
//!     key text NOT NULL, fence bigint NOT NULL, token text NOT NULL, seq bigint NOT NULL,
//!     tag text NOT NULL, payload bytea NOT NULL, expires_at timestamptz NOT NULL,
//!     PRIMARY KEY (key, fence, token, seq));
//! ```
//!
//! A lease is a lock row: taking it is one upsert that succeeds only when the row is
//! missing or expired (by the database clock) and then increments its fence; releasing
//! it expires the row (the fence survives, so it only grows). Publishing inserts the
//! events only while the lock row is still the leader's (one statement, so a leader
//! that lost its lease writes nothing), and a follower reads events and the lock in
//! one statement (one snapshot). Followers poll. Expired events are deleted when a new
//! leader takes the key's lease and by [`PostgresEngine::sweep_expired`].
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::cache::{CacheEngine, PostgresEngine};
//! let engine = PostgresEngine::new("postgres://postgres@127.0.0.1:5432/test").unwrap();
//! assert!(engine.fleet().is_some());
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::contract::CacheError;
use super::fleet::{Acquired, FleetEvent, FleetFuture, FleetLease, FleetRead, SharedFlight};
use super::postgres::PostgresEngine;

/// How many events one read returns at most.
const READ_BATCH: i64 = 256;

/// The fleet statements of one table.
pub(super) struct FleetSql {
    pub(super) create: String,
    pub(super) sweep: String,
    acquire: String,
    holder: String,
    clean: String,
    renew: String,
    renew_events: String,
    publish: String,
    release: String,
    read: String,
}

impl FleetSql {
    /// The statements for the engine table `name` (a validated identifier).
    pub(super) fn new(name: &str) -> Self {
        let locks = format!("\"{name}_fleet_locks\"");
        let events = format!("\"{name}_fleet_events\"");
        let held = "key = $1 AND fence = $2 AND token = $3";
        FleetSql {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {locks} (key text PRIMARY KEY, \
                 fence bigint NOT NULL, token text NOT NULL, expires_at timestamptz NOT NULL); \
                 CREATE TABLE IF NOT EXISTS {events} (key text NOT NULL, \
                 fence bigint NOT NULL, token text NOT NULL, seq bigint NOT NULL, \
                 tag text NOT NULL, payload bytea NOT NULL, expires_at timestamptz NOT NULL, \
                 PRIMARY KEY (key, fence, token, seq))"
            ),
            sweep: format!(
                "DELETE FROM {events} WHERE expires_at <= now(); \
                 DELETE FROM {locks} WHERE expires_at <= now() - interval '1 day'"
            ),
            acquire: format!(
                "INSERT INTO {locks} AS l (key, fence, token, expires_at) \
                 VALUES ($1, 1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (key) DO UPDATE SET fence = l.fence + 1, token = EXCLUDED.token, \
                 expires_at = EXCLUDED.expires_at WHERE l.expires_at <= now() \
                 RETURNING fence, token"
            ),
            holder: format!(
                "SELECT fence, token FROM {locks} WHERE key = $1 AND expires_at > now()"
            ),
            clean: format!("DELETE FROM {events} WHERE key = $1 AND expires_at <= now()"),
            renew: format!(
                "UPDATE {locks} SET expires_at = now() + make_interval(secs => $4) \
                 WHERE {held} AND expires_at > now()"
            ),
            renew_events: format!(
                "UPDATE {events} SET expires_at = now() + make_interval(secs => $4) WHERE {held}"
            ),
            publish: format!(
                "INSERT INTO {events} (key, fence, token, seq, tag, payload, expires_at) \
                 SELECT $1, $2, $3, s.seq, s.tag, s.payload, now() + make_interval(secs => $7) \
                 FROM unnest($4::bigint[], $5::text[], $6::bytea[]) AS s(seq, tag, payload) \
                 WHERE EXISTS (SELECT 1 FROM {locks} WHERE {held} AND expires_at > now())"
            ),
            release: format!(
                "UPDATE {locks} SET expires_at = now() + make_interval(secs => $4) WHERE {held}"
            ),
            read: format!(
                "WITH l AS (SELECT EXISTS (SELECT 1 FROM {locks} WHERE {held} \
                 AND expires_at > now()) AS alive) \
                 SELECT l.alive, e.seq, e.tag, e.payload FROM l LEFT JOIN LATERAL \
                 (SELECT seq, tag, payload FROM {events} WHERE {held} AND seq > $4 \
                 ORDER BY seq LIMIT {READ_BATCH}) e ON true"
            ),
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fence_of(l: &FleetLease) -> Result<i64, CacheError> {
    i64::try_from(l.fence).map_err(|_| CacheError::backend("fleet fence out of range"))
}

impl SharedFlight for PostgresEngine {
    fn acquire<'a>(&'a self, key: &'a str, lease: Duration) -> FleetFuture<'a, Acquired> {
        Box::pin(self.timed(async move {
            let client = self.ready_client().await?;
            let sql = &self.fleet_sql();
            let token = FleetLease::new_token();
            // Twice: the holder may expire between the upsert and the select.
            for _ in 0..2 {
                let took = client
                    .query_opt(sql.acquire.as_str(), &[&key, &token, &secs(lease)])
                    .await
                    .map_err(CacheError::backend)?;
                if let Some(row) = took {
                    let fence: i64 = row.try_get(0).map_err(CacheError::backend)?;
                    // Events of earlier flights of this key that have expired.
                    let _ = client.execute(sql.clean.as_str(), &[&key]).await;
                    let fence = u64::try_from(fence).map_err(CacheError::backend)?;
                    return Ok(Acquired::Leader(FleetLease { fence, token }));
                }
                let holder = client
                    .query_opt(sql.holder.as_str(), &[&key])
                    .await
                    .map_err(CacheError::backend)?;
                if let Some(row) = holder {
                    let fence: i64 = row.try_get(0).map_err(CacheError::backend)?;
                    let token: String = row.try_get(1).map_err(CacheError::backend)?;
                    let fence = u64::try_from(fence).map_err(CacheError::backend)?;
                    return Ok(Acquired::Follower(FleetLease { fence, token }));
                }
            }
            Err(CacheError::backend("fleet lease changed hands twice"))
        }))
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        lease: Duration,
        ttl: Duration,
    ) -> FleetFuture<'a, bool> {
        Box::pin(self.timed(async move {
            let client = self.ready_client().await?;
            let sql = &self.fleet_sql();
            let fence = fence_of(flight)?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&key, &fence, &flight.token, &secs(lease)];
            let n = client
                .execute(sql.renew.as_str(), &params)
                .await
                .map_err(CacheError::backend)?;
            if n == 0 {
                return Ok(false);
            }
            client
                .execute(
                    sql.renew_events.as_str(),
                    &[&key, &fence, &flight.token, &secs(ttl)],
                )
                .await
                .map_err(CacheError::backend)?;
            Ok(true)
        }))
    }

    fn publish<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        first_seq: u64,
        events: &'a [FleetEvent],
        ttl: Duration,
    ) -> FleetFuture<'a, bool> {
        Box::pin(self.timed(async move {
            if first_seq == 0 {
                return Err(CacheError::backend("fleet event numbers start at 1"));
            }
            if events.is_empty() {
                return Ok(true);
            }
            let client = self.ready_client().await?;
            let first = i64::try_from(first_seq).map_err(CacheError::backend)?;
            let seqs: Vec<i64> = (0..events.len() as i64).map(|i| first + i).collect();
            let (tags, payloads): (Vec<&str>, Vec<Bytes>) =
                events.iter().map(FleetEvent::to_parts).unzip();
            let payloads: Vec<&[u8]> = payloads.iter().map(|b| b.as_ref()).collect();
            let n = client
                .execute(
                    self.fleet_sql().publish.as_str(),
                    &[
                        &key,
                        &fence_of(flight)?,
                        &flight.token,
                        &seqs,
                        &tags,
                        &payloads,
                        &secs(ttl),
                    ],
                )
                .await
                .map_err(CacheError::backend)?;
            Ok(n == events.len() as u64)
        }))
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        linger: Option<Duration>,
    ) -> FleetFuture<'a, ()> {
        Box::pin(self.timed(async move {
            let client = self.ready_client().await?;
            let linger = linger.map_or(0.0, secs);
            client
                .execute(
                    self.fleet_sql().release.as_str(),
                    &[&key, &fence_of(flight)?, &flight.token, &linger],
                )
                .await
                .map_err(CacheError::backend)?;
            Ok(())
        }))
    }

    fn read<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        after: u64,
    ) -> FleetFuture<'a, FleetRead> {
        Box::pin(self.timed(async move {
            let client = self.ready_client().await?;
            let after = i64::try_from(after).map_err(CacheError::backend)?;
            let rows = client
                .query(
                    self.fleet_sql().read.as_str(),
                    &[&key, &fence_of(flight)?, &flight.token, &after],
                )
                .await
                .map_err(CacheError::backend)?;
            let mut out = FleetRead::default();
            for row in rows {
                out.alive = row.try_get(0).map_err(CacheError::backend)?;
                let tag: Option<String> = row.try_get(2).map_err(CacheError::backend)?;
                let Some(tag) = tag else { continue };
                let payload: Vec<u8> = row.try_get(3).map_err(CacheError::backend)?;
                let event = FleetEvent::from_parts(&tag, Bytes::from(payload))
                    .ok_or_else(|| CacheError::backend("unknown fleet event tag"))?;
                out.events.push(event);
            }
            out.more = out.events.len() as i64 >= READ_BATCH;
            Ok(out)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_engine_table() {
        let sql = FleetSql::new("t1");
        assert!(sql.create.contains("\"t1_fleet_locks\""));
        assert!(sql.create.contains("\"t1_fleet_events\""));
        assert!(sql.publish.contains("WHERE EXISTS"));
    }
}
