#!/usr/bin/env bash
# Backups and point-in-time recovery of BetLedger's event log with pgBackRest (Debian's
# package): continuous WAL archiving from the primary, full, differential and incremental
# backups into an encrypted repository on disk, and restores to a time or an LSN.
# The log is the one thing to back up: Redis and RabbitMQ are rebuilt from it after a restore
# (docs/operate/backup.md says how, and what a restore means for commands acknowledged after
# its target).
#
#   scripts/backup.sh [--target T] stanza       configure archiving (restarts PostgreSQL once
#                                               if archive_mode was off), create the stanza,
#                                               check that a WAL segment reaches the repository
#   scripts/backup.sh [--target T] full|diff|incr
#                                               take a backup (online); records it in the
#                                               `backups` table for the metrics and alerts
#   scripts/backup.sh [--target T] info [--json]
#                                               the repository's backups and WAL range
#   scripts/backup.sh [--target T] check        archiving works: a WAL switch reaches the
#                                               repository (pgbackrest check)
#   scripts/backup.sh [--target T] restore (--to TIME | --to-lsn LSN | --latest)
#                      [--into DIR] [--port P] | [--replace]
#                                               restore into a data folder of its own (a new
#                                               one under the data folder's restore/, or DIR,
#                                               which must be empty) and start it on port P
#                                               (default 55452) with archiving off, to look
#                                               at; or, with --replace, into the cluster's own
#                                               folder (the old one moved aside, never
#                                               deleted) and start it as the cluster
#                                               (single-node and drill targets)
#   scripts/backup.sh [--target T] discard DIR|--all
#                                               stop a restored copy (or all) and delete it
#   scripts/backup.sh [--target T] archiving off
#                                               turn archiving off (a restart): to measure
#                                               its cost, or for a cluster no longer backed
#                                               up; `archiving on` is `stanza`
#   scripts/backup.sh drill                     the restore drill (cargo test --test backup):
#                                               load, backup, more load, mark T, more load,
#                                               the database destroyed, restored to T, and
#                                               every acknowledged answer checked
#   scripts/backup.sh --target drill fresh|destroy|stop
#                                               the drill's cluster: a new one (the old one
#                                               and its repository deleted), the disaster
#                                               (killed, folder deleted), stopped
#
# Targets (--target or BETLEDGER_BACKUP_TARGET):
#   single  the PostgreSQL of scripts/services.sh (127.0.0.1:55432), stanza `betledger`,
#           repository under the data folder's backup/ (default)
#   ha      the Patroni cluster of scripts/ha.sh (archiving is on from `ha.sh up`: each node's
#           archive_command pushes while it is primary), stanza `betledger-ha`, repository
#           under .data/ha/backup/
#   drill   a cluster of its own for the drill and the benchmarks (127.0.0.1:55442), stanza
#           `betledger-drill`, everything under the data folder's drill/
# BETLEDGER_BACKUP_REPO puts the repository elsewhere than beside its configuration: a
# repository on the database's own disk survives a bad write, not the disk's loss.
# The repository's passphrase is made once, beside its configuration (cipher-pass): without
# it the repository cannot be read. Keep a copy away from this machine.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ha.sh
source "$SCRIPTS/ha.sh"   # its helpers and ports (and services.sh's: as_pg, pg_bindir, ...)
log() { printf '[backup] %s\n' "$*" >&2; }
die() { printf '[backup] error: %s\n' "$*" >&2; exit 1; }

TARGET="${BETLEDGER_BACKUP_TARGET:-single}"
DRILL_PG_PORT="${BETLEDGER_DRILL_PG_PORT:-55442}"
RESTORE_PORT_DEFAULT=55452
# How long a commit may wait in an unfinished WAL segment before the segment is switched and
# archived: the most a lost disk can take with it (the RPO without replication).
ARCHIVE_TIMEOUT="${BETLEDGER_ARCHIVE_TIMEOUT:-60s}"

# --- Where each target's cluster and repository are ---------------------------------------
# Sets STANZA, CONF_DIR, CONF, and for single/drill: PGDIR, PGPORT_T.
settle_target() {
  local data="$DATA"   # services.sh's: the project's .data, or where `up` moved it
  case "$TARGET" in
    single) STANZA=betledger; CONF_DIR="$data/backup"; PGDIR="$data/postgres"; PGPORT_T=$PG_PORT ;;
    drill) STANZA=betledger-drill; CONF_DIR="$data/drill/backup"; PGDIR="$data/drill/postgres"
      PGPORT_T=$DRILL_PG_PORT ;;
    ha) STANZA=betledger-ha; CONF_DIR="$data/ha/backup"; PGDIR=""; PGPORT_T=$HAPROXY_PORT ;;
    *) die "unknown target '$TARGET': single, ha or drill" ;;
  esac
  CONF="$CONF_DIR/pgbackrest.conf"
  # The repository: beside the configuration unless BETLEDGER_BACKUP_REPO puts it on
  # another disk (a mount, a network share): one on the database's own disk is lost with it.
  REPO="${BETLEDGER_BACKUP_REPO:-$CONF_DIR/repo}"
}

# pgBackRest runs as the data folder's owner (postgres when we are root).
brest() { as_pg pgbackrest --config="$CONF" --stanza="$STANZA" "$@"; }

psql_t() {
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$PGPORT_T" -U "$PG_USER" -d "${2:-$PG_DB}" -v ON_ERROR_STOP=1 -qtAc "$1"
}

# The command PostgreSQL archives each WAL segment with. HA nodes pass their own data folder
# (the repository's configuration lists all three; %p is relative to the node's own).
archive_command() {
  local pgpath="${1:-}"
  printf 'pgbackrest --config="%s" --stanza=%s%s archive-push %%p' "$CONF" "$STANZA" \
    "${pgpath:+ --pg1-path=\"$pgpath\"}"
}

# Writes the repository's configuration (idempotent; the passphrase is made once).
configure() {
  mkdir -p "$REPO" "$CONF_DIR/log" "$CONF_DIR/lock"
  if [ ! -s "$CONF_DIR/cipher-pass" ]; then
    # Never a new passphrase for a repository that holds something: it could not be read.
    local known=""
    [ -f "$CONF" ] && known=$(sed -n 's/^repo1-cipher-pass=//p' "$CONF")
    if [ -n "$known" ]; then
      (umask 077; printf '%s' "$known" >"$CONF_DIR/cipher-pass")
      log "put back $CONF_DIR/cipher-pass from $CONF"
    elif [ -n "$(ls -A "$REPO" 2>/dev/null)" ]; then
      die "$CONF_DIR/cipher-pass is missing and $REPO holds backups: put back the passphrase they were encrypted with (your copy of it); a new one cannot read them"
    else
      (umask 077; head -c 48 /dev/urandom | base64 -w0 >"$CONF_DIR/cipher-pass")
      log "made the repository's passphrase: $CONF_DIR/cipher-pass (keep a copy away from this machine)"
    fi
  fi
  local pgs=""
  case "$TARGET" in
    ha)
      local i
      for i in $NODES; do
        pgs+="pg$i-path=$(HA_DIR)/pg$i/data
pg$i-port=${PG_NODE_PORT[$i]}
pg$i-socket-path=$(HA_DIR)/pg$i
pg$i-user=$PG_USER
"
      done ;;
    *) pgs="pg1-path=$PGDIR
pg1-port=$PGPORT_T
pg1-socket-path=$PGDIR
pg1-user=$PG_USER
" ;;
  esac
  local tmp="$CONF.tmp"
  cat >"$tmp" <<EOF
# Written by scripts/backup.sh (target $TARGET): rewritten by each of its commands.
[global]
repo1-path=$REPO
# Two full backups kept, with the differentials and the WAL they need.
repo1-retention-full=2
repo1-retention-diff=6
# The repository is encrypted; the passphrase is in $CONF_DIR/cipher-pass.
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(cat "$CONF_DIR/cipher-pass")
# An object store instead of this folder is configuration only (untested here):
# repo1-type=s3
# repo1-s3-bucket=betledger-backups
# repo1-s3-endpoint=s3.eu-west-1.amazonaws.com
# repo1-s3-region=eu-west-1
# repo1-s3-key=...            (or repo1-s3-key-type=auto on an instance with a role)
# repo1-s3-key-secret=...
# repo1-path=/betledger
# archive-async=y             (with spool-path: pushes to a remote store in the background)
# zstd: a fraction of gzip's CPU for about its size (docs/operate/backup.md).
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-path=$CONF_DIR/log
lock-path=$CONF_DIR/lock
log-level-console=warn
log-level-file=info

[global:archive-push]
# WAL is pushed while the engine writes: zstd's cheapest level, half the CPU of level 3 for
# about the same size on WAL (docs/performance.md, "Backups and restores").
compress-level=1

[$STANZA]
$pgs
EOF
  mv "$tmp" "$CONF"
  chmod 640 "$CONF"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$CONF_DIR" "$REPO" && chmod 750 "$CONF_DIR" "$REPO"
  fi
  return 0
}

# --- The drill's cluster --------------------------------------------------------------------
# The functions of services.sh, pointed at the drill's folder and port.
drill_env() { DATA="$(dirname "$PGDIR")"; PG_PORT=$DRILL_PG_PORT; }

start_target_pg() {
  case "$TARGET" in
    single) start_postgres ;;
    drill) (drill_env; start_postgres) ;;
    ha) die "the HA cluster is started by scripts/ha.sh up" ;;
  esac
}

# Restarts the target's server (archive_mode takes effect only at a start).
restart_target_pg() {
  as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR" -m fast -w -t 120 restart -l "$PGDIR/server.log" >/dev/null \
    || die "PostgreSQL did not restart; see $PGDIR/server.log"
}

# Stops the server of data folder $2 (default the target's) and waits until its postmaster
# has exited, not only until its pid file is gone.
stop_target_pg() {
  local mode="${1:-fast}" dir="${2:-$PGDIR}" pid
  [ -f "$dir/postmaster.pid" ] || return 0
  pid=$(head -n 1 "$dir/postmaster.pid")
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir" -m "$mode" -w stop >/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "the PostgreSQL of $dir (pid $pid) did not stop"
}

# --- Commands ----------------------------------------------------------------------------------
cmd_stanza() {
  command -v pgbackrest >/dev/null || apt_install pgbackrest
  configure
  if [ "$TARGET" != ha ]; then
    start_target_pg
    local serving
    serving=$(psql_t "SHOW data_directory")
    [ "$serving" -ef "$PGDIR" ] || die "127.0.0.1:$PGPORT_T is served from $serving, not $PGDIR: another cluster holds the port (stop it, or set its port)"
    local was
    was=$(psql_t "SHOW archive_mode")
    psql_t "ALTER SYSTEM SET archive_mode = 'on'" >/dev/null
    psql_t "ALTER SYSTEM SET archive_command = '$(archive_command)'" >/dev/null
    psql_t "ALTER SYSTEM SET archive_timeout = '$ARCHIVE_TIMEOUT'" >/dev/null
    if [ "$was" != on ]; then
      log "archive_mode was $was: restarting PostgreSQL on :$PGPORT_T once to turn it on"
      restart_target_pg
    else
      psql_t "SELECT pg_reload_conf()" >/dev/null
    fi
  fi
  brest stanza-create >/dev/null || die "stanza-create failed; see $CONF_DIR/log"
  cmd_check
  touch "$CONF_DIR/stanza-created"
  log "stanza $STANZA ready: archiving to $REPO (archive_timeout $ARCHIVE_TIMEOUT)"
}

cmd_check() {
  brest check || die "pgbackrest check failed: archiving does not reach the repository (docs/runbook.md#betledgerwalarchivefailing)"
}

# The newest backup of the repository as one JSON object, and its record in the `backups`
# table (migration 0014) for the watcher's metrics (ops/pgbackrest/record-backup.sql); a
# database without the table (the engine migrates it on start) is left alone.
record_backup() {
  local info has_table
  info=$(brest info --output=json)
  has_table=$(psql_t "SELECT count(*) FROM pg_tables WHERE tablename = 'backups'")
  [ "$has_table" = 1 ] || log "the database has no backups table yet (the engine migrates it on start): not recorded"
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$PGPORT_T" -U "$PG_USER" -d "$PG_DB" -v ON_ERROR_STOP=1 -qtA \
    -v info="$info" -v record="$has_table" -f "$ROOT/ops/pgbackrest/record-backup.sql"
}

cmd_backup() {
  local kind=$1 started last
  configure
  started=$(date +%s.%N)
  log "taking a $kind backup of stanza $STANZA"
  brest backup --type="$kind" || die "the $kind backup failed; see $CONF_DIR/log"
  last=$(record_backup)
  printf '{"stanza": "%s", "seconds": %s, "backup": %s}\n' "$STANZA" \
    "$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')" "${last:-null}"
}

cmd_info() {
  configure
  if [ "${1:-}" = --json ]; then brest info --output=json; else brest info; fi
}

# Stops with message $3 after a failed restore into $1; with --replace, the partial restore
# is moved away and the cluster's own folder ($2) can be put back as it was.
restore_failed() {
  local dir=$1 aside=$2 message=$3
  if [ -n "$aside" ]; then
    stop_target_pg immediate "$dir" || true
    local failed
    failed="$dir.failed-restore-$(date -u +%Y%m%dT%H%M%SZ)"
    mv "$dir" "$failed"
    die "$message. The partial restore is in $failed; the cluster's folder is intact: mv '$aside' '$dir' && scripts/services.sh up puts it back as it was"
  fi
  rmdir "$dir" 2>/dev/null || true
  die "$message"
}

# Waits until the server on $1 (data folder $2) has left recovery: a restore to a target
# accepts read-only connections before it reaches it.
# $3: the folder moved aside (--replace); $4: the server log's lines before this start.
wait_promoted() {
  local port=$1 dir=$2 aside=${3:-} since=${4:-0} seen=0
  for i in $(seq 1 1200); do
    [ "$("$(pg_bindir)/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres -qtAc \
      "SELECT pg_is_in_recovery()" 2>/dev/null || true)" = f ] && return 0
    [ -f "$dir/postmaster.pid" ] && seen=1
    if [ ! -f "$dir/postmaster.pid" ] && { [ "$seen" = 1 ] || [ "$i" -gt 20 ]; }; then
      tail -n "+$((since + 1))" "$dir/server.log" 2>/dev/null \
        | grep -q "recovery ended before configured recovery target was reached" \
        && restore_failed "$dir" "$aside" "no transaction committed after the target in the archive: nothing to stop at. Restore with --latest (everything archived), or an earlier --to"
      restore_failed "$dir" "$aside" "the restored server stopped; see $dir/server.log"
    fi
    sleep 0.5
  done
  die "the restored server on :$port is still replaying WAL after 10 minutes (it goes on: watch $dir/server.log, and psql -p $port -c 'SELECT pg_is_in_recovery()' for f), then carry on with the steps of docs/operate/backup.md"
}

cmd_restore() {
  local to="" lsn="" latest=0 into="" port=$RESTORE_PORT_DEFAULT replace=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --to) to="${2:?--to needs a time, e.g. '2026-12-08 10:15:00+00'}"; shift 2 ;;
      --to-lsn) lsn="${2:?--to-lsn needs an LSN, e.g. 0/3000060}"; shift 2 ;;
      --latest) latest=1; shift ;;
      --into) into="${2:?--into needs a folder}"; shift 2 ;;
      --port) port="${2:?--port needs a port}"; shift 2 ;;
      --replace) replace=1; shift ;;
      *) die "restore: unknown option $1 (--to TIME | --to-lsn LSN | --latest, --into DIR, --port P, --replace)" ;;
    esac
  done
  local given=0 before="" aside="" undone=""
  [ -n "$to" ] && given=$((given + 1)); [ -n "$lsn" ] && given=$((given + 1)); given=$((given + latest))
  [ "$given" = 1 ] || die "restore: say where to stop with one of --to TIME, --to-lsn LSN, --latest"
  if [ -n "$to" ] && ! printf '%s' "$to" | grep -Eq '([+-][0-9]{2}(:?[0-9]{2})?|Z|UTC)$'; then
    die "restore: --to '$to' has no time zone: add one (e.g. '$to+00'), as PostgreSQL and pgBackRest may read a bare time differently"
  fi
  configure
  local target=(--type=default)
  [ -n "$to" ] && target=(--type=time "--target=$to" --target-action=promote)
  [ -n "$lsn" ] && target=(--type=lsn "--target=$lsn" --target-action=promote)
  local started dir
  started=$(date +%s.%N)
  if [ "$replace" = 1 ]; then
    [ "$TARGET" = ha ] && die "restore --replace is not for the Patroni cluster: restore into a folder of its own and follow docs/operate/backup.md"
    [ -z "$into" ] || die "restore: --replace restores into the cluster's own folder; --into is for a folder of its own"
    dir="$PGDIR"
    if "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PGPORT_T" 2>/dev/null; then
      # Its last commits are in an unfinished WAL segment: switched and archived first, so
      # that the restore can reach them.
      psql_t "SELECT pg_switch_wal()" >/dev/null
      brest check >/dev/null 2>&1 || log "could not archive the last WAL segment (pgbackrest check): commits after the archived ones cannot be restored"
      # A cluster that still runs (a bad write, not a lost disk) holds the commands the
      # restore is about to undo: their events are exported first, to be listed after.
      if [ -n "$to" ]; then
        mkdir -p "$(dirname "$CONF_DIR")/restore"
        before="$(dirname "$CONF_DIR")/restore/events-before-restore-$(date -u +%Y%m%dT%H%M%SZ).csv"
        psql_t "COPY (SELECT recorded_at, aggregate_id, sequence, event_type,
                             metadata->>'transaction_id', payload
                        FROM events WHERE recorded_at >= timestamptz '$to' - interval '5 minutes'
                       ORDER BY tx_id, global_position) TO STDOUT WITH (FORMAT csv, HEADER)" >"$before" \
          || die "could not export the events after $to (is the engine's database $PG_DB there?)"
      fi
    fi
    stop_target_pg fast
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
      aside="$dir.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
      mv "$dir" "$aside"
      log "moved the cluster's folder aside to $aside (delete it once the restore is verified)"
    fi
    mkdir -p "$dir"
  else
    dir="${into:-$(dirname "$CONF_DIR")/restore/$STANZA-$(date -u +%Y%m%dT%H%M%SZ)}"
    [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && die "$dir is not empty: restore into an empty or new folder"
    mkdir -p "$dir"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is taken: give the restored server another with --port"
    fi
  fi
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
  log "restoring stanza $STANZA into $dir (${to:+to $to}${lsn:+to LSN $lsn}$([ $latest = 1 ] && echo 'to the end of the archive'))"
  if ! brest restore --pg1-path="$dir" "${target[@]}" >&2; then
    restore_failed "$dir" "$aside" "the restore failed; see above and $CONF_DIR/log"
  fi
  # The socket's lock file was copied with the folder while the server ran: stale here.
  rm -f "$dir"/.s.PGSQL.*.lock
  if [ "$replace" = 1 ]; then
    local pgport=$PGPORT_T
  else
    local pgport=$port
    # Beside the live cluster: its own port and socket, and no archiving into the stanza
    # the live cluster archives to.
    as_pg sh -c "cat >>'$dir/postgresql.auto.conf'" <<EOF
# scripts/backup.sh restore: a copy beside the cluster, to look at.
port = $port
unix_socket_directories = '$dir'
archive_mode = 'off'
synchronous_standby_names = ''
EOF
  fi
  # -W: a long WAL replay is waited for below, where "still replaying" can be told apart.
  local log_lines
  log_lines=$(wc -l <"$dir/server.log" 2>/dev/null || echo 0)
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir" -l "$dir/server.log" -W start >/dev/null \
    || restore_failed "$dir" "$aside" "the restored server did not start; see $dir/server.log"
  wait_promoted "$pgport" "$dir" "$aside" "$log_lines"
  if [ -n "$before" ]; then
    # The events exported before that the restored log does not hold: the commands the
    # restore undid (acknowledged after the target).
    undone="${before/events-before-restore/undone-by-restore}"
    "$(pg_bindir)/psql" -h 127.0.0.1 -p "$pgport" -U "$PG_USER" -d "$PG_DB" -v ON_ERROR_STOP=1 -qtA <<SQL >/dev/null \
      || die "could not compare $before with the restored log"
CREATE TEMP TABLE before_restore (recorded_at timestamptz, wallet_id text, sequence bigint,
                                  event_type text, transaction_id text, payload jsonb);
\\copy before_restore FROM '$before' WITH (FORMAT csv, HEADER)
\\copy (SELECT * FROM before_restore b WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_id = b.wallet_id AND e.sequence = b.sequence AND e.event_type = b.event_type AND e.payload = b.payload)) TO '$undone' WITH (FORMAT csv, HEADER)
SQL
    rm -f "$before"
    log "the restore undid $(($(wc -l <"$undone") - 1)) events recorded after $to: listed in $undone"
  fi
  local seconds
  seconds=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
  log "restored and promoted in ${seconds} s; next: verify, purge the queues, rebuild, reconcile (docs/operate/backup.md)"
  printf '{"stanza": "%s", "data_dir": "%s", "port": %s, "database_url": "postgres://%s@127.0.0.1:%s/%s", "seconds": %s, "replaced": %s, "moved_aside": %s, "undone_events": %s, "undone_file": %s}\n' \
    "$STANZA" "$dir" "$pgport" "$PG_USER" "$pgport" "$PG_DB" "$seconds" \
    "$([ $replace = 1 ] && echo true || echo false)" \
    "$([ -n "$aside" ] && printf '"%s"' "$aside" || echo null)" \
    "$([ -n "$undone" ] && echo $(($(wc -l <"$undone") - 1)) || echo null)" \
    "$([ -n "$undone" ] && printf '"%s"' "$undone" || echo null)"
}

# The drill's own cluster, afresh: whatever an earlier drill left (restored copies too) is
# stopped and deleted, then a new cluster starts with archiving into a new repository.
cmd_fresh() {
  [ "$TARGET" = drill ] || die "fresh is for the drill target only (it deletes the cluster)"
  local base
  base="$(dirname "$PGDIR")"
  stop_target_pg immediate
  local d
  for d in "$base"/restore/*/ "$PGDIR".before-restore-*/; do
    [ -d "$d" ] && stop_target_pg immediate "${d%/}"
  done
  rm -rf "$base"
  mkdir -p "$base"
  chmod 755 "$base"
  cmd_stanza
}

# Turns WAL archiving off (restarting PostgreSQL): for a measurement of what archiving
# costs, or a cluster that is no longer backed up. `stanza` turns it on again.
cmd_archiving_off() {
  [ "$TARGET" != ha ] || die "the HA nodes archive by their Patroni configuration (scripts/ha.sh)"
  psql_t "ALTER SYSTEM SET archive_mode = 'off'" >/dev/null
  restart_target_pg
  log "archiving is off on :$PGPORT_T (scripts/backup.sh stanza turns it on)"
}

# Stops a copy made by `restore` (without --replace) and deletes it.
cmd_discard() {
  local dir="${1:?discard needs the folder of a restored copy, or --all}" base
  base="$(dirname "$CONF_DIR")/restore"
  if [ "$dir" = --all ]; then
    local d
    for d in "$base"/*/; do [ -d "$d" ] && cmd_discard "${d%/}"; done
    return 0
  fi
  dir="$(cd "$dir" 2>/dev/null && pwd)" || die "no folder $1"
  case "$dir" in "$base"/*) ;; *) die "discard deletes only restored copies under $base" ;; esac
  stop_target_pg fast "$dir"
  rm -rf "$dir"
  log "discarded $dir"
}

# The drill's disaster: the server killed and its data folder deleted.
cmd_destroy() {
  [ "$TARGET" = drill ] || die "destroy is for the drill target only"
  stop_target_pg immediate
  rm -rf "$PGDIR"
  log "the drill's cluster is gone ($PGDIR deleted)"
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

if [ "${1:-}" = --target ]; then TARGET="${2:?--target needs single, ha or drill}"; shift 2; fi
settle_target
case "${1:-}" in
  stanza) cmd_stanza ;;
  full|diff|incr) cmd_backup "$1" ;;
  info) shift; cmd_info "$@" ;;
  check) configure; cmd_check ;;
  restore) shift; cmd_restore "$@" ;;
  fresh) cmd_fresh ;;
  destroy) cmd_destroy ;;
  discard) cmd_discard "${2:-}" ;;
  archiving)
    case "${2:-}" in
      on) cmd_stanza ;;
      off) cmd_archiving_off ;;
      *) die "archiving on|off" ;;
    esac ;;
  stop) [ "$TARGET" = drill ] || die "stop is for the drill target (the others are stopped by their own scripts)"
    stop_target_pg fast ;;
  archive-command) archive_command "${2:-}" ;;
  configure) configure ;;
  drill)
    cd "$ROOT"
    eval "$("$SCRIPTS/services.sh" env)"
    exec cargo test --locked -p betledger-tests --test backup -- --ignored --test-threads=1 --nocapture ;;
  *) die "usage: $0 [--target single|ha|drill] stanza|full|diff|incr|info [--json]|check|restore ...|drill" ;;
esac
