//! Replays the seed corpus of every fuzz target (`fuzz/corpus/<target>/*`) through the
//! properties the targets check (`fuzz/checks.rs`), on stable, so a crash found by
//! `cargo fuzz` and added to the corpus stays fixed.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Every file of `fuzz/corpus/<target>`, through `check`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let caught = std::panic::catch_unwind(|| check(&data));
        assert!(caught.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "no seeds for {target}");
    n
}

#[test]
fn sse_split_corpus() {
    replay("sse_split", checks::sse_split);
}

#[test]
fn entry_decode_corpus() {
    replay("entry_decode", checks::entry_decode);
}

#[test]
fn canonical_key_corpus() {
    replay("canonical_key", checks::canonical_key);
}

#[cfg(feature = "server")]
#[test]
fn parsers_corpus() {
    replay("parsers", checks::parsers);
}

#[test]
fn entry_seeds_reach_past_the_checksum() {
    for seed in ["json", "sse"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/entry_decode")
            .join(seed);
        let data = bytes::Bytes::from(std::fs::read(path).unwrap());
        let entry = mistral_tower::cache::CacheEntry::decode_unverified(&data).unwrap();
        assert_eq!(entry.method(), "POST", "{seed}");
    }
}
