#!/usr/bin/env bash
# The Azure CLI against a running `securescore serve --demo`, unchanged: cloud register from
# /metadata/endpoints, az login --service-principal, secure scores, controls, definitions,
# assessments create/show/list/delete, sub-assessments list/show, and a 404's exit code 3.
# Environment: AZ (the az executable), SECURESCORE_URL, SECURESCORE_CA, SECURESCORE_CREDENTIALS.
# Prints one PASS/FAIL line per check; exits 1 when any check failed.
set -uo pipefail

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AZURE_CONFIG_DIR="$work/config" AZURE_CORE_INSTANCE_DISCOVERY=false AZURE_CORE_COLLECT_TELEMETRY=false
export AZURE_CORE_NO_COLOR=true AZURE_CORE_ONLY_SHOW_ERRORS=true
# The system's CAs (certifi's, as az's own requests use) plus ours, in one file.
certifi=$("$PYTHON" -c 'import certifi; print(certifi.where())')
cat "$certifi" "$SECURESCORE_CA" > "$work/bundle.pem"
export REQUESTS_CA_BUNDLE="$work/bundle.pem"

json() { "$PYTHON" -c "import json,sys; print(json.load(open('$SECURESCORE_CREDENTIALS'))['$1'])"; }
tenant=$(json tenantId); client=$(json clientId); secret=$(json clientSecret); sub=$(json subscriptionId)
assessment=4fb67663-9ab9-475d-b026-8c544cced439

passed=0; failed=0
# check NAME EXPECTED_EXIT COMMAND...: runs az, keeps its output in $out.
check() {
    local name=$1 want=$2; shift 2
    local started=$SECONDS
    out=$("$AZ" "$@" 2>"$work/stderr"); local rc=$?
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1)); echo "PASS az: $name ($((SECONDS - started))s)"
    else
        failed=$((failed + 1)); echo "FAIL az: $name: exit $rc, expected $want"; sed 's/^/    /' "$work/stderr" | tail -20
    fi
}
# expect NAME PYTHON_EXPRESSION_ON_j: checks the JSON of the last command.
expect() {
    if printf '%s' "$out" | "$PYTHON" -c "import json,sys; j=json.load(sys.stdin); assert ($2), j" 2>"$work/stderr"; then
        passed=$((passed + 1)); echo "PASS az: $1"
    else
        failed=$((failed + 1)); echo "FAIL az: $1"; tail -3 "$work/stderr" | sed 's/^/    /'
    fi
}

check "cloud register from /metadata/endpoints" 0 cloud register -n securescore --endpoint-resource-manager "$SECURESCORE_URL/"
check "cloud set" 0 cloud set -n securescore
check "login --service-principal" 0 login --service-principal -u "$client" -p "$secret" --tenant "$tenant"
expect "login lists the demo subscription" "any(s['id'] == '$sub' for s in j)"
check "security secure-scores show -n ascScore" 0 security secure-scores show -n ascScore -o json
expect "the documented sample score" "j['max'] == 39 and j['current'] == 23.53 and j['percentage'] == 0.6033"
check "security secure-scores list" 0 security secure-scores list -o json
expect "one secure score" "[s['name'] for s in j] == ['ascScore']"
check "security secure-score-controls list" 0 security secure-score-controls list -o json
expect "twelve assessed controls" "len(j) == 12"
check "security secure-score-controls list_by_score" 0 security secure-score-controls list_by_score -n ascScore -o json
expect "twelve controls of ascScore" "len(j) == 12"
check "security secure-score-control-definitions list" 0 security secure-score-control-definitions list -o json
expect "definitions listed" "len(j) > 0"
check "security assessment create" 0 security assessment create -n "$assessment" --status-code Unhealthy --status-cause compat --status-description "made by az" -o json
expect "created Unhealthy" "j['status']['code'] == 'Unhealthy'"
check "security assessment show" 0 security assessment show -n "$assessment" -o json
expect "shown" "j['name'] == '$assessment'"
check "security assessment list" 0 security assessment list -o json
expect "listed" "any(a['name'] == '$assessment' for a in j)"
check "security assessment delete" 0 security assessment delete -n "$assessment"
# Sub-assessments: written with `az rest` (the PUT is this server's extension), read by `az security sub-assessment`.
vm="/subscriptions/$sub/resourceGroups/compat-rg/providers/Microsoft.Compute/virtualMachines/compat-vm"
sub_body='{"properties":{"displayName":"compat finding","id":"1001","status":{"code":"Unhealthy","severity":"High"},"resourceDetails":{"source":"Azure"},"additionalData":{"assessedResourceType":"SqlServerVulnerability","type":"Vulnerability","query":"SELECT 1"}}}'
check "rest PUT of a sub-assessment" 0 rest --method put --url "$SECURESCORE_URL$vm/providers/Microsoft.Security/assessments/$assessment/subAssessments/compat-sub?api-version=2019-01-01-preview" --body "$sub_body"
check "security sub-assessment list" 0 security sub-assessment list -o json
expect "the sub-assessment listed" "any(s['name'] == 'compat-sub' for s in j)"
check "security sub-assessment list --assessment-name" 0 security sub-assessment list --assessed-resource-id "$vm" --assessment-name "$assessment" -o json
expect "listed under its assessment" "[s['name'] for s in j] == ['compat-sub']"
check "security sub-assessment show" 0 security sub-assessment show --assessed-resource-id "$vm" --assessment-name "$assessment" -n compat-sub -o json
expect "shown as written" "j['name'] == 'compat-sub' and j['status']['code'] == 'Unhealthy' and j['additionalData']['query'] == 'SELECT 1'"
check "a 404 exits with code 3" 3 security secure-scores show -n noSuchScore
grep -q "ResourceNotFound" "$work/stderr" && { passed=$((passed + 1)); echo "PASS az: the 404 prints (ResourceNotFound)"; } \
    || { failed=$((failed + 1)); echo "FAIL az: the 404's message"; cat "$work/stderr"; }

echo "az: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
