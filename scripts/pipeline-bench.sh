#!/usr/bin/env bash
# Measures the whole engine as it runs in production, with an outside HTTP client (wrk):
#   1. a database of its own; INSTANCES betledger-api processes (release build; several form
#      a cluster, docs/0011) and, unless
#      READ_SIDE=0, betledger-projections all (relay and workers, RabbitMQ, Redis);
#   2. WALLETS wallets opened and funded over HTTP;
#   3. a burst of SECONDS (default 15) of deposits from wrk, CONNECTIONS connections split
#      over the instances, a REPEAT_SHARE of them exact retries (same id, same body); the
#      CPU each part used during it (and per command, in µs of one core; PostgreSQL's
#      backends also split by client: the API's, the projections'), and, with the read side on, the projection lag a probe
#      sees (a deposit every 20 ms, answer to visible in Redis: p50, p99, max);
#   4. the time until the read side has caught up (the relay's checkpoint at the log's
#      head and every wallet's read model at its last sequence);
#   5. 10 s later, the CPU used over IDLE_S seconds (default 60) by the API processes, the
#      projections process and the PostgreSQL backends connected to the database (and,
#      apart, by RabbitMQ and Redis), from /proc;
#   6. with pg_stat_statements loaded (scripts/services.sh's configuration), PostgreSQL's
#      time by statement over the burst and the catch-up, in µs per command (the 8 costliest).
# TRAFFIC=bet-wins sends rounds instead of deposits: each request a native bet-win
# (`POST /v1/wallets/{id}/bet-wins`, stake 1.00, payout 0.00 or 2.00, one of 20 games) in a
# round of its own that it closes, so the read side applies round events, leaderboards
# and totals.
# BONUS_SHARE=F (0 to 1, default 0): that share of the wallets holds no cash but an active
# bonus award of 1000.00 (wagering x10, never met in a burst), so their bets are paid by
# bonus money, split on payout and counted toward wagering (the contract's "Bonus money").
# BRAND=B (default none): the bench's token is limited to brand B and its wallets are
# opened in it, so every command passes the brand check (docs/0017); without it the token
# is of every brand, as before brands.
# RATE=N sends the commands at a fixed N per second instead (open loop, paced-load from
# the bench crate, over all instances): each command's latency runs from its due time to
# its answer, so a stall shows in p99 and p999 instead of slowing the load (JSON:
# fixed_rate). CONNECTIONS is then the most commands in flight.
# Prints progress lines, then one JSON line (KEEP_WORK=1 prints the work directory too).
# KILL_S=S (with INSTANCES=2 or more) kills the last instance S seconds into the burst and
# reports when the survivors served its wallets again (below).
# Usage: [INSTANCES=1] [KILL_S=] [RATE=] [CONNECTIONS=64] [WALLETS=1000] [REPEAT_SHARE=0] [READ_SIDE=1]
#        [IDLE_S=60] [TRAFFIC=deposits|bet-wins] [BONUS_SHARE=0] [BRAND=] [BETLEDGER_TOPOLOGY=single|ha] scripts/pipeline-bench.sh [SECONDS]
# BETLEDGER_TOPOLOGY=ha (as for scripts/run.sh; TOPOLOGY is still read) runs it on scripts/ha.sh's topology (synchronous replication, Sentinel, a
# RabbitMQ cluster) instead of scripts/services.sh's single nodes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BURST_S="${1:-15}"
TOPOLOGY="${BETLEDGER_TOPOLOGY:-${TOPOLOGY:-single}}"
INSTANCES="${INSTANCES:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
WALLETS="${WALLETS:-1000}"
REPEAT_SHARE="${REPEAT_SHARE:-0}"
READ_SIDE="${READ_SIDE:-1}"
IDLE_S="${IDLE_S:-60}"
TRAFFIC="${TRAFFIC:-deposits}"
BONUS_SHARE="${BONUS_SHARE:-0}"
BRAND="${BRAND:-}"
export BRAND
KILL_S="${KILL_S:-}"
RATE="${RATE:-}"
if [ -n "$RATE" ] && [ -n "$KILL_S" ]; then
  echo "KILL_S works with wrk's closed loop only: leave RATE out" >&2
  exit 2
fi
if [ -n "$KILL_S" ] && [ "$INSTANCES" -lt 2 ]; then
  echo "KILL_S needs INSTANCES=2 or more: the survivors serve the killed one's wallets" >&2
  exit 2
fi
case "$TRAFFIC" in
  deposits | bet-wins) ;;
  *) echo "TRAFFIC must be deposits or bet-wins, not $TRAFFIC" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || {
  echo "wrk is missing: sudo apt-get install -y wrk" >&2
  exit 2
}
services=scripts/services.sh
[ "$TOPOLOGY" = ha ] && services=scripts/ha.sh
"$services" up >/dev/null
eval "$("$services" env)"
# redis-cli reads plain redis:// URLs: on the HA topology, the master the Sentinels name.
REDIS_CLI_URL="$BETLEDGER_REDIS_URL"
if [ "$TOPOLOGY" = ha ]; then
  REDIS_CLI_URL="redis://127.0.0.1:$(scripts/ha.sh primary | python3 -c 'import json,sys; print(json.load(sys.stdin)["redis_master_port"])')"
fi
export REDIS_CLI_URL
# BIN_DIR=DIR runs the binaries in DIR instead (to compare two builds in one session).
BIN_DIR="${BIN_DIR:-}"
if [ -z "$BIN_DIR" ]; then
  cargo build --release --locked --bin betledger-api --bin betledger-projections \
    ${RATE:+--bin paced-load} 2>&1 | tail -1
  BIN_DIR=target/release
fi

DB="pipeline_bench_$$"
PREFIX="pipeline-bench-$$"
# A RabbitMQ vhost of its own, deleted at the end with every queue in it: quorum queues
# left behind by earlier runs piled up (each one a Raft member with its own log) until the
# broker used more CPU at rest and, after some dozens of runs, stopped answering.
VHOST="$PREFIX"
rabbitmqctl_of_topology() {
  if [ "$TOPOLOGY" = ha ]; then
    (source scripts/ha.sh; ha_rabbit_env 1; rabbit_cmd rabbitmqctl -q -n "$(ha_rabbit_node 1)" "$@")
  else
    (source scripts/services.sh; rabbit_env; rabbit_cmd rabbitmqctl -q -n "$RABBIT_NODE" "$@")
  fi
}
WORK="$(mktemp -d)"
TOKEN="pipeline-bench-token-0001"
BASE="${BETLEDGER_DATABASE_URL%/*}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # From the maintenance database: BETLEDGER_DATABASE_URL names $DB itself by now, and a
  # database cannot drop itself (every run used to leave its database behind).
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rabbitmqctl_of_topology delete_vhost "$VHOST" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_CLI_URL" --scan --pattern "$PREFIX:*" |
    xargs -r -n 1000 redis-cli -u "$REDIS_CLI_URL" unlink >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT; [ -n "${KEEP_WORK:-}" ] && echo "work dir $WORK"
psql "$BETLEDGER_DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
# PostgreSQL's time by statement (pg_stat_statements, loaded by scripts/services.sh's
# configuration): reset before the burst, read after the read side caught up.
statements=0
if psql "$BASE/$DB" -tAc "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
  psql "$BASE/$DB" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null && statements=1
else
  echo "   (pg_stat_statements is not loaded: no statement figures; add shared_preload_libraries = 'pg_stat_statements' and restart PostgreSQL)"
fi
rabbitmqctl_of_topology add_vhost "$VHOST" >/dev/null
rabbitmqctl_of_topology set_permissions -p "$VHOST" guest ".*" ".*" ".*" >/dev/null
# Every node's URL with the vhost in place of the default one.
BETLEDGER_AMQP_URL=$(printf '%s' "$BETLEDGER_AMQP_URL" | sed "s|/%2f|/$VHOST|g")
export BETLEDGER_AMQP_URL
export BETLEDGER_DATABASE_URL="$BASE/$DB" BETLEDGER_REDIS_PREFIX="$PREFIX" \
  BETLEDGER_AMQP_PREFIX="$PREFIX" BETLEDGER_API_TOKENS="bench:$TOKEN:read+write+operator${BRAND:+:$BRAND}" \
  BETLEDGER_RATE_LIMIT_PER_S=1000000 BETLEDGER_RATE_LIMIT_BURST=1000000 \
  BETLEDGER_CONCURRENCY_MAX=4096 RUST_LOG=warn
if [ "$INSTANCES" -gt 1 ]; then
  # Several instances form a cluster: each wallet decided by its owner (docs/0011).
  export BETLEDGER_CLUSTER_ADDR=auto BETLEDGER_CLUSTER_SECRET="pipeline-bench-cluster-$$"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
addrs=()
for i in $(seq 1 "$INSTANCES"); do
  addr="127.0.0.1:$(free_port)"
  BETLEDGER_API_ADDR="$addr" "$BIN_DIR/betledger-api" >"$WORK/api-$i.log" 2>&1 &
  pids+=($!)
  addrs+=("$addr")
done
api_pids=("${pids[@]}")
for addr in "${addrs[@]}"; do
  for _ in $(seq 1 200); do curl -fs "http://$addr/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://$addr/ready" >/dev/null || { echo "the API at $addr did not start:" >&2; cat "$WORK"/api-*.log >&2; exit 1; }
done
projections_pid=""
if [ "$READ_SIDE" = 1 ]; then
  projections_addr="127.0.0.1:$(free_port)"
  BETLEDGER_PROJECTIONS_ADDR="$projections_addr" "$BIN_DIR/betledger-projections" all \
    >"$WORK/projections.log" 2>&1 &
  projections_pid=$!
  pids+=("$projections_pid")
fi

echo "== opening and funding $WALLETS wallets through ${addrs[0]} (bonus share $BONUS_SHARE)"
python3 - "${addrs[0]}" "$TOKEN" "$WALLETS" "$BONUS_SHARE" >"$WORK/wallets" <<'PY'
import datetime, http.client, json, os, sys
addr, token, n, share = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
host, port = addr.split(":")
c = http.client.HTTPConnection(host, int(port))
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).isoformat()
for i in range(n):
    opening = {"player_id": f"bench-{i}", "currency": "EUR"}
    if os.environ.get("BRAND"):
        opening["brand_id"] = os.environ["BRAND"]
    c.request("POST", "/v1/wallets", json.dumps(opening), h)
    r = c.getresponse(); body = json.loads(r.read())
    assert r.status == 201, body
    w = body["wallet_id"]
    if i < round(n * share):
        grant = {"transaction_id": "fund", "amount": "1000.00", "wagering_multiplier": 10, "expires_at": expires}
        c.request("POST", f"/v1/wallets/{w}/bonuses", json.dumps(grant), h)
    else:
        c.request("POST", f"/v1/wallets/{w}/deposits", json.dumps({"transaction_id": "fund", "amount": "1000.00"}), h)
    r = c.getresponse(); body = r.read(); assert r.status == 200, body
    print(w)
PY

cat >"$WORK/deposits.lua" <<'LUA'
local wallets = {}
for line in io.lines(os.getenv("WALLETS_FILE")) do wallets[#wallets + 1] = line end
local share = tonumber(os.getenv("REPEAT_SHARE") or "0")
local token = os.getenv("TOKEN")
local traffic = os.getenv("TRAFFIC")
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", os.getenv("TAG") .. "-" .. threads)
end
local n, last = 0, nil
function init(args)
  local seed = os.time()
  for i = 1, #tag do seed = (seed * 31 + tag:byte(i)) % 2147483647 end
  math.randomseed(seed)
end
function request()
  if last ~= nil and math.random() < share then
    local again = last
    last = nil
    return again
  end
  n = n + 1
  local w = wallets[math.random(#wallets)]
  local id = tag .. '-' .. n
  if traffic == "bet-wins" then
    local payout = "0.00"
    if math.random() < 0.45 then payout = "2.00" end
    local body = '{"transaction_id":"' .. id .. '","game_id":"game-' .. math.random(20) ..
      '","round_id":"' .. id .. '","amount":"1.00","payout":"' .. payout ..
      '","round_closed":true}'
    last = wrk.format("POST", "/v1/wallets/" .. w .. "/bet-wins", headers, body)
  else
    local body = '{"transaction_id":"' .. id .. '","amount":"1.00"}'
    last = wrk.format("POST", "/v1/wallets/" .. w .. "/deposits", headers, body)
  end
  return last
end
LUA

# "pid ticks" per line, for a CPU figure over processes that may come and go (the
# PostgreSQL backends of a growing pool): used_since FILE sums, over the pids alive now,
# their ticks minus those recorded in FILE (0 for a pid born since).
snapshot() { for p in "$@"; do [ -r "/proc/$p/stat" ] && awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat"; done; true; }
# utime + stime of the given pids, in clock ticks.
ticks() { snapshot "$@" | awk '{sum += $2} END {print sum + 0}'; }
used_since() {
  local file="$1"; shift
  snapshot "$@" | awk 'NR == FNR {before[$1] = $2; next} {sum += $2 - ($1 in before ? before[$1] : 0)} END {print sum + 0}' "$file" -
}
backends() { psql "$BASE/postgres" -tAc "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()" 2>/dev/null | tr '\n' ' '; }
# The backends of one client (each binary names its sessions: eventstore::db::connect).
backends_of() { psql "$BASE/postgres" -tAc "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND application_name = '$1'" 2>/dev/null | tr '\n' ' '; }
rabbit=$(pgrep -f beam.smp | tr '\n' ' ')
redis=$(pgrep -f "redis-server.*${REDIS_CLI_URL##*:}" | tr '\n' ' ')

# The projection lag, from outside: during the burst a probe deposits 0.01 into a wallet
# of its own every 20 ms through the first instance and, from the moment the answer (with
# the event's sequence) arrives, reads the wallet's read model every 2 ms until it shows
# that sequence. Answer-to-visible bounds commit-to-visible from below by the answer's own
# transit (well under a millisecond here).
lag_probe() {
  python3 - "${addrs[0]}" "$TOKEN" "$BURST_S" >"$WORK/lag.json" <<'PY'
import http.client, json, os, socket, sys, time
addr, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
prefix = os.environ["BETLEDGER_REDIS_PREFIX"]
rhost, rport = os.environ["REDIS_CLI_URL"].split("//")[1].split("/")[0].rsplit(":", 1)
host, port = addr.split(":")
c = http.client.HTTPConnection(host, int(port))
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
opening = {"player_id": "lag-probe", "currency": "EUR"}
if os.environ.get("BRAND"):
    opening["brand_id"] = os.environ["BRAND"]
c.request("POST", "/v1/wallets", json.dumps(opening), h)
r = c.getresponse(); w = json.loads(r.read())["wallet_id"]
red = socket.create_connection((rhost, int(rport)))
red.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rf = red.makefile("rb")
def cmd(*args):
    red.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)).encode())
    line = rf.readline()
    if line.startswith(b"$"):
        n = int(line[1:])
        if n < 0:
            return None
        data = rf.read(n + 2)[:-2]
        return data.decode()
    return line[1:].strip().decode()
lags, missed, n = [], 0, 0
end = time.time() + seconds
while time.time() < end:
    n += 1
    c.request("POST", f"/v1/wallets/{w}/deposits", json.dumps({"transaction_id": f"probe-{n}", "amount": "0.01"}), h)
    r = c.getresponse(); body = json.loads(r.read())
    if r.status != 200:
        missed += 1; time.sleep(0.02); continue
    seq, t0 = body["sequence"], time.time()
    while True:
        gen = cmd("GET", f"{prefix}:generation") or "0"
        got = cmd("HGET", f"{prefix}:g{gen}:wallet:{{{w}}}", "sequence")
        if got is not None and int(got) >= seq:
            lags.append(time.time() - t0); break
        if time.time() - t0 > 30:
            missed += 1; break
        time.sleep(0.002)
    time.sleep(0.02)
lags.sort()
q = lambda f: round(1000 * lags[min(len(lags) - 1, int(f * len(lags)))], 1) if lags else None
print(json.dumps({"samples": len(lags), "missed": missed, "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}))
PY
}
# KILL_S: that many seconds into the burst the last instance is killed with SIGKILL, as
# a machine dies. From then on a probe deposits, through the first instance, into 60 of
# the wallets in turn (a third of them, about, owned by the killed one: docs/0011) until
# each has been served; it reports how long after the kill the last of them was, and the
# answers that were not 200 meanwhile.
served_probe() {
  python3 - "${addrs[0]}" "$TOKEN" "$WORK/wallets" "$WORK/killed_at" >"$WORK/served.json" <<'PY'
import http.client, json, os, sys, time
addr, token, wallets_file, killed_file = sys.argv[1:5]
wallets = [l.strip() for l in open(wallets_file)][:60]
host, port = addr.split(":")
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
while not os.path.exists(killed_file):
    time.sleep(0.01)
time.sleep(0.05)
killed_at = float(open(killed_file).read())
c = http.client.HTTPConnection(host, int(port), timeout=10)
served, statuses, n = {}, {}, 0
while len(served) < len(wallets) and time.time() - killed_at < 60:
    for w in wallets:
        if w in served:
            continue
        n += 1
        try:
            c.request("POST", f"/v1/wallets/{w}/deposits", json.dumps({"transaction_id": f"served-{n}", "amount": "0.01"}), h)
            r = c.getresponse(); r.read(); status = r.status
        except Exception as e:
            status = type(e).__name__
            c = http.client.HTTPConnection(host, int(port), timeout=10)
        if status == 200:
            served[w] = time.time() - killed_at
        else:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
print(json.dumps({"wallets": len(wallets), "served": len(served),
                  "last_served_after_kill_s": round(max(served.values()), 2) if served else None,
                  "not_200": statuses}))
PY
}

per=$((CONNECTIONS / INSTANCES))
if [ -n "$RATE" ]; then
  [ -x "$BIN_DIR/paced-load" ] || { echo "$BIN_DIR/paced-load is missing: cargo build --release -p betledger-bench --bin paced-load" >&2; exit 2; }
  [ "$REPEAT_SHARE" = 0 ] || { echo "RATE sends no exact retries: leave REPEAT_SHARE out" >&2; exit 2; }
  echo "== burst: ${BURST_S} s of $TRAFFIC at a fixed $RATE/s over $INSTANCES instance(s), at most $CONNECTIONS in flight"
else
  echo "== burst: ${BURST_S} s of $TRAFFIC, $CONNECTIONS connections over $INSTANCES instance(s), repeat share $REPEAT_SHARE"
fi
start_events=$(psql "$BETLEDGER_DATABASE_URL" -tAc "SELECT count(*) FROM events")
hz=$(getconf CLK_TCK)
# The write path's own account of the burst, summed over the instances: batches, commands
# per batch, and the shard loop's time deciding, committing and answering them.
write_path() {
  for addr in "${addrs[@]}"; do curl -fs "http://$addr/metrics" 2>/dev/null || true; done |
    awk '/^write_path_((batch_commands|(decide|commit|answer)_duration_seconds)_(sum|count)|batches_(one_statement|taken_key)_total) / {v[$1] += $2}
         END {for (k in v) print k, v[k]}'
}
write_path >"$WORK/write-path-before"
[ "$statements" = 1 ] && psql "$BETLEDGER_DATABASE_URL" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null
# shellcheck disable=SC2046
snapshot $(backends) >"$WORK/pg-before"
b_api0=$(ticks "${api_pids[@]}"); b_proj0=$(ticks $projections_pid)
b_r0=$(ticks $rabbit); b_d0=$(ticks $redis); b_t0=$(date +%s.%N)
# The whole machine's busy ticks (all CPUs: everything but idle and iowait), and its iowait.
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $6}' /proc/stat; }
read -r b_m0 b_w0 < <(machine)
i=0
wrk_pids=()
if [ -n "$RATE" ]; then
  "$BIN_DIR/paced-load" --addr "$(IFS=,; echo "${addrs[*]}")" --token "$TOKEN" \
    --wallets "$WORK/wallets" --rate "$RATE" --seconds "$BURST_S" --in-flight-max "$CONNECTIONS" \
    --traffic "$TRAFFIC" --tag "paced-$$" >"$WORK/paced.json" &
  wrk_pids+=($!)
fi
for addr in "${addrs[@]}"; do
  [ -n "$RATE" ] && break
  i=$((i + 1))
  WALLETS_FILE="$WORK/wallets" REPEAT_SHARE="$REPEAT_SHARE" TOKEN="$TOKEN" TAG="$$-$i" TRAFFIC="$TRAFFIC" \
    wrk -t 1 -c "$per" -d "${BURST_S}s" -s "$WORK/deposits.lua" "http://$addr" >"$WORK/wrk-$i.txt" 2>&1 &
  wrk_pids+=($!)
done
probe_pid=""
if [ "$READ_SIDE" = 1 ]; then
  lag_probe &
  probe_pid=$!
fi
served_pid=""
if [ -n "$KILL_S" ]; then
  served_probe &
  served_pid=$!
  victim="${api_pids[$((INSTANCES - 1))]}"
  victim_wrk="${wrk_pids[$((INSTANCES - 1))]}"
  # Its clients stop with it (wrk prints what it did when interrupted), as a balancer
  # takes a dead instance out: a client spinning on refused connections would take the
  # cores from the survivors.
  (sleep "$KILL_S"; kill -KILL "$victim"; kill -INT "$victim_wrk"
   date +%s.%N >"$WORK/killed_at.tmp"; mv "$WORK/killed_at.tmp" "$WORK/killed_at") &
  echo "== instance $INSTANCES (pid $victim) will be killed ${KILL_S} s into the burst"
fi
# Each wrk by its pid: a pgrep could run before a wrk has started and find none.
wait "${wrk_pids[@]}"
burst_end=$(date +%s.%N)
write_path >"$WORK/write-path-after"
write_path_json=$(python3 - "$WORK/write-path-before" "$WORK/write-path-after" "$(python3 -c "print($burst_end - $b_t0)")" <<'PY'
import json, sys
def read(f):
    return {k: float(v) for k, v in (l.split() for l in open(f) if l.strip())}
a, b, seconds = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
d = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
batches = d("write_path_batch_commands_count")
out = {"batches": int(batches)}
if batches > 0:
    out["commands_per_batch"] = round(d("write_path_batch_commands_sum") / batches, 1)
    for phase in ("decide", "commit", "answer"):
        out[f"{phase}_ms_mean"] = round(1000 * d(f"write_path_{phase}_duration_seconds_sum") / batches, 3)
    # Share of the burst the shard loops spent in a batch (over all shards: can pass 1).
    busy = sum(d(f"write_path_{p}_duration_seconds_sum") for p in ("decide", "commit", "answer"))
    out["shard_loop_busy"] = round(busy / seconds, 2)
    # Batches committed as one statement (no refusal, no snapshot due, no taken key).
    out["one_statement_share"] = round(d("write_path_batches_one_statement_total") / batches, 2)
    out["taken_key_batches"] = int(d("write_path_batches_taken_key_total"))
print(json.dumps(out))
PY
)
echo "== write path: $write_path_json"
burst_cpu() { python3 -c "print(round(100.0 * ($1) / $hz / ($burst_end - $b_t0), 1))"; }
read -r b_m1 b_w1 < <(machine)
b_m=$(burst_cpu "$b_m1 - $b_m0"); b_w=$(burst_cpu "$b_w1 - $b_w0")
b_api=$(burst_cpu "$(ticks "${api_pids[@]}") - $b_api0"); b_proj=$(burst_cpu "$(ticks $projections_pid) - $b_proj0")
# shellcheck disable=SC2046
b_pg=$(burst_cpu "$(used_since "$WORK/pg-before" $(backends))");
# shellcheck disable=SC2046
b_pg_api=$(burst_cpu "$(used_since "$WORK/pg-before" $(backends_of betledger-api))")
# shellcheck disable=SC2046
b_pg_proj=$(burst_cpu "$(used_since "$WORK/pg-before" $(backends_of betledger-projections))")
# shellcheck disable=SC2046
snapshot $(backends) >"$WORK/pg-after"
b_r=$(burst_cpu "$(ticks $rabbit) - $b_r0"); b_d=$(burst_cpu "$(ticks $redis) - $b_d0")
lag_json='{"samples": 0}'
killed_json=null
if [ -n "$served_pid" ]; then
  wait "$served_pid"
  killed_json="{\"at_s\": $KILL_S, \"probe\": $(cat "$WORK/served.json")}"
  echo "== after the kill: $(cat "$WORK/served.json")"
fi
if [ -n "$probe_pid" ]; then
  wait "$probe_pid"
  lag_json=$(cat "$WORK/lag.json")
  echo "== projection lag, answer to visible in Redis: $lag_json"
fi
# The busiest backends of the burst, with what they ran last: where PostgreSQL's share went.
psql "$BASE/postgres" -tA -F '|' -c "SELECT pid, backend_type, coalesce(application_name, ''), left(regexp_replace(query, '\s+', ' ', 'g'), 60) FROM pg_stat_activity WHERE datname = '$DB'" 2>/dev/null |
  awk -F'|' -v hz="$hz" -v s="$(python3 -c "print($burst_end - $b_t0)")" '
    FILENAME == ARGV[1] {split($0, a, " "); before[a[1]] = a[2]; next}
    FILENAME == ARGV[2] {split($0, a, " "); after[a[1]] = a[2]; next}
    ($1 in after) {printf "%6.1f%%  %s %s: %s\n", 100 * (after[$1] - before[$1]) / hz / s, $2, $3, $4}' \
    "$WORK/pg-before" "$WORK/pg-after" - | sort -rn | head -5 | sed 's/^/   backend /'
echo "== CPU during the burst (% of one core): API ${b_api}, projections ${b_proj}, PostgreSQL backends ${b_pg} (the API's ${b_pg_api}, the projections' ${b_pg_proj}), RabbitMQ ${b_r}, Redis ${b_d}; the machine ${b_m} of $(( $(nproc) * 100 )) busy, ${b_w} in iowait"
total_rps=0
non2xx=0
fixed_rate_json=null
if [ -n "$RATE" ]; then
  fixed_rate_json=$(cat "$WORK/paced.json")
  echo "== fixed rate: $fixed_rate_json"
  # Served per second over the burst as measured here (until paced-load's last answer),
  # the window the CPU figures are taken over: when the engine falls behind the rate, the
  # burst runs past BURST_S and the rate falls with it.
  read -r total_rps non2xx < <(python3 -c "
import json, sys
d = json.loads(sys.argv[1])
print(round(d['ok'] / (float(sys.argv[2]) - float(sys.argv[3])), 1), sum(d['not_2xx'].values()) + d['errors'])" "$fixed_rate_json" "$burst_end" "$b_t0")
fi
for f in "$WORK"/wrk-*.txt; do
  [ -e "$f" ] || continue
  rps=$(awk '/Requests\/sec/ {print $2}' "$f")
  total_rps=$(python3 -c "print($total_rps + $rps)")
  bad=$(awk '/Non-2xx/ {print $5}' "$f")
  non2xx=$((non2xx + ${bad:-0}))
  grep -E "Latency|Requests/sec|Non-2xx|errors" "$f" | sed 's/^/   /'
done
events=$(psql "$BETLEDGER_DATABASE_URL" -tAc "SELECT count(*) FROM events")
echo "== $total_rps requests/s in all; $((events - start_events)) events written; $non2xx answers not 2xx"
# CPU per command, in µs of one core: what carries to a bigger machine (docs/deploy/sizing.md).
us_json=$(python3 - "$total_rps" "$b_api" "$b_proj" "$b_pg" "$b_r" "$b_d" "$b_pg_api" "$b_pg_proj" <<'PY'
import json, sys
rps = float(sys.argv[1])
parts = dict(zip(["api", "projections", "postgres_backends", "rabbitmq", "redis"], map(float, sys.argv[2:7])))
us = {k: round(v * 1e4 / rps, 1) if rps > 0 else None for k, v in parts.items()}
us["all"] = round(sum(parts.values()) * 1e4 / rps, 1) if rps > 0 else None
# PostgreSQL's share, by client (already in postgres_backends, not added to all).
us["postgres_backends_of_api"], us["postgres_backends_of_projections"] = (
    round(float(v) * 1e4 / rps, 1) if rps > 0 else None for v in sys.argv[7:9])
print(json.dumps(us))
PY
)
echo "== CPU per command (µs of one core): $us_json"

catch_up_s=null
events_per_message=null
if [ "$READ_SIDE" = 1 ]; then
  echo "== waiting for the read side to catch up"
  while :; do
    if python3 -c "import sys, time; sys.exit(0 if time.time() - $burst_end > 120 else 1)"; then
      echo "the read side did not catch up within 120 s of the burst; the projections log ends:" >&2
      tail -20 "$WORK/projections.log" >&2
      exit 1
    fi
    lag=$(psql "$BETLEDGER_DATABASE_URL" -tAc "SELECT (SELECT count(*) FROM events) - coalesce((SELECT sum(events_relayed) FROM relay_checkpoints), 0)")
    if [ "$lag" -le 0 ]; then
      # Every wallet's read model at its last sequence.
      behind=$(python3 - "$WORK/wallets" <<'PY'
import os, subprocess, sys
wallets = [l.strip() for l in open(sys.argv[1])]
prefix = os.environ["BETLEDGER_REDIS_PREFIX"]; url = os.environ["REDIS_CLI_URL"]
gen = subprocess.run(["redis-cli", "-u", url, "GET", f"{prefix}:generation"], capture_output=True, text=True).stdout.strip() or "0"
q = "SELECT aggregate_id, max(sequence) FROM events GROUP BY 1"
db = subprocess.run(["psql", os.environ["BETLEDGER_DATABASE_URL"], "-tA", "-F", " ", "-c", q], capture_output=True, text=True).stdout
last = dict(l.split() for l in db.splitlines() if l.strip())
script = "\n".join(f"HGET {prefix}:g{gen}:wallet:{{{w}}} sequence" for w in wallets)
out = subprocess.run(["redis-cli", "-u", url], input=script, capture_output=True, text=True).stdout.split()
print(sum(1 for w, s in zip(wallets, out) if s != last.get(w)))
PY
)
      [ "$behind" = 0 ] && break
    fi
    sleep 0.2
  done
  catch_up_s=$(python3 -c "import time; print(round(time.time() - $burst_end, 2))")
  echo "== caught up ${catch_up_s} s after the burst ended"
  # Events per RabbitMQ message: the relay's batches (one per partition a page touches).
  events_per_message=$(curl -fs "http://$projections_addr/metrics" | awk '
    /^relay_events_published_total / {e = $2} /^relay_messages_published_total / {m = $2}
    END {if (m > 0) printf "%.1f", e / m; else print "null"}')
  echo "== the relay sent ${events_per_message} events per message"
fi

# The statements that took PostgreSQL's time, burst and catch-up, per command (µs).
statements_json=null
if [ "$statements" = 1 ]; then
  statements_json=$(psql "$BETLEDGER_DATABASE_URL" -tAc "
    SELECT coalesce(json_agg(s ORDER BY s.ms DESC), '[]') FROM (
      SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query, calls,
             round(total_exec_time::numeric, 1) AS ms, round((rows::numeric / greatest(calls, 1)), 1) AS rows_per_call
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       ORDER BY total_exec_time DESC LIMIT 8) s" | python3 -c "
import json, sys
rps, burst = float(sys.argv[1]), float(sys.argv[2])
top = json.load(sys.stdin)
commands = rps * burst
for s in top:
    s['us_per_command'] = round(float(s['ms']) * 1e3 / commands, 1) if commands else None
print(json.dumps(top))" "$total_rps" "$BURST_S")
  echo "== PostgreSQL's time by statement (µs per command, burst and catch-up):"
  python3 -c "import json,sys; [print(f'   {s[\"us_per_command\"]:>7} µs  {s[\"calls\"]:>8} calls  {s[\"query\"]}') for s in json.loads(sys.argv[1])]" "$statements_json"
fi

echo "== resting 10 s, then measuring CPU for ${IDLE_S} s"
sleep 10
pg_pids=$(backends)
e0=$(ticks "${api_pids[@]}" $projections_pid); p0=$(ticks $pg_pids); r0=$(ticks $rabbit); d0=$(ticks $redis)
sleep "$IDLE_S"
pg_pids_after=$(backends)
e1=$(ticks "${api_pids[@]}" $projections_pid); p1=$(ticks $pg_pids); r1=$(ticks $rabbit); d1=$(ticks $redis)
pct() { python3 -c "print(round(100.0 * ($1) / $hz / $IDLE_S, 2))"; }
engine_pct=$(pct "$e1 - $e0")
pg_pct=$(pct "$p1 - $p0")
rabbit_pct=$(pct "$r1 - $r0")
redis_pct=$(pct "$d1 - $d0")
[ "$pg_pids" = "$pg_pids_after" ] || echo "   (the set of PostgreSQL backends changed while measuring: $pg_pids -> $pg_pids_after)"
echo "== at rest: engine processes ${engine_pct}% of one core, their PostgreSQL backends ${pg_pct}%; RabbitMQ ${rabbit_pct}%, Redis ${redis_pct}% (shared services)"
cat <<JSON
{"topology": "$TOPOLOGY", "traffic": "$TRAFFIC", "bonus_share": $BONUS_SHARE, "brand": "${BRAND:-}", "instances": $INSTANCES, "connections": $CONNECTIONS, "rate": ${RATE:-null}, "fixed_rate": $fixed_rate_json, "wallets": $WALLETS, "repeat_share": $REPEAT_SHARE, "read_side": $READ_SIDE, "burst_s": $BURST_S, "requests_per_s": $total_rps, "not_2xx": $non2xx, "events": $((events - start_events)), "catch_up_s": $catch_up_s, "events_per_message": $events_per_message, "write_path": $write_path_json, "projection_lag": $lag_json, "killed": $killed_json, "burst_cpu_pct": {"api": $b_api, "projections": $b_proj, "postgres_backends": $b_pg, "postgres_backends_of_api": $b_pg_api, "postgres_backends_of_projections": $b_pg_proj, "rabbitmq": $b_r, "redis": $b_d, "machine": $b_m, "iowait": $b_w}, "cpu_us_per_command": $us_json, "postgres_statements": $statements_json, "idle_s": $IDLE_S, "idle_cpu_pct": {"engine": $engine_pct, "postgres_backends": $pg_pct, "rabbitmq": $rabbit_pct, "redis": $redis_pct}}
JSON
