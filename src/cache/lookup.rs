//! Finding a request's entry: its key, and the engine read (without waiting when the
//! engine keeps it in memory), decoded; every failure is a miss (fail-open).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::request::Parts;

use super::Chain;
use super::config::{Config, Shared, Tenant};
use super::engine::{CacheEngine, CacheError, Token};
use super::entry::{CacheEntry, split_signed};
use super::key::{HexKey, KeyInput, Probe, default_key_hex};
use super::memo::Memo;
use super::metrics::Metrics;
use super::respond::hit_headers;
use super::sign::SignatureError;

/// The key of a request: on the stack for the default key function.
pub(crate) enum Key {
    /// The default key; with a probe when it was derived canonically and may be
    /// remembered for byte-identical repeats (see [`Key::remember`]).
    Hex(HexKey, Option<Probe>),
    Owned(String),
}

/// What the key of a buffered request in `namespace` is derived from.
fn key_input<'a>(
    cfg: &'a Config,
    parts: &'a Parts,
    namespace: &'a str,
    body: &'a [u8],
) -> KeyInput<'a> {
    let tenant: &[u8] = match &cfg.tenant {
        Tenant::Authorization => parts
            .headers
            .get(header::AUTHORIZATION)
            .map_or(&[], |v| v.as_bytes()),
        Tenant::Fixed(d) => d,
        Tenant::Shared => &[],
    };
    KeyInput {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body,
        namespace,
        tenant,
    }
}

impl Key {
    /// Derives the key of a buffered request in `namespace`: from the index of
    /// byte-identical repeats when it holds this request, otherwise canonically.
    pub(crate) fn new(
        cfg: &Config,
        m: &Metrics,
        parts: &Parts,
        namespace: &str,
        body: &[u8],
    ) -> Key {
        let input = key_input(cfg, parts, namespace, body);
        if !cfg.default_key {
            return Key::Owned(cfg.key_fn.key(&input));
        }
        match cfg.raw_index.as_deref().map(|index| index.get(&input)) {
            Some(Ok(k)) => {
                Metrics::inc(&m.raw_key_reuses);
                Key::Hex(k, None)
            }
            Some(Err(probe)) => Key::Hex(default_key_hex(&input), probe),
            None => Key::Hex(default_key_hex(&input), None),
        }
    }

    /// After a hit: remembers a canonically derived default key, so byte-identical
    /// repeats of this request skip canonicalization.
    pub(crate) fn remember(&self, cfg: &Config, parts: &Parts, namespace: &str, body: &[u8]) {
        if let (Key::Hex(k, Some(probe)), Some(index)) = (self, &cfg.raw_index) {
            index.remember(*probe, &key_input(cfg, parts, namespace, body), *k);
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Key::Hex(k, _) => k.as_str(),
            Key::Owned(k) => k,
        }
    }
}

/// Polls a future once; if it is not ready, waits for it under a tokio timeout when a
/// runtime is available.
pub(crate) async fn bounded<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let mut fut = pin!(fut);
    if let Poll::Ready(v) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Some(v);
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::timeout(timeout, fut).await.ok()
    } else {
        Some(fut.await)
    }
}

/// What the engine answers without waiting, if it can (see
/// [`CacheEngine::resident`] and [`CacheEngine::try_get_now`]): the bytes or a miss,
/// and whether the bytes were encoded by this layer (their checksum is then not
/// recomputed). `None`: ask [`lookup`].
pub(crate) fn read_now<E: CacheEngine>(
    engine: &E,
    key: &str,
) -> Option<(Result<Bytes, CacheError>, bool)> {
    match engine.resident(Token(())) {
        Some(r) => match r.store.get_with_trust(key) {
            Some((data, trusted)) => Some((Ok(data), trusted)),
            None if r.complete => Some((Err(CacheError::Miss), false)),
            None => None,
        },
        None => engine.try_get_now(key).map(|res| (res, false)),
    }
}

/// Reads and decodes the entry under `key`; every failure is a miss (fail-open).
pub(crate) async fn lookup<E: CacheEngine>(
    shared: &Shared<E>,
    cfg: &Config,
    key: &str,
) -> Option<CacheEntry> {
    // An engine that keeps failing is skipped for a while (a miss).
    let admit = shared.breaker.admit()?;
    let res = bounded(shared.engine.get(key), cfg.get_timeout)
        .await
        .unwrap_or(Err(CacheError::Timeout(cfg.get_timeout)));
    let answered = matches!(res, Ok(_) | Err(CacheError::Miss));
    shared.breaker.record(admit, answered);
    decode_entry(&shared.metrics, cfg, key, res, false)
}

/// Entries up to this size are remembered by [`HIT_MEMO`].
const HIT_MEMO_MAX_ENTRY: usize = 256 * 1024;

thread_local! {
    /// The entries decoded last on this thread, by the identity of the stored buffer
    /// (see [`memo`](super::memo)), with the key they were read under.
    static HIT_MEMO: RefCell<Memo<Bytes, (Box<str>, CacheEntry), 8>> =
        const { RefCell::new(Memo::new()) };
}

/// Decodes what the engine answered, as a hit on `key` (with the headers of
/// [`hit_headers`]; [`hit_response`](super::respond::hit_response) sets its `age`);
/// every failure is a miss (fail-open). `trusted`:
/// the bytes were encoded by this layer and kept in memory since (see
/// [`MemoryEngine`](super::MemoryEngine)), so their checksum (and signature) is not
/// recomputed. With signing on, untrusted bytes must carry a valid signature (which
/// then stands for the checksum too).
pub(crate) fn decode_entry(
    m: &Metrics,
    cfg: &Config,
    key: &str,
    res: Result<Bytes, CacheError>,
    trusted: bool,
) -> Option<CacheEntry> {
    let data = match res {
        Ok(d) => d,
        Err(CacheError::Miss) => return None,
        Err(e) => {
            Metrics::inc(&m.engine_errors);
            tracing::warn!(key, error = %Chain(&e), "cache engine get failed; treating as a miss");
            return None;
        }
    };
    let mut trusted = trusted;
    if let Some(secrets) = &cfg.secrets {
        // A trusted entry was signed by this layer; one from another layer sharing
        // the memory engine without signing is still refused (a cheap check).
        let verified = if trusted {
            split_signed(&data)
                .ok_or(SignatureError::Unsigned)
                .map(drop)
        } else {
            secrets.verify(&data)
        };
        if let Err(e) = verified {
            refused(&m.entries_rejected_signature, "cache entry", key, e);
            return None;
        }
        trusted = true;
    }
    // The same stored buffer as a recent hit on this thread (an engine keeping its
    // entries in memory): its entry as decoded then, with the hit's headers in place.
    let memo = data.len() <= HIT_MEMO_MAX_ENTRY;
    if memo
        && let Some(entry) = HIT_MEMO.with_borrow(|memo| {
            memo.get(&data)
                .filter(|(k, _)| **k == *key)
                .map(|(_, e)| e.clone())
        })
    {
        return Some(entry);
    }
    // Room for the `x-cache`, `age` and `x-cache-key` headers of a hit.
    let decoded = if trusted {
        CacheEntry::decode_trusted(&data, 3)
    } else {
        CacheEntry::decode_with_spare(&data, 3)
    };
    match decoded {
        Ok(mut e) => {
            // Decoded for a hit: its headers go in once here (a copy from the memo
            // then only has its `age` replaced, without growing the copied map).
            hit_headers(e.headers_mut(), key);
            if memo {
                HIT_MEMO.with_borrow_mut(|memo| memo.put(data, (key.into(), e.clone())));
            }
            Some(e)
        }
        Err(e) => {
            Metrics::inc(&m.corrupt_entries);
            tracing::warn!(key, error = %e, "undecodable cache entry; treating as a miss");
            None
        }
    }
}

/// Counts a refused signature (of an entry or a fleet event) in `counter`; logs at
/// `warn` at the 1st, 2nd, 4th, 8th, ... refusal (a forger cannot flood the log), at
/// `debug` otherwise.
pub(crate) fn refused(counter: &AtomicU64, what: &str, key: &str, e: SignatureError) {
    let n = counter.fetch_add(1, Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            key,
            error = %e,
            rejected = n,
            "{what} signature refused; treating as a miss (logged at the 1st, 2nd, 4th, ... refusal)"
        );
    } else {
        tracing::debug!(key, error = %e, "{what} signature refused; treating as a miss");
    }
}
