#!/bin/sh
# Before the image's own entrypoint:
# - the Prometheus plugin (the relay partitions events itself: no other plugin);
# - the `betledger` user's password from the compose secret, as a conf.d file (the
#   image's RABBITMQ_DEFAULT_PASS_FILE is gone since 3.9);
# - in the `ha` profile, the nodes' shared Erlang cookie from its secret, owned by
#   rabbitmq and private, as Erlang wants it.
set -eu
echo '[rabbitmq_prometheus].' >/etc/rabbitmq/enabled_plugins
[ -r /run/secrets/rabbitmq_password ] || { echo "start.sh: /run/secrets/rabbitmq_password is not readable" >&2; exit 1; }
{
  echo "default_user = betledger"
  echo "default_pass = $(cat /run/secrets/rabbitmq_password)"
} >/etc/rabbitmq/conf.d/10-defaults.conf
chmod 600 /etc/rabbitmq/conf.d/10-defaults.conf
chown rabbitmq:rabbitmq /etc/rabbitmq/conf.d/10-defaults.conf
if [ -r /run/secrets/erlang_cookie ]; then
  install -m 600 -o rabbitmq -g rabbitmq /run/secrets/erlang_cookie /var/lib/rabbitmq/.erlang.cookie
fi
exec docker-entrypoint.sh rabbitmq-server
