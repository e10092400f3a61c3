//! Entry buffers handed back by the memory engine's evictions and reused by the next
//! entry the layer encodes on the same thread.
//!
//! At its byte budget a memory engine evicts an entry for every entry it stores, and
//! both are a few KiB: one buffer freed somewhere in the heap, one of about the same size
//! allocated. glibc's malloc serves such sizes (over its 1 KiB thread cache) from bins it
//! searches, splits and coalesces, touching cold chunk headers across the heap, which
//! measured about a fifth of a miss (`BENCHMARKS.md`). So an evicted entry whose buffer
//! nobody else holds (no hit is still sending it, and no per-thread memo of decoded
//! entries remembers it: [`Bytes::try_into_mut`] succeeds only for the last handle) is
//! kept here, and the encoder takes a kept buffer whose capacity fits the entry it
//! writes. A buffer is therefore never written while anything can still read it.
//!
//! Bounds: at most [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] per thread (the oldest kept
//! buffer makes room for a new one), each of [`MIN_LEN`] to [`MAX_LEN`] bytes of
//! capacity. These kept buffers are outside every engine's budget: at most
//! [`MAX_BYTES`] per runtime thread. A buffer is reused only for an entry whose size
//! estimate leaves at most [`MAX_SLACK`] of it unused, so what an entry keeps resident
//! stays within what the memory engine charges it (its length and
//! `MemoryEngine::ENTRY_OVERHEAD`, which is about twice the measured overhead). Buffers
//! are cleared before reuse; the encoder overwrites every byte it hands out, and
//! nothing reads past the length it writes.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Buffers kept per thread.
pub(crate) const MAX_BUFFERS: usize = 8;
/// Bytes of capacity kept per thread.
pub(crate) const MAX_BYTES: usize = 512 * 1024;
/// Smaller buffers are cheap to allocate (the allocator's thread cache): not kept.
pub(crate) const MIN_LEN: usize = 1024;
/// Larger buffers are not kept (one would take much of [`MAX_BYTES`]).
pub(crate) const MAX_LEN: usize = 128 * 1024;
/// The most capacity a reused buffer may leave unused beyond the size asked for.
pub(crate) const MAX_SLACK: usize = 64;

thread_local! {
    static KEPT: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `data`'s buffer for reuse if nobody else holds it and its capacity is within
/// the bounds (the oldest kept buffer goes if need be); otherwise drops it.
pub(crate) fn give(data: Bytes) {
    if !(MIN_LEN..=MAX_LEN).contains(&data.len()) {
        return;
    }
    let Ok(mut buf) = data.try_into_mut() else {
        return;
    };
    // The last handle to a slice of a larger buffer holds all of it.
    if !(MIN_LEN..=MAX_LEN).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    // A thread being torn down has no pool: the buffer is then simply freed.
    let _ = KEPT.try_with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return;
        };
        let mut held: usize = kept.iter().map(BytesMut::capacity).sum();
        while !kept.is_empty() && (kept.len() >= MAX_BUFFERS || held + buf.capacity() > MAX_BYTES) {
            held -= kept.remove(0).capacity();
        }
        kept.push(std::mem::take(&mut buf));
    });
}

/// An empty buffer of at least `len` bytes of capacity: a kept one if one fits (at most
/// [`MAX_SLACK`] bytes more), a new one otherwise.
pub(crate) fn take(len: usize) -> BytesMut {
    if (MIN_LEN..=MAX_LEN).contains(&len) {
        let reused = KEPT.try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            let i = kept
                .iter()
                .position(|b| b.capacity() >= len && b.capacity() - len <= MAX_SLACK)?;
            Some(kept.remove(i))
        });
        if let Ok(Some(buf)) = reused {
            return buf;
        }
    }
    BytesMut::with_capacity(len)
}

#[cfg(test)]
fn kept() -> Vec<usize> {
    KEPT.with(|k| k.borrow().iter().map(BytesMut::capacity).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(len: usize, fill: u8) -> Bytes {
        let mut b = BytesMut::with_capacity(len);
        b.resize(len, fill);
        b.freeze()
    }

    #[test]
    fn a_buffer_nobody_holds_is_reused_for_an_entry_it_fits() {
        std::thread::spawn(|| {
            let e = entry(4096, b'x');
            let ptr = e.as_ptr();
            give(e);
            assert_eq!(kept(), [4096]);
            // Too big a buffer for a smaller entry, and too small for a bigger one.
            assert_ne!(take(4096 - MAX_SLACK - 1).as_ptr(), ptr);
            assert_ne!(take(4097).as_ptr(), ptr);
            assert_eq!(kept(), [4096]);
            let b = take(4096 - MAX_SLACK);
            assert_eq!(b.as_ptr(), ptr, "the kept buffer");
            assert!(
                b.is_empty(),
                "cleared: nothing of the old entry is readable"
            );
            assert!(b.capacity() >= 4096 - MAX_SLACK);
            assert!(kept().is_empty());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_buffer_still_held_is_not_kept_and_the_bounds_hold() {
        std::thread::spawn(|| {
            let e = entry(4096, b'x');
            let held = e.clone();
            give(e);
            assert!(kept().is_empty(), "a hit still sends it");
            assert_eq!(held.len(), 4096);
            assert!(held.iter().all(|&b| b == b'x'));
            // Outside the sizes kept.
            give(entry(MIN_LEN - 1, 0));
            give(entry(MAX_LEN + 1, 0));
            assert!(kept().is_empty());
            // At most MAX_BUFFERS: the oldest make room.
            for i in 0..MAX_BUFFERS + 3 {
                give(entry(2048 + i, 0));
            }
            let caps: Vec<usize> = (3..MAX_BUFFERS + 3).map(|i| 2048 + i).collect();
            assert_eq!(kept(), caps);
            // At most MAX_BYTES: a big buffer pushes out as many of the oldest as needed.
            while !kept().is_empty() {
                take(kept()[0]);
            }
            for _ in 0..4 {
                give(entry(120 * 1024, 0));
            }
            assert_eq!(kept().len(), 4);
            give(entry(MAX_LEN, 0));
            let held: usize = kept().iter().sum();
            assert!(held <= MAX_BYTES, "{held}");
            assert_eq!(kept().len(), 4, "one 120 KiB buffer made room for 128 KiB");
            assert_eq!(*kept().last().unwrap(), MAX_LEN);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_static_or_sliced_entry_is_never_kept_mutably_shared() {
        std::thread::spawn(|| {
            give(Bytes::from_static(&[0; 2048]));
            assert!(kept().is_empty(), "static bytes cannot be written");
            let whole = entry(8192, 1);
            let part = whole.slice(0..4096);
            give(part);
            assert!(kept().is_empty(), "the rest of its buffer is still held");
            assert!(whole.iter().all(|&b| b == 1));
            // The last handle to a small slice of a large buffer holds all of it: not
            // kept (no entry would fit it, and it would pin the whole buffer).
            let big = entry(400 * 1024, 2);
            let head = big.slice(0..2048);
            drop(big);
            give(head);
            assert!(kept().is_empty());
        })
        .join()
        .unwrap();
    }
}
