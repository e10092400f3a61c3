//! Single-flight across processes on Redis: [`SharedFlight`] for [`RedisEngine`].
//!
//! Per cache key, under the engine's prefix and a hash tag (`{key}`) so that on a
//! cluster every key of one flight lives in one slot:
//!
//! - `fleet:{key}:lock` holds the lease, `fence:token`, set with a millisecond expiry;
//! - `fleet:{key}:fence` is the fencing counter (`INCR`, kept a day);
//! - `fleet:{key}:s:fence:token` is the flight's log, a Redis stream whose entries have
//!   the explicit ids `0-1`, `0-2`, ... (the event numbers), one field each: its tag
//!   (`h` head, `d` data, `e` end, `f` failed) and payload. It expires with the `ttl`
//!   given on every write.
//!
//! Every operation is one Lua script, atomic on the server: taking the lease (and the
//! next fence) only if nobody holds it, renewing, publishing and releasing only while
//! the lease is still the caller's (compare by token, so a leader that lost its lease
//! can neither write nor delete the next one's), and reading the log together with the
//! lock, so a follower that sees the lease gone and no end event knows the leader died.
//! Followers poll (no blocking `XREAD`, which would stall the engine's shared,
//! multiplexed connection for every other request).
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::cache::{CacheEngine, RedisEngine};
//! let engine = RedisEngine::new("redis://127.0.0.1:6379").unwrap();
//! assert!(engine.fleet().is_some());
//! ```

use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use super::contract::CacheError;
use super::fleet::{Acquired, FleetEvent, FleetFuture, FleetLease, FleetRead, SharedFlight};
use super::redis::RedisEngine;

/// How many events one read returns at most.
const READ_BATCH: usize = 256;

/// How long the fencing counter of a key is kept after its last lease.
const FENCE_TTL_MS: u64 = 24 * 3600 * 1000;

const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local f = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local v = f .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return {1, v}
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
";

const PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local seq = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], '0-' .. seq, ARGV[i], ARGV[i + 1])
  seq = seq + 1
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
";

const READ: &str = r"
local ev = redis.call('XRANGE', KEYS[2], '0-' .. ARGV[2], '+', 'COUNT', ARGV[3])
local alive = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then alive = 1 end
return {alive, ev}
";

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2).max(1)
}

/// How the names of the flight keys start after the engine's prefix (no entry key holds
/// `{`): [`CacheEngine::keys`](crate::cache::CacheEngine::keys) leaves them out.
pub(super) const FLEET_KEYS: &str = "fleet:{";

impl RedisEngine {
    /// The lock, fence and log keys of `key`'s flights, in one cluster slot.
    fn fleet_key(&self, key: &str, what: &str) -> String {
        format!("{}{FLEET_KEYS}{key}}}:{what}", self.prefix())
    }

    fn stream_key(&self, key: &str, flight: &FleetLease) -> String {
        self.fleet_key(key, &format!("s:{}", flight.value()))
    }

    fn script(src: &str, keys: &[&str]) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(src).arg(keys.len());
        for k in keys {
            cmd.arg(*k);
        }
        cmd
    }

    async fn run(&self, cmd: redis::Cmd) -> Result<Value, CacheError> {
        self.timed(self.query::<Value>(&cmd)).await
    }
}

fn bad_reply(what: &str) -> CacheError {
    CacheError::backend(format!("unexpected Redis reply to the fleet {what} script"))
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn as_array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// One stream entry, `[id, [tag, payload]]`, as an event.
fn parse_entry(entry: &Value) -> Option<FleetEvent> {
    let parts = as_array(entry)?;
    let fields = as_array(parts.get(1)?)?;
    let tag = std::str::from_utf8(as_bytes(fields.first()?)?).ok()?;
    let payload = Bytes::copy_from_slice(as_bytes(fields.get(1)?)?);
    FleetEvent::from_parts(tag, payload)
}

impl SharedFlight for RedisEngine {
    fn acquire<'a>(&'a self, key: &'a str, lease: Duration) -> FleetFuture<'a, Acquired> {
        Box::pin(async move {
            let lock = self.fleet_key(key, "lock");
            let fence = self.fleet_key(key, "fence");
            let mut cmd = Self::script(ACQUIRE, &[&lock, &fence]);
            cmd.arg(FleetLease::new_token())
                .arg(ms(lease))
                .arg(FENCE_TTL_MS);
            let v = self.run(cmd).await?;
            let parts = as_array(&v).ok_or_else(|| bad_reply("acquire"))?;
            let took = parts.first().and_then(as_int);
            let value = parts
                .get(1)
                .and_then(as_bytes)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(FleetLease::parse);
            match (took, value) {
                (Some(1), Some(l)) => Ok(Acquired::Leader(l)),
                (Some(0), Some(l)) => Ok(Acquired::Follower(l)),
                _ => Err(bad_reply("acquire")),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        lease: Duration,
        ttl: Duration,
    ) -> FleetFuture<'a, bool> {
        Box::pin(async move {
            let lock = self.fleet_key(key, "lock");
            let stream = self.stream_key(key, flight);
            let mut cmd = Self::script(RENEW, &[&lock, &stream]);
            cmd.arg(flight.value()).arg(ms(lease)).arg(ms(ttl));
            Ok(as_int(&self.run(cmd).await?) == Some(1))
        })
    }

    fn publish<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        first_seq: u64,
        events: &'a [FleetEvent],
        ttl: Duration,
    ) -> FleetFuture<'a, bool> {
        Box::pin(async move {
            if first_seq == 0 {
                return Err(CacheError::backend("fleet event numbers start at 1"));
            }
            let lock = self.fleet_key(key, "lock");
            let stream = self.stream_key(key, flight);
            let mut cmd = Self::script(PUBLISH, &[&lock, &stream]);
            cmd.arg(flight.value()).arg(ms(ttl)).arg(first_seq);
            for e in events {
                let (tag, payload) = e.to_parts();
                cmd.arg(tag).arg(payload.as_ref());
            }
            Ok(as_int(&self.run(cmd).await?) == Some(1))
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        linger: Option<Duration>,
    ) -> FleetFuture<'a, ()> {
        Box::pin(async move {
            let lock = self.fleet_key(key, "lock");
            let mut cmd = Self::script(RELEASE, &[&lock]);
            cmd.arg(flight.value()).arg(linger.map_or(0, ms));
            self.run(cmd).await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a str,
        flight: &'a FleetLease,
        after: u64,
    ) -> FleetFuture<'a, FleetRead> {
        Box::pin(async move {
            let lock = self.fleet_key(key, "lock");
            let stream = self.stream_key(key, flight);
            let mut cmd = Self::script(READ, &[&lock, &stream]);
            cmd.arg(flight.value())
                .arg(after.saturating_add(1))
                .arg(READ_BATCH);
            let v = self.run(cmd).await?;
            let parts = as_array(&v).ok_or_else(|| bad_reply("read"))?;
            let alive = parts.first().and_then(as_int) == Some(1);
            let entries = parts.get(1).and_then(as_array).unwrap_or_default();
            let events = entries
                .iter()
                .map(parse_entry)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad_reply("read"))?;
            Ok(FleetRead {
                more: events.len() >= READ_BATCH,
                events,
                alive,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flight_keys_share_one_hash_tag() {
        let e = RedisEngine::new("redis://127.0.0.1:1").unwrap();
        let l = FleetLease {
            fence: 3,
            token: "ab".into(),
        };
        assert_eq!(e.fleet_key("k1", "lock"), "mistral-tower:fleet:{k1}:lock");
        assert_eq!(e.stream_key("k1", &l), "mistral-tower:fleet:{k1}:s:3:ab");
    }

    #[test]
    fn parses_stream_entries() {
        let entry = Value::Array(vec![
            Value::BulkString(b"0-1".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"d".to_vec()),
                Value::BulkString(b"data: x\n\n".to_vec()),
            ]),
        ]);
        assert_eq!(
            parse_entry(&entry),
            Some(FleetEvent::Data(Bytes::from_static(b"data: x\n\n")))
        );
        assert_eq!(parse_entry(&Value::Nil), None);
    }
}
