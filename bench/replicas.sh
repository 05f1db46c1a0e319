#!/usr/bin/env bash
# Scale-out measurement: read and write throughput of 1 and 2 securescore replicas on one
# PostgreSQL database, on this machine, with a real token and strict auth.
#
#   bench/replicas.sh                     # 10 s per run, 32 connections in all
#   DURATION=30 CONNECTIONS=64 bench/replicas.sh
#
# A private PostgreSQL cluster (.ci/postgres.sh) and the replicas run on SERVER_CPU, wrk on
# CLIENT_CPU. With two replicas the connections are split between them (one wrk each, run at
# the same time) and their req/s summed: what a load balancer in front of both would see.
# Reads: GET ascScore of the demo subscription. Writes: PUT of distinct assessments (wrk with
# bench/put.lua), each acknowledged after its commit. Results in bench/results/<timestamp>-replicas/.
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET_DIR/release/securescore
SUB=20ff7fc3-e762-44dd-bd96-b71116dcdc23
PUBLIC=http://127.0.0.1:7080

log() { echo "[replicas] $*" >&2; }
die() { echo "[replicas] error: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk (or run bench/run.sh once)"
if [[ $SKIP_BUILD != 1 ]]; then
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR timeout 3600 cargo build --release --bin securescore)
fi
[[ -x $BIN ]] || die "$BIN not found"

OUT=$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-replicas
mkdir -p "$OUT"
PIDS=()
PG_DIR=$(mktemp -d)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$REPO/.ci/postgres.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

URL=$(taskset -c "$SERVER_CPU" "$REPO/.ci/postgres.sh" start "$PG_DIR")
log "PostgreSQL at $URL"
export SECURESCORE_DATABASE_URL=$URL

# start_replica N -> the replica's address on stdout; seeds the demo estate on the first.
start_replica() {
    local n=$1 extra=() logf=$OUT/replica$1.log addr=""
    [[ $n == 1 ]] && extra=(--demo)
    taskset -c "$SERVER_CPU" "$BIN" serve --insecure-http --listen 127.0.0.1:0 --no-throttle \
        --public-url "$PUBLIC" --data-dir "$OUT/data$n" "${extra[@]}" >"$logf" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 300); do
        addr=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$logf" | head -n1 | grep -oE '127\.0\.0\.1:[0-9]+' || true)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || { cat "$logf" >&2; die "replica $n did not start"; }
    for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.1; done
    echo "$addr"
}

# load KIND ADDR_LANE1 ADDR_LANE2 -> two wrk processes at once, CONNECTIONS/2 each: lane i loads
# the address given for it (the same replica twice, or one replica each) and, for writes, PUTs
# into subscription i; sums req/s; sets RPS P99
load() {
    local kind=$1 n=$2; shift 2
    local per=$((CONNECTIONS / 2)) i=0 files=() wpids=()
    for addr in "$@"; do
        i=$((i + 1))
        local f=$OUT/$kind.${n}replicas.lane$i.wrk args=(-t1 -c"$per" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN")
        if [[ $kind == write ]]; then
            args+=(-s "$REPO/bench/put.lua")
            WRK_PREFIX="/subscriptions/${LANE_SUB[$i]}/resourceGroups/run$n" taskset -c "$CLIENT_CPU" timeout $((DURATION + 30)) wrk "${args[@]}" "http://$addr" >"$f" &
        else
            taskset -c "$CLIENT_CPU" timeout $((DURATION + 30)) wrk "${args[@]}" "http://$addr/subscriptions/$SUB/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01" >"$f" &
        fi
        wpids+=($!)
        files+=("$f")
    done
    wait "${wpids[@]}"
    RPS=$(awk '/^Requests\/sec:/ { s += $2 } END { printf "%.0f", s }' "${files[@]}")
    P99=$(awk '$1 == "99%" { print $2 }' "${files[@]}" | sort -h | tail -n1)
    local errs
    errs=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }' "${files[@]}")
    [[ $errs == 0 ]] || die "$kind with $n replica(s): $errs non-2xx responses (see $OUT)"
}

A=$(start_replica 1)
TOKEN=$("$BIN" token --data-dir "$OUT/data1" --authority "$PUBLIC" | tail -n1)
# Each write lane has a subscription of its own (the demo principal is Owner on it): writers of one
# subscription queue on its row lock, writers of two do not.
declare -A LANE_SUB
for i in 1 2; do
    LANE_SUB[$i]=$(cat /proc/sys/kernel/random/uuid)
    "$BIN" subscriptions add --id "${LANE_SUB[$i]}" --name "bench lane $i" >/dev/null
    "$BIN" roles assign --principal "$("$BIN" principals list -o json | python3 -c 'import json,sys; print(next(p["id"] for p in json.load(sys.stdin) if p.get("displayName") == "securescore-demo"))')" \
        --role Owner --scope "/subscriptions/${LANE_SUB[$i]}" >/dev/null
done
declare -A R_RPS R_P99 W_RPS W_P99
load read 1 "$A" "$A"; R_RPS[1]=$RPS R_P99[1]=$P99
load write 1 "$A" "$A"; W_RPS[1]=$RPS W_P99[1]=$P99
B=$(start_replica 2)
load read 2 "$A" "$B"; R_RPS[2]=$RPS R_P99[2]=$P99
load write 2 "$A" "$B"; W_RPS[2]=$RPS W_P99[2]=$P99
{
    echo "replicas on CPU $SERVER_CPU with PostgreSQL, wrk on CPU $CLIENT_CPU, $CONNECTIONS connections in all, ${DURATION}s per run"
    printf '%-9s %12s %10s %12s %10s\n' replicas read_req/s read_p99 write_req/s write_p99
    for n in 1 2; do
        printf '%-9s %12s %10s %12s %10s\n' "$n" "${R_RPS[$n]}" "${R_P99[$n]}" "${W_RPS[$n]}" "${W_P99[$n]}"
    done
} | tee "$OUT/summary.txt"
