#!/bin/sh
# betledger-backup full|diff|incr: a backup of the cluster, run in the primary's container
# (docker compose -f docker/compose.yaml exec pg-N betledger-backup incr), recorded in the
# engine's `backups` table for the metrics and alerts (ops/pgbackrest/record-backup.sql,
# the same statement scripts/backup.sh runs). Prints the backup as JSON.
set -eu
kind="${1:?say full, diff or incr}"
pgbackrest --stanza=betledger backup --type="$kind"
db() { psql -h /var/run/postgresql -U betledger -d betledger -v ON_ERROR_STOP=1 -qtA "$@"; }
record=$(db -c "SELECT count(*) FROM pg_tables WHERE tablename = 'backups'")
db -v info="$(pgbackrest --stanza=betledger info --output=json)" -v record="$record" \
  -f /etc/pgbackrest/record-backup.sql
