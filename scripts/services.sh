#!/usr/bin/env bash
# Runs BetLedger's three services on loopback, with their data under the project's .data/:
#   PostgreSQL on 127.0.0.1:55432, Redis on 127.0.0.1:56379, RabbitMQ (AMQP) on 127.0.0.1:55672.
# Installs them from the distribution's packages (apt) when they are missing; no Docker.
# Ports sit away from the defaults so a system-wide server on the same machine is left alone.
#
#   scripts/services.sh up     install if needed, start whatever is not running (idempotent)
#   scripts/services.sh down   stop the three servers (data is kept)
#   scripts/services.sh env    print the environment variables that point the binaries at them
#   scripts/services.sh status say which are running
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT_DATA="${BETLEDGER_DATA_DIR:-$ROOT/.data}"
DATA="$PROJECT_DATA"   # `up` settles it in choose_data_dir; `where` remembers a move
[ -f "$PROJECT_DATA/where" ] && DATA="$(cat "$PROJECT_DATA/where")"
PG_PORT="${BETLEDGER_PG_PORT:-55432}"
REDIS_PORT="${BETLEDGER_REDIS_PORT:-56379}"
AMQP_PORT="${BETLEDGER_AMQP_PORT:-55672}"
RABBIT_NODE="betledger-${AMQP_PORT}@localhost"
PG_USER=betledger
PG_DB=betledger

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"; fi
}

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_missing() {
  local pkgs=()
  [ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/postgres" ] || pkgs+=(postgresql)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  command -v rabbitmq-server >/dev/null || pkgs+=(rabbitmq-server)
  # The README's try-it line and run.sh's readiness wait use curl; slim images lack it.
  command -v curl >/dev/null || pkgs+=(curl ca-certificates)
  apt_install "${pkgs[@]}"
}

# Installs the Debian packages named (none: nothing to do), without starting their servers.
apt_install() {
  [ $# -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing $* and no apt-get: install them by hand"
  log "installing $* with apt-get (once)"
  # No service manager runs here: tell the packages not to start their own servers.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    local remove_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >/dev/null
  [ "${remove_policy:-0}" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
  log "installed $*"
}

# --- Where the data lives -------------------------------------------------------------------
# PostgreSQL refuses to run as root, and Debian's RabbitMQ wrapper drops to its own user, so
# as root both run as the packages' users (`postgres`, `rabbitmq`), which must be able to
# reach the data folder. Where they cannot (a checkout under /root, say), all the data goes
# under /var/tmp instead, and we say so.
reachable_by() { id "$1" >/dev/null 2>&1 || return 0; (cd / && runuser -u "$1" -- test -x "$2") 2>/dev/null; }

choose_data_dir() {
  mkdir -p "$PROJECT_DATA"
  DATA="$PROJECT_DATA"
  rm -f "$PROJECT_DATA/where"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$PROJECT_DATA"
    if ! reachable_by postgres "$PROJECT_DATA" || ! reachable_by rabbitmq "$PROJECT_DATA"; then
      DATA="/var/tmp/betledger-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)"
      mkdir -p "$DATA" && chmod 755 "$DATA"
      printf '%s\n' "$DATA" >"$PROJECT_DATA/where"
      log "the service users cannot reach $PROJECT_DATA; data is in $DATA"
    fi
  fi
}

pg_data_dir() {
  local dir="$DATA/postgres"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
  printf '%s' "$dir"
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_running() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

start_postgres() {
  if pg_running; then log "PostgreSQL already up on 127.0.0.1:$PG_PORT"; return 0; fi
  local bin dir
  bin="$(pg_bindir)"
  dir="$(pg_data_dir)"
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $dir"
    as_pg "$bin/initdb" -D "$dir" -U "$PG_USER" --auth=trust --no-locale -E UTF8 >/dev/null
    cat >>"$dir/postgresql.conf" <<EOF
# BetLedger: loopback only, durable commits, room for parallel test databases.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 256MB
synchronous_commit = on
fsync = on
# Statement statistics, for scripts/pipeline-bench.sh's attribution of PostgreSQL's time.
shared_preload_libraries = 'pg_stat_statements'
EOF
  fi
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || die "PostgreSQL did not start; see $dir/server.log"
  as_pg "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1 \
    || as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
  log "PostgreSQL up on 127.0.0.1:$PG_PORT (data $dir)"
}

stop_postgres() {
  local dir="$DATA/postgres"
  [ -f "$dir/postmaster.pid" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$dir" -m fast stop >/dev/null || true
}

# --- Redis --------------------------------------------------------------------------------
redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  if redis_running; then log "Redis already up on 127.0.0.1:$REDIS_PORT"; return 0; fi
  mkdir -p "$DATA/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA/redis" \
    --pidfile "$DATA/redis/redis.pid" --logfile "$DATA/redis/redis.log" \
    --appendonly yes --appendfsync everysec --save "" >/dev/null
  for _ in $(seq 1 50); do redis_running && break; sleep 0.1; done
  redis_running || die "Redis did not start; see $DATA/redis/redis.log"
  log "Redis up on 127.0.0.1:$REDIS_PORT"
}

stop_redis() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }

# --- RabbitMQ -----------------------------------------------------------------------------
# The environment RabbitMQ's scripts read for node $1 on AMQP port $2 (distribution on
# the next port), its data, logs and files under $3, on loopback only. scripts/ha.sh uses
# it for each of its three nodes.
rabbit_env_for() {
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_NODENAME="$1"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$2"
  export RABBITMQ_DIST_PORT="$(($2 + 1))"
  export RABBITMQ_MNESIA_BASE="$3/mnesia"
  export RABBITMQ_LOG_BASE="$3/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$3/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$3/rabbitmq"
  export RABBITMQ_PID_FILE="$3/rabbitmq.pid"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbit_env() { rabbit_env_for "$RABBIT_NODE" "$AMQP_PORT" "$DATA/rabbitmq"; }

# Debian's wrappers (/usr/sbin/rabbitmq*) run only as root (they switch to the `rabbitmq`
# user) or as `rabbitmq`; anyone else calls the real scripts, which run as the caller.
rabbit_cmd() {
  if [ "$(id -u)" -eq 0 ] || [ ! -x "/usr/lib/rabbitmq/bin/$1" ]; then "$@"
  else local cmd="$1"; shift; "/usr/lib/rabbitmq/bin/$cmd" "$@"; fi
}

rabbit_running() { rabbit_env; rabbit_cmd rabbitmqctl -q -n "$RABBIT_NODE" status >/dev/null 2>&1; }

start_rabbitmq() {
  if rabbit_running; then log "RabbitMQ already up on 127.0.0.1:$AMQP_PORT"; return 0; fi
  rabbit_env
  mkdir -p "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  # No plugins: the relay partitions events by wallet itself (projections::amqp).
  printf '[].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$AMQP_PORT" \
    >"$RABBITMQ_CONFIG_FILE.conf"
  if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$DATA/rabbitmq"
  fi
  (cd / && rabbit_cmd rabbitmq-server -detached >/dev/null 2>&1) || true
  rabbit_cmd rabbitmqctl -q -n "$RABBIT_NODE" wait --timeout 60 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 \
    || die "RabbitMQ did not start; see $RABBITMQ_LOG_BASE"
  log "RabbitMQ up on 127.0.0.1:$AMQP_PORT (node $RABBIT_NODE)"
}

stop_rabbitmq() { rabbit_env; rabbit_cmd rabbitmqctl -q -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true; }

print_env() {
  cat <<EOF
export BETLEDGER_DATABASE_URL=postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB
export DATABASE_URL=postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB
export BETLEDGER_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export BETLEDGER_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
EOF
}

# Sourced (by scripts/ha.sh) for its helpers only: nothing below runs.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case "${1:-up}" in
  up)
    install_missing
    choose_data_dir
    start_postgres
    start_redis
    start_rabbitmq
    ;;
  down)
    stop_rabbitmq; stop_redis; stop_postgres; log "stopped" ;;
  env) print_env ;;
  restart-rabbitmq|restart-postgres)
    # For the service-restart tests: the whole server goes down and comes back.
    choose_data_dir
    if [ "$1" = restart-rabbitmq ]; then stop_rabbitmq; start_rabbitmq
    else stop_postgres; start_postgres; fi
    ;;
  status)
    pg_running && log "PostgreSQL: up" || log "PostgreSQL: down"
    redis_running && log "Redis: up" || log "Redis: down"
    rabbit_running && log "RabbitMQ: up" || log "RabbitMQ: down"
    ;;
  *) die "usage: $0 up|down|env|status|restart-rabbitmq|restart-postgres" ;;
esac
