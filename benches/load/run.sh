#!/usr/bin/env bash
# Load benchmark: the static upstream direct, nginx's proxy cache, and mistral-cache,
# all on 127.0.0.1, all serving the same 4 KiB chat completion, driven by wrk.
#
#   bash benches/load/run.sh
#
# Environment:
#   DURATION=10s          wrk duration per run
#   CONNECTIONS="1 64"    connection counts to run
#   BODY_SIZE=2048        size of the chat request body in bytes
#   BUILD_FLAGS="--features server"   extra cargo build flags (e.g. --all-features)
#   PROFILE=release       cargo profile (`bench` reuses the criterion build)
#   SKIP_INSTALL=1        do not apt-get install nginx/wrk when missing
#
# It installs nginx-light and wrk from Debian when missing (needs root), builds
# examples/static_upstream and mistral-cache in release, starts the three servers on
# spare ports, warms each cache with one request, checks the next answer is a hit,
# runs wrk, and checks from the upstream's own counter that no cached run reached it.
# Every process it starts is killed on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
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
PROXY_BIN=$(exe_of mistral-cache)
[[ -x $UPSTREAM_BIN && -x $PROXY_BIN ]] || die "built executables not found (see $TMP/build.json)"

# ---- helpers -----------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 20000))
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
wait_port "$UPSTREAM_PORT" "${PIDS[-1]}"

PROXY_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-warn} "$PROXY_BIN" serve --listen "127.0.0.1:$PROXY_PORT" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --engine memory:// >"$TMP/proxy.log" 2>&1 &
PIDS+=($!)
wait_port "$PROXY_PORT" "${PIDS[-1]}"

NGINX_PORT=$(free_port)
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"
sed -e "s|@TMP@|$TMP|g" -e "s|@USER@|$user_line|" -e "s|@WORKERS@|$(nproc)|" \
    -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|" -e "s|@NGINX_PORT@|$NGINX_PORT|" \
    "$here/nginx.conf.template" >"$TMP/nginx.conf"
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" "${PIDS[-1]}"

log "upstream :$UPSTREAM_PORT  mistral-cache :$PROXY_PORT  nginx :$NGINX_PORT  (logs in $TMP)"

# ---- warm-up and hit checks --------------------------------------------------------
for target_url in "http://127.0.0.1:$NGINX_PORT" "http://127.0.0.1:$PROXY_PORT"; do
    post "$target_url" # miss: fills the cache
    post "$target_url"
    grep -qi '^x-cache: *HIT' "$TMP/h" || die "$target_url: second request was not a hit: $(cat "$TMP/h")"
done

# ---- runs --------------------------------------------------------------------------
declare -A RESULT
run_wrk() { # name url conns
    local name=$1 url=$2 conns=$3 threads out before after
    threads=$((conns < $(nproc) ? conns : $(nproc)))
    before=$(upstream_count)
    out=$(wrk -t "$threads" -c "$conns" -d "$DURATION" --latency -s "$here/post.lua" "$url")
    after=$(upstream_count)
    printf '%s\n' "$out" >"$TMP/wrk-$name-$conns.txt"
    if grep -q "Non-2xx" <<<"$out"; then die "$name: non-2xx answers: $out"; fi
    if [[ $name != upstream && $after != "$before" ]]; then
        die "$name: $((after - before)) requests reached the upstream during an all-hits run"
    fi
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    RESULT[$name,$conns]="$rps $p50 $p99"
    log "$(printf '%-14s c=%-3s %12s req/s  p50 %-9s p99 %s' "$name" "$conns" "$rps" "$p50" "$p99")"
}

for c in $CONNECTIONS; do
    run_wrk upstream "http://127.0.0.1:$UPSTREAM_PORT" "$c"
    run_wrk nginx "http://127.0.0.1:$NGINX_PORT" "$c"
    run_wrk mistral-cache "http://127.0.0.1:$PROXY_PORT" "$c"
done

# ---- report ------------------------------------------------------------------------
echo
echo "wrk $DURATION per run, ${BODY_SIZE} B request, 4096 B response, $(nproc) CPUs shared by servers and wrk"
printf '| %-14s | %5s | %12s | %9s | %9s | %16s | %18s |\n' target conns "req/s" p50 p99 "/ upstream req/s" "mistral / nginx"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------------" "-------" "--------------" "-----------" "-----------" "------------------" "--------------------"
for c in $CONNECTIONS; do
    read -r up_rps _ _ <<<"${RESULT[upstream,$c]}"
    read -r ng_rps _ _ <<<"${RESULT[nginx,$c]}"
    for name in upstream nginx mistral-cache; do
        read -r rps p50 p99 <<<"${RESULT[$name,$c]}"
        ratio_up=$(awk -v a="$rps" -v b="$up_rps" 'BEGIN {printf "%.2f", a / b}')
        ratio_ng="-"
        [[ $name == mistral-cache ]] && ratio_ng=$(awk -v a="$rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a / b}')
        printf '| %-14s | %5s | %12s | %9s | %9s | %16s | %18s |\n' "$name" "$c" "$rps" "$p50" "$p99" "$ratio_up" "$ratio_ng"
    done
done
echo
echo "upstream served $(upstream_count) requests in total (warm-up misses + the direct runs)"
