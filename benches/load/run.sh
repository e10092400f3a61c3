#!/usr/bin/env bash
# Load benchmark: the static upstream direct, nginx's proxy cache (file-backed), and
# mistral-cache twice, on its default engine (file://, with its hot tier) and on
# memory://, all on 127.0.0.1, all serving the same 4 KiB chat completion, driven by wrk.
#
#   bash benches/load/run.sh
#
# Environment:
#   DURATION=10s          wrk duration per run
#   CONNECTIONS="1 64"    connection counts to run
#   ROUNDS=3              rounds per connection count; each round runs the three
#                         targets back to back (in a rotated order), and the table
#                         shows the median round (req/s) and the median of the
#                         per-round ratios, so a burst of load from another process
#                         on a shared machine skews one round, not the comparison
#   BODY_SIZE=2048        size of the chat request body in bytes
#   BUILD_FLAGS="--features server"   extra cargo build flags (e.g. --all-features)
#   PROFILE=release       cargo profile (`bench` reuses the criterion build)
#   SKIP_INSTALL=1        do not apt-get install nginx/wrk when missing
#   MISTRAL_CACHE_BIN=... run this mistral-cache executable instead of the one built
#                         from the tree (to compare two builds with the same script)
#
# It installs nginx-light and wrk from Debian when missing (needs root), builds
# examples/static_upstream and mistral-cache in release, starts the four servers on
# spare ports, warms each cache with one request, checks the next answer is a hit,
# runs wrk, and checks from the upstream's own counter that no cached run reached it.
# Every process it starts is killed on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
ROUNDS=${ROUNDS:-3}
BODY_SIZE=${BODY_SIZE:-2048}
BUILD_FLAGS=${BUILD_FLAGS:---features server}
PROFILE=${PROFILE:-release}
AUTH="Bearer load-test-0000000000000000000000000000"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mistral-cache-load.XXXXXX")
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- tools -------------------------------------------------------------------------
need_install=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_install+=(nginx)
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
command -v curl >/dev/null 2>&1 || need_install+=(curl)
if ((${#need_install[@]})); then
    [[ -n ${SKIP_INSTALL:-} ]] && die "missing: ${need_install[*]}"
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    pkgs=()
    for p in "${need_install[@]}"; do
        case $p in
            nginx) pkgs+=(nginx-light) ;;
            *) pkgs+=("$p") ;;
        esac
    done
    log "installing ${pkgs[*]} (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---- build -------------------------------------------------------------------------
log "building ($PROFILE profile): examples/static_upstream and mistral-cache"
# The executables' exact paths come from cargo's JSON messages (the uplifted copies in
# target/<profile>/ can be replaced by another build sharing the target directory).
# shellcheck disable=SC2086
(cd "$root" && cargo build --profile "$PROFILE" --message-format=json-render-diagnostics \
    $BUILD_FLAGS --example static_upstream --bin mistral-cache) >"$TMP/build.json"
exe_of() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])' "$TMP/build.json" "$1" | tail -n 1
}
UPSTREAM_BIN=$(exe_of static_upstream)
PROXY_BIN=${MISTRAL_CACHE_BIN:-$(exe_of mistral-cache)}
[[ -x $UPSTREAM_BIN && -x $PROXY_BIN ]] || die "built executables not found (see $TMP/build.json)"

# ---- helpers -----------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 200); do
        # Below the kernel's ephemeral range (32768+), where an outgoing connection may
        # hold the port: a listener cannot bind it then, even though nothing listens.
        p=$((20000 + RANDOM % 12000))
        if ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}
wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 300); do
        port_in_use "$port" && return 0
        kill -0 "$pid" 2>/dev/null || die "process $pid exited before listening on $port (see $TMP)"
        sleep 0.05
    done
    die "nothing listening on $port"
}
post() { # url -> prints headers (to $TMP/h) and fails on non-2xx
    curl -sS -f -o /dev/null -D "$TMP/h" -X POST "$1/v1/chat/completions" \
        -H "Content-Type: application/json" -H "Authorization: $AUTH" \
        --data-binary "@$TMP/body.json"
}
upstream_count() { curl -sS -f "http://127.0.0.1:$UPSTREAM_PORT/count"; }

# The chat request: compact JSON with messages, padded to BODY_SIZE bytes.
python3 - "$BODY_SIZE" >"$TMP/body.json" <<'PY'
import json, sys
size = int(sys.argv[1])
def build(pad):
    msgs = [{"role": "system", "content": "You are a careful assistant. Answer in plain English."}]
    msgs.append({"role": "user", "content": "How far is the moon from earth? " + "x" * pad})
    return json.dumps({"model": "mistral-large-latest", "messages": msgs, "temperature": 0.2,
                       "max_tokens": 512}, separators=(",", ":"))
base = len(build(0))
assert base <= size, (base, size)
sys.stdout.write(build(size - base))
PY
export CHAT_BODY_FILE=$TMP/body.json CHAT_AUTHORIZATION=$AUTH

# ---- servers -----------------------------------------------------------------------
UPSTREAM_PORT=$(free_port)
"$UPSTREAM_BIN" "127.0.0.1:$UPSTREAM_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
UPSTREAM_PID=$!
wait_port "$UPSTREAM_PORT" "${PIDS[-1]}"

# mistral-cache on memory://, and on its default engine (no --engine: file://.mistral/cache,
# relative to its working directory, with the default hot tier).
PROXY_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-warn} "$PROXY_BIN" serve --listen "127.0.0.1:$PROXY_PORT" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --engine memory:// >"$TMP/proxy.log" 2>&1 &
PIDS+=($!)
PROXY_PID=$!
wait_port "$PROXY_PORT" "${PIDS[-1]}"

FILE_PROXY_PORT=$(free_port)
mkdir -p "$TMP/file-proxy"
(cd "$TMP/file-proxy" && RUST_LOG=${RUST_LOG:-warn} exec "$PROXY_BIN" serve \
    --listen "127.0.0.1:$FILE_PROXY_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    >"$TMP/file-proxy.log" 2>&1) &
PIDS+=($!)
FILE_PROXY_PID=$!
wait_port "$FILE_PROXY_PORT" "${PIDS[-1]}"

NGINX_PORT=$(free_port)
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"
sed -e "s|@TMP@|$TMP|g" -e "s|@USER@|$user_line|" -e "s|@WORKERS@|$(nproc)|" \
    -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|" -e "s|@NGINX_PORT@|$NGINX_PORT|" \
    "$here/nginx.conf.template" >"$TMP/nginx.conf"
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
PIDS+=($!)
NGINX_PID=$!
wait_port "$NGINX_PORT" "${PIDS[-1]}"

log "upstream :$UPSTREAM_PORT  mistral-cache memory :$PROXY_PORT  file :$FILE_PROXY_PORT  nginx :$NGINX_PORT  (logs in $TMP)"

# ---- warm-up and hit checks --------------------------------------------------------
for target_url in "http://127.0.0.1:$NGINX_PORT" "http://127.0.0.1:$PROXY_PORT" \
    "http://127.0.0.1:$FILE_PROXY_PORT"; do
    post "$target_url" # miss: fills the cache (written after the answer)
    for _ in $(seq 50); do
        post "$target_url"
        grep -qi '^x-cache: *HIT' "$TMP/h" && break
        sleep 0.1
    done
    grep -qi '^x-cache: *HIT' "$TMP/h" || die "$target_url: no hit after the first request: $(cat "$TMP/h")"
done
[[ -n $(find "$TMP/file-proxy/.mistral/cache" -type f ! -name '.tmp-*' 2>/dev/null) ]] ||
    die "the file engine's proxy wrote no cache file under $TMP/file-proxy/.mistral/cache"

# ---- runs --------------------------------------------------------------------------
# Every target gets the same wrk settings: min(conns, CPUs) threads, the same script.
# nginx runs one worker per CPU and mistral-cache (like the upstream) one runtime
# worker thread per CPU, so all three use the same number of threads.
# Besides req/s (which depends on how much CPU wrk and other processes leave to the
# server), the CPU time each server used per request is measured from /proc: it
# depends much less on the machine's load.
cpu_ticks() { # pids... -> user+system clock ticks of these processes and their children
    local pid all=() total=0 f
    for pid in "$@"; do
        all+=("$pid")
        while read -r f; do all+=("$f"); done < <(ps -o pid= --ppid "$pid" 2>/dev/null)
    done
    for pid in "${all[@]}"; do
        # Fields 14 and 15 of /proc/PID/stat (after the parenthesised name).
        f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
        total=$((total + ${f:-0}))
    done
    echo "$total"
}
printf 'target\tconns\tround\trps\tp50\tp99\tcpu_us\n' >"$TMP/results.tsv"
run_wrk() { # name url conns round
    local name=$1 url=$2 conns=$3 round=$4 threads out before after t0 t1
    threads=$((conns < $(nproc) ? conns : $(nproc)))
    before=$(upstream_count)
    t0=$(cpu_ticks ${SERVER_PIDS[$name]})
    out=$(wrk -t "$threads" -c "$conns" -d "$DURATION" --latency -s "$here/post.lua" "$url")
    t1=$(cpu_ticks ${SERVER_PIDS[$name]})
    after=$(upstream_count)
    printf '%s\n' "$out" >"$TMP/wrk-$name-$conns-$round.txt"
    if grep -q "Non-2xx" <<<"$out"; then die "$name: non-2xx answers: $out"; fi
    if [[ $name != upstream && $after != "$before" ]]; then
        die "$name: $((after - before)) requests reached the upstream during an all-hits run"
    fi
    local rps p50 p99 requests cpu_us
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$round" "$rps" "$p50" "$p99" "$cpu_us" >>"$TMP/results.tsv"
    log "$(printf '%-14s c=%-3s round %s %12s req/s  p50 %-9s p99 %-9s %6s CPU us/req' "$name" "$conns" "$round" "$rps" "$p50" "$p99" "$cpu_us")"
}

declare -A SERVER_PIDS=(
    [upstream]=$UPSTREAM_PID
    [nginx]=$NGINX_PID
    [mistral-memory]=$PROXY_PID
    [mistral-file]=$FILE_PROXY_PID
)
declare -A URL=(
    [upstream]="http://127.0.0.1:$UPSTREAM_PORT"
    [nginx]="http://127.0.0.1:$NGINX_PORT"
    [mistral-memory]="http://127.0.0.1:$PROXY_PORT"
    [mistral-file]="http://127.0.0.1:$FILE_PROXY_PORT"
)
ORDER=(upstream nginx mistral-file mistral-memory)
for c in $CONNECTIONS; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < ${#ORDER[@]}; i++)); do
            name=${ORDER[$(((i + round - 1) % ${#ORDER[@]}))]}
            run_wrk "$name" "${URL[$name]}" "$c" "$round"
        done
    done
done

# ---- report ------------------------------------------------------------------------
echo
echo "wrk $DURATION per run, $ROUNDS rounds, ${BODY_SIZE} B request, 4096 B response, $(nproc) CPUs shared by servers and wrk"
python3 - "$TMP/results.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault((r["target"], int(r["conns"])), {})[int(r["round"])] = r
def median_run(runs):
    ordered = sorted(runs.values(), key=lambda r: float(r["rps"]))
    return ordered[(len(ordered) - 1) // 2]
MISTRAL = ("mistral-file", "mistral-memory")
fmt = "| {:<14} | {:>5} | {:>12} | {:>9} | {:>9} | {:>16} | {:>18} | {:>12} |"
print(fmt.format("target", "conns", "req/s", "p50", "p99", "/ upstream req/s", "mistral / nginx", "CPU us/req"))
print("|----------------|-------|--------------|-----------|-----------|------------------|--------------------|--------------|")
for c in sorted({k[1] for k in by}):
    up = by[("upstream", c)]
    ng = by[("nginx", c)]
    for name in ("upstream", "nginx") + MISTRAL:
        runs = by[(name, c)]
        med = median_run(runs)
        # Ratios are taken within each round (same load conditions), then the median.
        ratio_up = statistics.median(float(runs[k]["rps"]) / float(up[k]["rps"]) for k in runs)
        ratio_ng = "-"
        if name in MISTRAL:
            ratio_ng = "%.2f" % statistics.median(float(runs[k]["rps"]) / float(ng[k]["rps"]) for k in runs)
        cpu = statistics.median(float(r["cpu_us"]) for r in runs.values())
        print(fmt.format(name, c, "%.2f" % float(med["rps"]), med["p50"], med["p99"], "%.2f" % ratio_up, ratio_ng, "%.1f" % cpu))
print()
print("CPU us/req: user + system time of the server's processes (nginx: master and workers) per")
print("request, median over the rounds. per round (mistral / upstream, mistral / nginx):")
for name in MISTRAL:
    for c in sorted({k[1] for k in by}):
        mc, up, ng = by[(name, c)], by[("upstream", c)], by[("nginx", c)]
        parts = ["r%d %.2f %.2f" % (k, float(mc[k]["rps"]) / float(up[k]["rps"]), float(mc[k]["rps"]) / float(ng[k]["rps"])) for k in sorted(mc)]
        print("  %-14s c=%-3d %s" % (name, c, "  ".join(parts)))
PY
echo
echo "upstream served $(upstream_count) requests in total (warm-up misses + the direct runs)"
