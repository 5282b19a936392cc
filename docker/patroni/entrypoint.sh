#!/bin/sh
# Names the node after NODE_NAME (its compose service name, which the others reach it by),
# and gives pgBackRest its passphrase (the backup_cipher_pass secret); then the image's
# generic entrypoint reads the passwords from the PATRONI_*_FILE secrets (compose sets
# them) and runs Patroni.
set -eu
: "${NODE_NAME:?NODE_NAME must name this node (its service name)}"
export PATRONI_NAME="$NODE_NAME"
export PATRONI_RESTAPI_CONNECT_ADDRESS="$NODE_NAME:8008"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$NODE_NAME:5432"
# pgBackRest's repository passphrase, where every pgbackrest run finds it (archive-push
# from PostgreSQL, and backups run with `docker compose exec`).
if [ -r /run/secrets/backup_cipher_pass ]; then
  (umask 077 && printf '[global]\nrepo1-cipher-pass=%s\n' "$(cat /run/secrets/backup_cipher_pass)" \
    >/etc/pgbackrest/conf.d/cipher.conf)
fi
exec /usr/local/bin/entrypoint.sh "$@"
