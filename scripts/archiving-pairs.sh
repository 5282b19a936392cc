#!/usr/bin/env bash
# WAL archiving's cost on the write path: PAIRS (default 6) interleaved pairs of
# `scripts/pipeline-bench.sh SECONDS` (default 15) on the services' cluster, one with
# archiving off (`scripts/backup.sh archiving off`) and one with it on
# (`scripts/backup.sh stanza`), the order alternating per pair. Prints each run and the
# segments it archived, then one JSON line: the ratios on / off and their median. BIN_DIR,
# IDLE_S (default 3) and the rest as for pipeline-bench.sh. Archiving is left as it was.
# Usage: [BIN_DIR=DIR] scripts/archiving-pairs.sh [PAIRS] [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PAIRS="${1:-6}"
SECONDS_BURST="${2:-15}"
export IDLE_S="${IDLE_S:-3}"
eval "$(scripts/services.sh env)"
out="$(mktemp -d)"
archived() { psql "$BETLEDGER_DATABASE_URL" -tAc "SELECT archived_count FROM pg_stat_archiver"; }
was=$(psql "$BETLEDGER_DATABASE_URL" -tAc "SHOW archive_mode")
for i in $(seq 1 "$PAIRS"); do
  order="off on"; [ $((i % 2)) = 0 ] && order="on off"
  for mode in $order; do
    if [ "$mode" = on ]; then scripts/backup.sh stanza >/dev/null 2>&1
    else scripts/backup.sh archiving off >/dev/null 2>&1; fi
    before=$(archived)
    scripts/pipeline-bench.sh "$SECONDS_BURST" 2>/dev/null | tail -n 1 >"$out/$mode-$i.json"
    echo "[archiving-pairs] pair $i, archiving $mode: $(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['requests_per_s']))" "$out/$mode-$i.json") requests/s, $(($(archived) - before)) segments archived" >&2
  done
done
if [ "$was" = on ]; then scripts/backup.sh stanza >/dev/null 2>&1; else scripts/backup.sh archiving off >/dev/null 2>&1; fi
python3 - "$out" "$PAIRS" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
rps = lambda m, i: json.load(open(f"{out}/{m}-{i}.json"))["requests_per_s"]
ratios = [round(rps("on", i) / rps("off", i), 3) for i in range(1, pairs + 1)]
print(json.dumps({"pairs": pairs, "on_over_off": ratios, "median": statistics.median(ratios)}))
PY
rm -rf "$out"
