#!/bin/sh
# Secrets come from files (compose's /run/secrets), not literals: for every variable
# NAME_FILE (BETLEDGER_*, or PATRONI_* in the Patroni image) that names a file, NAME is set
# to its contents, then the command runs.
set -eu
for var in $(env | sed -n 's/^\(\(BETLEDGER\|PATRONI\)_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
  file=$(printenv "${var}_FILE")
  [ -r "$file" ] || { echo "entrypoint: ${var}_FILE=$file is not readable" >&2; exit 1; }
  export "$var=$(cat "$file")"
  unset "${var}_FILE"
done
exec "$@"
