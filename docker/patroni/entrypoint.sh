#!/bin/sh
# Names the node after NODE_NAME (its compose service name, which the others reach it by)
# and reads the passwords from the secret files, as Patroni reads only variables.
set -eu
: "${NODE_NAME:?NODE_NAME must name this node (its service name)}"
read_secret() {
  [ -r "$1" ] || { echo "patroni-entrypoint: $1 is not readable" >&2; exit 1; }
  cat "$1"
}
export PATRONI_NAME="$NODE_NAME"
export PATRONI_RESTAPI_CONNECT_ADDRESS="$NODE_NAME:8008"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$NODE_NAME:5432"
PATRONI_SUPERUSER_PASSWORD="$(read_secret /run/secrets/postgres_password)"
PATRONI_REPLICATION_PASSWORD="$(read_secret /run/secrets/replication_password)"
export PATRONI_SUPERUSER_PASSWORD PATRONI_REPLICATION_PASSWORD
exec "$@"
