//! [`Bounded`]: the weighed, expiring, concurrent map under the in-process stores (the
//! memory engine, the file engine's hot tier and the raw-request index).
//!
//! What those stores need is narrow: look a key up, insert under a byte budget, remove,
//! and forget entries past their expiry. A general cache library pays for more than that
//! on every operation (moka, used before: a write log applied by housekeeping on later
//! reads, a frequency sketch, access-order deques and an epoch-based table that rehashes
//! in place as evictions leave tombstones); with the memory engine at its budget, that
//! housekeeping was about a fifth of a miss. This map does the same job in the caller's
//! own operation, with nothing deferred:
//!
//! - **Shards.** Keys are spread over up to [`MAX_SHARDS`] shards by a seeded `ahash` of
//!   the key (seeded per map: keys can come from a custom key function, so no fixed hash
//!   an attacker could aim collisions at). Each shard is an [`IndexMap`] under its own
//!   mutex: entries live in one dense vector, so an entry costs no allocation of its own,
//!   the table keeps each entry's hash (growing never hashes a key again) and removal is
//!   `swap_remove` (no tombstones, no rehash under constant eviction).
//! - **Budget.** Every entry is weighed by its caller; the map's total weight is one
//!   atomic counter, kept within the budget by the insert that exceeds it. An entry
//!   heavier than the whole budget is not kept (and replaces nothing: the key is
//!   removed, so a read never sees an older value than the last insert).
//! - **Eviction: sampled least recently used**, as Redis approximates LRU: the victim is
//!   the least recently used of [`SAMPLES`] entries drawn at random from a shard (every
//!   entry when the shard holds fewer), an expired one first. Reads and inserts stamp an
//!   entry with the shard's clock (a counter, no system call). The insert evicts from its
//!   own shard, never the entry it has just written, then from the other shards in turn,
//!   starting at a random one (a concurrent insert evicting from the same shard may still
//!   take that entry: it is then simply not cached).
//! - **Expiry.** An entry may carry a deadline; a read past it removes the entry and
//!   answers nothing, eviction prefers expired entries it samples, and
//!   [`purge_expired`](Bounded::purge_expired) removes them all. Entries without one
//!   never read the clock.
//!
//! Locks are held for one operation on one shard and never two at once; values are
//! cloned out under the lock (the stores keep `Bytes` or an `Arc`, so a clone is a
//! reference count).

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use indexmap::map::RawEntryApiV1;
use indexmap::map::raw_entry_v1::RawEntryMut;

/// The most shards a map is split into.
pub(crate) const MAX_SHARDS: usize = 64;

/// A map gets one shard per this many bytes of budget (up to [`MAX_SHARDS`]): a small map
/// is one shard, so its eviction order is that of one sample space.
const BYTES_PER_SHARD: u64 = 1 << 20;

/// Entries compared per eviction (Redis's default for its approximated LRU).
pub(crate) const SAMPLES: usize = 5;

struct Slot<V> {
    value: V,
    weight: u64,
    /// The shard's clock at the last read or write (smaller: less recently used).
    used: u64,
    expires: Option<Instant>,
}

impl<V> Slot<V> {
    fn expired(&self, now: &mut Option<Instant>) -> bool {
        match self.expires {
            None => false,
            Some(at) => *now.get_or_insert_with(Instant::now) >= at,
        }
    }
}

struct Shard<K, V> {
    map: IndexMap<K, Slot<V>, ahash::RandomState>,
    clock: u64,
    /// xorshift64 state for sampling (never zero).
    rng: u64,
}

impl<K, V> Shard<K, V> {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn random_below(&mut self, n: usize) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        // Multiply-shift: uniform enough for sampling, no division.
        ((u128::from(x) * n as u128) >> 64) as usize
    }

    /// Removes the sampled victim (see the [module docs](self)); never the entry stamped
    /// `keep`. `None` when the shard has nothing to evict.
    fn evict_one(&mut self, keep: Option<u64>) -> Option<Slot<V>> {
        let n = self.map.len();
        let mut now = None;
        let mut victim: Option<(usize, u64)> = None;
        let mut consider = |i: usize, slot: &Slot<V>, now: &mut Option<Instant>| -> bool {
            if Some(slot.used) == keep {
                return false;
            }
            if slot.expired(now) {
                victim = Some((i, 0));
                return true;
            }
            if victim.is_none_or(|(_, used)| slot.used < used) {
                victim = Some((i, slot.used));
            }
            false
        };
        if n <= SAMPLES {
            for (i, (_, slot)) in self.map.iter().enumerate() {
                if consider(i, slot, &mut now) {
                    break;
                }
            }
        } else {
            for _ in 0..SAMPLES {
                let mut i = self.random_below(n);
                if Some(self.map[i].used) == keep {
                    // Never a round without a candidate: the entry beside it instead.
                    i = (i + 1) % n;
                }
                let slot = &self.map[i];
                if consider(i, slot, &mut now) {
                    break;
                }
            }
        }
        let (i, _) = victim?;
        self.map.swap_remove_index(i).map(|(_, slot)| slot)
    }
}

/// A concurrent map bounded by the total weight of its entries (see the
/// [module docs](self)).
pub(crate) struct Bounded<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: ahash::RandomState,
    max_weight: u64,
    weight: AtomicU64,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    /// A map holding at most `max_weight` of entries.
    pub(crate) fn new(max_weight: u64) -> Self {
        let wanted = (max_weight / BYTES_PER_SHARD).clamp(1, MAX_SHARDS as u64) as usize;
        // A power of two (the one at or below), so a shard is picked with a mask.
        let n = 1 << wanted.ilog2();
        let hasher = ahash::RandomState::new();
        let shards = (0..n)
            .map(|i| {
                Mutex::new(Shard {
                    map: IndexMap::with_hasher(hasher.clone()),
                    clock: 0,
                    rng: 0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) << 32) ^ fastrand::u64(..) | 1,
                })
            })
            .collect();
        Bounded {
            shards,
            hasher,
            max_weight,
            weight: AtomicU64::new(0),
        }
    }

    /// The budget.
    pub(crate) fn max_weight(&self) -> u64 {
        self.max_weight
    }

    /// The total weight of the entries held (expired ones included until removed).
    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Ordering::Relaxed)
    }

    /// The number of entries held (expired ones included until removed).
    pub(crate) fn len(&self) -> u64 {
        (0..self.shards.len())
            .map(|i| self.lock(i).map.len() as u64)
            .sum()
    }

    /// Takes `weight` off the total (of an entry just removed); the new total.
    fn release(&self, weight: u64) -> u64 {
        self.weight.fetch_sub(weight, Ordering::Relaxed) - weight
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of `hash`: bits the shard's own table does not use first (it takes its
    /// position from the low bits and its tag from the top seven).
    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard<K, V>> {
        // A panic under the lock leaves the shard consistent (every change to it is one
        // `IndexMap` call and counters), so a poisoned lock is taken over.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The value under `key`, unless absent or expired (an expired entry is removed).
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.lock(self.shard_of(hash));
        let i = shard
            .map
            .raw_entry_v1()
            .index_from_hash(hash, |k| k.borrow() == key)?;
        let tick = shard.tick();
        let slot = &mut shard.map[i];
        if slot.expired(&mut None) {
            let weight = slot.weight;
            shard.map.swap_remove_index(i);
            self.release(weight);
            return None;
        }
        slot.used = tick;
        Some(slot.value.clone())
    }

    /// Whether `key` holds an entry that has not expired (does not count as a use).
    #[cfg(test)]
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.lock(self.shard_of(hash));
        shard
            .map
            .raw_entry_v1()
            .from_hash(hash, |k| k.borrow() == key)
            .is_some_and(|(_, slot)| !slot.expired(&mut None))
    }

    /// Stores `value` under `key`, weighing `weight`, expiring after `ttl` (`None`:
    /// never), and evicts until the map is within its budget again.
    pub(crate) fn insert(&self, key: K, value: V, weight: u64, ttl: Option<Duration>) {
        self.insert_with(key, value, weight, ttl, drop);
    }

    /// [`insert`](Self::insert), handing every value it evicts to `evicted` (it may run
    /// under the lock of the inserting shard: keep it cheap).
    pub(crate) fn insert_with(
        &self,
        key: K,
        value: V,
        weight: u64,
        ttl: Option<Duration>,
        mut evicted: impl FnMut(V),
    ) {
        let hash = self.hash(&key);
        let home = self.shard_of(hash);
        if weight > self.max_weight {
            // Never kept; and no older value may outlive this write.
            self.remove_hashed(home, hash, &key);
            return;
        }
        let expires = ttl.and_then(|d| Instant::now().checked_add(d));
        let mut shard = self.lock(home);
        let tick = shard.tick();
        let slot = Slot {
            value,
            weight,
            used: tick,
            expires,
        };
        match shard.map.raw_entry_mut_v1().from_hash(hash, |k| *k == key) {
            RawEntryMut::Occupied(mut o) => {
                let old = std::mem::replace(o.get_mut(), slot);
                self.release(old.weight);
            }
            RawEntryMut::Vacant(v) => {
                v.insert_hashed_nocheck(hash, key, slot);
            }
        }
        let mut total = self.weight.fetch_add(weight, Ordering::Relaxed) + weight;
        // Evict from this shard first, sparing the entry just written...
        while total > self.max_weight {
            let Some(slot) = shard.evict_one(Some(tick)) else {
                break;
            };
            total = self.release(slot.weight);
            evicted(slot.value);
        }
        drop(shard);
        // ...then from the others in turn (a shard holding only that entry, or a budget
        // taken by the other shards), starting at a random one so that no shard is
        // always the first to give.
        let n = self.shards.len();
        let mut idle = 0;
        let mut i = fastrand::usize(..n);
        while total > self.max_weight && idle < n {
            i = (i + 1) & (n - 1);
            if i == home {
                idle += 1;
                continue;
            }
            let slot = self.lock(i).evict_one(None);
            match slot {
                Some(slot) => {
                    total = self.release(slot.weight);
                    evicted(slot.value);
                    idle = 0;
                }
                None => idle += 1,
            }
        }
    }

    /// Removes the entry under `key`, returning its value if it had not expired.
    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.remove_hashed(self.shard_of(hash), hash, key)
    }

    fn remove_hashed<Q>(&self, shard: usize, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.lock(shard);
        let RawEntryMut::Occupied(o) = shard
            .map
            .raw_entry_mut_v1()
            .from_hash(hash, |k| k.borrow() == key)
        else {
            return None;
        };
        let slot = o.swap_remove();
        self.release(slot.weight);
        (!slot.expired(&mut None)).then_some(slot.value)
    }

    /// Removes every entry past its deadline.
    pub(crate) fn purge_expired(&self) {
        let now = Instant::now();
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            let mut freed = 0;
            shard.map.retain(|_, slot| {
                let keep = slot.expires.is_none_or(|at| at > now);
                if !keep {
                    freed += slot.weight;
                }
                keep
            });
            self.release(freed);
        }
    }

    /// `f` of every key whose entry has not expired (shard by shard, each under its lock:
    /// keep `f` cheap).
    pub(crate) fn keys<T>(&self, mut f: impl FnMut(&K) -> T) -> Vec<T> {
        let mut now = None;
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let shard = self.lock(i);
            out.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, slot)| !slot.expired(&mut now))
                    .map(|(k, _)| f(k)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn total(m: &Bounded<String, u64>) -> u64 {
        (0..m.shards.len())
            .map(|i| m.lock(i).map.values().map(|s| s.weight).sum::<u64>())
            .sum()
    }

    #[test]
    fn gets_what_was_inserted_by_borrowed_key() {
        let m: Bounded<String, u64> = Bounded::new(1 << 20);
        m.insert("a".to_owned(), 1, 10, None);
        m.insert("b".to_owned(), 2, 10, None);
        assert_eq!(m.get("a"), Some(1));
        assert_eq!(m.get("b"), Some(2));
        assert_eq!(m.get("c"), None);
        m.insert("a".to_owned(), 3, 15, None);
        assert_eq!(m.get("a"), Some(3));
        assert_eq!(m.len(), 2);
        assert_eq!(m.weight(), 25, "a replaced value gives back its weight");
        assert_eq!(m.remove("a"), Some(3));
        assert_eq!(m.remove("a"), None);
        assert_eq!(m.weight(), 10);
        let mut keys = m.keys(String::clone);
        keys.sort();
        assert_eq!(keys, ["b"]);
    }

    #[test]
    fn stays_within_its_budget_and_keeps_what_was_used() {
        // One shard (a small budget): 100 entries of 100 fit.
        let m: Bounded<String, u64> = Bounded::new(10_000);
        assert_eq!(m.shards.len(), 1);
        for i in 0..100 {
            m.insert(format!("k{i}"), i, 100, None);
        }
        assert_eq!(m.len(), 100);
        // "hot" is read before every insert, so it is always the most recently used
        // entry but the one being written: it is evicted only if all 5 samples of an
        // eviction land on it (directly, or beside the new entry): about (2/100)^5 per
        // insert, 3e-5 over the run.
        m.insert("hot".to_owned(), 7, 100, None);
        for round in 0..10_000u64 {
            assert_eq!(m.get("hot"), Some(7), "round {round}");
            m.insert(format!("new{round}"), round, 100, None);
            assert!(m.weight() <= 10_000, "{}", m.weight());
        }
        assert_eq!(m.weight(), total(&m));
        assert_eq!(m.len(), 100);
        // And the old entries went: of k0..k99, never read, hardly any is left.
        let old = (0..100)
            .filter(|i| m.contains_key(&format!("k{i}")))
            .count();
        assert!(old < 10, "{old} old entries outlived 10,000 newer ones");
    }

    #[test]
    fn the_entry_just_written_is_not_its_own_victim() {
        let m: Bounded<String, u64> = Bounded::new(1_000);
        m.insert("old".to_owned(), 1, 600, None);
        m.insert("new".to_owned(), 2, 600, None);
        assert_eq!(m.get("new"), Some(2));
        assert_eq!(m.get("old"), None);
        assert_eq!(m.weight(), 600);
    }

    #[test]
    fn an_entry_over_the_budget_is_not_kept_and_removes_the_older_value() {
        let m: Bounded<String, u64> = Bounded::new(1_000);
        m.insert("k".to_owned(), 1, 10, None);
        m.insert("other".to_owned(), 2, 10, None);
        m.insert("k".to_owned(), 3, 1_001, None);
        assert_eq!(
            m.get("k"),
            None,
            "neither the heavy value nor the older one"
        );
        assert_eq!(m.get("other"), Some(2), "nothing else was evicted for it");
        assert_eq!(m.weight(), 10);
    }

    #[test]
    fn expired_entries_are_not_read_and_go_first() {
        let m: Bounded<String, u64> = Bounded::new(1_000);
        m.insert("long".to_owned(), 1, 400, Some(Duration::from_secs(3600)));
        m.insert("short".to_owned(), 2, 400, Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!m.contains_key("short"));
        assert!(m.contains_key("long"));
        assert_eq!(m.keys(String::clone), ["long"]);
        // Over budget: "long" is the least recently used, but the expired entry goes.
        m.insert("third".to_owned(), 3, 400, None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("long"), Some(1));
        assert_eq!(m.get("third"), Some(3));
        assert_eq!(m.weight(), 800);
        // A read past the deadline removes the entry.
        m.insert("brief".to_owned(), 4, 100, Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(m.get("brief"), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.weight(), 800);
    }

    #[test]
    fn purging_removes_every_expired_entry_and_its_weight() {
        let m: Bounded<String, u64> = Bounded::new(64 << 20);
        for i in 0..1_000 {
            let ttl = if i % 2 == 0 {
                Duration::from_millis(1)
            } else {
                Duration::from_secs(3600)
            };
            m.insert(format!("k{i}"), i, 100, Some(ttl));
        }
        m.insert("forever".to_owned(), 0, 100, None);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(m.len(), 1_001, "nothing read, nothing evicted yet");
        m.purge_expired();
        assert_eq!(m.len(), 501);
        assert_eq!(m.weight(), 501 * 100);
        assert_eq!(m.weight(), total(&m));
        assert_eq!(m.get("forever"), Some(0));
        assert_eq!(m.get("k1"), Some(1));
    }

    #[test]
    fn eviction_moves_on_to_other_shards() {
        // Many shards, a budget of two entries: whatever shard the third lands in,
        // the budget holds.
        let m: Bounded<String, u64> = Bounded::new(64 << 20);
        assert_eq!(m.shards.len(), MAX_SHARDS);
        let big = (64 << 20) / 2;
        for i in 0..50 {
            m.insert(format!("k{i}"), i, big, None);
            assert!(m.weight() <= 64 << 20);
            assert_eq!(m.get(&format!("k{i}")), Some(i), "the newest is kept");
        }
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn concurrent_use_keeps_the_weight_exact() {
        let m: Arc<Bounded<String, u64>> = Arc::new(Bounded::new(8 << 20));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let k = format!("{}", (i * 7 + t) % 5_000);
                        match i % 4 {
                            0 => {
                                m.remove(k.as_str());
                            }
                            1 => {
                                m.get(k.as_str());
                            }
                            _ => m.insert(k, i, 1_000 + i % 3_000, None),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.weight(), total(&m));
        assert!(m.weight() <= 8 << 20, "{}", m.weight());
    }
}
