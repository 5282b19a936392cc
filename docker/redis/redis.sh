#!/bin/sh
# A Redis node of the `ha` profile. Its role comes from the Sentinels when they know a
# master (after a failover the promoted node stays master and a node coming back joins it
# as a replica); the first time, redis-1 is master and redis-2 its replica. The file is in
# the volume, so Sentinel's CONFIG REWRITE of a promotion persists.
set -eu
conf=/data/redis.conf
master=""
for s in sentinel-1 sentinel-2 sentinel-3; do
  master=$(redis-cli -h "$s" -p 26379 sentinel get-master-addr-by-name betledger 2>/dev/null | head -n 1) || true
  [ -n "$master" ] && break
done
[ -z "$master" ] && [ "$NODE_NAME" != redis-1 ] && master=redis-1
{
  echo "port 6379"
  echo "dir /data"
  echo "appendonly yes"
  echo "appendfsync everysec"
  echo "replica-announce-ip $NODE_NAME"
  if [ -n "$master" ] && [ "$master" != "$NODE_NAME" ]; then echo "replicaof $master 6379"; fi
} >"$conf"
exec redis-server "$conf"
