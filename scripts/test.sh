#!/usr/bin/env bash
# The whole test suite against real PostgreSQL, Redis and RabbitMQ on loopback.
# Starts (and if needed installs) the services first; each test gets its own database.
# Also the standing checks: rustfmt and clippy with warnings as errors; the README's quick
# start run as written (scripts/quickstart-check.sh); the restore drill on a PostgreSQL of
# its own (scripts/backup.sh drill: pgBackRest, the cluster destroyed and restored to a point
# in time); an outside fuzzer (schemathesis, scripts/schemathesis.sh) over the API's OpenAPI
# document; and last, unless BETLEDGER_HA_TESTS=0, the failover tests on the HA topology of
# scripts/ha.sh (about five minutes: three PostgreSQL nodes, Redis with Sentinel, three
# RabbitMQ nodes, each killed under load, and a restore to a point in time after a
# failover). The HA topology is stopped afterwards unless it was running before (and left
# running when a test fails, to look at).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }

step "services"
scripts/services.sh up
eval "$(scripts/services.sh env)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "the end-to-end suite again, through the straightforward cqrs-es write path"
BETLEDGER_WRITE_PATH=cqrs cargo test --workspace --locked --test e2e

step "the restore drill: backup, disaster, restore to T, every answer checked (scripts/backup.sh drill)"
scripts/backup.sh drill

step "operations files: alert rules (promtool), dashboard, compose, Dockerfile"
scripts/ops-check.sh

step "the README's quick start, run as written, each answer compared (scripts/quickstart-check.sh)"
scripts/quickstart-check.sh

step "schemathesis against the API's OpenAPI document (every face, all checks)"
scripts/schemathesis.sh

if [ "${BETLEDGER_HA_TESTS:-1}" != 0 ]; then
  step "failover tests on the HA topology (scripts/ha.sh; BETLEDGER_HA_TESTS=0 skips them)"
  ha_was_up=0
  scripts/ha.sh status 2>&1 | grep -q "etcd e1: up" && ha_was_up=1
  scripts/ha.sh up
  (eval "$(scripts/ha.sh env)" && cargo test --locked -p betledger-tests --test failover -- \
    --ignored --test-threads=1 --nocapture)
  [ "$ha_was_up" = 1 ] || scripts/ha.sh down
fi

step "all green"
