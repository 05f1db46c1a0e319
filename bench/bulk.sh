# The bulk scenarios of bench/run.sh, sourced by it (it provides log, die, OUT, TMP,
# SECURESCORE_BIN, SERVER_CPU, CLIENT_CPU, DURATION, WARMUP, CONNECTIONS, THREADS):
#
#   import  IMPORT_LINES NDJSON assessments (default 2 000 000) over IMPORT_SUBS subscriptions
#           (default 1) into a fresh data directory: `securescore import --exclusive
#           --batch-size IMPORT_BATCH` (default 5 000), pinned to SERVER_CPU; wall time,
#           lines/s, peak RSS, bytes on disk per assessment; then `verify`. Then, if the
#           sqlite3 CLI is installed, the floor: SQLite alone writing the rows such an import
#           writes (per line one assessment, two resource tallies and one transition, the
#           shapes of the generated data) into the same schema with the server's settings,
#           IMPORT_BATCH lines per transaction, no parsing and no counting; FLOOR=0 skips it.
#   scale   for each size of SCALE_SIZES (default "10000 1000000 10000000") over SCALE_SUBS
#           subscriptions (default 100): import it as above, then start the server cold and
#           measure the time to /readyz 200, wait for the background integrity check to end
#           (large files; its duration is reported), RSS after reading every subscription's ascScore,
#           GET ascScore throughput (wrk, DURATION s), the assessments list's first page and a
#           page half way through (keyset skipToken), and a single PUT's latency (medians of
#           SAMPLES curl calls, default 20).
#
# Every step is bounded by `timeout` (IMPORT_TIMEOUT, default 3600 s, per import). The data is
# generated here (awk): per resource four built-in recommendations, 50 resource groups per
# subscription, statuses mixed.

IMPORT_LINES=${IMPORT_LINES:-2000000}
IMPORT_SUBS=${IMPORT_SUBS:-1}
IMPORT_BATCH=${IMPORT_BATCH:-5000}
IMPORT_TIMEOUT=${IMPORT_TIMEOUT:-3600}
SCALE_SIZES=${SCALE_SIZES:-10000 1000000 10000000}
SCALE_SUBS=${SCALE_SUBS:-100}
SAMPLES=${SAMPLES:-20}
FLOOR=${FLOOR:-1}

# The id of subscription N.
bulk_sub() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# gen_ndjson LINES SUBS FILE: the assessments, subscription after subscription.
gen_ndjson() {
    awk -v LINES="$1" -v SUBS="$2" 'BEGIN {
        split("21300918-b2e3-0346-785f-c77ff57d243b 08e628db-e2ed-4793-bc91-d13e684401c3 d1db3318-01ff-16de-29eb-28b344515626 c1769ad9-3c3a-4455-8d86-4d02dc2580f7", names, " ")
        split("Healthy Unhealthy Healthy NotApplicable Healthy", codes, " ")
        per_sub = int((LINES + SUBS - 1) / SUBS)
        for (i = 0; i < LINES; i++) {
            s = int(i / per_sub); j = i - s * per_sub; r = int(j / 4)
            printf "{\"resourceId\":\"/subscriptions/00000000-0000-4000-8000-%012d/resourceGroups/rg%d/providers/Microsoft.Compute/virtualMachines/vm%d\",\"name\":\"%s\",\"properties\":{\"resourceDetails\":{\"source\":\"Azure\"},\"status\":{\"code\":\"%s\"}}}\n", s, r % 50, r, names[j % 4 + 1], codes[(r * 7 + j) % 5 + 1]
        }
    }' >"$3"
}

# init_data_dir DIR SUBS: a data directory with the demo principal (Owner at /) and SUBS
# subscriptions; prints the demo principal's client id.
init_data_dir() {
    local dir=$1 subs=$2 log=$TMP/init.log client
    timeout 60 "$SECURESCORE_BIN" serve --demo --insecure-http --listen 127.0.0.1:0 --data-dir "$dir" >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 200); do grep -q 'listening on' "$log" && break; sleep 0.1; done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    client=$(grep -oE 'client id [0-9a-f-]{36}' "$log" | head -n1 | cut -d' ' -f3)
    [[ -n $client ]] || { cat "$log" >&2; die "cannot initialise $dir"; }
    timeout 60 "$SECURESCORE_BIN" roles assign --data-dir "$dir" --principal "$client" --role Owner --scope / >/dev/null
    for ((s = 0; s < subs; s++)); do
        timeout 60 "$SECURESCORE_BIN" subscriptions add --data-dir "$dir" --id "$(bulk_sub $s)" --name "bench $s" >/dev/null
    done
    echo "$client"
}

# run_import DIR FILE LABEL: sets IMP_SECS IMP_CPU IMP_RATE IMP_RSS_MB BYTES_PER (on disk per line).
run_import() {
    local dir=$1 file=$2 label=$3 lines
    lines=$(wc -l <"$file")
    log "$label: importing $lines lines (batch $IMPORT_BATCH, --exclusive, CPU $SERVER_CPU; load $(cut -d' ' -f1 /proc/loadavg))"
    local before
    before=$(du -sb "$dir" | cut -f1)
    timeout "$IMPORT_TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$OUT/$label.time" taskset -c "$SERVER_CPU" \
        "$SECURESCORE_BIN" import --data-dir "$dir" --exclusive --batch-size "$IMPORT_BATCH" -o json "$file" \
        >"$OUT/$label.report.json" 2>"$OUT/$label.stderr" || die "$label: import failed (see $OUT/$label.stderr)"
    IMP_SECS=$(cut -d' ' -f1 "$OUT/$label.time")
    IMP_RSS_MB=$(awk '{ printf "%.0f", $2 / 1024 }' "$OUT/$label.time")
    IMP_CPU=$(awk '{ printf "%.2f", $3 + $4 }' "$OUT/$label.time")
    IMP_RATE=$(awk -v n="$lines" -v s="$IMP_SECS" 'BEGIN { printf "%.0f", n / s }')
    BYTES_PER=$(awk -v a="$(du -sb "$dir" | cut -f1)" -v b="$before" -v n="$lines" 'BEGIN { printf "%.0f", (a - b) / n }')
}

# floor_sql LINES BATCH: the statements of the floor (see the header), on stdout.
floor_sql() {
    local lines=$1 batch=$2 b sub
    sub=$(bulk_sub 0)
    echo "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
    echo "PRAGMA cache_size = -32768; PRAGMA temp_store = memory;"
    echo "CREATE TEMP TABLE l (i INTEGER PRIMARY KEY, rk TEXT, rid TEXT, nk TEXT, st TEXT);"
    for ((b = 0; b < lines; b += batch)); do
        cat <<SQL
BEGIN IMMEDIATE;
DELETE FROM l;
INSERT INTO l SELECT value,
  '/subscriptions/$sub/resourcegroups/rg' || ((value / 4) % 50) || '/providers/microsoft.compute/virtualmachines/vm' || (value / 4),
  '/subscriptions/$sub/resourceGroups/rg' || ((value / 4) % 50) || '/providers/Microsoft.Compute/virtualMachines/vm' || (value / 4),
  CASE value % 4 WHEN 0 THEN '21300918-b2e3-0346-785f-c77ff57d243b' WHEN 1 THEN '08e628db-e2ed-4793-bc91-d13e684401c3'
    WHEN 2 THEN 'd1db3318-01ff-16de-29eb-28b344515626' ELSE 'c1769ad9-3c3a-4455-8d86-4d02dc2580f7' END,
  CASE value % 3 WHEN 0 THEN 'Healthy' WHEN 1 THEN 'Unhealthy' ELSE 'NotApplicable' END
  FROM generate_series($b, $((b + batch - 1))) WHERE value < $lines;
INSERT INTO assessments SELECT rk, nk, '$sub', rid, nk, st, NULL, NULL, '{"source":"Azure"}', NULL, NULL,
  '2026-12-03T12:36:36.8882101Z', '2026-12-03T12:36:36.8882101Z' FROM l;
INSERT INTO resource_tallies SELECT '$sub', c.value || '-' || nk, rk, 1, 0, 0 FROM l, generate_series(1, 2) c;
INSERT INTO status_changes (subscription_id, at, resource_id, assessment, old_status, new_status, cause,
  before_current, before_max, before_percentage, after_current, after_max, after_percentage)
  SELECT '$sub', '2026-12-03T12:36:36.8882101Z', rid, nk, NULL, st, NULL, 1.5, 10, 0.15, 1.6, 10, 0.16 FROM l;
COMMIT;
SQL
    done
}

# run_floor DIR LINES: sets FLOOR_SECS FLOOR_RATE FLOOR_CPU (user+system s) for the floor into DIR.
run_floor() {
    local dir=$1 lines=$2 sql=$TMP/floor.sql
    floor_sql "$lines" "$IMPORT_BATCH" >"$sql"
    log "floor: SQLite alone writing the rows of $lines lines (CPU $SERVER_CPU; load $(cut -d' ' -f1 /proc/loadavg))"
    timeout "$IMPORT_TIMEOUT" /usr/bin/time -f '%e %U %S' -o "$OUT/floor.time" taskset -c "$SERVER_CPU" \
        sqlite3 "$dir/securescore.db" <"$sql" >"$OUT/floor.out" 2>&1 || die "floor failed (see $OUT/floor.out)"
    FLOOR_SECS=$(cut -d' ' -f1 "$OUT/floor.time")
    FLOOR_CPU=$(awk '{ printf "%.2f", $2 + $3 }' "$OUT/floor.time")
    FLOOR_RATE=$(awk -v n="$lines" -v s="$FLOOR_SECS" 'BEGIN { printf "%.0f", n / s }')
    rm -f "$sql"
}

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# curl_ms URL [curl args...]: the median time_total in ms of SAMPLES calls.
curl_ms() {
    local url=$1
    shift
    for _ in $(seq "$SAMPLES"); do
        curl -gsS --max-time 30 -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$@" "$url"
    done | awk '{ print $1 * 1000 }' | median
}

scenario_import() {
    local dir=$TMP/import-data file=$TMP/import.ndjson
    log "import: generating $IMPORT_LINES lines over $IMPORT_SUBS subscriptions"
    gen_ndjson "$IMPORT_LINES" "$IMPORT_SUBS" "$file"
    init_data_dir "$dir" "$IMPORT_SUBS" >/dev/null
    local floor_dir=$TMP/floor-data floor=""
    [[ $FLOOR == 1 ]] && command -v sqlite3 >/dev/null 2>&1 && cp -a "$dir" "$floor_dir"
    run_import "$dir" "$file" import
    local verify="clean"
    timeout 3600 "$SECURESCORE_BIN" verify --data-dir "$dir" >"$OUT/import.verify.txt" 2>&1 || verify="MISMATCHES (see import.verify.txt)"
    if [[ -d $floor_dir ]]; then
        run_floor "$floor_dir" "$IMPORT_LINES"
        floor="floor (SQLite alone, the same rows): $FLOOR_RATE lines/s, $FLOOR_SECS s, $FLOOR_CPU s CPU; the import reached $(awk -v a="$IMP_RATE" -v b="$FLOOR_RATE" 'BEGIN { printf "%.2f", a / b }')x of it"
        rm -rf "$floor_dir"
    elif [[ $FLOOR == 1 ]]; then
        floor="floor: skipped (no sqlite3 CLI; apt-get install sqlite3)"
    fi
    {
        echo
        echo "import: $IMPORT_LINES lines, $IMPORT_SUBS subscriptions, batch $IMPORT_BATCH, --exclusive"
        printf '%-10s %9s %9s %10s %8s %12s\n' lines seconds cpu_s lines/s rss_MB disk_B/line
        printf '%-10s %9s %9s %10s %8s %12s\n' "$IMPORT_LINES" "$IMP_SECS" "$IMP_CPU" "$IMP_RATE" "$IMP_RSS_MB" "$BYTES_PER"
        echo "target 4: $IMP_RATE lines/s (>= 100000: $(awk -v r="$IMP_RATE" 'BEGIN { print ((r >= 100000) ? "meets" : "MISSES") }')); verify: $verify"
        [[ -z $floor ]] || echo "$floor"
    } | tee -a "$OUT/summary.txt"
    rm -rf "$dir" "$file"
}

scenario_scale() {
    local rows=() size
    for size in $SCALE_SIZES; do
        local dir=$TMP/scale-$size file=$TMP/scale-$size.ndjson client
        log "scale $size: generating over $SCALE_SUBS subscriptions"
        gen_ndjson "$size" "$SCALE_SUBS" "$file"
        client=$(init_data_dir "$dir" "$SCALE_SUBS")
        run_import "$dir" "$file" "scale-$size.import"
        rm -f "$file"

        # Cold start: spawn to /readyz 200.
        local t0 t1 log=$OUT/scale-$size.server.log
        t0=$(date +%s.%N)
        taskset -c "$SERVER_CPU" "$SECURESCORE_BIN" serve --insecure-http --no-throttle --listen 127.0.0.1:0 --data-dir "$dir" >"$log" 2>&1 &
        SERVER_PID=$!
        ADDR=$(wait_for_addr "$log" 'listening on http://127\.0\.0\.1:[0-9]+')
        for _ in $(seq 600); do
            [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ADDR/readyz") == 200 ]] && break
            sleep 0.01
        done
        t1=$(date +%s.%N)
        local ready
        ready=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        TOKEN=$(timeout 60 "$SECURESCORE_BIN" token --data-dir "$dir" --principal "$client" --authority "http://$ADDR" 2>/dev/null | tail -n1)
        # A large file's integrity check goes on in the background after /readyz (about 2 µs
        # per assessment); the throughput figures below are of the server alone, so wait for
        # it (bounded) and record how long it took.
        local checked=""
        if grep -q 'serving while it goes on' "$log"; then
            for _ in $(seq 1200); do
                grep -qE 'integrity check (found|could not)' "$log" && break
                sleep 0.5
            done
            checked=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
            log "scale $size: the background integrity check ended ${checked}s after start ($(grep -oE 'integrity check (found no damage|found damage|could not finish)' "$log" | head -n1))"
        fi

        # Reads of every subscription, then the RSS.
        local s score_path
        for ((s = 0; s < SCALE_SUBS; s++)); do
            curl -sf --max-time 30 -o /dev/null -H "Authorization: Bearer $TOKEN" \
                "http://$ADDR/subscriptions/$(bulk_sub $s)/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01" \
                || die "scale $size: GET ascScore of subscription $s failed"
        done
        local rss
        rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status")

        # GET ascScore throughput.
        score_path="/subscriptions/$(bulk_sub 0)/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01"
        run_wrk "scale-$size.ascScore" GET "http://$ADDR$score_path"
        local get_rps=$RPS get_cpu=$CPU_US

        # The assessments list: the first page and one half way through subscription 0.
        local list="http://$ADDR/subscriptions/$(bulk_sub 0)/providers/Microsoft.Security/assessments?api-version=2021-06-01"
        local per_sub=$(((size + SCALE_SUBS - 1) / SCALE_SUBS)) mid skip first deep
        mid=$((per_sub / 8))
        skip=$(printf 'k/subscriptions/%s/resourcegroups/rg%d/providers/microsoft.compute/virtualmachines/vm%d\n%s' \
            "$(bulk_sub 0)" $((mid % 50)) "$mid" 21300918-b2e3-0346-785f-c77ff57d243b | base64 -w0 | tr '+/' '-_' | tr -d '=')
        [[ $(curl -gs -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$list&\$skipToken=$skip") == 200 ]] \
            || die "scale $size: the deep page did not answer 200"
        first=$(curl_ms "$list")
        deep=$(curl_ms "$list&\$skipToken=$skip")

        # One PUT at a time (a durable transaction each).
        local put_ms
        put_ms=$(for n in $(seq "$SAMPLES"); do
            curl -gsS --max-time 30 -o /dev/null -w '%{time_total}\n' -X PUT -H "Authorization: Bearer $TOKEN" \
                -H 'Content-Type: application/json' --data-binary "$PUT_BODY" \
                "http://$ADDR/subscriptions/$(bulk_sub 0)/resourceGroups/single/providers/Microsoft.Compute/virtualMachines/p$n/providers/Microsoft.Security/assessments/21300918-b2e3-0346-785f-c77ff57d243b?api-version=2020-01-01"
        done | awk '{ print $1 * 1000 }' | median)
        stop_server
        rows+=("$size $IMP_RATE $BYTES_PER $ready ${checked:--} $rss $get_rps $get_cpu $first $deep $put_ms")
        rm -rf "$dir"
    done
    {
        echo
        echo "scale: $SCALE_SUBS subscriptions; import --exclusive batch $IMPORT_BATCH; GET ascScore ${DURATION}s at $CONNECTIONS connections; medians of $SAMPLES calls"
        local fmt='%-10s %9s %11s %9s %9s %7s %10s %7s %10s %9s %7s\n'
        # shellcheck disable=SC2059
        printf "$fmt" assessments import/s disk_B/each ready_s checked_s rss_MB get_req/s get_us list_1st_ms list_mid_ms put_ms
        for r in "${rows[@]}"; do
            # shellcheck disable=SC2059,SC2086
            printf "$fmt" $r
        done
    } | tee -a "$OUT/summary.txt"
}
