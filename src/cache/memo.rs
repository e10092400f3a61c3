//! Small per-thread memos keyed by the identity of immutable bytes.
//!
//! An engine that keeps its entries in memory (the [`MemoryEngine`](super::MemoryEngine),
//! the file engine's hot tier) answers every hit on an entry with the same stored
//! buffer. Whatever is derived from that buffer alone (its decoded entry, the usage in
//! one of its headers) is the same on every hit, so it can be remembered by the
//! buffer's address and length instead of being derived again.
//!
//! That is sound because a [`Memo`] slot keeps a handle to the buffer it remembers
//! ([`Bytes`] or [`HeaderValue`], whose contents never change): while the slot holds
//! it, the memory cannot be freed and handed to another buffer, so bytes found at the
//! same address with the same length are the same bytes. A memo never answers for a
//! buffer that was not just handed to it by its caller: a purged or replaced entry is
//! a different buffer (or none) and finds nothing.
//!
//! A memo is a ring of `N` slots, searched linearly (a handful per thread), so it costs
//! a few comparisons when it misses and keeps at most `N` buffers alive after their
//! engine has dropped them.

use bytes::Bytes;
use http::HeaderValue;

/// A handle to bytes that never change while the handle lives.
pub(crate) trait Frozen {
    fn frozen_bytes(&self) -> &[u8];
}

impl Frozen for Bytes {
    fn frozen_bytes(&self) -> &[u8] {
        self
    }
}

impl Frozen for HeaderValue {
    fn frozen_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Whether `a` and `b` are the same memory (not merely equal contents).
fn same(a: &[u8], b: &[u8]) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
}

/// The last `N` values derived from buffers of type `O`, by buffer identity (see the
/// [module docs](self)). Meant for a `thread_local!` `RefCell`.
pub(crate) struct Memo<O, V, const N: usize> {
    slots: [Option<(O, V)>; N],
    next: usize,
}

impl<O: Frozen, V, const N: usize> Memo<O, V, N> {
    pub(crate) const fn new() -> Self {
        Memo {
            slots: [const { None }; N],
            next: 0,
        }
    }

    /// The value remembered for exactly this buffer (`bytes` must be borrowed from a
    /// live handle: its address is compared, not its contents).
    pub(crate) fn get(&self, bytes: &[u8]) -> Option<&V> {
        self.slots
            .iter()
            .flatten()
            .find(|(o, _)| same(o.frozen_bytes(), bytes))
            .map(|(_, v)| v)
    }

    /// Remembers `value` for `owner`'s bytes, replacing the oldest slot.
    pub(crate) fn put(&mut self, owner: O, value: V) {
        let i = self.next;
        self.slots[i] = Some((owner, value));
        self.next = (i + 1) % N;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_same_buffer_not_an_equal_one() {
        let mut memo: Memo<Bytes, u32, 2> = Memo::new();
        let a = Bytes::from(vec![1u8, 2, 3]);
        let equal = Bytes::from(vec![1u8, 2, 3]);
        memo.put(a.clone(), 7);
        assert_eq!(memo.get(&a), Some(&7));
        assert_eq!(memo.get(&a.clone()), Some(&7), "a clone shares the memory");
        assert_eq!(
            memo.get(&equal),
            None,
            "equal bytes elsewhere are another buffer"
        );
        assert_eq!(memo.get(&a.slice(..2)), None, "a prefix is another buffer");
    }

    #[test]
    fn keeps_the_last_n() {
        let mut memo: Memo<Bytes, usize, 2> = Memo::new();
        let bufs: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 4])).collect();
        for (i, b) in bufs.iter().enumerate() {
            memo.put(b.clone(), i);
        }
        assert_eq!(memo.get(&bufs[0]), None, "the oldest was replaced");
        assert_eq!(memo.get(&bufs[1]), Some(&1));
        assert_eq!(memo.get(&bufs[2]), Some(&2));
    }

    #[test]
    fn a_remembered_buffer_stays_alive() {
        let mut memo: Memo<Bytes, (), 1> = Memo::new();
        let a = Bytes::from(vec![9u8; 64]);
        let ptr = a.as_ptr();
        memo.put(a, ());
        // The engine dropped its handle; a new buffer cannot take the same memory.
        let b = Bytes::from(vec![9u8; 64]);
        assert_ne!(b.as_ptr(), ptr);
        assert_eq!(memo.get(&b), None);
    }
}
