#!/usr/bin/env bash
# Runs schemathesis (an outside fuzzer, from PyPI) against the API's own OpenAPI document,
# every face: the native API with a bearer token, the provider face and the Hub88 face with
# their bodies signed by scripts/schemathesis_hooks.py. All checks on, a bounded number of
# examples per operation and a fixed seed, so a run takes a few minutes at most.
#   1. schemathesis into .venv-schemathesis (project-local) when missing;
#   2. a database of its own, a funded wallet, the API (debug build) on a free port;
#   3. `st run`, whose summary (operations, test cases, failures) ends the output.
# Exit status: schemathesis's (0: no failure).
# Usage: [ST_MAX_EXAMPLES=25] [ST_SEED=20261201] scripts/schemathesis.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCHEMATHESIS_VERSION="4.32.5"
VENV="$ROOT/.venv-schemathesis"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-25}"
SEED="${ST_SEED:-20261201}"

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 has no venv module until python3-venv is installed.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    else
      echo "python3 cannot make a virtual environment: sudo apt-get install -y python3-venv" >&2
      exit 2
    fi
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" || {
    echo "could not install schemathesis from PyPI: check the network, or pip's proxy settings" >&2
    exit 2
  }
fi
command -v openssl >/dev/null || { echo "openssl is missing (Hub88 signatures): sudo apt-get install -y openssl" >&2; exit 2; }

scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
TOKEN="schemathesis-token-0001"
. scripts/fresh-api.sh
fresh_api schemathesis BETLEDGER_API_TOKENS="fuzzer:$TOKEN:read+write+operator" \
  BETLEDGER_PROVIDERS="stp:schemathesis-provider-secret" \
  BETLEDGER_HUB88_OPERATORS="st88:$ROOT/tests/fixtures/hub88-test-key.pub.pem" \
  BETLEDGER_RATE_LIMIT_PER_S=1000000 BETLEDGER_RATE_LIMIT_BURST=1000000
BASE="$API"

# A funded wallet for the generated calls to reach, and a session for each signed face.
auth=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
wallet=$(curl -fs "${auth[@]}" -d '{"player_id":"fuzzed","currency":"EUR"}' "$BASE/v1/wallets" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["wallet_id"])')
curl -fs "${auth[@]}" -d '{"transaction_id":"fund","amount":"100000"}' "$BASE/v1/wallets/$wallet/deposits" >/dev/null
for provider in stp hub88.st88; do
  curl -fs "${auth[@]}" -d "{\"player_id\":\"fuzzed\",\"currency\":\"EUR\",\"provider_id\":\"$provider\",\"game_id\":\"g1\"}" \
    "$BASE/v1/sessions" >/dev/null
done

echo "== schemathesis $SCHEMATHESIS_VERSION against $BASE/openapi.json: all checks, $MAX_EXAMPLES examples per operation, seed $SEED"
status=0
PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks \
  ST_PROVIDER=stp ST_PROVIDER_SECRET=schemathesis-provider-secret ST_OPERATOR=st88 \
  ST_OPERATOR_KEY="$ROOT/tests/fixtures/hub88-test-key.pem" ST_WALLET="$wallet" ST_BASE="$BASE" ST_TOKEN="$TOKEN" \
  "$VENV/bin/st" --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE/openapi.json" \
  --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 \
  --header "Authorization: Bearer $TOKEN" --no-color \
  --report-dir "$WORK/report" || status=$?
events=$(psql "$FRESH_DATABASE_URL" -tAc "SELECT count(*) FROM events")
sequence=$(curl -fs -H "Authorization: Bearer $TOKEN" "$BASE/v1/wallets/$wallet" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["sequence"])')
echo "== the run left $events events in its log; the funded wallet is at sequence $sequence (2 before the run)"
if grep -qiE "panicked|thread .* panicked" "$WORK/api.log"; then
  echo "the API panicked during the run:" >&2
  grep -iE -A5 "panicked" "$WORK/api.log" >&2
  status=1
fi
exit "$status"
