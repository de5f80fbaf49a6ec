#!/usr/bin/env bash
# Chat bench: message posting and message listing, on SQLite and on PostgreSQL.
#
#   bench/chat.sh [sqlite] [postgres]        (default: both)
#
# Per backend, against a fresh database (PostgreSQL: createdb, dropped at the end):
#  1. posting: wrk -c64 (bench/lua/post.lua, form bodies `Body=…&From=bench`) into ONE channel,
#     then spread over 1,000 channels (a random one per request); messages/s and the ratio to
#     /healthz against the same server;
#  2. integrity of the one-channel run, straight from the database: messages rows == distinct
#     indexes == channels.messages_count == next_message_index == max(index) + 1, min index 0,
#     last_message_index == max(index), and rows >= requests wrk counted (warm-up + measured);
#  3. listing: `GET …/Messages?Order=desc&PageSize=50` (newest end) on a channel with
#     1,000,000 messages vs one with 1,000, ratio to /healthz. The two channels are created over
#     HTTP; their messages are bulk-inserted with SQL into the real `messages` table (SQLite:
#     recursive CTE; PostgreSQL: generate_series) with the server stopped, and the channel's
#     messages_count / next_message_index / last_message_sid / last_message_index set to match.
#     No `new_message` events or push outbox rows are written for seeded messages.
#
# Writes bench/results/chat-<backend>.md (also printed). Knobs: see bench/lib.sh;
# POST_CONNS=64, BIG=1000000, SMALL=1000, SPREAD=1000.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKENDS=("$@")
[[ ${#BACKENDS[@]} -gt 0 ]] || BACKENDS=(sqlite postgres)
POST_CONNS=${POST_CONNS:-64}
BIG=${BIG:-1000000}
SMALL=${SMALL:-1000}
SPREAD=${SPREAD:-1000}
POST_LUA=$BENCH_DIR/lua/post.lua

if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$PARLEY" && -x "$SEED" ]]; then
    log "BENCH_SKIP_BUILD=1: using $PARLEY and $SEED as they are"
else
    log "cargo build --release -p parley-server -p parley-fakes -p parley-bench-seed"
    (cd "$ROOT" && cargo build --release -p parley-server -p parley-fakes -p parley-bench-seed)
fi
ensure_tools
PARLEY_SECRET_KEY=$(openssl rand -hex 32)
export PARLEY_SECRET_KEY

# sql BACKEND DB_URL STATEMENTS: run SQL against the scratch database, tab-separated output.
sql() {
    if [[ "$1" == sqlite ]]; then
        sqlite3 -separator $'\t' "${2#sqlite://}" "$3"
    else
        psql -qtA -F $'\t' -v ON_ERROR_STOP=1 "$2" -c "$3"
    fi
}

# create_channels N FILE: N channels over HTTP (one curl, one connection), SIDs to FILE.
create_channels() {
    local n=$1 file=$2 urls=()
    for _ in $(seq 1 "$n"); do urls+=("$BASE/v2/Services/$IS/Channels"); done
    curl -fsS -H "$AUTH" -d "FriendlyName=bench" "${urls[@]}" | jq -r .sid >"$file"
    [[ $(wc -l <"$file") == "$n" ]] || die "created $(wc -l <"$file") channels, wanted $n"
}

# bulk_messages BACKEND DB_URL CHANNEL N TAG: N messages with indexes 0…N-1 into CHANNEL.
bulk_messages() {
    local backend=$1 url=$2 ch=$3 n=$4 tag=$5
    local now
    now=$(( $(date +%s) * 1000000 - n ))
    if [[ "$backend" == sqlite ]]; then
        sql sqlite "$url" "
            pragma journal_mode = wal;
            begin;
            with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < $n)
            insert into messages (sid, account_sid, service_sid, channel_sid, msg_index, msg_from,
                                  body, attributes, last_updated_by, was_edited, date_created,
                                  date_updated)
            select printf('IM%08x%024x', $tag, i), c.account_sid, c.service_sid, c.sid, i, 'bench',
                   'seeded message ' || i, null, null, 0, $now + i, $now + i
            from s, channels c where c.sid = '$ch';
            update channels set messages_count = $n, next_message_index = $n,
                   last_message_index = $n - 1,
                   last_message_sid = printf('IM%08x%024x', $tag, $n - 1),
                   date_updated = $now + $n - 1
             where sid = '$ch';
            commit;" >/dev/null
    else
        sql postgres "$url" "
            begin;
            insert into messages (sid, account_sid, service_sid, channel_sid, msg_index, msg_from,
                                  body, attributes, last_updated_by, was_edited, date_created,
                                  date_updated)
            select 'IM' || lpad(to_hex($tag), 8, '0') || lpad(to_hex(i), 24, '0'),
                   c.account_sid, c.service_sid, c.sid, i, 'bench', 'seeded message ' || i,
                   null, null, false, $now + i, $now + i
            from generate_series(0, $n - 1) i, channels c where c.sid = '$ch';
            update channels set messages_count = $n, next_message_index = $n,
                   last_message_index = $n - 1,
                   last_message_sid = 'IM' || lpad(to_hex($tag), 8, '0') || lpad(to_hex($n - 1), 24, '0'),
                   date_updated = $now + $n - 1
             where sid = '$ch';
            commit;
            analyze messages; analyze channels;" >/dev/null
    fi
}

for BACKEND in "${BACKENDS[@]}"; do
    started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$SECONDS
    case "$BACKEND" in
        sqlite) DB_URL="sqlite://$WORK/chat.db" ;;
        postgres) DB_URL=$(new_pg_db) ;;
        *) die "backend must be sqlite or postgres" ;;
    esac
    log "seeding account + service ($BACKEND)"
    "$SEED" platform --database-url "$DB_URL" --users 10 --sample 10 --out-dir "$WORK/chat-seed" \
        >"$WORK/chat.seed.json"
    IS=$(jq -r .service_sid "$WORK/chat.seed.json")
    AUTH="Authorization: Basic $(printf '%s:%s' "$(jq -r .account_sid "$WORK/chat.seed.json")" \
        "$(jq -r .auth_token "$WORK/chat.seed.json")" | base64 -w0)"

    # ---- posting ----------------------------------------------------------------------------
    start_server "chat-post-$BACKEND" "$DB_URL"
    create_channels 1 "$WORK/one.txt"
    create_channels "$SPREAD" "$WORK/spread.txt"
    create_channels 2 "$WORK/list.txt"
    ONE=$(cat "$WORK/one.txt")
    check POST "/v2/Services/$IS/Channels/$(head -1 "$WORK/spread.txt")/Messages" "Body=hello"

    P=post-$BACKEND
    bench "$P" healthz "GET /healthz" - "$POST_CONNS" static /healthz
    LUA=$POST_LUA bench "$P" post_one "POST …/Channels/{CH}/Messages, ONE channel" - "$POST_CONNS" \
        "$IS" "$WORK/one.txt"
    LUA=$POST_LUA bench "$P" post_spread "POST …/Channels/{CH}/Messages, $SPREAD channels" - "$POST_CONNS" \
        "$IS" "$WORK/spread.txt"
    bench "$P" healthz_after "GET /healthz (again)" - "$POST_CONNS" static /healthz
    post_peak_rss=$(proc_kb VmHWM)
    api_count=$(curl -fsS -H "$AUTH" "$BASE/v2/Services/$IS/Channels/$ONE" | jq -r .messages_count)
    stop_server

    # integrity of the one-channel run
    IFS=$'\t' read -r rows distinct min_i max_i count next last_i < <(sql "$BACKEND" "$DB_URL" "
        select (select count(*) from messages where channel_sid = '$ONE'),
               (select count(distinct msg_index) from messages where channel_sid = '$ONE'),
               (select min(msg_index) from messages where channel_sid = '$ONE'),
               (select max(msg_index) from messages where channel_sid = '$ONE'),
               messages_count, next_message_index, last_message_index
          from channels where sid = '$ONE'")
    posted_ok=$(jq -r '.requests - .err_status' "$WORK/$P.post_one.json")
    integrity=yes
    [[ "$rows" == "$distinct" && "$rows" == "$count" && "$rows" == "$next" && "$min_i" == 0 \
        && "$max_i" == $((rows - 1)) && "$last_i" == "$max_i" && "$api_count" == "$rows" \
        && "$rows" -ge "$posted_ok" ]] || integrity="**NO**"
    log "one channel: rows=$rows distinct=$distinct min=$min_i max=$max_i messages_count=$count next=$next last=$last_i api=$api_count wrk_ok=$posted_ok -> $integrity"

    # ---- listing: 1,000,000 vs 1,000 messages --------------------------------------------------
    BIGCH=$(sed -n 1p "$WORK/list.txt")
    SMALLCH=$(sed -n 2p "$WORK/list.txt")
    log "bulk-inserting $BIG messages into $BIGCH and $SMALL into $SMALLCH ($BACKEND, SQL)"
    s0=$(date +%s.%N)
    bulk_messages "$BACKEND" "$DB_URL" "$BIGCH" "$BIG" 1
    bulk_messages "$BACKEND" "$DB_URL" "$SMALLCH" "$SMALL" 2
    seed_secs=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    start_server "chat-list-$BACKEND" "$DB_URL"
    big_count=$(curl -fsS -H "$AUTH" "$BASE/v2/Services/$IS/Channels/$BIGCH" | jq -r .messages_count)
    first_idx=$(curl -fsS -H "$AUTH" "$BASE/v2/Services/$IS/Channels/$BIGCH/Messages?Order=desc&PageSize=50" \
        | jq -r '.messages[0].index')
    [[ "$first_idx" == $((BIG - 1)) ]] || die "newest index of the big channel is $first_idx"
    L=list-$BACKEND
    bench "$L" healthz "GET /healthz" - "$WRK_CONNS" static /healthz
    bench "$L" list_small "GET …/Messages?Order=desc&PageSize=50, $SMALL messages" - "$WRK_CONNS" \
        static "/v2/Services/$IS/Channels/$SMALLCH/Messages?Order=desc&PageSize=50"
    bench "$L" list_big "GET …/Messages?Order=desc&PageSize=50, $BIG messages" - "$WRK_CONNS" \
        static "/v2/Services/$IS/Channels/$BIGCH/Messages?Order=desc&PageSize=50"
    bench "$L" list_small_c1 "same, $SMALL messages, 1 connection" - 1 \
        static "/v2/Services/$IS/Channels/$SMALLCH/Messages?Order=desc&PageSize=50"
    bench "$L" list_big_c1 "same, $BIG messages, 1 connection" - 1 \
        static "/v2/Services/$IS/Channels/$BIGCH/Messages?Order=desc&PageSize=50"
    bench "$L" healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
    list_peak_rss=$(proc_kb VmHWM)
    stop_server
    [[ "$BACKEND" == postgres ]] && drop_pg_db "$DB_URL"
    rm -f "$WORK"/chat.db*

    # ---- report ---------------------------------------------------------------------------------
    rps() { jq -r '.rps' "$WORK/$1.$2.json"; }
    mkdir -p "$BENCH_DIR/results"
    out=$BENCH_DIR/results/chat-$BACKEND.md
    {
        echo "### Chat bench, $BACKEND — $started_at"
        echo
        echo "* machine: $(machine)"
        echo "* command: \`bench/chat.sh $BACKEND\` (posting: wrk -t$WRK_THREADS -c$POST_CONNS -d$WRK_DURATION after a $WRK_WARMUP warm-up, \`bench/lua/post.lua\`; listing: -c$WRK_CONNS and -c1)"
        echo "* listing data: $BIG and $SMALL messages bulk-inserted with SQL (server stopped) in $seed_secs s; API reports messages_count $big_count for the big channel"
        echo
        echo "#### Posting"
        echo
        table "$P"
        echo
        echo "#### Listing"
        echo
        table "$L"
        echo
        echo "#### Targets"
        echo
        echo "| check | value | target | met |"
        echo "| --- | ---: | --- | --- |"
        awk -v r="$(rps "$P" post_one)" -v b="$BACKEND" 'BEGIN {
            printf "| posting, one channel, %s | %.0f msg/s | ≥ 2,000 msg/s (SQLite) | %s |\n", b, r,
                (b != "sqlite") ? "(no target)" : (r >= 2000 ? "yes" : "**NO**") }'
        awk -v r="$(rps "$P" post_spread)" -v n="$SPREAD" 'BEGIN { printf "| posting, %d channels | %.0f msg/s | | |\n", n, r }'
        echo "| one channel: rows / distinct indexes / messages_count / next_message_index / min..max / last_message_index / API messages_count / 2xx posts wrk saw (measured run) | $rows / $distinct / $count / $next / $min_i..$max_i / $last_i / $api_count / $posted_ok | no gaps, no duplicates | $integrity |"
        for s in "" _c1; do
            awk -v a="$(rps "$L" "list_small$s")" -v b="$(rps "$L" "list_big$s")" -v s="$s" \
                -v pa="$(p50_ms "$L" "list_small$s")" -v pb="$(p50_ms "$L" "list_big$s")" 'BEGIN {
                r = a / b; printf "| list newest page%s: 1k %.0f req/s (p50 %.2f ms) vs 1M %.0f req/s (p50 %.2f ms) | 1k/1M = %.2f× | 1M within 1.5× of 1k | %s |\n",
                    (s == "" ? "" : " (1 conn)"), a, pa, b, pb, r, (r <= 1.5) ? "yes" : "**NO**" }'
        done
        echo "| peak RSS (VmHWM), posting server / listing server | $(mb "$post_peak_rss") MB / $(mb "$list_peak_rss") MB | | |"
        echo
        echo "Total time for this backend: $((SECONDS - t0)) s."
    } >"$out"
    cat "$out"
    RESULT_ROWS=()
done
