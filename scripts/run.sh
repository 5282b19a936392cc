#!/usr/bin/env bash
# Runs the engine: installs and starts PostgreSQL, Redis and RabbitMQ on loopback when they
# are not there, builds the release binaries, and starts the API (which migrates the event
# store on start) and the read side (relay and projection workers, one process). Ctrl-C
# stops both; `scripts/services.sh down` stops the services.
# Ports and data folder: see scripts/services.sh (BETLEDGER_*_PORT, BETLEDGER_DATA_DIR).
# BETLEDGER_TOPOLOGY=ha runs it on the high-availability topology of scripts/ha.sh instead
# (three PostgreSQL nodes under Patroni behind HAProxy, Redis with Sentinel, three RabbitMQ).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
services=scripts/services.sh
[ "${BETLEDGER_TOPOLOGY:-single}" = ha ] && services=scripts/ha.sh
"$services" up
eval "$("$services" env)"
export BETLEDGER_API_ADDR="${BETLEDGER_API_ADDR:-127.0.0.1:8080}"
export BETLEDGER_API_TOKENS="${BETLEDGER_API_TOKENS:-dev:dev-token:read+write+operator}"
export BETLEDGER_PROJECTIONS_ADDR="${BETLEDGER_PROJECTIONS_ADDR:-127.0.0.1:9464}"

echo "[run] building release binaries (the first build takes a few minutes)"
cargo build --release --locked --bin betledger-api --bin betledger-projections

target/release/betledger-api &
api=$!
target/release/betledger-projections all &
projections=$!
stop_all() {
  kill "$api" "$projections" 2>/dev/null || true
  wait "$api" "$projections" 2>/dev/null || true
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

for _ in $(seq 1 100); do
  curl -fs "http://$BETLEDGER_API_ADDR/health" >/dev/null 2>&1 && break
  kill -0 $api 2>/dev/null || { echo "[run] the API exited; see its output above" >&2; exit 1; }
  sleep 0.1
done
for _ in $(seq 1 100); do
  curl -fs "http://$BETLEDGER_PROJECTIONS_ADDR/health" >/dev/null 2>&1 && break
  kill -0 $projections 2>/dev/null || { echo "[run] betledger-projections exited; see its output above" >&2; exit 1; }
  sleep 0.1
done

token="${BETLEDGER_API_TOKENS#*:}"; token="${token%%:*}"
cat <<BANNER

BetLedger is running.
  API        http://$BETLEDGER_API_ADDR   (metrics at /metrics, readiness at /ready)
  Read side  relay + projection workers (metrics at http://$BETLEDGER_PROJECTIONS_ADDR/metrics)
  PostgreSQL $BETLEDGER_DATABASE_URL
  Redis      $BETLEDGER_REDIS_URL
  RabbitMQ   $BETLEDGER_AMQP_URL

Try it:
  curl -s -X POST http://$BETLEDGER_API_ADDR/v1/wallets \\
       -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \\
       -d '{"player_id": "alice", "currency": "EUR"}'
  then read it back from Redis, as the projection workers keep it:
  curl -s http://$BETLEDGER_API_ADDR/v1/read/wallets/WALLET_ID -H 'Authorization: Bearer $token'

Ctrl-C stops the API and the read side; $services down stops the services.
BANNER
wait -n "$api" "$projections"
