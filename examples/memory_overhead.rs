//! Measures what a `MemoryEngine` entry costs in resident memory, and checks that a run
//! of many entries stays within the engine's byte budget (Linux: reads `VmRSS` from
//! `/proc/self/status`).
//!
//! ```text
//! cargo build --release --example memory_overhead
//! # bytes per entry beyond its key and value (no eviction: the budget is not binding)
//! target/release/examples/memory_overhead overhead 1000000 256
//! # 1 M entries of 256-byte values into a 128 MiB budget: evictions keep the process's
//! # resident growth within the budget (exits 1 if it does not)
//! target/release/examples/memory_overhead budget 1000000 256 128
//! ```
//!
//! Keys are 64 characters (the default key's length); every value is its own
//! allocation of exactly `VALUE` bytes, like an entry the layer encodes.

#![allow(missing_docs)]

use bytes::Bytes;
use mistral_tower::cache::MemoryEngine;

/// The resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn fill(engine: &MemoryEngine, n: u64, value: usize) {
    for i in 0..n {
        let key = format!("{i:064x}");
        // Every store applies its own evictions: nothing is left pending.
        engine.set_sync(&key, Bytes::from(vec![(i % 251) as u8; value]), None);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("overhead", String::as_str);
    let n: u64 = args.get(2).map_or(1_000_000, |s| s.parse().expect("N"));
    let value: usize = args.get(3).map_or(256, |s| s.parse().expect("VALUE"));
    let per_entry_data = 64 + value as u64;
    match mode {
        "overhead" => {
            let before = rss();
            let engine = MemoryEngine::new(u64::MAX / 4);
            fill(&engine, n, value);
            let grown = rss().saturating_sub(before);
            let entries = engine.entry_count();
            let per_entry = grown as f64 / entries as f64;
            println!("entries: {entries}, key + value: {per_entry_data} B");
            println!("resident growth: {grown} B = {per_entry:.0} B per entry");
            println!(
                "overhead per entry (resident, beyond key and value): {:.0} B",
                per_entry - per_entry_data as f64
            );
            println!(
                "charged per entry by the engine's budget: {} B (ENTRY_OVERHEAD = {} B)",
                engine.weighted_size() / entries.max(1),
                MemoryEngine::ENTRY_OVERHEAD
            );
        }
        "budget" => {
            let budget_mib: u64 = args.get(4).map_or(128, |s| s.parse().expect("BUDGET_MIB"));
            let budget = budget_mib << 20;
            let before = rss();
            let engine = MemoryEngine::new(budget);
            fill(&engine, n, value);
            let grown = rss().saturating_sub(before);
            let entries = engine.entry_count();
            println!(
                "inserted {n} entries of {per_entry_data} B (key + value) into a {budget_mib} MiB budget"
            );
            println!(
                "kept: {entries} entries, weighted size {} B ({:.1}% of the budget)",
                engine.weighted_size(),
                100.0 * engine.weighted_size() as f64 / budget as f64
            );
            println!(
                "resident growth: {grown} B ({:.1}% of the budget)",
                100.0 * grown as f64 / budget as f64
            );
            if grown > budget {
                println!("OVER BUDGET");
                std::process::exit(1);
            }
            println!("within budget");
        }
        other => panic!("unknown mode {other} (overhead | budget)"),
    }
}
