"""Schemathesis over the official spec files, against a running securescore (issue 13, item 6).

Every spec file of FUZZ_RUNS is fuzzed stateless and stateful with all of schemathesis's checks,
bounded by examples per operation and a time budget. Path parameters that name data (the
subscription, a scope, a resource) are pinned to the demo data so that the generated requests reach
the handlers instead of stopping at a 404; the api-version is pinned to the file's own.

Each failure schemathesis reports is matched against the accepted spec quirks in
`schemathesis-quirks.txt` (code, operation, a piece of the message, and the reason it is accepted).
Anything else — an unlisted failure or a runtime error — fails the run.

Environment (set by run.sh): SECURESCORE_URL, SECURESCORE_CA, SECURESCORE_TOKEN; FUZZ_EXAMPLES
(default 10 per operation), FUZZ_SECONDS (the time budget per spec file, default 45), FUZZ_SEED (default 1), FUZZ_REPORTS (a directory that keeps
schemathesis's NDJSON reports; default: a temporary one).
"""

import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SPECS = HERE.parent / "fixtures" / "azure-spec"
SECURITY = "security/resource-manager/Microsoft.Security"
SUB = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"
RESOURCE = f"subscriptions/{SUB}/resourceGroups/demo-rg-00/providers/Microsoft.Compute/virtualMachines/vm-00"

# (spec file below tests/fixtures/azure-spec, the api-version it describes)
FUZZ_RUNS = [
    ("bundled/security-2020-01-01.json", "2020-01-01"),
    (f"{SECURITY}/preview/2019-01-01-preview/assessments.json", "2019-01-01-preview"),
    (f"{SECURITY}/preview/2019-01-01-preview/subAssessments.json", "2019-01-01-preview"),
    (f"{SECURITY}/preview/2019-01-01-preview/assessmentMetadata.json", "2019-01-01-preview"),
    (f"{SECURITY}/stable/2021-06-01/assessments.json", "2021-06-01"),
    (f"{SECURITY}/stable/2021-06-01/assessmentMetadata.json", "2021-06-01"),
    (f"{SECURITY}/Security/stable/2025-05-04/assessments.json", "2025-05-04"),
    (f"{SECURITY}/Security/stable/2025-05-04/assessmentMetadata.json", "2025-05-04"),
    (f"{SECURITY}/preview/2015-06-01-preview/operations.json", "2015-06-01-preview"),
]


def load_quirks():
    """`CODE | METHOD /path | message contains | reason` per line; # starts a comment."""
    quirks = []
    for number, line in enumerate((HERE / "schemathesis-quirks.txt").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 4 or not all(parts[:2]) or not parts[3]:
            sys.exit(f"schemathesis-quirks.txt:{number}: expected CODE | OPERATION | MESSAGE | REASON")
        quirks.append({"code": parts[0], "operation": parts[1], "message": parts[2], "reason": parts[3], "seen": 0})
    return quirks


def failures_of(ndjson_path):
    """(code, operation, text) of every failed check, and the runtime errors, in an NDJSON report.
    The text is the check's message followed by the response the server gave, so that a quirk can
    name what the server answered (an error code, say)."""
    failures, errors = [], []
    for line in ndjson_path.read_text().splitlines():
        event = json.loads(line)
        (kind, body), = event.items()
        if kind in ("NonFatalError", "FatalError"):
            errors.append(json.dumps(body)[:600])
        if kind != "ScenarioFinished":
            continue
        recorder = body.get("recorder") or {}
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                info = check.get("failure_info")
                if check.get("status") != "failure" or not info:
                    continue
                failure = info["failure"]
                text = failure.get("message", "") + " => " + response_of(recorder, case_id)
                failures.append((failure.get("code", "?"), failure.get("operation", "?"), text))
    return failures, errors


def response_of(recorder, case_id):
    """`STATUS body…` of the response a case got, or "" when none was recorded."""
    interaction = (recorder.get("interactions") or {}).get(case_id) or {}
    response = interaction.get("response") or {}
    content = response.get("content") or {}
    body = content.get("$base64")
    text = base64.b64decode(body).decode("utf-8", "replace") if body else content.get("string", "")
    return f"{response.get('status_code', '?')} {text[:300]}"


def summary(text):
    """The first line of a check's message and the response, on one line."""
    message, _, response = text.partition(" => ")
    return f"{message.splitlines()[0] if message else ''} => {response}"


def run(spec, api_version, env, workdir, quirks):
    config = workdir / "schemathesis.toml"
    # Path parameters of the spec files, pinned to the demo data (unknown names are ignored).
    config.write_text(
        "[parameters]\n"
        f'"api-version" = "{api_version}"\n'
        f'subscriptionId = "{SUB}"\n'
        f'scope = "subscriptions/{SUB}"\n'
        f'resourceId = "{RESOURCE}"\n'
    )
    report = workdir / (spec.replace("/", "_") + ".ndjson")
    command = [
        str(pathlib.Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
        str(SPECS / spec), "--url", env["SECURESCORE_URL"], "--tls-verify", env["SECURESCORE_CA"],
        "-H", f"Authorization: Bearer {env['SECURESCORE_TOKEN']}", "--checks", "all",
        "--max-examples", env.get("FUZZ_EXAMPLES", "10"), "--seed", env.get("FUZZ_SEED", "1"),
        "--workers", "1", "--max-time", env.get("FUZZ_SECONDS", "45"), "--request-timeout", "10", "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if not report.exists():
        print(done.stdout[-3000:], done.stderr[-3000:])
        return [f"{spec}: schemathesis wrote no report (exit {done.returncode})"], 0
    failures, errors = failures_of(report)
    unexpected = [f"{spec}: runtime error: {e}" for e in errors]
    for code, operation, message in failures:
        match = next(
            (q for q in quirks if q["code"] == code and q["operation"] in (operation, "*") and q["message"] in message),
            None,
        )
        if match:
            match["seen"] += 1
        else:
            unexpected.append(f"{spec}: {code} {operation}: {summary(message)}")
    cases = sum(1 for line in report.read_text().splitlines() if '"ScenarioFinished"' in line)
    return unexpected, cases


def main():
    env = os.environ
    for name in ("SECURESCORE_URL", "SECURESCORE_CA", "SECURESCORE_TOKEN"):
        if not env.get(name):
            sys.exit(f"fuzz.py: {name} is not set (run.sh sets it)")
    quirks = load_quirks()
    unexpected, scenarios = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        reports = pathlib.Path(env.get("FUZZ_REPORTS") or tmp)
        reports.mkdir(parents=True, exist_ok=True)
        for spec, api_version in FUZZ_RUNS:
            found, cases = run(spec, api_version, env, reports, quirks)
            print(f"  {spec} ({api_version}): {cases} scenarios, {len(found)} unexpected")
            unexpected += found
            scenarios += cases
    for q in quirks:
        print(f"  quirk {'seen' if q['seen'] else 'not hit'} ({q['seen']}x): {q['code']} {q['operation']}: {q['reason']}")
    if unexpected:
        print(f"schemathesis: {len(unexpected)} failures that are not listed quirks:")
        for line in sorted(set(unexpected)):
            print("   ", line)
        return 1
    print(f"schemathesis: {scenarios} scenarios over {len(FUZZ_RUNS)} spec files; only listed quirks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
