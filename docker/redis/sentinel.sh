#!/bin/sh
# A Sentinel of the `ha` profile. Sentinel rewrites its file with what it learns (the
# current master, its peers), so the file is written only once, into the volume:
# the container's port and hostnames first, then ops/redis/sentinel.conf with the first
# master, redis-1.
set -eu
conf=/data/sentinel.conf
if [ ! -f "$conf" ]; then
  {
    printf 'port 26379\nsentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n'
    printf 'sentinel announce-ip %s\n' "$NODE_NAME"
    sed 's/@MASTER@/redis-1 6379/' /etc/betledger/sentinel.conf
  } >"$conf"
fi
exec redis-sentinel "$conf"
