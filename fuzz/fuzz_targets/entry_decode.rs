#![no_main]
//! The entry decoder under a counting allocator: besides the properties in
//! `checks::entry_decode`, decoding never holds more than a small multiple of its
//! input (issue 16: a 9 MiB entry made a 288 MiB allocation).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[path = "../checks.rs"]
mod checks;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes a decode may hold per input byte (a header costs about 18x its 7-byte
/// minimum in a `HeaderMap`, a frame 6.4x), plus a constant.
const PER_BYTE: usize = 24;
const SLACK: usize = 64 * 1024;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let decoded = mistral_tower::cache::CacheEntry::decode_unverified(&bytes);
    let held = PEAK.load(Relaxed) - base;
    assert!(
        held <= PER_BYTE * data.len() + SLACK,
        "decoding {} bytes held {held} bytes",
        data.len()
    );
    drop(decoded);
    checks::entry_decode(data);
});
