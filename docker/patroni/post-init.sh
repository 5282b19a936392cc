#!/bin/sh
# Patroni's bootstrap.post_init: once, on the new cluster's first primary, the engine's
# database (its connection URL is the argument).
set -eu
psql "$1" -qc "CREATE DATABASE betledger"
