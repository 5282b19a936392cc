#!/bin/sh
# Patroni's bootstrap.post_init: once, on the new cluster's first primary, the engine's
# database (its connection URL is the argument), and pgBackRest's stanza, so that the WAL
# archived from now on has a home (docs/operate/backup.md).
set -eu
psql "$1" -qc "CREATE DATABASE betledger"
pgbackrest --stanza=betledger stanza-create
