# Shared helpers for bench/platform.sh and bench/bindings.sh (sourced, not run).
# Environment knobs (all optional):
#   BENCH_SKIP_BUILD=1   reuse target/release/{parley,parley-bench-seed} if present
#   BENCH_KEEP=1         keep the scratch directory (databases, logs, wrk output)
#   WRK_CONNS=32 WRK_DURATION=10s WRK_WARMUP=2s WRK_THREADS=1
#   PG_URL=postgres://postgres@127.0.0.1:5432   server holding the scratch databases
#   CARGO_TARGET_DIR     where the release binaries are built

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PARLEY=$TARGET_DIR/release/parley
SEED=$TARGET_DIR/release/parley-bench-seed
LUA=$BENCH_DIR/lua/bench.lua
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_WARMUP=${WRK_WARMUP:-2s}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres

WORK=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX")
SERVER_PID=""
BASE=""
PG_DBS=()
RESULT_ROWS=()   # "group|label|description|target ratio in % (or -)|connections|json file"

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    stop_server || true
    # new_pg_db usually runs in a command substitution (a subshell): its names are in the file.
    [[ -f "$WORK/pg_dbs" ]] && mapfile -t -O "${#PG_DBS[@]}" PG_DBS <"$WORK/pg_dbs"
    for db in "${PG_DBS[@]}"; do
        dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists "$db" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        log "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() {
    if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$PARLEY" && -x "$SEED" ]]; then
        log "BENCH_SKIP_BUILD=1: using $PARLEY and $SEED as they are"
        return
    fi
    log "cargo build --release -p parley-server -p parley-bench-seed (5-8 min from scratch on 2 cores)"
    (cd "$ROOT" && cargo build --release -p parley-server -p parley-bench-seed)
}

ensure_tools() {
    if ! command -v wrk >/dev/null; then
        log "installing wrk"
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
    for tool in wrk jq curl openssl; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
}

# A fresh PostgreSQL database; prints its URL. Dropped on exit.
new_pg_db() {
    local name
    name="parley_bench_$(openssl rand -hex 4)"
    createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$name"
    PG_DBS+=("$name")
    echo "$name" >>"$WORK/pg_dbs"
    echo "$PG_URL/$name"
}

drop_pg_db() {
    local name=${1##*/}
    dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists "$name"
}

# start_server NAME DATABASE_URL [LISTEN]: sets SERVER_PID and BASE (http://127.0.0.1:PORT; a free
# port unless LISTEN, e.g. 127.0.0.1:8080, is given).
start_server() {
    local name=$1 url=$2 listen=${3:-127.0.0.1:0}
    local errlog=$WORK/$name.server.log
    "$PARLEY" serve --listen "$listen" --database-url "$url" >"$WORK/$name.server.out" 2>"$errlog" &
    SERVER_PID=$!
    BASE=""
    for _ in $(seq 1 600); do
        BASE=$(grep -ao 'listening on http://[0-9.]*:[0-9]*' "$errlog" | head -1 | sed 's/^listening on //' || true)
        [[ -n "$BASE" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$errlog" >&2; die "the server exited"; }
        sleep 0.1
    done
    [[ -n "$BASE" ]] || die "the server did not start (see $errlog)"
    curl -fsS "$BASE/readyz" >/dev/null || die "$BASE/readyz failed"
    log "server $name (pid $SERVER_PID) on $BASE"
}

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

# kB from /proc/<server>/status: rss_kb VmRSS | VmHWM.
proc_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# check METHOD PATH [FORM]: one request must answer 2xx before it is benchmarked.
check() {
    local method=$1 path=$2 form=${3:-}
    local code
    if [[ "$method" == POST ]]; then
        code=$(curl -s -o "$WORK/check.body" -w '%{http_code}' -H "$AUTH" -X POST --data "$form" "$BASE$path")
    else
        code=$(curl -s -o "$WORK/check.body" -w '%{http_code}' -H "$AUTH" "$BASE$path")
    fi
    [[ "$code" == 2* ]] || { cat "$WORK/check.body" >&2; die "$method $path answered $code"; }
}

# BENCH_PERF=DIR: record a CPU profile of the server (perf) over each measured run, as
# DIR/GROUP.LABEL.perf.data (read with `perf report -i FILE`); BENCH_PERF_ARGS replaces the
# sampling options (default `-F 499`; e.g. `-F 149 --call-graph dwarf,8192`). Profiling costs
# CPU: its figures are for finding where time goes, not for comparison.
profile() {
    [[ -n "${BENCH_PERF:-}" && -n "${SERVER_PID:-}" ]] || return 0
    mkdir -p "$BENCH_PERF"
    # shellcheck disable=SC2086 # BENCH_PERF_ARGS is a list of perf options
    perf record -q ${BENCH_PERF_ARGS:--F 499} -p "$SERVER_PID" -o "$BENCH_PERF/$1.perf.data" \
        -- sleep "$(( ${WRK_DURATION%s} > 2 ? ${WRK_DURATION%s} - 1 : 1 ))" >/dev/null 2>&1 &
}

# bench GROUP LABEL DESCRIPTION TARGET CONNS MODE LUA_ARGS…
# Warm up for WRK_WARMUP, then measure for WRK_DURATION; the result is $WORK/GROUP.LABEL.json.
bench() {
    local group=$1 label=$2 desc=$3 target=$4 conns=$5
    shift 5
    local json=$WORK/$group.$label.json
    WRK_JSON=/dev/null wrk -t1 -c"$conns" -d"$WRK_WARMUP" --timeout 10s -H "$AUTH" -s "$LUA" \
        "$BASE" -- "$@" >/dev/null
    profile "$group.$label"
    WRK_JSON=$json wrk -t"$WRK_THREADS" -c"$conns" -d"$WRK_DURATION" --timeout 10s --latency \
        -H "$AUTH" -s "$LUA" "$BASE" -- "$@" >"$WORK/$group.$label.wrk.txt"
    [[ -s "$json" ]] || die "wrk wrote no result for $group.$label"
    RESULT_ROWS+=("$group|$label|$desc|$target|$conns|$json")
    log "$(printf '%-14s %-22s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %d' "$group" "$label" \
        "$(jq -r .rps "$json")" "$(jq -r '.p50_us / 1000' "$json")" "$(jq -r '.p99_us / 1000' "$json")" \
        "$(jq -r .err_status "$json")")"
}

# Markdown table of GROUP: ratios are to the mean of the group's `healthz` and `healthz_after`
# runs (measured against the same server, before and after the others).
table() {
    local group=$1
    local h1 h2 base
    h1=$(jq -r .rps "$WORK/$group.healthz.json")
    h2=$(jq -r .rps "$WORK/$group.healthz_after.json" 2>/dev/null || echo "$h1")
    base=$(awk -v a="$h1" -v b="$h2" 'BEGIN { print (a + b) / 2 }')
    echo "| request | conns | req/s | p50 ms | p99 ms | ratio to /healthz | target | met | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"
    local row g label desc target conns json
    for row in "${RESULT_ROWS[@]}"; do
        IFS='|' read -r g label desc target conns json <<<"$row"
        [[ "$g" == "$group" ]] || continue
        jq -r --arg desc "$desc" --arg target "$target" --arg conns "$conns" --argjson base "$base" '
            (.rps / $base * 100) as $ratio
            | ($target | if . == "-" then null else tonumber end) as $t
            | "| \($desc) | \($conns) | \(.rps | floor) | \(.p50_us / 1000 * 100 | round / 100) | \(.p99_us / 1000 * 100 | round / 100) | \($ratio * 10 | round / 10) % | \(if $t == null then "" else "≥ \($t) %" end) | \(if $t == null then "" elif $ratio >= $t then "yes" else "**NO**" end) | \(.err_status + .err_connect + .err_read + .err_write + .err_timeout) |"' \
            "$json"
    done
    echo
    echo "Baseline: /healthz $(printf '%.0f' "$h1") req/s before, $(printf '%.0f' "$h2") req/s after the other runs (ratios use the mean)."
}

# p50 (ms) of GROUP.LABEL.
p50_ms() { jq -r '.p50_us / 1000' "$WORK/$1.$2.json"; }

machine() {
    echo "$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); $(wrk --version 2>&1 | head -1 | awk '{ print $1, $2 }'); $(psql --version 2>/dev/null | head -1 || true)"
}
