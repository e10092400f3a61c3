#!/usr/bin/env bash
# Starts and stops the servers the engine tests run against.
#
#   bash .ci/services.sh start   # idempotent; prints `export VAR=...` lines on stdout
#   bash .ci/services.sh env     # prints the exports again
#   bash .ci/services.sh stop    # stops what `start` started (by pid)
#
# `start` makes sure of:
#   - the machine's Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database `test`),
#     started with the machine's own commands if they are down;
#   - a 3-master Redis Cluster from redis-server on 127.0.0.1:7101-7103 (data in .ci/tmp/);
#   - an S3-compatible server (moto_server, from PyPI in the venv .ci/.venv) on
#     127.0.0.1:7110 with the bucket `mistral-tower-test`.
# It writes pids to .ci/tmp/*.pid and the environment for the tests to .ci/tmp/env.sh
# (also printed on stdout, so `eval "$(bash .ci/services.sh start)"` works). Logs go to stderr
# and .ci/tmp/*.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$ROOT/.ci/tmp"
VENV="$ROOT/.ci/.venv"
CLUSTER_PORTS=(7101 7102 7103)
S3_PORT=7110
S3_BUCKET=mistral-tower-test

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Waits up to $1 tenths of a second for the command in the remaining args to succeed.
wait_for() {
    local tries=$1
    shift
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process in pidfile $1 (if alive) and waits up to 10 s for it to exit.
stop_pidfile() {
    local pidfile=$1 pid
    if pid_alive "$pidfile"; then
        pid="$(cat "$pidfile")"
        log "stopping $(basename "$pidfile" .pid) (pid $pid)"
        kill "$pid" 2>/dev/null || true
        wait_for 100 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

ensure_default_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        log "redis 127.0.0.1:6379 is up"
        return
    fi
    log "starting the machine's redis on 6379"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log --pidfile "$TMP/redis-6379.pid"
    wait_for 100 bash -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG' ||
        die "redis on 6379 did not come up"
}

ensure_postgres() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        log "starting the machine's PostgreSQL"
        # shellcheck disable=SC2046
        pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
        wait_for 300 pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up"
    else
        log "postgres 127.0.0.1:5432 is up"
    fi
    if [[ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]]; then
        createdb -h 127.0.0.1 -U postgres test
    fi
}

cluster_ok() {
    for port in "${CLUSTER_PORTS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' ||
            return 1
    done
    redis-cli -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster info | grep -q 'cluster_known_nodes:3'
}

stop_cluster_nodes() {
    for port in "${CLUSTER_PORTS[@]}"; do
        stop_pidfile "$TMP/redis-cluster-$port.pid"
    done
}

ensure_redis_cluster() {
    if cluster_ok; then
        log "redis cluster on ${CLUSTER_PORTS[*]} is up"
        return
    fi
    log "starting a 3-master redis cluster on ${CLUSTER_PORTS[*]}"
    stop_cluster_nodes
    for port in "${CLUSTER_PORTS[@]}"; do
        if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
            die "port $port is taken by a redis this script did not start"
        fi
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        local dir="$TMP/redis-cluster/$port"
        rm -rf "$dir"
        mkdir -p "$dir"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --save "" --appendonly no --dir "$dir" --logfile "$TMP/redis-cluster-$port.log" \
            --pidfile "$TMP/redis-cluster-$port.pid"
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_for 100 redis-cli -h 127.0.0.1 -p "$port" ping || die "redis on $port did not start"
    done
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes </dev/null \
        >"$TMP/redis-cluster-create.log" 2>&1 ||
        { cat "$TMP/redis-cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
    wait_for 300 cluster_ok || die "redis cluster did not reach cluster_state:ok"
    log "redis cluster is ok"
}

s3_up() { curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/"; }

moto_importable() { "$VENV/bin/python" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; }

ensure_moto() {
    if [[ -x "$VENV/bin/python" ]] && moto_importable; then return; fi
    log "installing moto[server] into .ci/.venv"
    # --system-site-packages: reuse a moto that the machine already has.
    python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' </dev/null >&2
    moto_importable || die "moto[server] is not importable from .ci/.venv"
}

ensure_s3() {
    if s3_up; then
        log "S3 (moto) on 127.0.0.1:$S3_PORT is up"
    else
        ensure_moto
        log "starting moto_server on 127.0.0.1:$S3_PORT"
        nohup "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$S3_PORT" \
            >"$TMP/moto.log" 2>&1 </dev/null &
        echo $! >"$TMP/moto.pid"
        wait_for 300 s3_up || { tail -20 "$TMP/moto.log" >&2; die "moto_server did not start"; }
    fi
    # Unsigned requests are accepted by moto; creating an existing bucket is harmless.
    curl -s -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || true
    curl -sf -o /dev/null -I "http://127.0.0.1:$S3_PORT/$S3_BUCKET" ||
        die "cannot create the S3 bucket $S3_BUCKET"
}

write_env() {
    cat >"$TMP/env.sh" <<EOF
export REDIS_URL='redis://127.0.0.1:6379'
export REDIS_CLUSTER_URL='redis+cluster://127.0.0.1:${CLUSTER_PORTS[0]},127.0.0.1:${CLUSTER_PORTS[1]},127.0.0.1:${CLUSTER_PORTS[2]}'
export DATABASE_URL='postgres://postgres@127.0.0.1:5432/test'
export MISTRAL_TOWER_S3_URL='s3://$S3_BUCKET/ci?endpoint=http://127.0.0.1:$S3_PORT&region=us-east-1&allow_http=true'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='us-east-1'
EOF
}

cmd_start() {
    mkdir -p "$TMP"
    command -v redis-server >/dev/null || die "redis-server is not installed"
    ensure_default_redis
    ensure_postgres
    ensure_redis_cluster
    ensure_s3
    write_env
    cat "$TMP/env.sh"
}

cmd_stop() {
    stop_cluster_nodes
    for pidfile in "$TMP"/*.pid; do
        [[ -e "$pidfile" ]] || continue
        stop_pidfile "$pidfile"
    done
    rm -rf "$TMP/redis-cluster"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) [[ -f "$TMP/env.sh" ]] || die "not started"; cat "$TMP/env.sh" ;;
*) die "usage: $0 start|stop|env" ;;
esac
