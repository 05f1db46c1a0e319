#!/usr/bin/env bash
# Benchmark securescore, by named scenario, against a minimal hyper server that returns the same
# bytes, with strict authentication and a real token, as a client of the real service sends.
#
#   bench/run.sh                 # the "get" scenario
#   bench/run.sh get lists put   # several scenarios, one results folder
#   bench/run.sh all             # every scenario: get, lists, put, import, scale
#
# Scenarios:
#   get     GET ascScore (the subscription's secure score)
#   lists   the controls list with $expand=definition, the assessments list, the control
#           definitions list
#   put     durable assessment PUTs, each a distinct assessment (PUT_RESOURCES of them, then
#           they are written again), into a data directory on disk (synchronous=FULL)
#   import  bulk import of IMPORT_LINES generated NDJSON lines into a data directory (bench/bulk.sh)
#   scale   per size of SCALE_SIZES: import, cold start to /readyz, RSS, GET ascScore, list
#           pages, single PUT latency (bench/bulk.sh; its header lists the settings)
#
# securescore runs as a user runs it: `serve --demo --data-dir DIR --insecure-http
# --no-throttle` (strict authentication, the default), its data made by --demo (the official
# examples, written through the normal write path); the token is `securescore token --data-dir
# DIR --authority URL` (the demo principal, Owner of the demo subscription), sent with every
# request. Both servers run pinned to SERVER_CPU, one after the other (never at the same time);
# wrk runs pinned to CLIENT_CPU. Each measurement is preceded by a short warm-up run. Loopback
# only; every wrk, curl and cargo call is bounded by `timeout`.
#
# Environment (all optional):
#   DURATION=10        seconds of each measured wrk run
#   WARMUP=3           seconds of the warm-up run before each measurement
#   CONNECTIONS=32     wrk connections (-c)
#   THREADS=1          wrk threads (-t)
#   SERVER_CPU=0       CPU list the servers are pinned to
#   CLIENT_CPU=1       CPU list wrk is pinned to
#   PUT_RESOURCES=1000000  distinct assessments the put scenario writes before writing them again
#   DATABASE_URL       a PostgreSQL URL: securescore stores there (--database-url) instead of in
#                      the data directory, which then keeps only the demo credentials; `token`
#                      and `verify` use it too. Use a throw-away database: the run writes to it.
#   PROFILE=0          1: also record a CPU profile of securescore (`perf record`, cpu-clock)
#                      during each measured run; its flat report goes to the results folder
#   SKIP_BUILD=0       1: use the binaries already built in $CARGO_TARGET_DIR (default ./target)
#   CARGO_TARGET_DIR   where cargo builds (and where the binaries are looked up)
#
# Output: a table (scenario, endpoint, server, req/s, p50, p99, CPU per request, ratio
# securescore/minimal) and a summary against the targets of docs/PERFORMANCE.md on stdout; raw
# wrk output, response bodies and headers, server logs, profiles and the summary in
# bench/results/<timestamp>/ (gitignored).
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PUT_RESOURCES=${PUT_RESOURCES:-1000000}
PROFILE=${PROFILE:-0}
SKIP_BUILD=${SKIP_BUILD:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SECURESCORE_BIN=$TARGET_DIR/release/securescore
MINIMAL_BIN=$TARGET_DIR/release/examples/minimal_hyper

SUB=20ff7fc3-e762-44dd-bd96-b71116dcdc23
# A built-in recommendation that counts toward the score ("Enable endpoint protection").
PUT_ASSESSMENT=21300918-b2e3-0346-785f-c77ff57d243b

SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=(get)
[[ ${SCENARIOS[*]} == all ]] && SCENARIOS=(get lists put import scale)

# scenario|name|method|path-and-query
ENDPOINTS=()
BULK=()
for scenario in "${SCENARIOS[@]}"; do
    case $scenario in
    get)
        ENDPOINTS+=("get|ascScore|GET|/subscriptions/$SUB/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
        ;;
    lists)
        ENDPOINTS+=(
            "lists|controls+definition|GET|/subscriptions/$SUB/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&\$expand=definition"
            "lists|assessments|GET|/subscriptions/$SUB/providers/Microsoft.Security/assessments?api-version=2021-06-01"
            "lists|definitions|GET|/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01"
        )
        ;;
    put)
        # The path is made per request by the Lua script (a distinct assessment each time); this
        # one is the first request's, for fetching the response the minimal server replays.
        ENDPOINTS+=("put|assessment PUT|PUT|/subscriptions/$SUB/resourceGroups/bench/providers/Microsoft.Compute/virtualMachines/probe/providers/Microsoft.Security/assessments/$PUT_ASSESSMENT?api-version=2020-01-01")
        ;;
    import | scale)
        BULK+=("$scenario")
        ;;
    *)
        echo "[bench] error: unknown scenario '$scenario' (get, lists, put, import, scale, all)" >&2
        exit 2
        ;;
    esac
done
PUT_BODY='{"properties":{"resourceDetails":{"source":"Azure"},"status":{"code":"Unhealthy","cause":"bench","description":"written by bench/run.sh"}}}'

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    [[ $(id -u) == 0 ]] || die "wrk is missing and installing it needs root: apt-get install -y wrk"
    log "installing wrk (apt-get install -y wrk)"
    timeout 300 apt-get install -y wrk >/dev/null || {
        timeout 300 apt-get update >/dev/null && timeout 300 apt-get install -y wrk >/dev/null
    } || die "cannot install wrk"
fi
if [[ " ${BULK[*]} " == *" import "* && ${FLOOR:-1} == 1 ]] && ! command -v sqlite3 >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
        log "installing the sqlite3 CLI for the import floor (apt-get install -y sqlite3)"
        timeout 300 apt-get install -y sqlite3 >/dev/null || log "warning: cannot install sqlite3; the floor is skipped"
    else
        log "warning: no sqlite3 CLI (apt-get install -y sqlite3); the import floor is skipped"
    fi
fi
command -v taskset >/dev/null 2>&1 || die "taskset is missing (package util-linux)"
command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v timeout >/dev/null 2>&1 || die "timeout is missing (package coreutils)"
[[ $(nproc --all) -ge 2 ]] || log "warning: fewer than 2 CPUs; server and client will share a CPU"

# --- build -------------------------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "building release (cargo build --release --bin securescore --example minimal_hyper)"
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR timeout 3600 cargo build --release --bin securescore --example minimal_hyper)
fi
[[ -x $SECURESCORE_BIN ]] || die "$SECURESCORE_BIN not found (build it, or unset SKIP_BUILD)"
[[ -x $MINIMAL_BIN ]] || die "$MINIMAL_BIN not found (build it, or unset SKIP_BUILD)"

# --- workspace and cleanup ---------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/$STAMP
mkdir -p "$OUT"
TMP=$(mktemp -d)
CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=""

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() { stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait until the server's log names its address; prints host:port.
wait_for_addr() {
    local logfile=$1 pattern=$2 addr=""
    for _ in $(seq 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logfile" >&2; die "server exited during start-up"; }
        addr=$(grep -oE "$pattern" "$logfile" | head -n1 | grep -oE '127\.0\.0\.1:[0-9]+' || true)
        [[ -n $addr ]] && { echo "$addr"; return; }
        sleep 0.1
    done
    cat "$logfile" >&2
    die "server did not report its address within 30 s"
}

# Convert a wrk latency ("812.00us", "1.23ms", "1.01s", "2.00m") to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

# CPU time (user + system, all threads) the server process has used so far, in clock ticks.
server_ticks() {
    local stat
    stat=$(<"/proc/$SERVER_PID/stat")
    stat=${stat##*) }   # fields after "(comm) "; utime and stime are fields 12 and 13 from here
    awk '{ print $12 + $13 }' <<<"$stat"
}

# The PUT load: a distinct assessment per request (a counter shared by the connections of a wrk
# thread, and the thread's number, in the VM's name), PUT_RESOURCES of them before they repeat.
cat >"$TMP/put.lua" <<'LUA'
local sub, name = os.getenv("BENCH_SUB"), os.getenv("BENCH_ASSESSMENT")
local bound = tonumber(os.getenv("BENCH_PUT_RESOURCES"))
local body = os.getenv("BENCH_PUT_BODY")
local threads, id, n = 0, 0, 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end
function init(args)
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
    wrk.headers["Content-Type"] = "application/json"
end
function request()
    n = n + 1
    local path = string.format("/subscriptions/%s/resourceGroups/bench/providers/Microsoft.Compute/virtualMachines/t%d-vm%d/providers/Microsoft.Security/assessments/%s?api-version=2020-01-01",
        sub, id, n % bound, name)
    return wrk.format("PUT", path, nil, body)
end
LUA

# run_wrk LABEL METHOD URL -> writes $OUT/LABEL.wrk, sets RPS P50 P99 ERRS LOAD, CPU_US (server
# CPU us per request), CPU_PCT (server CPU use); with PROFILE=1 also $OUT/LABEL.profile.txt
run_wrk() {
    local label=$1 method=$2 url=$3 raw=$OUT/$1.wrk t0 t1 reqs secs perf_pid=""
    local cmd=(taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" --latency)
    if [[ $method == PUT ]]; then
        cmd+=(-s "$TMP/put.lua")
    else
        cmd+=(-H "Authorization: Bearer $TOKEN")
    fi
    log "$label: warm-up ${WARMUP}s"
    BENCH_TOKEN=$TOKEN timeout $((WARMUP + 30)) "${cmd[@]}" -d"${WARMUP}s" "$url" >"$OUT/$label.warmup.wrk"
    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    log "$label: ${DURATION}s at $CONNECTIONS connections (load average $LOAD)"
    if [[ $PROFILE == 1 && $label == securescore.* ]]; then
        timeout $((DURATION + 30)) perf record -q -e cpu-clock -F 999 -g -p "$SERVER_PID" -o "$OUT/$label.perf.data" \
            -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    t0=$(server_ticks)
    BENCH_TOKEN=$TOKEN timeout $((DURATION + 30)) "${cmd[@]}" -d"${DURATION}s" "$url" >"$raw"
    t1=$(server_ticks)
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" || true
        perf report -i "$OUT/$label.perf.data" --stdio --no-children --sort symbol --percent-limit 0.5 \
            2>/dev/null | grep -v '^$' | head -n 400 >"$OUT/$label.profile.txt" || true
    fi
    echo "server_cpu_ticks: $((t1 - t0)) (CLK_TCK $CLK_TCK); load average before: $LOAD" >>"$raw"
    reqs=$(awk '/ requests in / { print $1 }' "$raw")
    secs=$(awk '/ requests in / { sub(/s,$/, "", $4); print $4 }' "$raw")
    [[ ${reqs:-0} -gt 0 && -n $secs ]] || die "no requests completed or cannot parse $raw"
    CPU_US=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
    CPU_PCT=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$secs" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
    RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
    P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$raw")")
    P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$raw")")
    ERRS=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$raw")
    [[ $ERRS == 0 ]] || log "warning: $label: $ERRS errors or non-2xx responses (see $raw)"
}

{
    echo "date: $STAMP"
    echo "scenarios: ${SCENARIOS[*]}"
    echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "nproc: $(nproc --all)"
    echo "kernel: $(uname -r)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "data dir: $TMP/data ($(df -T "$TMP" | awk 'NR == 2 { print $2 }'))${DATABASE_URL:+; store: PostgreSQL}"
    echo "settings: duration=${DURATION}s warmup=${WARMUP}s connections=$CONNECTIONS threads=$THREADS server_cpu=$SERVER_CPU client_cpu=$CLIENT_CPU put_resources=$PUT_RESOURCES"
} >"$OUT/machine.txt"

# --- bulk scenarios (bench/bulk.sh): import, scale -------------------------------------------------
if [[ ${#BULK[@]} -gt 0 ]]; then
    # shellcheck source=bench/bulk.sh
    source "$REPO/bench/bulk.sh"
    for b in "${BULK[@]}"; do "scenario_$b"; done
fi
if [[ ${#ENDPOINTS[@]} -eq 0 ]]; then
    cat "$OUT/machine.txt" >>"$OUT/summary.txt"
    log "raw results in ${OUT#"$REPO"/}"
    exit 0
fi

# --- securescore ---------------------------------------------------------------------------------
# Strict authentication (the default), a data directory on disk (the put scenario's writes are
# durable: synchronous=FULL), throttling off (the default budget would answer 429s).
SERVE_ARGS=(serve --demo --insecure-http --no-throttle --listen 127.0.0.1:0 --data-dir "$TMP/data")
STORE_ARGS=(--data-dir "$TMP/data")
if [[ -n ${DATABASE_URL:-} ]]; then
    STORE_ARGS+=(--database-url "$DATABASE_URL")
    SERVE_ARGS+=(--database-url "$DATABASE_URL")
fi
echo "securescore: $SECURESCORE_BIN ${SERVE_ARGS[*]}" | sed 's#postgres://[^ ]*#postgres://(DATABASE_URL)#' >>"$OUT/machine.txt"
log "starting securescore on CPU $SERVER_CPU"
# Request logs are at debug level; keep the default (info) so that logging costs what it costs in production.
taskset -c "$SERVER_CPU" "$SECURESCORE_BIN" "${SERVE_ARGS[@]}" >"$OUT/securescore.log" 2>&1 &
SERVER_PID=$!
ADDR=$(wait_for_addr "$OUT/securescore.log" 'listening on http://127\.0\.0\.1:[0-9]+')
for _ in $(seq 100); do
    curl -sf --max-time 2 "http://$ADDR/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf --max-time 2 "http://$ADDR/healthz" >/dev/null || die "/healthz did not answer"
# A real token of the demo principal, as `securescore token` gives it to a user.
# On PostgreSQL `token` is told the demo principal (its client id, as the server prints it).
PRINCIPAL=()
if [[ -n ${DATABASE_URL:-} ]]; then
    PRINCIPAL=(--principal "$(grep -oE 'client id [0-9a-f-]{36}' "$OUT/securescore.log" | head -n1 | cut -d' ' -f3)")
fi
TOKEN=$(timeout 60 "$SECURESCORE_BIN" token "${STORE_ARGS[@]}" "${PRINCIPAL[@]}" --authority "http://$ADDR" 2>"$OUT/token.log") \
    || { cat "$OUT/token.log" >&2; die "securescore token failed"; }
echo "token: securescore token --data-dir DIR --authority http://$ADDR ($(wc -c <<<"$TOKEN") bytes)" >>"$OUT/machine.txt"
export BENCH_SUB=$SUB BENCH_ASSESSMENT=$PUT_ASSESSMENT BENCH_PUT_RESOURCES=$PUT_RESOURCES BENCH_PUT_BODY=$PUT_BODY

declare -A SS_RPS SS_P50 SS_P99 SS_CPU SS_PCT SS_LOAD MIN_RPS MIN_P50 MIN_P99 MIN_CPU MIN_PCT MIN_LOAD BYTES
for e in "${ENDPOINTS[@]}"; do
    IFS='|' read -r _ name method path <<<"$e"
    label=${name// /_}
    data=()
    [[ $method == PUT ]] && data=(-X PUT -H 'Content-Type: application/json' --data-binary "$PUT_BODY")
    code=$(curl -gsS --max-time 10 "${data[@]}" -H "Authorization: Bearer $TOKEN" -D "$OUT/$label.headers" \
        -o "$OUT/$label.body" -w '%{http_code}' "http://$ADDR$path")
    [[ $code == 200 || $code == 201 ]] || { cat "$OUT/$label.body" >&2; die "$method $name answered $code"; }
    BYTES[$name]=$(wc -c <"$OUT/$label.body")
    log "$name: $code, $(grep -i '^content-type:' "$OUT/$label.headers" | tr -d '\r'), ${BYTES[$name]} body bytes"
done
for e in "${ENDPOINTS[@]}"; do
    IFS='|' read -r _ name method path <<<"$e"
    run_wrk "securescore.${name// /_}" "$method" "http://$ADDR$path"
    SS_RPS[$name]=$RPS SS_P50[$name]=$P50 SS_P99[$name]=$P99 SS_CPU[$name]=$CPU_US SS_PCT[$name]=$CPU_PCT SS_LOAD[$name]=$LOAD
done
stop_server
VERIFY=""
if [[ " ${SCENARIOS[*]} " == *" put "* ]]; then
    # After the load: the counters the writes maintained equal a recomputation from the assessments.
    if timeout 600 "$SECURESCORE_BIN" verify "${STORE_ARGS[@]}" >"$OUT/verify.txt" 2>&1; then
        VERIFY="verify after the put load: clean"
        if [[ -n ${DATABASE_URL:-} ]]; then
            VERIFY+=" (store in PostgreSQL)"
        else
            VERIFY+=" ($(du -sh "$TMP/data" | cut -f1) data directory)"
        fi
    else
        VERIFY="verify after the put load: MISMATCHES (see verify.txt)"
    fi
    log "$VERIFY"
fi

# --- minimal hyper, one instance per body --------------------------------------------------------
for e in "${ENDPOINTS[@]}"; do
    IFS='|' read -r _ name method path <<<"$e"
    label=${name// /_}
    log "starting minimal_hyper on CPU $SERVER_CPU with the $name body"
    taskset -c "$SERVER_CPU" "$MINIMAL_BIN" 127.0.0.1:0 "$OUT/$label.body" >"$OUT/minimal.$label.log" 2>&1 &
    SERVER_PID=$!
    ADDR=$(wait_for_addr "$OUT/minimal.$label.log" 'listening on 127\.0\.0\.1:[0-9]+')
    cmp -s <(curl -gsS --max-time 10 "http://$ADDR$path") "$OUT/$label.body" || die "minimal_hyper does not serve the same bytes"
    run_wrk "minimal.$label" "$method" "http://$ADDR$path"
    MIN_RPS[$name]=$RPS MIN_P50[$name]=$P50 MIN_P99[$name]=$P99 MIN_CPU[$name]=$CPU_US MIN_PCT[$name]=$CPU_PCT MIN_LOAD[$name]=$LOAD
    stop_server
done

# --- report --------------------------------------------------------------------------------------
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
    echo
    echo "$CONNECTIONS connections, ${DURATION}s, servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; strict auth, real token"
    fmt='%-8s %-22s %-12s %6s %11s %8s %8s %7s %5s %6s %6s %9s\n'
    # shellcheck disable=SC2059
    printf "$fmt" scenario endpoint server bytes req/s p50_ms p99_ms cpu_us cpu% load ratio cpu_ratio
    for e in "${ENDPOINTS[@]}"; do
        IFS='|' read -r scenario name _ _ <<<"$e"
        ratio=$(ratio_of "${SS_RPS[$name]}" "${MIN_RPS[$name]}")
        cpu_ratio=$(ratio_of "${MIN_CPU[$name]}" "${SS_CPU[$name]}")
        # shellcheck disable=SC2059
        printf "$fmt" "$scenario" "$name" securescore "${BYTES[$name]}" "${SS_RPS[$name]}" "${SS_P50[$name]}" "${SS_P99[$name]}" "${SS_CPU[$name]}" "${SS_PCT[$name]}" "${SS_LOAD[$name]}" "$ratio" "$cpu_ratio"
        # shellcheck disable=SC2059
        printf "$fmt" "$scenario" "$name" minimal "${BYTES[$name]}" "${MIN_RPS[$name]}" "${MIN_P50[$name]}" "${MIN_P99[$name]}" "${MIN_CPU[$name]}" "${MIN_PCT[$name]}" "${MIN_LOAD[$name]}" "" ""
        if (( MIN_PCT[$name] < 90 )); then
            echo "  note: minimal used only ${MIN_PCT[$name]}% of a CPU, so it was not the bottleneck (wrk on one core, or other load on the machine): the req/s ratio for $name understates securescore; cpu_ratio is the fairer figure"
        fi
    done
    echo "cpu_us: server CPU time (user+system, all threads) per request; cpu%: server CPU use during the run;"
    echo "load: 1-min load average before the run; ratio: req/s securescore/minimal; cpu_ratio: cpu_us minimal/securescore"
    echo
    verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "meets" : "MISSES" }'; }
    for e in "${ENDPOINTS[@]}"; do
        IFS='|' read -r scenario name _ _ <<<"$e"
        ratio=$(ratio_of "${SS_RPS[$name]}" "${MIN_RPS[$name]}")
        cpu_ratio=$(ratio_of "${MIN_CPU[$name]}" "${SS_CPU[$name]}")
        case $scenario in
        get) echo "target 1: GET $name ${ratio}x of minimal (>= 0.8x: $(verdict "$ratio" 0.8 '>=')), cpu ${cpu_ratio}x; p99 ${SS_P99[$name]} ms (<= 2 ms: $(verdict "${SS_P99[$name]}" 2 '<='))" ;;
        lists) echo "target 2: GET $name ${ratio}x of minimal (>= 0.5x: $(verdict "$ratio" 0.5 '>=')), cpu ${cpu_ratio}x" ;;
        put) echo "target 3: $name ${SS_RPS[$name]} durable req/s at $CONNECTIONS connections (>= 5000: $(verdict "${SS_RPS[$name]}" 5000 '>=')), p99 ${SS_P99[$name]} ms" ;;
        esac
    done
    [[ -z $VERIFY ]] || echo "$VERIFY"
} | tee -a "$OUT/summary.txt"
cat "$OUT/machine.txt" >>"$OUT/summary.txt"
log "raw results in ${OUT#"$REPO"/}"
