#!/usr/bin/env bash
# Bindings bench: 1,000,000 push bindings across 100,000 users (10 each), on SQLite and on
# PostgreSQL; wrk against fetch binding, the three list shapes and registration (upsert), each
# as a ratio to /healthz against the same server; RSS; and list latency at 10,000 vs 1,000,000
# rows (a second database with 1,000 users × 10 bindings, same queries).
#
#   bench/bindings.sh [sqlite] [postgres]        (default: both)
#
# Loading: users through UserStore::create_user; the 1M bindings with parley-bench-seed's bulk
# path (BINDINGS_VIA=sql, default: multi-row INSERTs into the real table, 100k-row
# transactions) because one register_binding transaction per row takes far longer than a bench
# should spend loading; the 10k database goes through BindingStore::register_binding
# (BINDINGS_VIA_SMALL=store), which also gives the store's registration rate. Set
# BINDINGS_VIA=store to load the million through the store too.
#
# Writes bench/results/bindings-<backend>.md (also printed). Knobs: see bench/lib.sh; USERS,
# PER_USER, SMALL_USERS, INSERT_RATIO (share of registrations that create a binding, 0.1).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKENDS=("$@")
[[ ${#BACKENDS[@]} -gt 0 ]] || BACKENDS=(sqlite postgres)
USERS=${USERS:-100000}
PER_USER=${PER_USER:-10}
SMALL_USERS=${SMALL_USERS:-1000}
BINDINGS_VIA=${BINDINGS_VIA:-sql}
BINDINGS_VIA_SMALL=${BINDINGS_VIA_SMALL:-store}
INSERT_RATIO=${INSERT_RATIO:-0.1}
LATENCY_CONNS=1

build
ensure_tools
PARLEY_SECRET_KEY=$(openssl rand -hex 32)
export PARLEY_SECRET_KEY

db_url() {
    case "$1" in
        sqlite) echo "sqlite://$WORK/$2.db" ;;
        postgres) new_pg_db ;;
        *) die "backend must be sqlite or postgres" ;;
    esac
}

# seed_db BACKEND NAME USERS VIA: sets DB_URL, IS, AUTH and the sample files of NAME.
seed_db() {
    local backend=$1 name=$2 users=$3 via=$4
    DB_URL=$(db_url "$backend" "$name")
    log "seeding $name: $users users × $PER_USER bindings via $via ($backend)"
    "$SEED" bindings --database-url "$DB_URL" --users "$users" --per-user "$PER_USER" \
        --via "$via" --out-dir "$WORK/$name" >"$WORK/$name.seed.json"
    IS=$(jq -r .service_sid "$WORK/$name.seed.json")
    AUTH="Authorization: Basic $(printf '%s:%s' "$(jq -r .account_sid "$WORK/$name.seed.json")" \
        "$(jq -r .auth_token "$WORK/$name.seed.json")" | base64 -w0)"
}

# The three list shapes; GROUP, CONNS, TARGET (or -), LABEL SUFFIX.
run_lists() {
    local group=$1 conns=$2 target=$3 suffix=$4 name=$5
    bench "$group" "list_user$suffix" "GET …/Users/{US}/Bindings (a user's $PER_USER)" "$target" "$conns" \
        rotate "/v2/Services/$IS/Users/{2}/Bindings" "$WORK/$name/bindings.txt"
    bench "$group" "list_identity$suffix" "GET …/Bindings?Identity=user-N (service list, one identity)" "$target" "$conns" \
        rotate "/v2/Services/$IS/Bindings?Identity={3}" "$WORK/$name/bindings.txt"
    bench "$group" "list_service$suffix" "GET …/Bindings?PageSize=50 (service list, first page)" "$target" "$conns" \
        static "/v2/Services/$IS/Bindings?PageSize=50"
}

for BACKEND in "${BACKENDS[@]}"; do
    started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$SECONDS

    # ---- 1,000,000 bindings ----------------------------------------------------------------
    seed_db "$BACKEND" big "$USERS" "$BINDINGS_VIA"
    big_seed=$WORK/big.seed.json
    start_server "big-$BACKEND" "$DB_URL"
    sleep 2
    idle_rss=$(proc_kb VmRSS)
    read -r bs us ident < <(head -1 "$WORK/big/bindings.txt")
    check GET "/v2/Services/$IS/Bindings/$bs"
    check GET "/v2/Services/$IS/Users/$us/Bindings"
    check GET "/v2/Services/$IS/Bindings?Identity=$ident"
    check GET "/v2/Services/$IS/Bindings?PageSize=50"
    check POST "/v2/Services/$IS/Users/user-0/Bindings" \
        "BindingType=fcm&Address=bench-addr-0-0&Endpoint=bench-ep-0-0"

    G=big-$BACKEND
    bench "$G" healthz "GET /healthz" - "$WRK_CONNS" static /healthz
    bench "$G" fetch "GET …/Bindings/{BS} (fetch binding)" 40 "$WRK_CONNS" \
        rotate "/v2/Services/$IS/Bindings/{1}" "$WORK/big/bindings.txt"
    run_lists "$G" "$WRK_CONNS" 15 "" big
    run_lists "$G" "$LATENCY_CONNS" - "_c1" big
    bench "$G" register "POST …/Users/user-N/Bindings (upsert, $(awk -v r="$INSERT_RATIO" 'BEGIN { print (1 - r) * 100 }') % updates)" 5 "$WRK_CONNS" \
        register "/v2/Services/$IS/Users/" "$USERS" "$PER_USER" "$INSERT_RATIO"
    bench "$G" healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
    loaded_rss=$(proc_kb VmRSS)
    anon_rss=$(proc_kb RssAnon)
    file_rss=$(proc_kb RssFile)
    peak_rss=$(proc_kb VmHWM)
    stop_server
    if [[ "$BACKEND" == postgres ]]; then
        rows=$(psql -tA "$DB_URL" -c "select count(*) from bindings")
        drop_pg_db "$DB_URL"
    else
        rows=$(sqlite3 "$WORK/big.db" "select count(*) from bindings" 2>/dev/null || echo "?")
        rm -f "$WORK"/big.db*
    fi

    # ---- 10,000 bindings, same queries ------------------------------------------------------
    seed_db "$BACKEND" small "$SMALL_USERS" "$BINDINGS_VIA_SMALL"
    small_seed=$WORK/small.seed.json
    start_server "small-$BACKEND" "$DB_URL"
    S=small-$BACKEND
    bench "$S" healthz "GET /healthz" - "$WRK_CONNS" static /healthz
    run_lists "$S" "$WRK_CONNS" 15 "" small
    run_lists "$S" "$LATENCY_CONNS" - "_c1" small
    bench "$S" healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
    stop_server
    [[ "$BACKEND" == postgres ]] && drop_pg_db "$DB_URL"

    # ---- report ---------------------------------------------------------------------------------
    mkdir -p "$BENCH_DIR/results"
    out=$BENCH_DIR/results/bindings-$BACKEND.md
    {
        echo "### Bindings bench, $BACKEND — $started_at"
        echo
        echo "* machine: $(machine)"
        echo "* command: \`bench/bindings.sh $BACKEND\` (wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION after a $WRK_WARMUP warm-up; the \`_c1\` rows use 1 connection to show unloaded latency)"
        echo "* data: 1 service, $USERS users, $(jq -r .bindings "$big_seed") bindings ($PER_USER per user) loaded via **$(jq -r .bindings_via "$big_seed")** at $(jq -r '.bindings_per_sec | floor' "$big_seed") bindings/s (users via the store at $(jq -r '.users_per_sec | floor' "$big_seed")/s); $rows rows after the registration run"
        echo "* registration: $(awk -v r="$INSERT_RATIO" 'BEGIN { print r * 100 }') % of requests create a binding (new endpoint and address), the rest refresh one of the seeded ones; random user out of $USERS"
        echo
        echo "#### 1,000,000 bindings"
        echo
        table "$G"
        echo
        echo "| memory | value |"
        echo "| --- | ---: |"
        echo "| idle RSS (VmRSS, 2 s after start) | $(mb "$idle_rss") MB |"
        echo "| RSS after the runs (VmRSS) | $(mb "$loaded_rss") MB |"
        echo "| … of which private memory (RssAnon) / mapped files (RssFile: binary, SQLite pages read through mmap) | $(mb "$anon_rss") / $(mb "$file_rss") MB |"
        echo "| peak RSS (VmHWM) | $(mb "$peak_rss") MB |"
        echo
        echo "#### 10,000 bindings ($SMALL_USERS users × $PER_USER, loaded via **$(jq -r .bindings_via "$small_seed")** at $(jq -r '.bindings_per_sec | floor' "$small_seed") bindings/s)"
        echo
        table "$S"
        echo
        echo "#### List latency p50, 10,000 vs 1,000,000 rows (target: 1M within 1.5× of 10k)"
        echo
        echo "| list | conns | p50 at 10k (ms) | p50 at 1M (ms) | 1M / 10k | met |"
        echo "| --- | ---: | ---: | ---: | ---: | --- |"
        for l in list_user list_identity list_service list_user_c1 list_identity_c1 list_service_c1; do
            a=$(p50_ms "$S" "$l")
            b=$(p50_ms "$G" "$l")
            c=$([[ "$l" == *_c1 ]] && echo 1 || echo "$WRK_CONNS")
            awk -v l="$l" -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
                r = b / a; printf "| %s | %d | %.2f | %.2f | %.2f× | %s |\n", l, c, a, b, r, (r <= 1.5) ? "yes" : "**NO**" }'
        done
        echo
        echo "Total time for this backend: $((SECONDS - t0)) s."
    } >"$out"
    cat "$out"
done
