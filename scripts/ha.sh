#!/usr/bin/env bash
# The high-availability topology of the seed's platform, on loopback, from Debian's packages
# (no Docker), with its data under the project's data folder (.data/ha):
#   PostgreSQL: three nodes under Patroni (etcd, three members, as its store), synchronous
#     replication in strict mode (an acknowledged commit is on two nodes), HAProxy on
#     127.0.0.1:25430 sending connections to whichever node Patroni's REST API calls primary;
#   Redis: a master and a replica, and three Sentinels (service name `betledger`);
#   RabbitMQ: three nodes clustered (the partition queues are quorum queues on all three);
#   WAL archived by whichever node is primary into pgBackRest's repository (scripts/backup.sh
#     --target ha: backups and restores of this cluster).
# The failover itself is the engines' own: Patroni, Sentinel, RabbitMQ's Raft.
# The single-node scripts/services.sh stays the default for development and tests.
#
#   scripts/ha.sh up          install what is missing, start whatever is not running (idempotent;
#                             also brings a killed node back, as a replica where it was primary)
#   scripts/ha.sh down        stop everything (data kept)
#   scripts/ha.sh status      one line per node: up/down and its role
#   scripts/ha.sh env         the variables that point the binaries at the cluster
#   scripts/ha.sh kill NODE   SIGKILL a node: pg1..pg3, pg-primary (the node Patroni calls
#                             leader: its Patroni and its PostgreSQL both, as a machine dies),
#                             redis1, redis2, redis-master, rabbit1..rabbit3
#   scripts/ha.sh pause|resume redis-replica
#                             SIGSTOP / SIGCONT the Redis replica (a replica that falls behind)
#   scripts/ha.sh restart rabbit1..rabbit3
#                             stop a RabbitMQ node cleanly and start it again
#   scripts/ha.sh primary     print the current PostgreSQL leader and Redis master (JSON)
#   scripts/ha.sh cpu [S]     the CPU the topology's own processes use over S seconds
#                             (default 30), per part, in % of one core (JSON): its cost at rest
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=services.sh
source "$SCRIPTS/services.sh"   # its helpers: as_root, apt_install, choose_data_dir, ...
log() { printf '[ha] %s\n' "$*" >&2; }
die() { printf '[ha] error: %s\n' "$*" >&2; exit 1; }

NODES="1 2 3"
# Below Linux's ephemeral range (32768-60999): a port there may be some client
# connection's local port at the moment a server binds it (seen: etcd's peer port, taken
# while the test suite ran before).
ETCD_CLIENT=(0 23501 23511 23521)
ETCD_PEER=(0 23502 23512 23522)
PG_NODE_PORT=(0 25432 25433 25434)
PATRONI_PORT=(0 28441 28442 28443)
HAPROXY_PORT=25430
REDIS_NODE_PORT=(0 26380 26381)
SENTINEL_PORT=(0 26390 26391 26392)
AMQP_NODE_PORT=(0 25672 25682 25692)
REDIS_SERVICE=betledger
HA_DIR() { printf '%s/ha' "$DATA"; }

# --- Installing ------------------------------------------------------------------------------
install_ha() {
  install_missing
  local pkgs=()
  command -v patroni >/dev/null || pkgs+=(patroni python3-etcd python3-psycopg2)
  command -v etcd >/dev/null || pkgs+=(etcd-server)
  command -v haproxy >/dev/null || pkgs+=(haproxy)
  command -v redis-sentinel >/dev/null || pkgs+=(redis-sentinel)
  # pgrep finds a node's processes for kill and cpu; slim images lack it.
  command -v pgrep >/dev/null || pkgs+=(procps)
  command -v pgbackrest >/dev/null || pkgs+=(pgbackrest)
  apt_install "${pkgs[@]}"
}

# Starts a command detached from this shell (it outlives the script), from /, its output
# in $2 and its pid in $1. Every wrapper execs, so the pid is the server's own: a kill
# reaches the server, not a parent that would leave it running.
detach() {
  local pidfile="$1" out="$2"
  shift 2
  (cd / && exec setsid nohup "$@" >>"$out" 2>&1 </dev/null) &
  echo $! >"$pidfile"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A server of ours that is not running must find its port free: else another checkout's
# topology (or a leftover process) holds it, and starting would fail in a confusing way.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    die "127.0.0.1:$1 is taken, but not by this checkout's topology ($(HA_DIR)): stop the other one (its scripts/ha.sh down) or the process on that port"
  fi
}

# --- etcd: Patroni's store ------------------------------------------------------------------
etcd_cluster() {
  local i out=""
  for i in $NODES; do out+="${out:+,}e$i=http://127.0.0.1:${ETCD_PEER[$i]}"; done
  printf '%s' "$out"
}
etcd_hosts() {
  local i out=""
  for i in $NODES; do out+="${out:+,}127.0.0.1:${ETCD_CLIENT[$i]}"; done
  printf '%s' "$out"
}

start_etcd() {
  local i=$1 dir
  dir="$(HA_DIR)/etcd$i"
  pid_alive "$dir.pid" && return 0
  port_free "${ETCD_CLIENT[$i]}"
  mkdir -p "$dir"
  local state=new
  [ -d "$dir/member" ] && state=existing
  detach "$dir.pid" "$dir.log" etcd --name "e$i" --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-cluster "$(etcd_cluster)" --initial-cluster-state "$state" \
    --initial-cluster-token betledger-ha --heartbeat-interval 250 --election-timeout 2500
}

etcd_healthy() { curl -fsS "http://127.0.0.1:${ETCD_CLIENT[1]}/health" 2>/dev/null | grep -q '"health":"true"'; }

# --- PostgreSQL under Patroni ---------------------------------------------------------------
# Each node's own part of its Patroni configuration; the cluster's part is
# ops/patroni/cluster.yml, loaded first (Patroni merges a folder of files in name order).
patroni_node_config() {
  local i=$1 ha
  ha="$(HA_DIR)"
  cat <<EOF
# Written by scripts/ha.sh: node pg$i, on loopback.
name: pg$i
restapi:
  listen: 127.0.0.1:${PATRONI_PORT[$i]}
  connect_address: 127.0.0.1:${PATRONI_PORT[$i]}
etcd3:
  hosts: $(etcd_hosts)
bootstrap:
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${PG_NODE_PORT[$i]}
  connect_address: 127.0.0.1:${PG_NODE_PORT[$i]}
  data_dir: $ha/pg$i/data
  bin_dir: $(pg_bindir)
  pgpass: $ha/pg$i/pgpass
  parameters:
    unix_socket_directories: $ha/pg$i
    # WAL archiving with pgBackRest (scripts/backup.sh --target ha): on every node, so
    # whichever is primary archives, and a promoted replica goes on where the old primary
    # stopped (replicas do not archive with archive_mode on).
    archive_mode: "on"
    archive_command: $("$SCRIPTS/backup.sh" --target ha archive-command "$ha/pg$i/data")
    archive_timeout: ${BETLEDGER_ARCHIVE_TIMEOUT:-60s}
EOF
}

start_patroni() {
  local i=$1 dir
  dir="$(HA_DIR)/pg$i"
  pid_alive "$dir/patroni.pid" && return 0
  port_free "${PATRONI_PORT[$i]}"
  port_free "${PG_NODE_PORT[$i]}"
  mkdir -p "$dir/config"
  rm -f "$dir/patroni.yml"
  cp "$ROOT/ops/patroni/cluster.yml" "$dir/config/00-cluster.yml"
  patroni_node_config "$i" >"$dir/config/10-node.yml"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir" && chmod 700 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    # setpriv execs (runuser would fork and stay Patroni's parent).
    detach "$dir/patroni.pid" "$dir/patroni.log" \
      setpriv --reuid postgres --regid postgres --init-groups patroni "$dir/config"
  else
    detach "$dir/patroni.pid" "$dir/patroni.log" patroni "$dir/config"
  fi
}

patroni_role() { curl -fsS -m 2 "http://127.0.0.1:${PATRONI_PORT[$1]}/patroni" 2>/dev/null \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("role","?"), d.get("state","?"))' 2>/dev/null \
  || echo "down"; }

pg_leader() {
  local i
  for i in $NODES; do
    if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:${PATRONI_PORT[$i]}/primary" 2>/dev/null; then
      echo "$i"; return 0
    fi
  done
  return 1
}

# The database the engine uses, through HAProxy once a leader serves.
wait_pg_primary() {
  local bin
  bin="$(pg_bindir)"
  for _ in $(seq 1 120); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$HAPROXY_PORT" 2>/dev/null && \
      "$bin/psql" -h 127.0.0.1 -p "$HAPROXY_PORT" -U "$PG_USER" -d postgres -qtAc \
        "SELECT NOT pg_is_in_recovery()" 2>/dev/null | grep -q t && return 0
    sleep 0.5
  done
  die "no PostgreSQL primary behind HAProxy after 60 s; see $(HA_DIR)/pg*/patroni.log"
}

ensure_database() {
  local bin
  bin="$(pg_bindir)"
  "$bin/psql" -h 127.0.0.1 -p "$HAPROXY_PORT" -U "$PG_USER" -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1 \
    || "$bin/createdb" -h 127.0.0.1 -p "$HAPROXY_PORT" -U "$PG_USER" "$PG_DB"
}

# Both synchronous replication and the two replicas streaming: what the failover tests need
# before they kill anything.
wait_pg_replicas() {
  local bin
  bin="$(pg_bindir)"
  for _ in $(seq 1 120); do
    local n
    n=$("$bin/psql" -h 127.0.0.1 -p "$HAPROXY_PORT" -U "$PG_USER" -d postgres -qtAc \
      "SELECT count(*) FILTER (WHERE state = 'streaming') || ' ' || count(*) FILTER (WHERE sync_state = 'sync') FROM pg_stat_replication" 2>/dev/null || echo "0 0")
    [ "$n" = "2 1" ] && return 0
    sleep 0.5
  done
  die "the PostgreSQL replicas are not streaming (want 2 streaming, 1 sync); see $(HA_DIR)/pg*/patroni.log"
}

# --- HAProxy ---------------------------------------------------------------------------------
start_haproxy() {
  local ha
  ha="$(HA_DIR)"
  pid_alive "$ha/haproxy.pid" && return 0
  port_free "$HAPROXY_PORT"
  {
    cat <<EOF
# Written by scripts/ha.sh, loaded after ops/haproxy/postgres.cfg (the check and its
# timings): the engine's one PostgreSQL address.
global
  maxconn 4000
  pidfile $ha/haproxy.pid
  daemon
listen postgres_primary
  bind 127.0.0.1:$HAPROXY_PORT
EOF
    for i in $NODES; do
      echo "  server pg$i 127.0.0.1:${PG_NODE_PORT[$i]} check port ${PATRONI_PORT[$i]}"
    done
  } >"$ha/haproxy.cfg"
  haproxy -f "$ROOT/ops/haproxy/postgres.cfg" -f "$ha/haproxy.cfg" \
    || die "HAProxy did not start ($ha/haproxy.cfg)"
}

# --- Redis and Sentinel ---------------------------------------------------------------------
redis_ping() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }

# Whether the Redis server (or Sentinel) of this checkout with pid file $2 answers on $1.
redis_ours_up() { redis_ping "$1" && pid_alive "$2"; }

# Starts `redis-server` or `redis-sentinel` ($1) with file $2, then waits for port $3.
start_redis_like() {
  "$1" "$2" >/dev/null
  for _ in $(seq 1 50); do redis_ping "$3" && return 0; sleep 0.1; done
  die "$1 on port $3 did not start; see the log beside $2"
}

sentinel_master_port() {
  local i
  for i in $NODES; do
    local addr
    addr=$(redis-cli -h 127.0.0.1 -p "${SENTINEL_PORT[$i]}" sentinel get-master-addr-by-name "$REDIS_SERVICE" 2>/dev/null | sed -n 2p)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
  done
  return 1
}

start_redis_node() {
  local i=$1 dir port
  dir="$(HA_DIR)/redis$i"
  port=${REDIS_NODE_PORT[$i]}
  redis_ours_up "$port" "$dir/redis.pid" && return 0
  port_free "$port"
  mkdir -p "$dir"
  # Node 1 starts as master; a node that starts while the Sentinels know another master
  # (a killed master coming back) starts as that master's replica.
  local master
  master=$(sentinel_master_port || true)
  [ -z "$master" ] && [ "$i" != 1 ] && master=${REDIS_NODE_PORT[1]}
  [ "$master" = "$port" ] && master=""
  cat >"$dir/redis.conf" <<EOF
# Written by scripts/ha.sh; Sentinel rewrites the replicaof line on failover.
bind 127.0.0.1
port $port
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
daemonize yes
appendonly yes
appendfsync everysec
save ""
EOF
  [ -n "$master" ] && echo "replicaof 127.0.0.1 $master" >>"$dir/redis.conf"
  start_redis_like redis-server "$dir/redis.conf" "$port"
}

start_sentinel() {
  local i=$1 dir port
  dir="$(HA_DIR)/sentinel$i"
  port=${SENTINEL_PORT[$i]}
  redis_ours_up "$port" "$dir/sentinel.pid" && return 0
  port_free "$port"
  mkdir -p "$dir"
  # Sentinel keeps what it learns (the current master, its peers) in its file: written once.
  if [ ! -f "$dir/sentinel.conf" ]; then
    cat >"$dir/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir
pidfile $dir/sentinel.pid
logfile $dir/sentinel.log
daemonize yes
EOF
    sed "s/@MASTER@/127.0.0.1 ${REDIS_NODE_PORT[1]}/" "$ROOT/ops/redis/sentinel.conf" >>"$dir/sentinel.conf"
  fi
  start_redis_like redis-sentinel "$dir/sentinel.conf" "$port"
}

redis_master_node() {
  local port i
  port=$(sentinel_master_port) || return 1
  for i in 1 2; do [ "${REDIS_NODE_PORT[$i]}" = "$port" ] && { echo "$i"; return 0; }; done
  return 1
}

wait_redis_replica() {
  for _ in $(seq 1 100); do
    local m
    m=$(redis_master_node || true)
    if [ -n "$m" ] && redis-cli -p "${REDIS_NODE_PORT[$m]}" info replication 2>/dev/null \
        | grep -q '^slave0:.*state=online'; then return 0; fi
    sleep 0.2
  done
  die "the Redis replica is not online; see $(HA_DIR)/redis*/redis.log"
}

# --- RabbitMQ cluster -----------------------------------------------------------------------
ha_rabbit_node() { printf 'betledger-ha%s@localhost' "$1"; }

ha_rabbit_env() { rabbit_env_for "$(ha_rabbit_node "$1")" "${AMQP_NODE_PORT[$1]}" "$(HA_DIR)/rabbit$1"; }

ha_rabbit_running() { ha_rabbit_env "$1"; rabbit_cmd rabbitmqctl -q -n "$(ha_rabbit_node "$1")" status >/dev/null 2>&1; }

start_rabbit_node() {
  local i=$1 dir
  dir="$(HA_DIR)/rabbit$i"
  ha_rabbit_running "$i" && return 0
  port_free "${AMQP_NODE_PORT[$i]}"
  ha_rabbit_env "$i"
  mkdir -p "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  printf '[].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  { printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "${AMQP_NODE_PORT[$i]}"
    cat "$ROOT/ops/rabbitmq/cluster.conf"; } >"$RABBITMQ_CONFIG_FILE.conf"
  [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1 && chown -R rabbitmq:rabbitmq "$dir"
  (cd / && rabbit_cmd rabbitmq-server -detached >/dev/null 2>&1) || true
}

wait_rabbit_node() {
  local i=$1
  ha_rabbit_env "$i"
  rabbit_cmd rabbitmqctl -q -n "$(ha_rabbit_node "$i")" wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 \
    || die "RabbitMQ node $i did not start; see $RABBITMQ_LOG_BASE"
}

join_rabbit_node() {
  local i=$1 node seed
  node="$(ha_rabbit_node "$i")"
  seed="$(ha_rabbit_node 1)"
  ha_rabbit_env "$i"
  if rabbit_cmd rabbitmqctl -q -n "$node" cluster_status --formatter json 2>/dev/null | grep -q "\"$seed\""; then
    return 0
  fi
  log "joining $node to the RabbitMQ cluster"
  rabbit_cmd rabbitmqctl -q -n "$node" stop_app >/dev/null
  rabbit_cmd rabbitmqctl -q -n "$node" join_cluster "$seed" >/dev/null
  rabbit_cmd rabbitmqctl -q -n "$node" start_app >/dev/null
}

rabbit_pid() { ha_rabbit_env "$1"; [ -r "$RABBITMQ_PID_FILE" ] && printf "%s\n" "$(cat "$RABBITMQ_PID_FILE")"; }

# --- Commands ----------------------------------------------------------------------------------
up() {
  install_ha
  choose_data_dir
  mkdir -p "$(HA_DIR)"
  chmod 755 "$(HA_DIR)"
  local i
  for i in $NODES; do start_etcd "$i"; done
  for _ in $(seq 1 60); do etcd_healthy && break; sleep 0.5; done
  etcd_healthy || die "etcd is not healthy; see $(HA_DIR)/etcd*.log"
  # The backup repository's configuration first: the nodes archive into it from their start.
  "$SCRIPTS/backup.sh" --target ha configure
  for i in $NODES; do start_patroni "$i"; done
  start_haproxy
  # The Sentinels first: a Redis node that starts asks them which node is master now.
  for i in $NODES; do start_sentinel "$i"; done
  for i in 1 2; do start_redis_node "$i"; done
  for i in $NODES; do start_rabbit_node "$i"; done
  for i in $NODES; do wait_rabbit_node "$i"; done
  for i in 2 3; do join_rabbit_node "$i"; done
  wait_pg_primary
  ensure_database
  wait_pg_replicas
  # The stanza once (its check switches and archives a WAL segment: seconds, on every `up`).
  [ -f "$(HA_DIR)/backup/stanza-created" ] || "$SCRIPTS/backup.sh" --target ha stanza
  wait_redis_replica
  log "up: PostgreSQL leader pg$(pg_leader) behind 127.0.0.1:$HAPROXY_PORT, Redis master redis$(redis_master_node), RabbitMQ $(ha_rabbit_node 1) + 2"
}

down() {
  local ha i
  ha="$(HA_DIR)"
  for i in $NODES; do
    ha_rabbit_env "$i"; rabbit_cmd rabbitmqctl -q -n "$(ha_rabbit_node "$i")" stop >/dev/null 2>&1 || true
  done
  for i in $NODES; do redis-cli -p "${SENTINEL_PORT[$i]}" shutdown >/dev/null 2>&1 || true; done
  for i in 1 2; do redis-cli -p "${REDIS_NODE_PORT[$i]}" shutdown >/dev/null 2>&1 || true; done
  pid_alive "$ha/haproxy.pid" && kill "$(cat "$ha/haproxy.pid")"
  # Patroni stops its PostgreSQL on SIGTERM.
  for i in $NODES; do pid_alive "$ha/pg$i/patroni.pid" && kill "$(cat "$ha/pg$i/patroni.pid")"; done
  for _ in $(seq 1 60); do
    local alive=0
    for i in $NODES; do pid_alive "$ha/pg$i/patroni.pid" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  for i in $NODES; do pid_alive "$ha/etcd$i.pid" && kill "$(cat "$ha/etcd$i.pid")"; done
  # Gone before this returns, so an `up` right after starts them afresh.
  for _ in $(seq 1 60); do
    local alive=0
    for i in $NODES; do pid_alive "$ha/etcd$i.pid" && alive=1; done
    pid_alive "$ha/haproxy.pid" && alive=1
    [ $alive = 0 ] && break
    sleep 0.5
  done
  log "stopped (data kept in $ha)"
}

status() {
  local i
  for i in $NODES; do
    pid_alive "$(HA_DIR)/etcd$i.pid" && log "etcd e$i: up" || log "etcd e$i: down"
  done
  for i in $NODES; do log "PostgreSQL pg$i: $(patroni_role "$i")"; done
  pid_alive "$(HA_DIR)/haproxy.pid" && log "HAProxy :$HAPROXY_PORT: up" || log "HAProxy: down"
  local master
  master=$(redis_master_node || true)
  for i in 1 2; do
    local role=down
    redis_ping "${REDIS_NODE_PORT[$i]}" && role=$([ "$master" = "$i" ] && echo master || echo replica)
    log "Redis redis$i: $role"
  done
  for i in $NODES; do redis_ping "${SENTINEL_PORT[$i]}" && log "Sentinel $i: up" || log "Sentinel $i: down"; done
  for i in $NODES; do ha_rabbit_running "$i" && log "RabbitMQ rabbit$i: up" || log "RabbitMQ rabbit$i: down"; done
}

print_env() {
  local amqp="" i
  for i in $NODES; do amqp+="${amqp:+,}amqp://guest:guest@127.0.0.1:${AMQP_NODE_PORT[$i]}/%2f"; done
  cat <<EOF
export BETLEDGER_DATABASE_URL=postgres://$PG_USER@127.0.0.1:$HAPROXY_PORT/$PG_DB
export DATABASE_URL=postgres://$PG_USER@127.0.0.1:$HAPROXY_PORT/$PG_DB
export BETLEDGER_REDIS_URL='redis-sentinel://127.0.0.1:${SENTINEL_PORT[1]}/0?sentinelServiceName=$REDIS_SERVICE&node=127.0.0.1:${SENTINEL_PORT[2]}&node=127.0.0.1:${SENTINEL_PORT[3]}'
export BETLEDGER_AMQP_URL=$amqp
EOF
}

kill_node() {
  local node="${1:-}" ha
  ha="$(HA_DIR)"
  case "$node" in
    pg-primary)
      local leader
      leader=$(pg_leader) || die "no PostgreSQL leader to kill"
      kill_node "pg$leader"; return ;;
    redis-master)
      local master
      master=$(redis_master_node) || die "no Redis master to kill"
      kill_node "redis$master"; return ;;
    pg[123])
      local i=${node#pg} pm
      pm=$(head -n 1 "$ha/pg$i/data/postmaster.pid" 2>/dev/null || true)
      # The node dies as a machine would: Patroni and PostgreSQL (all its processes) at once.
      # One kill for all of them: children found after their postmaster died would have
      # been orphaned first, and a backend left alive could still commit. The postmaster
      # is stopped first, so it forks no backend between the listing and the kill.
      [ -n "$pm" ] && { kill -STOP "$pm" 2>/dev/null || true; }
      local pids=()
      pid_alive "$ha/pg$i/patroni.pid" && pids+=("$(cat "$ha/pg$i/patroni.pid")")
      mapfile -t -O "${#pids[@]}" pids < <(pgrep -f "patroni $ha/pg$i/config" || true)
      if [ -n "$pm" ]; then
        pids+=("$pm")
        mapfile -t -O "${#pids[@]}" pids < <(pgrep -P "$pm" || true)
      fi
      [ ${#pids[@]} -gt 0 ] || die "pg$i is not running"
      kill -KILL "${pids[@]}" 2>/dev/null || true
      ;;
    redis[12])
      local i=${node#redis}
      kill -KILL "$(cat "$ha/redis$i/redis.pid")" 2>/dev/null || die "redis$i is not running"
      ;;
    rabbit[123])
      local i=${node#rabbit} pid
      pid=$(rabbit_pid "$i") || die "rabbit$i has no pid file"
      kill -KILL "$pid" 2>/dev/null || die "rabbit$i is not running"
      ;;
    *) die "kill what? pg1..pg3, pg-primary, redis1, redis2, redis-master, rabbit1..rabbit3" ;;
  esac
  log "killed $node (SIGKILL)"
}

redis_replica_node() {
  local m
  m=$(redis_master_node) || return 1
  [ "$m" = 1 ] && echo 2 || echo 1
}

signal_redis_replica() {
  local i
  i=$(redis_replica_node) || die "no Redis master known to the Sentinels"
  kill "-$1" "$(cat "$(HA_DIR)/redis$i/redis.pid")"
  log "sent SIG$1 to redis$i (the replica)"
}

restart_rabbit() {
  local i=${1#rabbit}
  case "$1" in rabbit[123]) ;; *) die "restart what? rabbit1..rabbit3" ;; esac
  ha_rabbit_env "$i"
  # With the pid file, stop returns once the node's process has exited.
  rabbit_cmd rabbitmqctl -q -n "$(ha_rabbit_node "$i")" stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || true
  start_rabbit_node "$i"
  wait_rabbit_node "$i"
  log "restarted $1"
}

primary() {
  local m
  m=$(redis_master_node || echo 0)
  printf '{"postgres_leader":"pg%s","redis_master":"redis%s","redis_master_port":%s}\n' \
    "$(pg_leader || echo none)" "$m" "${REDIS_NODE_PORT[$m]}"
}

# The pids of each part of the topology, from their pid files and process titles.
part_pids() {
  local ha
  ha="$(HA_DIR)"
  case "$1" in
    etcd) pgrep -f "etcd --name e[123] --data-dir $ha/" || true ;;
    patroni) pgrep -f "patroni $ha/pg[123]/" || true ;;
    postgres) for i in $NODES; do
        local pm
        pm=$(head -n 1 "$ha/pg$i/data/postmaster.pid" 2>/dev/null) || continue
        echo "$pm"; pgrep -P "$pm" || true
      done ;;
    haproxy) cat "$ha/haproxy.pid" 2>/dev/null ;;
    redis) for i in 1 2; do cat "$ha/redis$i/redis.pid" 2>/dev/null; done
      for i in $NODES; do cat "$ha/sentinel$i/sentinel.pid" 2>/dev/null; done ;;
    rabbitmq) for i in $NODES; do rabbit_pid "$i"; done ;;
  esac
}

ticks_of() {
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat")))
  done
  echo "$total"
}

cpu() {
  local seconds=${1:-30} part hz out=""
  hz=$(getconf CLK_TCK)
  declare -A before pids
  for part in etcd patroni postgres haproxy redis rabbitmq; do
    pids[$part]="$(part_pids "$part" | tr '\n' ' ' || true)"
    # shellcheck disable=SC2086
    before[$part]=$(ticks_of ${pids[$part]})
  done
  log "measuring the topology's CPU for ${seconds} s"
  sleep "$seconds"
  for part in etcd patroni postgres haproxy redis rabbitmq; do
    # shellcheck disable=SC2086
    local after
    after=$(ticks_of ${pids[$part]})
    out+="${out:+, }\"$part\": $(python3 -c "print(round(100.0 * ($after - ${before[$part]}) / $hz / $seconds, 2))")"
  done
  printf '{"seconds": %s, "cpu_pct_of_one_core": {%s}}\n' "$seconds" "$out"
}

# Sourced (by scripts/pipeline-bench.sh) for its helpers only: nothing below runs.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case "${1:-up}" in
  up) up ;;
  cpu) cpu "${2:-30}" ;;
  down) down ;;
  status) status ;;
  env) print_env ;;
  kill) kill_node "${2:-}" ;;
  pause|resume)
    [ "${2:-}" = redis-replica ] || die "$1 what? redis-replica"
    signal_redis_replica "$([ "$1" = pause ] && echo STOP || echo CONT)" ;;
  restart) restart_rabbit "${2:-}" ;;
  primary) primary ;;
  *) die "usage: $0 up|down|status|env|kill NODE|pause|resume redis-replica|restart NODE|primary|cpu [S]" ;;
esac
