#!/usr/bin/env bash
# Single-flight across replicas, end to end (see .ci/fleet_test.py): three mistral-cache
# processes on one Redis, then three on one PostgreSQL, then three signing their entries on Redis.
#
#   bash .ci/fleet.sh [path/to/mistral-cache]
#
# Needs REDIS_URL and DATABASE_URL (source .ci/tmp/env.sh after `.ci/services.sh start`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/mistral-cache}"
[ -x "$BIN" ] || { echo "fleet: $BIN not built (cargo build --all-features --bin mistral-cache)"; exit 1; }
: "${REDIS_URL:?REDIS_URL not set}"
: "${DATABASE_URL:?DATABASE_URL not set}"
sep() { case "$1" in *\?*) echo "&" ;; *) echo "?" ;; esac; }

echo "fleet on Redis ($REDIS_URL)"
python3 .ci/fleet_test.py "$BIN" "${REDIS_URL}$(sep "$REDIS_URL")prefix=mistral-tower-fleet-ci:"
echo "fleet on PostgreSQL"
python3 .ci/fleet_test.py "$BIN" "${DATABASE_URL}$(sep "$DATABASE_URL")table=mistral_tower_fleet_ci"
echo "fleet on Redis, with signed entries (the leader signs what it publishes)"
MISTRAL_CACHE_ENTRY_SECRET=ci-fleet-secret-0123456789abcdef \
    python3 .ci/fleet_test.py "$BIN" "${REDIS_URL}$(sep "$REDIS_URL")prefix=mistral-tower-fleet-ci-signed:"
