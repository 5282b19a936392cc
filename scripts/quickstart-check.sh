#!/usr/bin/env bash
# Keeps the README's quick start true: runs every shell block between the README's
# `<!-- quickstart` and `<!-- /quickstart -->` markers, in order, in one shell, against a
# freshly started API (its own database and Redis prefix, the development credentials the
# README uses), and compares the output of each block that is followed by a ```json block
# with that answer (as JSON, so spacing does not matter). Fails naming the block that
# differs. Run by scripts/test.sh; needs the services up (scripts/services.sh up).
# Usage: scripts/quickstart-check.sh [README]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
README="${1:-README.md}"
command -v openssl >/dev/null || { echo "openssl is missing: sudo apt-get install -y openssl" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is missing: sudo apt-get install -y python3" >&2; exit 2; }

eval "$(scripts/services.sh env)"
. scripts/fresh-api.sh
# The development defaults the README's examples use (token, provider and its secret).
unset BETLEDGER_API_TOKENS BETLEDGER_PROVIDERS
fresh_api quickstart

API="$API" WORK="$WORK" python3 - "$README" <<'PY'
import json, os, re, subprocess, sys

text = open(sys.argv[1]).read()
start = text.find("<!-- quickstart")
end = text.find("<!-- /quickstart -->")
if start < 0 or end < start:
    sys.exit(f"{sys.argv[1]}: no <!-- quickstart --> ... <!-- /quickstart --> section")
section = text[start:end]
blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
# Each shell block, with the answer that follows it (if the next block is JSON).
steps = []
for i, (lang, body) in enumerate(blocks):
    if lang != "sh":
        continue
    answer = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "json" else None
    steps.append((body, answer))
if not steps:
    sys.exit("the quick start has no shell blocks")
mark = "@@quickstart-step-end@@"
script = "set -euo pipefail\n" + "".join(
    f"{body}\nprintf '\\n{mark}\\n'\n" for body, _ in steps
)
run = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                     env={**os.environ, "API": os.environ["API"]}, timeout=120)
outputs = run.stdout.split(mark + "\n")
failed = False
for n, (body, answer) in enumerate(steps, 1):
    got = outputs[n - 1].strip() if n - 1 < len(outputs) else None
    first = body.strip().splitlines()[-1][:90]
    if got is None:
        print(f"step {n} ({first}) did not run: {run.stderr.strip()}", file=sys.stderr)
        failed = True
        break
    if answer is None:
        print(f"step {n}: ran")
        continue
    try:
        same = json.loads(got) == json.loads(answer)
    except json.JSONDecodeError:
        same = False
    print(f"step {n}: {'same answer' if same else 'DIFFERENT answer'}")
    if not same:
        print(f"  command: {first}\n  README:  {answer.strip()}\n  got:     {got}", file=sys.stderr)
        failed = True
if run.returncode != 0:
    print(f"the quick start's shell exited {run.returncode}: {run.stderr.strip()}", file=sys.stderr)
    failed = True
sys.exit(1 if failed else 0)
PY
echo "quick start: every step ran and answered as the README shows"
