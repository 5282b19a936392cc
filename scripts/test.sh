#!/usr/bin/env bash
# The whole test suite against real PostgreSQL, Redis and RabbitMQ on loopback.
# Starts (and if needed installs) the services first; each test gets its own database.
# Also the standing checks: rustfmt and clippy with warnings as errors; and last, an
# outside fuzzer (schemathesis, scripts/schemathesis.sh) over the API's OpenAPI document.
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

step "operations files: alert rules (promtool), dashboard, compose, Dockerfile"
scripts/ops-check.sh

step "schemathesis against the API's OpenAPI document (every face, all checks)"
scripts/schemathesis.sh

step "all green"
