#!/usr/bin/env bash
# Azure's real clients against securescore, unchanged (issue 4):
#   1. the Python SDK (azure-identity + azure-mgmt-security): tests/compat/sdk_test.py
#   2. the Azure CLI (azure-cli from PyPI): tests/compat/az_test.sh
#   3. schemathesis over the official spec files, with the accepted quirks listed (issue 13):
#      tests/compat/fuzz.py, tests/compat/schemathesis-quirks.txt
# against `securescore serve --demo` on a free port with a temporary data directory, over HTTPS
# with the generated CA. Prints a PASS/FAIL summary; exits non-zero when anything failed.
#
# Environment:
#   SECURESCORE_BIN   an already-built securescore binary (default: cargo build, debug)
#   COMPAT_VENV       the Python venv to create or reuse (default: target/compat-venv)
#   COMPAT_SKIP_AZ=1  run the SDK part only (installing azure-cli takes minutes)
#   COMPAT_SKIP_FUZZ=1 skip schemathesis over the official spec files (tests/compat/fuzz.py)
#   PYTHON            the Python that makes the venv (default: python3)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
started=$SECONDS
summary=()
status=0
note() { echo "== $*"; }
record() { summary+=("$1"); [[ $1 == FAIL* ]] && status=1; }

# --- the binary -----------------------------------------------------------------------------
bin=${SECURESCORE_BIN:-}
if [ -z "$bin" ]; then
    note "building securescore (debug)"
    (cd "$root" && cargo build --quiet --bin securescore) || { echo "FAIL: cargo build"; exit 1; }
    bin="${CARGO_TARGET_DIR:-$root/target}/debug/securescore"
fi
[ -x "$bin" ] || { echo "FAIL: $bin is not an executable (set SECURESCORE_BIN)"; exit 1; }

# --- the clients ----------------------------------------------------------------------------
venv=${COMPAT_VENV:-$root/target/compat-venv}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    note "creating the venv $venv"
    "$py" -m venv "$venv" || { echo "FAIL: python3 -m venv"; exit 1; }
    "$venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1
fi
t=$SECONDS
note "pip install azure-identity azure-mgmt-security"
"$venv/bin/pip" install --quiet --disable-pip-version-check azure-identity azure-mgmt-security certifi \
    || { echo "FAIL: pip install azure-identity azure-mgmt-security"; exit 1; }
sdk_install=$((SECONDS - t))
az_install=0
if [ "${COMPAT_SKIP_AZ:-0}" != 1 ]; then
    t=$SECONDS
    note "pip install azure-cli"
    "$venv/bin/pip" install --quiet --disable-pip-version-check azure-cli \
        || { echo "FAIL: pip install azure-cli"; exit 1; }
    az_install=$((SECONDS - t))
fi

# --- the server -----------------------------------------------------------------------------
data=$(mktemp -d)
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="https://127.0.0.1:$port"
note "starting $bin serve --demo on $url (data: $data)"
"$bin" serve --demo --data-dir "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    [ -f "$data/ca.pem" ] && curl -sf --cacert "$data/ca.pem" "$url/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "FAIL: the server exited:"; cat "$data/serve.log"; exit 1; }
    sleep 0.2
done
curl -sf --cacert "$data/ca.pem" "$url/healthz" >/dev/null || { echo "FAIL: the server does not answer"; cat "$data/serve.log"; exit 1; }

# A Reader on the demo subscription, made with the CLI on the data directory.
sub=20ff7fc3-e762-44dd-bd96-b71116dcdc23
reader=$("$bin" principals add --data-dir "$data" --name compat-reader -o json) || { echo "FAIL: principals add"; exit 1; }
reader_id=$(printf '%s' "$reader" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["appId"])')
"$bin" roles assign --data-dir "$data" --principal "$reader_id" --role Reader --scope "/subscriptions/$sub" >/dev/null \
    || { echo "FAIL: roles assign"; exit 1; }
reader_json=$(printf '%s' "$reader" | "$venv/bin/python" -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({"clientId": j["appId"], "clientSecret": j["secret"]}))')

# The CLI's token works with curl (what the README shows).
token=$("$bin" token --data-dir "$data" --authority "$url" 2>/dev/null | tail -n 1)
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$data/ca.pem" -H "Authorization: Bearer $token" \
    "$url/subscriptions/$sub/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
if [ "$code" = 200 ]; then record "PASS curl with \`securescore token\`"; else record "FAIL curl with \`securescore token\`: HTTP $code"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$data/ca.pem" \
    "$url/subscriptions/$sub/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
if [ "$code" = 401 ]; then record "PASS no token: 401"; else record "FAIL no token: HTTP $code"; fi

export SECURESCORE_URL=$url SECURESCORE_CA=$data/ca.pem SECURESCORE_CREDENTIALS=$data/demo-credentials.json
export SECURESCORE_READER=$reader_json PYTHON=$venv/bin/python

t=$SECONDS
note "Python SDK"
if "$venv/bin/python" "$here/sdk_test.py"; then record "PASS sdk ($((SECONDS - t))s)"; else record "FAIL sdk ($((SECONDS - t))s)"; fi
sdk_time=$((SECONDS - t))
az_time=0
if [ "${COMPAT_SKIP_AZ:-0}" != 1 ]; then
    t=$SECONDS
    note "Azure CLI"
    if AZ="$venv/bin/az" bash "$here/az_test.sh"; then record "PASS az ($((SECONDS - t))s)"; else record "FAIL az ($((SECONDS - t))s)"; fi
    az_time=$((SECONDS - t))
else
    record "SKIP az (COMPAT_SKIP_AZ=1)"
fi

# Schemathesis over the official spec files, last because its writes move the demo scores the
# clients above compare; failures other than the listed quirks fail (fuzz.py).
fuzz_time=0
if [ "${COMPAT_SKIP_FUZZ:-0}" != 1 ]; then
    t=$SECONDS
    note "pip install schemathesis"
    if "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"; then
        note "schemathesis (official spec files; accepted quirks: tests/compat/schemathesis-quirks.txt)"
        if SECURESCORE_TOKEN=$token "$venv/bin/python" "$here/fuzz.py"; then
            record "PASS schemathesis ($((SECONDS - t))s)"
        else
            record "FAIL schemathesis ($((SECONDS - t))s)"
        fi
    else
        record "FAIL pip install schemathesis"
    fi
    fuzz_time=$((SECONDS - t))
else
    record "SKIP schemathesis (COMPAT_SKIP_FUZZ=1)"
fi
echo
echo "== summary (pip: sdk ${sdk_install}s, azure-cli ${az_install}s; run: sdk ${sdk_time}s, schemathesis ${fuzz_time}s, az ${az_time}s; total $((SECONDS - started))s)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ "$status" -eq 0 ]; then echo "compat: PASS"; else echo "compat: FAIL"; echo "server log:"; tail -30 "$data/serve.log"; fi
exit "$status"
