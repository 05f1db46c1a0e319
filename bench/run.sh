#!/usr/bin/env bash
# Benchmark securescore against a minimal hyper server that returns the same bytes.
#
#   bench/run.sh                      # GET ascScore, 32 connections, 10 s
#   CONNECTIONS=64 DURATION=30 bench/run.sh
#   BENCH_ALL=1 bench/run.sh          # also the controls list ($expand=definition) and the assessments list
#
# Both servers run pinned to CPU 0, one after the other (never at the same time); wrk runs pinned
# to CPU 1. Each measurement is preceded by a short warm-up run. Loopback only.
#
# Environment (all optional):
#   DURATION=10        seconds of each measured wrk run
#   WARMUP=3           seconds of the warm-up run before each measurement
#   CONNECTIONS=32     wrk connections (-c)
#   THREADS=1          wrk threads (-t)
#   SERVER_CPU=0       CPU list the servers are pinned to
#   CLIENT_CPU=1       CPU list wrk is pinned to
#   BENCH_ALL=0        1: also load the controls list and the assessments list
#   SKIP_BUILD=0       1: use the binaries already built in $CARGO_TARGET_DIR (default ./target)
#   CARGO_TARGET_DIR   where cargo builds (and where the binaries are looked up)
#
# Output: a table (server, req/s, p50, p99, ratio securescore/minimal) and a one-line summary on
# stdout; raw wrk output, response bodies and headers, server logs and a summary in
# bench/results/<timestamp>/ (gitignored).
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_ALL=${BENCH_ALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SECURESCORE_BIN=$TARGET_DIR/release/securescore
MINIMAL_BIN=$TARGET_DIR/release/examples/minimal_hyper

SUB=20ff7fc3-e762-44dd-bd96-b71116dcdc23
# --auth any accepts any well-formed bearer token; always send one.
TOKEN=eyJhbGciOiJSUzI1NiJ9.e30.c2ln
AUTH_HEADER="Authorization: Bearer $TOKEN"

# name|path-and-query
ENDPOINTS=("ascScore|/subscriptions/$SUB/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
if [[ $BENCH_ALL == 1 ]]; then
    ENDPOINTS+=(
        "controls+definition|/subscriptions/$SUB/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&\$expand=definition"
        "assessments|/subscriptions/$SUB/providers/Microsoft.Security/assessments?api-version=2021-06-01"
    )
fi

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

# run_wrk LABEL URL -> writes $OUT/LABEL.wrk, sets RPS P50 P99 ERRS LOAD, CPU_US (server CPU us per request), CPU_PCT (server CPU use)
run_wrk() {
    local label=$1 url=$2 raw=$OUT/$1.wrk t0 t1 reqs secs
    local cmd=(taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -H "$AUTH_HEADER" --latency)
    log "$label: warm-up ${WARMUP}s"
    timeout $((WARMUP + 30)) "${cmd[@]}" -d"${WARMUP}s" "$url" >"$OUT/$label.warmup.wrk"
    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    log "$label: ${DURATION}s at $CONNECTIONS connections (load average $LOAD)"
    t0=$(server_ticks)
    timeout $((DURATION + 30)) "${cmd[@]}" -d"${DURATION}s" "$url" >"$raw"
    t1=$(server_ticks)
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
    echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "nproc: $(nproc --all)"
    echo "kernel: $(uname -r)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "settings: duration=${DURATION}s warmup=${WARMUP}s connections=$CONNECTIONS threads=$THREADS server_cpu=$SERVER_CPU client_cpu=$CLIENT_CPU"
} >"$OUT/machine.txt"

# --- securescore ---------------------------------------------------------------------------------
SERVE_ARGS=(serve --memory --demo --insecure-http --auth any --listen 127.0.0.1:0 --data-dir "$TMP/data")
if "$SECURESCORE_BIN" serve --help 2>/dev/null | grep -q -- '--no-throttle'; then
    SERVE_ARGS+=(--no-throttle)
fi
echo "securescore: $SECURESCORE_BIN ${SERVE_ARGS[*]}" >>"$OUT/machine.txt"
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

declare -A SS_RPS SS_P50 SS_P99 SS_CPU SS_PCT SS_LOAD MIN_RPS MIN_P50 MIN_P99 MIN_CPU MIN_PCT MIN_LOAD BYTES
for e in "${ENDPOINTS[@]}"; do
    name=${e%%|*} path=${e#*|}
    code=$(curl -gsS --max-time 10 -H "$AUTH_HEADER" -D "$OUT/$name.headers" -o "$OUT/$name.body" \
        -w '%{http_code}' "http://$ADDR$path")
    [[ $code == 200 ]] || { cat "$OUT/$name.body" >&2; die "GET $name answered $code"; }
    BYTES[$name]=$(wc -c <"$OUT/$name.body")
    log "$name: $(grep -i '^content-type:' "$OUT/$name.headers" | tr -d '\r'), ${BYTES[$name]} body bytes"
done
for e in "${ENDPOINTS[@]}"; do
    name=${e%%|*} path=${e#*|}
    run_wrk "securescore.$name" "http://$ADDR$path"
    SS_RPS[$name]=$RPS SS_P50[$name]=$P50 SS_P99[$name]=$P99 SS_CPU[$name]=$CPU_US SS_PCT[$name]=$CPU_PCT SS_LOAD[$name]=$LOAD
done
stop_server

# --- minimal hyper, one instance per body --------------------------------------------------------
for e in "${ENDPOINTS[@]}"; do
    name=${e%%|*} path=${e#*|}
    log "starting minimal_hyper on CPU $SERVER_CPU with the $name body"
    taskset -c "$SERVER_CPU" "$MINIMAL_BIN" 127.0.0.1:0 "$OUT/$name.body" >"$OUT/minimal.$name.log" 2>&1 &
    SERVER_PID=$!
    ADDR=$(wait_for_addr "$OUT/minimal.$name.log" 'listening on 127\.0\.0\.1:[0-9]+')
    cmp -s <(curl -gsS --max-time 10 "http://$ADDR$path") "$OUT/$name.body" || die "minimal_hyper does not serve the same bytes"
    run_wrk "minimal.$name" "http://$ADDR$path"
    MIN_RPS[$name]=$RPS MIN_P50[$name]=$P50 MIN_P99[$name]=$P99 MIN_CPU[$name]=$CPU_US MIN_PCT[$name]=$CPU_PCT MIN_LOAD[$name]=$LOAD
    stop_server
done

# --- report --------------------------------------------------------------------------------------
{
    echo
    echo "$CONNECTIONS connections, ${DURATION}s, servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
    fmt='%-20s %-12s %6s %11s %8s %8s %7s %5s %6s %6s %9s\n'
    # shellcheck disable=SC2059
    printf "$fmt" endpoint server bytes req/s p50_ms p99_ms cpu_us cpu% load ratio cpu_ratio
    for e in "${ENDPOINTS[@]}"; do
        name=${e%%|*}
        ratio=$(awk -v a="${SS_RPS[$name]}" -v b="${MIN_RPS[$name]}" 'BEGIN { printf "%.3f", a / b }')
        cpu_ratio=$(awk -v a="${SS_CPU[$name]}" -v b="${MIN_CPU[$name]}" 'BEGIN { printf "%.3f", b / a }')
        # shellcheck disable=SC2059
        printf "$fmt" "$name" securescore "${BYTES[$name]}" "${SS_RPS[$name]}" "${SS_P50[$name]}" "${SS_P99[$name]}" "${SS_CPU[$name]}" "${SS_PCT[$name]}" "${SS_LOAD[$name]}" "$ratio" "$cpu_ratio"
        # shellcheck disable=SC2059
        printf "$fmt" "$name" minimal "${BYTES[$name]}" "${MIN_RPS[$name]}" "${MIN_P50[$name]}" "${MIN_P99[$name]}" "${MIN_CPU[$name]}" "${MIN_PCT[$name]}" "${MIN_LOAD[$name]}" "" ""
        if (( MIN_PCT[$name] < 90 )); then
            echo "  note: minimal used only ${MIN_PCT[$name]}% of a CPU, so it was not the bottleneck (wrk on one core, or other load on the machine): the req/s ratio for $name overstates securescore; cpu_ratio is the fairer figure"
        fi
    done
    echo "cpu_us: server CPU time (user+system, all threads) per request; cpu%: server CPU use during the run;"
    echo "load: 1-min load average before the run; ratio: req/s securescore/minimal; cpu_ratio: cpu_us minimal/securescore"
    echo
    name=ascScore
    ratio=$(awk -v a="${SS_RPS[$name]}" -v b="${MIN_RPS[$name]}" 'BEGIN { printf "%.2f", a / b }')
    ok_ratio=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "meets" : "MISSES" }')
    ok_p99=$(awk -v p="${SS_P99[$name]}" 'BEGIN { print (p <= 2.0) ? "meets" : "MISSES" }')
    cpu_ratio=$(awk -v a="${SS_CPU[$name]}" -v b="${MIN_CPU[$name]}" 'BEGIN { printf "%.2f", b / a }')
    echo "summary: GET ascScore securescore ${SS_RPS[$name]} req/s vs minimal ${MIN_RPS[$name]} req/s = ${ratio}x (target >= 0.8x: $ok_ratio; CPU per request ${SS_CPU[$name]} vs ${MIN_CPU[$name]} us = ${cpu_ratio}x); p99 ${SS_P99[$name]} ms at $CONNECTIONS connections (target <= 2 ms: $ok_p99)"
} | tee "$OUT/summary.txt"
cat "$OUT/machine.txt" >>"$OUT/summary.txt"
log "raw results in ${OUT#"$REPO"/}"
