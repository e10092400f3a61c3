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
//! Bounds: at most [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] per thread, each from
//! [`MIN_LEN`] to [`MAX_LEN`] bytes; a buffer is reused only for an entry it fits with at
//! most an eighth of its capacity unused, so what an entry keeps resident stays close to
//! what the engine charges it. Buffers are cleared before reuse; the encoder overwrites
//! every byte it hands out, and nothing reads past the length it writes.

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

thread_local! {
    static KEPT: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `data`'s buffer for reuse if nobody else holds it and the bounds allow;
/// otherwise drops it.
pub(crate) fn give(data: Bytes) {
    if !(MIN_LEN..=MAX_LEN).contains(&data.len()) {
        return;
    }
    let Ok(mut buf) = data.try_into_mut() else {
        return;
    };
    buf.clear();
    // A thread being torn down has no pool: the buffer is then simply freed.
    let _ = KEPT.try_with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return;
        };
        let held: usize = kept.iter().map(BytesMut::capacity).sum();
        if kept.len() < MAX_BUFFERS && held + buf.capacity() <= MAX_BYTES {
            kept.push(std::mem::take(&mut buf));
        }
    });
}

/// An empty buffer of at least `len` bytes of capacity: a kept one if one fits (at most
/// an eighth of it left unused), a new one otherwise.
pub(crate) fn take(len: usize) -> BytesMut {
    if (MIN_LEN..=MAX_LEN).contains(&len) {
        let reused = KEPT.try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            let i = kept
                .iter()
                .position(|b| b.capacity() >= len && b.capacity() - len <= b.capacity() / 8)?;
            Some(kept.swap_remove(i))
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
            // Too big a buffer for a small entry, and too small for a big one: new ones.
            assert_ne!(take(3000).as_ptr(), ptr);
            assert_ne!(take(4097).as_ptr(), ptr);
            assert_eq!(kept(), [4096]);
            let b = take(4000);
            assert_eq!(b.as_ptr(), ptr, "the kept buffer");
            assert!(
                b.is_empty(),
                "cleared: nothing of the old entry is readable"
            );
            assert!(b.capacity() >= 4000);
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
            // At most MAX_BUFFERS, and MAX_BYTES.
            for _ in 0..MAX_BUFFERS + 3 {
                give(entry(2048, 0));
            }
            assert_eq!(kept().len(), MAX_BUFFERS);
            let big = MAX_LEN;
            give(entry(big, 0));
            assert!(kept().iter().sum::<usize>() <= MAX_BYTES);
            assert_eq!(kept().len(), MAX_BUFFERS, "full: the new one is freed");
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
        })
        .join()
        .unwrap();
    }
}
