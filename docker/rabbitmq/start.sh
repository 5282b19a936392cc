#!/bin/sh
# The Erlang cookie from the compose secret, owned by rabbitmq and private as Erlang wants
# it, then the image's own entrypoint.
set -eu
install -m 600 -o rabbitmq -g rabbitmq /run/secrets/erlang_cookie /var/lib/rabbitmq/.erlang.cookie
exec docker-entrypoint.sh rabbitmq-server
