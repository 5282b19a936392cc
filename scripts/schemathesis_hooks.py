"""Schemathesis hooks for BetLedger (loaded through SCHEMATHESIS_HOOKS by
scripts/schemathesis.sh).

- Signed faces: every provider body gets a fresh `timestamp` and its HMAC-SHA256
  `X-Signature`; every Hub88 body its RSA-SHA256 `X-Hub88-Signature` (the test key, signed
  with the openssl command line). So the fuzzer gets past the signatures and reaches the
  handlers.
- Path parameters that name a provider, a Hub88 operator or a wallet are pointed at the
  ones the script set up (a configured provider and operator, a funded wallet), so the
  generated calls reach real state and not only the 401/404 at the door.
- A custom check, `nothing_moved_on_refusal`: a refused call (HTTP 4xx, or a Hub88
  status other than RS_OK) must leave the funded wallet's sequence where it was.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

import requests
import schemathesis

PROVIDER = os.environ["ST_PROVIDER"]
PROVIDER_SECRET = os.environ["ST_PROVIDER_SECRET"]
OPERATOR = os.environ["ST_OPERATOR"]
OPERATOR_KEY = os.environ["ST_OPERATOR_KEY"]
WALLET = os.environ["ST_WALLET"]
BASE = os.environ["ST_BASE"]
TOKEN = os.environ["ST_TOKEN"]


def _sequence():
    r = requests.get(
        f"{BASE}/v1/wallets/{WALLET}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["sequence"]


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if path_parameters is None:
        return path_parameters
    for name, value in (("pid", PROVIDER), ("operator", OPERATOR), ("id", WALLET)):
        if name in path_parameters and isinstance(path_parameters[name], str):
            path_parameters[name] = value
    return path_parameters


def _raw(case):
    if isinstance(case.body, (dict, list, str, int, float, bool)) or case.body is None:
        return json.dumps(case.body, separators=(",", ":")).encode()
    return bytes(case.body)


# The funded wallet's sequence before each call, by case (a Case takes no attributes).
_BEFORE = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase's cases (the coverage phase's too) name the configured provider and
    # operator and the funded wallet.
    if case.path_parameters:
        map_path_parameters(context, case.path_parameters)
    path = case.operation.path
    provider = path.startswith("/provider/")
    hub88 = path.startswith("/hub88/")
    # The signature header is filled in only where the case carries it: a case that
    # leaves it out (the missing-header check) must go unsigned.
    header = "X-Signature" if provider else "X-Hub88-Signature"
    present = bool(case.headers) and any(k.lower() == header.lower() for k in case.headers)
    if (provider or hub88) and present and case.body is not None and not _is_unset(case.body):
        if provider and isinstance(case.body, dict):
            case.body["timestamp"] = int(time.time())
        raw = _raw(case)
        # The signed bytes are the bytes sent: the body is passed as data, not re-serialised.
        kwargs.pop("json", None)
        kwargs["data"] = raw
        for k in [k for k in case.headers if k.lower() == header.lower()]:
            del case.headers[k]
        case.headers["Content-Type"] = "application/json"
        if provider:
            case.headers["X-Signature"] = hmac.new(
                PROVIDER_SECRET.encode(), raw, hashlib.sha256
            ).hexdigest()
        else:
            signature = subprocess.run(
                ["openssl", "dgst", "-sha256", "-sign", OPERATOR_KEY],
                input=raw,
                capture_output=True,
                check=True,
            ).stdout
            case.headers["X-Hub88-Signature"] = base64.b64encode(signature).decode()
    if case.method.upper() != "GET":
        _BEFORE[id(case)] = _sequence()


def _is_unset(body):
    return type(body).__name__ == "NotSet"


@schemathesis.check
def nothing_moved_on_refusal(ctx, response, case):
    before = _BEFORE.pop(id(case), None)
    if before is None:
        return None
    refused = 400 <= response.status_code < 500
    if case.operation.path.startswith("/hub88/") and response.status_code == 200:
        try:
            refused = response.json().get("status") != "RS_OK"
        except ValueError:
            refused = False
    if refused and _sequence() != before:
        raise AssertionError(
            f"{case.method} {case.formatted_path} was refused ({response.status_code}) "
            f"but the funded wallet moved from sequence {before}"
        )
    return None
