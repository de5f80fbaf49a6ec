#!/usr/bin/env bash
# Platform bench: one service with 100,000 users; wrk against /healthz, fetch user, list users.
# Speed is reported as a ratio to /healthz measured against the same server in the same run.
#
#   bench/platform.sh [sqlite|postgres]        (default sqlite)
#
# Builds the release binaries (once), installs wrk if missing, seeds a fresh database with
# parley-bench-seed (store traits; accounts and API keys as the admin CLI makes them), starts
# `parley serve` on a free port, measures idle RSS, runs wrk, measures peak RSS, and writes
# bench/results/platform-<backend>.md (also printed). Knobs: see bench/lib.sh; USERS=100000.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKEND=${1:-sqlite}
USERS=${USERS:-100000}
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS

build
ensure_tools

PARLEY_SECRET_KEY=$(openssl rand -hex 32)
export PARLEY_SECRET_KEY
case "$BACKEND" in
    sqlite) DB_URL="sqlite://$WORK/platform.db" ;;
    postgres) DB_URL=$(new_pg_db) ;;
    *) die "backend must be sqlite or postgres" ;;
esac

log "seeding $USERS users ($BACKEND)"
"$SEED" platform --database-url "$DB_URL" --users "$USERS" --out-dir "$WORK/seed" >"$WORK/seed.json"
IS=$(jq -r .service_sid "$WORK/seed.json")
AUTH="Authorization: Basic $(printf '%s:%s' "$(jq -r .account_sid "$WORK/seed.json")" "$(jq -r .auth_token "$WORK/seed.json")" | base64 -w0)"
USERS_FILE=$WORK/seed/users.txt

start_server platform "$DB_URL"
sleep 2
idle_rss=$(proc_kb VmRSS)

first_user=$(awk 'NR == 1 { print $1 }' "$USERS_FILE")
check GET "/v2/Services/$IS/Users/$first_user"
check GET "/v2/Services/$IS/Users?PageSize=50"

G=platform
bench $G healthz "GET /healthz" - "$WRK_CONNS" static /healthz
bench $G fetch_user "GET …/Users/{US} (fetch user, $(wc -l <"$USERS_FILE") SIDs rotated)" 40 "$WRK_CONNS" \
    rotate "/v2/Services/$IS/Users/{1}" "$USERS_FILE"
bench $G list_users "GET …/Users?PageSize=50 (first page)" 10 "$WRK_CONNS" \
    static "/v2/Services/$IS/Users?PageSize=50"
bench $G healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
loaded_rss=$(proc_kb VmRSS)
anon_rss=$(proc_kb RssAnon)
file_rss=$(proc_kb RssFile)
peak_rss=$(proc_kb VmHWM)
stop_server
[[ "$BACKEND" == postgres ]] && drop_pg_db "$DB_URL"

idle_ok=$(awk -v kb="$idle_rss" 'BEGIN { print (kb <= 30 * 1024) ? "yes" : "**NO**" }')
mkdir -p "$BENCH_DIR/results"
out=$BENCH_DIR/results/platform-$BACKEND.md
{
    echo "### Platform bench, $BACKEND — $started_at"
    echo
    echo "* machine: $(machine)"
    echo "* command: \`bench/platform.sh $BACKEND\` (wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION after a $WRK_WARMUP warm-up, per request kind)"
    echo "* data: 1 service, $USERS users (seeded through the store: $(jq -r '.users_per_sec | floor' "$WORK/seed.json") users/s)"
    echo
    table $G
    echo
    echo "| memory | value | target | met |"
    echo "| --- | ---: | --- | --- |"
    echo "| idle RSS (VmRSS, 2 s after start) | $(mb "$idle_rss") MB | ≤ 30 MB | $idle_ok |"
    echo "| RSS after the runs (VmRSS) | $(mb "$loaded_rss") MB | | |"
    echo "| … of which private memory (RssAnon) / mapped files (RssFile: binary, SQLite pages read through mmap) | $(mb "$anon_rss") / $(mb "$file_rss") MB | | |"
    echo "| peak RSS (VmHWM) | $(mb "$peak_rss") MB | | |"
    echo
    echo "Total script time: $((SECONDS - t0)) s."
} >"$out"
cat "$out"
