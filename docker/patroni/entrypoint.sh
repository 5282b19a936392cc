#!/bin/sh
# Names the node after NODE_NAME (its compose service name, which the others reach it by),
# then the image's generic entrypoint reads the passwords from the PATRONI_*_FILE secrets
# (compose sets them) and runs Patroni.
set -eu
: "${NODE_NAME:?NODE_NAME must name this node (its service name)}"
export PATRONI_NAME="$NODE_NAME"
export PATRONI_RESTAPI_CONNECT_ADDRESS="$NODE_NAME:8008"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$NODE_NAME:5432"
exec /usr/local/bin/entrypoint.sh "$@"
