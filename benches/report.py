#!/usr/bin/env python3
"""Summarize a criterion run of `benches/cache.rs` (and `benches/engines.rs`).

Reads the medians from <target>/criterion/<group>/<function>/<input>/new/estimates.json,
prints Markdown tables of medians and ratios (crate / baseline, crate / peer,
key throughput / SHA-256 throughput), checks the targets of the benchmark issue, and
writes an SVG plot of hit latency against request size (crate, peer, floor).

    python3 benches/report.py [--target-dir DIR] [--svg benches/hit_latency.svg]

No third-party modules: the SVG is written by hand.
"""

import argparse
import json
import math
import os
import sys

KIB = 1024


def median_ns(root, group, function, inp):
    path = os.path.join(root, "criterion", group, function, inp, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def fmt_time(ns):
    if ns is None:
        return "n/a"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}×"


def gib_per_s(nbytes, ns):
    return nbytes / ns * 1e9 / (1 << 30)


def verdict(ok):
    return "**met**" if ok else "**missed**"


def main():
    ap = argparse.ArgumentParser()
    default_target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target"
    )
    ap.add_argument("--target-dir", default=default_target)
    ap.add_argument("--svg", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "hit_latency.svg"))
    args = ap.parse_args()
    root = args.target_dir
    m = lambda g, f, i: median_ns(root, g, f, i)  # noqa: E731

    out = []
    p = out.append

    # ---- hit -------------------------------------------------------------------------
    hit_sizes = [2, 8, 32, 128]
    p("### `hit`: 4 KiB response, median per request\n")
    p("| request | bare `service_fn` | CacheLayer + MemoryEngine | CacheLayer + FileEngine | http-cache-tower GET hit (peer) | SHA-256 of the body (floor) | memory / bare | memory / peer | peer / memory |")
    p("|---|---|---|---|---|---|---|---|---|")
    for k in hit_sizes:
        lab = f"{k}KiB"
        bare, mem, fil, peer = (m("hit", f, lab) for f in ("bare_service_fn", "cache_layer_memory", "cache_layer_file", "http_cache_tower_get"))
        sha = m("key", "sha256_floor", lab)
        p(f"| {k} KiB | {fmt_time(bare)} | {fmt_time(mem)} | {fmt_time(fil)} | {fmt_time(peer)} | {fmt_time(sha)} | {fmt_ratio(mem, bare)} | {fmt_ratio(mem, peer)} | {fmt_ratio(peer, mem)} |")
    p("")

    # ---- miss ------------------------------------------------------------------------
    p("### `miss`: every request new (buffer, key, lookup, call, tee, store into memory)\n")
    p("| request | bare `service_fn` | CacheLayer + MemoryEngine | overhead | ratio |")
    p("|---|---|---|---|---|")
    for lab, name in (("2KiB", "2 KiB, 4 KiB JSON response"), ("32KiB", "32 KiB, 4 KiB JSON response"), ("sse_first_frame", "2 KiB, first frame of a 1,000-event SSE stream")):
        bare, mem = m("miss", "bare_service_fn", lab), m("miss", "cache_layer_memory", lab)
        over = fmt_time(mem - bare) if None not in (mem, bare) else "n/a"
        p(f"| {name} | {fmt_time(bare)} | {fmt_time(mem)} | {over} | {fmt_ratio(mem, bare)} |")
    p("")

    # ---- key -------------------------------------------------------------------------
    p("### `key`: key derivation alone (canonicalize + SHA-256 + hex)\n")
    p("| body | SHA-256 (floor) | `DefaultKeyFn` | serde_json::Value + SHA-256 | key / floor throughput | Value / floor throughput |")
    p("|---|---|---|---|---|---|")
    for k in (1, 2, 8, 32, 128):
        lab = f"{k}KiB"
        sha, key, val = m("key", "sha256_floor", lab), m("key", "default_key_fn", lab), m("key", "serde_value_sha256", lab)
        n = k * KIB
        thr = lambda ns: f"{gib_per_s(n, ns):.2f} GiB/s" if ns else "n/a"  # noqa: E731
        p(f"| {k} KiB | {fmt_time(sha)} ({thr(sha)}) | {fmt_time(key)} ({thr(key)}) | {fmt_time(val)} ({thr(val)}) | {fmt_ratio(sha, key)} | {fmt_ratio(sha, val)} |")
    p("")

    # ---- stream replay / single flight -----------------------------------------------
    sse_bytes = None
    try:
        with open(os.path.join(root, "criterion", "stream_replay", "cache_layer_memory", "1000_events", "new", "benchmark.json")) as f:
            sse_bytes = json.load(f)["throughput"]["Bytes"]
    except (OSError, KeyError, ValueError, TypeError):
        pass
    bare_r, mem_r = m("stream_replay", "bare_service_fn", "1000_events"), m("stream_replay", "cache_layer_memory", "1000_events")
    p("### `stream_replay` and `single_flight`\n")
    p("| bench | bare `service_fn` | CacheLayer + MemoryEngine | ratio |")
    p("|---|---|---|---|")
    if sse_bytes and bare_r and mem_r:
        p(f"| replay of a stored 1,000-event SSE response ({sse_bytes} B) | {fmt_time(bare_r)} ({gib_per_s(sse_bytes, bare_r):.2f} GiB/s) | {fmt_time(mem_r)} ({gib_per_s(sse_bytes, mem_r):.2f} GiB/s) | {fmt_ratio(mem_r, bare_r)} |")
    bare_f, mem_f = m("single_flight", "bare_service_fn", "64_identical"), m("single_flight", "cache_layer_memory", "64_identical")
    p(f"| 64 concurrent identical misses (bare: 64 inner calls; cache: 1) | {fmt_time(bare_f)} | {fmt_time(mem_f)} | {fmt_ratio(mem_f, bare_f)} |")
    p("")

    # ---- engines ---------------------------------------------------------------------
    rows = []
    for eng in ("memory", "file", "redis", "postgres", "s3"):
        for op in ("get", "set"):
            for lab in ("4KiB", "32KiB"):
                e = m("engines", f"{eng}/{op}", lab)
                if e is None:
                    continue
                raw = m("engines", f"{eng}_raw/{op}", lab)
                rows.append(f"| {eng} | {op} | {lab[:-3]} KiB | {fmt_time(e)} | {fmt_time(raw) if raw else '-'} | {fmt_time(e - raw) if raw else '-'} |")
    if rows:
        p("### engines: `get`/`set` next to the raw client call\n")
        p("| engine | op | value | engine | raw client | engine − raw |")
        p("|---|---|---|---|---|---|")
        out.extend(rows)
        p("")

    # ---- targets ---------------------------------------------------------------------
    p("### Targets of issue 6\n")
    p("| target | measured | verdict |")
    p("|---|---|---|")
    mem2, peer2, sha2_, bare2 = m("hit", "cache_layer_memory", "2KiB"), m("hit", "http_cache_tower_get", "2KiB"), m("key", "sha256_floor", "2KiB"), m("hit", "bare_service_fn", "2KiB")
    if mem2:
        p(f"| hit, 2 KiB, memory ≤ 5 µs | {fmt_time(mem2)} | {verdict(mem2 <= 5000)} ({mem2 / 5000:.2f}× the budget) |")
    if mem2 and peer2:
        p(f"| hit, 2 KiB ≥ 4× faster than http-cache-tower GET hit | {peer2 / mem2:.2f}× faster | {verdict(peer2 / mem2 >= 4)} |")
    mem32, sha32 = m("hit", "cache_layer_memory", "32KiB"), m("key", "sha256_floor", "32KiB")
    if mem32 and sha32 and mem2:
        budget = 1.5 * (sha32 + mem2)
        p(f"| hit, 32 KiB ≤ 1.5 × (SHA-256(32 KiB) + 2 KiB hit) = {fmt_time(budget)} | {fmt_time(mem32)} | {verdict(mem32 <= budget)} ({mem32 / budget:.2f}× the budget) |")
    for k in (32, 128):
        sha, key = m("key", "sha256_floor", f"{k}KiB"), m("key", "default_key_fn", f"{k}KiB")
        if sha and key:
            p(f"| key throughput at {k} KiB ≥ 60% of SHA-256 | {sha / key * 100:.0f}% | {verdict(sha / key >= 0.6)} |")
    mb, mm = m("miss", "bare_service_fn", "2KiB"), m("miss", "cache_layer_memory", "2KiB")
    if mb and mm:
        p(f"| miss overhead (2 KiB request, 4 KiB response) ≤ 10 µs | {fmt_time(mm - mb)} | {verdict(mm - mb <= 10_000)} |")
    fb, fm = m("miss", "bare_service_fn", "sse_first_frame"), m("miss", "cache_layer_memory", "sse_first_frame")
    if fb and fm:
        p(f"| first SSE byte not delayed by the tee | +{fmt_time(fm - fb)} to the first frame (includes buffering + key + lookup) | see text |")
    if sse_bytes and mem_r:
        g = gib_per_s(sse_bytes, mem_r)
        p(f"| stream replay ≥ 1 GiB/s | {g:.2f} GiB/s | {verdict(g >= 1)} |")
    rg, rr = m("engines", "redis/get", "4KiB"), m("engines", "redis_raw/get", "4KiB")
    if rg and rr:
        p(f"| Redis engine hit ≤ raw GET + 20 µs (4 KiB) | {fmt_time(rg)} vs {fmt_time(rr)} | {verdict(rg <= rr + 20_000)} |")
    p("")
    print("\n".join(out))

    # ---- SVG -------------------------------------------------------------------------
    series = [
        ("CacheLayer + MemoryEngine (POST hit)", "#1f77b4", [m("hit", "cache_layer_memory", f"{k}KiB") for k in hit_sizes], ""),
        ("CacheLayer + FileEngine (POST hit)", "#2ca02c", [m("hit", "cache_layer_file", f"{k}KiB") for k in hit_sizes], ""),
        ("http-cache-tower + moka (GET hit, no body)", "#d62728", [m("hit", "http_cache_tower_get", f"{k}KiB") for k in hit_sizes], ""),
        ("floor: SHA-256 of the body", "#7f7f7f", [m("key", "sha256_floor", f"{k}KiB") for k in hit_sizes], "6,4"),
        ("bare service_fn (no cache)", "#ff7f0e", [m("hit", "bare_service_fn", f"{k}KiB") for k in hit_sizes], "2,3"),
    ]
    series = [s for s in series if all(v is not None for v in s[2])]
    if not series:
        print("no hit data: run `cargo bench --bench cache` first", file=sys.stderr)
        return
    write_svg(args.svg, hit_sizes, series)
    print(f"wrote {args.svg}", file=sys.stderr)


def write_svg(path, sizes, series):
    W, H = 820, 470
    L, R, T, B = 70, 290, 40, 60
    pw, ph = W - L - R, H - T - B
    xs = [math.log2(s) for s in sizes]
    vals = [v / 1000 for s in series for v in s[2]]  # µs
    ymin = 10 ** math.floor(math.log10(min(vals)))
    ymax = 10 ** math.ceil(math.log10(max(vals)))
    X = lambda x: L + (x - xs[0]) / (xs[-1] - xs[0]) * pw  # noqa: E731
    Y = lambda v: T + ph - (math.log10(v) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)) * ph  # noqa: E731
    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">')
    e.append(f'<rect width="{W}" height="{H}" fill="white"/>')
    e.append(f'<text x="{L + pw / 2}" y="22" text-anchor="middle" font-size="14">Cache hit latency vs request size (median, 4 KiB response, log scale)</text>')
    d = ymin
    while d <= ymax * 1.0001:
        for mult in (1, 2, 5):
            v = d * mult
            if v > ymax * 1.0001:
                break
            y = Y(v)
            e.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            e.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        d *= 10
    for s, x in zip(sizes, xs):
        e.append(f'<line x1="{X(x):.1f}" y1="{T}" x2="{X(x):.1f}" y2="{T + ph}" stroke="#eee"/>')
        e.append(f'<text x="{X(x):.1f}" y="{T + ph + 18}" text-anchor="middle">{s} KiB</text>')
    e.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    e.append(f'<text x="{L + pw / 2}" y="{H - 15}" text-anchor="middle">chat request body size</text>')
    e.append(f'<text x="18" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {T + ph / 2})">latency (µs)</text>')
    for i, (name, color, ys, dash) in enumerate(series):
        pts = " ".join(f"{X(x):.1f},{Y(v / 1000):.1f}" for x, v in zip(xs, ys))
        da = f' stroke-dasharray="{dash}"' if dash else ""
        e.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{da}/>')
        for x, v in zip(xs, ys):
            e.append(f'<circle cx="{X(x):.1f}" cy="{Y(v / 1000):.1f}" r="3" fill="{color}"><title>{name}: {v / 1000:.2f} µs</title></circle>')
        ly = T + 10 + i * 22
        e.append(f'<line x1="{L + pw + 15}" y1="{ly}" x2="{L + pw + 40}" y2="{ly}" stroke="{color}" stroke-width="2"{da}/>')
        e.append(f'<text x="{L + pw + 46}" y="{ly + 4}" font-size="11">{name}</text>')
    e.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(e) + "\n")


if __name__ == "__main__":
    main()
