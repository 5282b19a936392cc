#!/usr/bin/env bash
# Measures the replay tool on a log of at least a million events made by the engine:
#   1. write-bench's batched path writes 100,000 funded wallets (200,000 events) and then
#      runs the mixed workload (reserve 45 / settle 40 / refund 5 / deposit 5 / withdraw 5)
#      for SECONDS (default 60) into a database of its own, which it keeps;
#   2. betledger-replay verify, rebuild and reconcile run on that log, each a process of
#      its own, each printing its events per second and its peak resident memory;
#   3. the database and the Redis keys are deleted.
# Usage: scripts/replay-bench.sh [SECONDS]   (release build; services from services.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_OF_LOAD="${1:-60}"
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
cargo build --release --locked -p betledger-bench -p replay-tool 2>&1 | tail -1

DB="replay_bench_$$"
PREFIX="replay-bench-$$"
BASE="${BETLEDGER_DATABASE_URL%/*}"
cleanup() {
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$BETLEDGER_REDIS_URL" --scan --pattern "$PREFIX:*" | xargs -r -n 1000 redis-cli -u "$BETLEDGER_REDIS_URL" unlink >/dev/null 2>&1 || true
  rm -f "/tmp/$PREFIX-report.json"
}
trap cleanup EXIT

echo "== making the log: write-bench --paths batched --seconds $SECONDS_OF_LOAD --concurrency 256"
target/release/write-bench --paths batched --seconds "$SECONDS_OF_LOAD" --concurrency 256 \
  --keep-database "$DB" | grep -v '^{' 
export BETLEDGER_DATABASE_URL="$BASE/$DB" BETLEDGER_REDIS_PREFIX="$PREFIX"
events=$(psql "$BETLEDGER_DATABASE_URL" -tAc "SELECT count(*) FROM events")
echo "== the log holds $events events"
if [ "$events" -lt 1000000 ]; then
  echo "fewer than 1,000,000 events: run again with more seconds (scripts/replay-bench.sh 90)" >&2
  exit 1
fi

echo "== betledger-replay verify"
target/release/betledger-replay --progress lines verify --format json > "/tmp/$PREFIX-verify.json"
echo "== betledger-replay rebuild"
target/release/betledger-replay --progress lines rebuild --grace-s 0 > "/tmp/$PREFIX-rebuild.json"
echo "== betledger-replay reconcile"
target/release/betledger-replay --progress lines reconcile --report "/tmp/$PREFIX-report.json" >/dev/null

python3 - "$PREFIX" <<'PY'
import json, sys
p = sys.argv[1]
v = json.load(open(f"/tmp/{p}-verify.json"))
r = json.load(open(f"/tmp/{p}-rebuild.json"))
c = json.load(open(f"/tmp/{p}-report.json"))["summary"]
mib = lambda b: (b or 0) / 2**20
print(f"verify    {v['events']:>9} events  {v['events_per_second']:>9.0f} events/s  peak RSS {mib(v['peak_rss_bytes']):6.0f} MiB  ok={v['ok']}")
print(f"rebuild   {r['events']:>9} events  {r['events_per_second']:>9.0f} events/s  peak RSS {mib(r['peak_rss_bytes']):6.0f} MiB  "
      f"(fold {r['scan_events_per_second']:.0f} events/s, {r['wallets']} wallets, {r['leaderboards']} boards, write {r['write_seconds']:.1f} s)")
print(f"reconcile {c['events']:>9} events  {c['events_per_second']:>9.0f} events/s  peak RSS {mib(c['peak_rss_bytes']):6.0f} MiB  ok={c['ok']}")
print(json.dumps({"verify": v | {"listed": len(v["listed"])}, "rebuild": r, "reconcile": c}))
PY
rm -f "/tmp/$PREFIX-verify.json" "/tmp/$PREFIX-rebuild.json"
