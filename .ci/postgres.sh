#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for the PostgreSQL conformance run and two-replica tests.
#
#   .ci/postgres.sh start [DIR]   initdb into DIR (default: a new temp dir), pick a free loopback
#                                 port, trust authentication on loopback only, start the server;
#                                 prints the URL and writes it to DIR/url
#   .ci/postgres.sh stop  [DIR]   stop that server and remove DIR
#
# DIR defaults to the one recorded in $STATE (so `stop` after `start` needs no argument). Use the
# URL as SECURESCORE_TEST_POSTGRES for `cargo test` or as --database-url for `securescore`.
# initdb refuses to run as root: as root, the cluster is created and run by the `postgres` user
# (or $PG_USER).
set -euo pipefail

STATE="${TMPDIR:-/tmp}/securescore-postgres.dir"
PG_USER="${PG_USER:-postgres}"

find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then echo "$d"; return; fi
    done
    echo "postgres.sh: no initdb/pg_ctl found (install the PostgreSQL server)" >&2
    exit 1
}

# Run as the cluster's owner: ourselves, or $PG_USER when we are root.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin dir port
    bin="$(find_bin)"
    dir="${1:-$(mktemp -d "${TMPDIR:-/tmp}/securescore-pg.XXXXXX")}"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown "$PG_USER" "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # Loopback only, trusted: this cluster holds test data and lives for one run.
    cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128      trust
EOF
    port="$(free_port)"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    local url="postgres://postgres@127.0.0.1:$port/postgres"
    echo "$url" >"$dir/url"
    echo "$dir" >"$STATE"
    echo "$url"
}

stop() {
    local bin dir
    bin="$(find_bin)"
    dir="${1:-$(cat "$STATE" 2>/dev/null || true)}"
    [ -n "$dir" ] && [ -d "$dir/data" ] || { echo "postgres.sh: no cluster to stop" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    # Forget it only if it is the cluster `start` recorded last.
    if [ "$(cat "$STATE" 2>/dev/null || true)" = "$dir" ]; then rm -f "$STATE"; fi
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
