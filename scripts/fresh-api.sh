# Sourced, not run: starts the debug `betledger-api` on a database, a Redis prefix and a
# port of its own, for a script that calls the API from outside (scripts/schemathesis.sh,
# scripts/quickstart-check.sh), and removes all three when that script exits.
#
#   . scripts/fresh-api.sh
#   fresh_api NAME [VAR=VALUE ...]    # the API's environment on top of the services'
#
# Sets API (its base URL), FRESH_DATABASE_URL (its database), WORK (a scratch folder,
# removed at exit; the API's log is $WORK/api.log) and api_pid. Needs `eval "$(scripts/services.sh env)"` first.

fresh_api() {
  local name="$1"
  shift
  cargo build --locked --bin betledger-api 2>&1 | tail -1
  FRESH_DB="${name}_$$"
  FRESH_PREFIX="${name}-$$"
  FRESH_BASE_DB="${BETLEDGER_DATABASE_URL%/*}"
  FRESH_DATABASE_URL="$FRESH_BASE_DB/$FRESH_DB"
  WORK="$(mktemp -d)"
  api_pid=""
  trap fresh_api_cleanup EXIT
  psql "$BETLEDGER_DATABASE_URL" -qc "CREATE DATABASE $FRESH_DB" >/dev/null
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env BETLEDGER_DATABASE_URL="$FRESH_DATABASE_URL" BETLEDGER_REDIS_PREFIX="$FRESH_PREFIX" \
    BETLEDGER_API_ADDR="127.0.0.1:$port" RUST_LOG=warn "$@" \
    target/debug/betledger-api >"$WORK/api.log" 2>&1 &
  api_pid=$!
  API="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do curl -fs "$API/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$API/ready" >/dev/null || {
    echo "the API did not start:" >&2
    cat "$WORK/api.log" >&2
    exit 1
  }
}

fresh_api_cleanup() {
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$FRESH_BASE_DB/postgres" -qc "DROP DATABASE IF EXISTS $FRESH_DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$BETLEDGER_REDIS_URL" --scan --pattern "$FRESH_PREFIX:*" |
    xargs -r -n 1000 redis-cli -u "$BETLEDGER_REDIS_URL" unlink >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
