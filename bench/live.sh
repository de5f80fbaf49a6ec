#!/usr/bin/env bash
# Live-client bench (issue 13 item 9): twilsock sockets against one release `parley serve`,
# driven by `parley-bench-live` (bench/live: a load client that speaks twilsock itself, not the
# SDK, and signs its own Access Tokens with the seeded API key).
#
#   bench/live.sh [sqlite|postgres]        (default sqlite)
#
# Against a fresh database (parley-bench-seed: account, API key, service), on one server:
#  1. idle: IDLE_N (10,000) sockets past `init` (distinct identities), held; the server's VmRSS
#     before and after → MB total and KB per connection. Target: 10,000 in ≤ 200 MB RSS.
#  2. fan-out: FANOUT_N (1,000) member identities of one channel (added over REST), each socket
#     subscribed to the channel's messages list (GET /v3/Lists/{CH}.messages, POST
#     /v4/Subscriptions establish); FANOUT_MESSAGES (20) messages posted over REST, one every
#     FANOUT_INTERVAL_MS (500); per socket and message the delay from the send to the
#     `list_item_added` notification → p50/p99/max. Target p99 < 250 ms (SQLite).
#  3. end to end: one socket sends `POST /Client/v1/Conversations/{CH}/Messages` pipelined up to
#     E2E_INFLIGHT (32, the server's default in-flight limit), another subscribed socket receives;
#     messages/s received over E2E_SECS (10) after E2E_WARMUP (2) → msgs/s and ratio to /healthz.
#     Target ≥ 2,000 msgs/s (SQLite).
#  4. reconnect: RECONNECT_N (1,000) member sockets subscribed to one channel's messages list,
#     each tracking its `last_event_id`; RECONNECT_BEFORE (half of RECONNECT_MESSAGES, 20)
#     messages are posted to node 1 and, not awaited, node 1 is restarted (SIGTERM: its sockets
#     get twilsock `close` 308; started again on the same port); the other messages are posted
#     through a live node meanwhile (node 2; with one node, node 1 once it answers again, while
#     the sockets wait out their backoff). Each socket reconnects like twilsock (the 308's
#     `reconnect_min_ms` ±20 %, doubling after a failed attempt), inits, re-establishes with its
#     `last_event_id` and counts replayed and live events. Figures: time from the SIGTERM until
#     every socket is back and holds every message (exactly once: duplicates and missing are
#     counted), how many got the 308. Target: 1,000 back and caught up within 10 s.
# /healthz (wrk) before and after, as the other scripts do (against node 1; the reconnect phase
# runs after the second). Writes bench/results/live-<backend>.md (also printed). Knobs: see
# bench/lib.sh and above; the open-file limit is raised to the hard limit (the server and the
# client each need > IDLE_N descriptors).
#
#   NODES=2 bench/live.sh postgres         (two nodes on one database; PostgreSQL only)
#
# starts NODES release `parley serve` nodes on one fresh database (same PARLEY_SECRET_KEY,
# different ports). Idle runs against node 1 alone. Fan-out, end to end and reconnect spread their
# sockets round-robin over the nodes (socket i on node i mod NODES) and post over REST to node 1:
# fan-out reports deliveries to sockets on node 1 (same node) and on the others (cross node)
# separately (target cross-node p99 < 500 ms); end to end sends on node 1 and receives on node 2.
# Writes bench/results/live-postgres-<NODES>nodes.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKEND=${1:-sqlite}
IDLE_N=${IDLE_N:-10000}
FANOUT_N=${FANOUT_N:-1000}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-20}
FANOUT_INTERVAL_MS=${FANOUT_INTERVAL_MS:-500}
E2E_INFLIGHT=${E2E_INFLIGHT:-32}
E2E_SECS=${E2E_SECS:-10}
E2E_WARMUP=${E2E_WARMUP:-2}
RECONNECT_N=${RECONNECT_N:-1000}
RECONNECT_MESSAGES=${RECONNECT_MESSAGES:-20}
RECONNECT_BEFORE=${RECONNECT_BEFORE:-$((RECONNECT_MESSAGES / 2))}
NODES=${NODES:-1}
EXTRA_PIDS=()
trap 'rc=$?; set +e; for p in "${EXTRA_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; (exit $rc); cleanup' EXIT
LIVE=$TARGET_DIR/release/parley-bench-live
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS

if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$PARLEY" && -x "$SEED" && -x "$LIVE" ]]; then
    log "BENCH_SKIP_BUILD=1: using the release binaries as they are"
else
    log "cargo build --release -p parley-server -p parley-bench-seed -p parley-bench-live"
    (cd "$ROOT" && cargo build --release -p parley-server -p parley-bench-seed -p parley-bench-live)
fi
ensure_tools

ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > IDLE_N + 256 )) || die "open-file limit $(ulimit -n) too low for IDLE_N=$IDLE_N"
export PARLEY_MAX_CONNECTIONS=$(( $(ulimit -n) - 128 ))
PARLEY_SECRET_KEY=$(openssl rand -hex 32)
export PARLEY_SECRET_KEY
case "$BACKEND" in
    sqlite) DB_URL="sqlite://$WORK/live.db" ;;
    postgres) DB_URL=$(new_pg_db) ;;
    *) die "backend must be sqlite or postgres" ;;
esac
(( NODES >= 1 )) || die "NODES must be at least 1"
(( NODES == 1 )) || [[ "$BACKEND" == postgres ]] || die "NODES > 1 needs the postgres backend"

"$SEED" platform --database-url "$DB_URL" --users 10 --sample 10 --out-dir "$WORK/seed" >"$WORK/seed.json"
j() { jq -r ".$1" "$WORK/seed.json"; }
IS=$(j service_sid)
AUTH="Authorization: Basic $(printf '%s:%s' "$(j account_sid)" "$(j auth_token)" | base64 -w0)"
start_server "live-$BACKEND" "$DB_URL"
NODE1_PID=$SERVER_PID
NODE1_BASE=$BASE
BASES=$BASE
for i in $(seq 2 "$NODES"); do
    start_server "live-$BACKEND-node$i" "$DB_URL"
    EXTRA_PIDS+=("$SERVER_PID")
    BASES+=",$BASE"
done
SERVER_PID=$NODE1_PID
BASE=$NODE1_BASE
LIVE_ARGS=(--account "$(j account_sid)" --auth-token "$(j auth_token)"
    --key-sid "$(j api_key_sid)" --key-secret "$(j api_key_secret)" --service "$IS")

G=live-$BACKEND
bench "$G" healthz "GET /healthz" - "$WRK_CONNS" static /healthz

log "idle: $IDLE_N sockets"
"$LIVE" "${LIVE_ARGS[@]}" --base "$BASE" idle --n "$IDLE_N" --server-pid "$SERVER_PID" >"$WORK/idle.json"
log "idle: $(cat "$WORK/idle.json")"
sleep 2

log "fan-out: $FANOUT_N subscribed sockets, $FANOUT_MESSAGES messages"
"$LIVE" "${LIVE_ARGS[@]}" --base "$BASES" fanout --n "$FANOUT_N" --messages "$FANOUT_MESSAGES" \
    --interval-ms "$FANOUT_INTERVAL_MS" >"$WORK/fanout.json"
log "fan-out: $(jq -c 'del(.per_message)' "$WORK/fanout.json")"
sleep 2

log "end to end: ${E2E_SECS}s"
"$LIVE" "${LIVE_ARGS[@]}" --base "$BASES" e2e --inflight "$E2E_INFLIGHT" --warmup-secs "$E2E_WARMUP" \
    --duration-secs "$E2E_SECS" >"$WORK/e2e.json"
log "e2e: $(cat "$WORK/e2e.json")"

bench "$G" healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
peak_rss=$(proc_kb VmHWM)
sleep 2

# The client creates $RC when its sockets are subscribed; the script then restarts node 1 on the
# same port: $RC.sigterm (µs since the epoch) just before the SIGTERM, $RC.up once it answers.
log "reconnect: $RECONNECT_N subscribed sockets, node 1 restarted, $RECONNECT_MESSAGES messages"
RC=$WORK/reconnect.ready
"$LIVE" "${LIVE_ARGS[@]}" --base "$BASES" reconnect --n "$RECONNECT_N" \
    --messages "$RECONNECT_MESSAGES" --before "$RECONNECT_BEFORE" --ready-file "$RC" \
    >"$WORK/reconnect.json" &
rc_pid=$!
EXTRA_PIDS+=("$rc_pid")
while [[ ! -s "$RC" ]]; do
    kill -0 "$rc_pid" 2>/dev/null || { wait "$rc_pid" || true; die "the reconnect client exited early"; }
    sleep 0.02
done
listen=${BASE#http://}
date +%s%6N >"$RC.sigterm.tmp" && mv "$RC.sigterm.tmp" "$RC.sigterm"
t_term=$(date +%s%N)
stop_server
t_exit=$(date +%s%N)
start_server "live-$BACKEND-restarted" "$DB_URL" "$listen"
date +%s%6N >"$RC.up.tmp" && mv "$RC.up.tmp" "$RC.up"
t_up=$(date +%s%N)
stop_ms=$(( (t_exit - t_term) / 1000000 ))
start_ms=$(( (t_up - t_exit) / 1000000 ))
log "reconnect: node 1 exited $stop_ms ms after SIGTERM, answered again $start_ms ms later"
wait "$rc_pid" || die "the reconnect client failed"
log "reconnect: $(cat "$WORK/reconnect.json")"
stop_server

h1=$(jq -r .rps "$WORK/$G.healthz.json")
h2=$(jq -r .rps "$WORK/$G.healthz_after.json")
mkdir -p "$BENCH_DIR/results"
out=$BENCH_DIR/results/live-$BACKEND.md
(( NODES > 1 )) && out=$BENCH_DIR/results/live-$BACKEND-${NODES}nodes.md
mode="\`bench/live.sh $BACKEND\`"
(( NODES > 1 )) && mode="\`NODES=$NODES bench/live.sh $BACKEND\`"
{
    echo "### Live-client bench, $BACKEND — $started_at"
    echo
    echo "* machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "* command: $mode (IDLE_N=$IDLE_N FANOUT_N=$FANOUT_N FANOUT_MESSAGES=$FANOUT_MESSAGES FANOUT_INTERVAL_MS=$FANOUT_INTERVAL_MS E2E_INFLIGHT=$E2E_INFLIGHT E2E_SECS=$E2E_SECS RECONNECT_N=$RECONNECT_N RECONNECT_MESSAGES=$RECONNECT_MESSAGES RECONNECT_BEFORE=$RECONNECT_BEFORE; /healthz: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION); client: \`parley-bench-live\` on the same machine"
    if (( NODES > 1 )); then
        echo "* $NODES \`parley serve\` nodes on one database (same PARLEY_SECRET_KEY, ports of $BASES); idle and /healthz against node 1; fan-out, end to end and reconnect sockets round-robin over the nodes, REST posts to node 1"
    fi
    echo
    echo "| measurement | figures | ratio / per unit | target | met |"
    echo "| --- | --- | --- | --- | --- |"
    jq -r '"| \(.connections) idle sockets past init | RSS \(.rss_before_mb * 10 | round / 10) MB before, **\(.rss_after_mb * 10 | round / 10) MB** with them open (\(.still_open) still open; opened in \(.connect_secs * 10 | round / 10) s) | \((.kb_per_connection * 10 | round) / 10) KB per connection | ≤ 200 MB for 10,000 | \(if .rss_after_mb <= 200 and .still_open == .connections then "yes" else "**NO**" end) |"' "$WORK/idle.json"
    if (( NODES > 1 )); then
        jq -r '"| fan-out of \(.messages) messages to \(.sockets) subscribed sockets on \(.nodes) nodes, posted to node 1 (all deliveries) | \(.deliveries) of \(.expected_deliveries) deliveries; p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms | | | |"' "$WORK/fanout.json"
        jq -r '.same_node | "| … to the sockets on node 1 (same node) | \(.deliveries) of \(.expected_deliveries) deliveries; p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, **p99 \(.p99_ms) ms**, max \(.max_ms) ms | p99 ÷ target = \((.p99_ms / 250 * 1000 | round) / 10) % | p99 < 250 ms | \(if .p99_ms < 250 and .deliveries == .expected_deliveries then "yes" else "**NO**" end) |"' "$WORK/fanout.json"
        jq -r '.cross_node | "| … to the sockets on the other node(s) (cross node) | \(.deliveries) of \(.expected_deliveries) deliveries; p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, **p99 \(.p99_ms) ms**, max \(.max_ms) ms | p99 ÷ target = \((.p99_ms / 500 * 1000 | round) / 10) % | p99 < 500 ms | \(if .p99_ms < 500 and .deliveries == .expected_deliveries then "yes" else "**NO**" end) |"' "$WORK/fanout.json"
    else
        jq -r '"| fan-out of \(.messages) messages to \(.sockets) subscribed sockets | \(.deliveries) of \(.expected_deliveries) deliveries; p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, **p99 \(.p99_ms) ms**, max \(.max_ms) ms | p99 ÷ target = \((.p99_ms / 250 * 1000 | round) / 10) % | p99 < 250 ms | \(if .p99_ms < 250 and .deliveries == .expected_deliveries then "yes" else "**NO**" end) |"' "$WORK/fanout.json"
    fi
    jq -r --argjson h "$(awk -v a="$h1" -v b="$h2" 'BEGIN { print (a + b) / 2 }')" '"| end to end, 1 sender (\(.inflight) in flight) on node \(.sender_node) → 1 subscribed receiver on node \(.receiver_node) | **\(.received_per_sec | floor) msgs/s** received over \(.window_secs * 10 | round / 10) s (sent 201: \(.sent_ok_per_sec | floor)/s; mean delivery \((.mean_delivery_ms * 10 | round) / 10) ms; non-201 replies \(.replies_not_201), refused by the transport \(.replies_refused // 0); received \(.received_total) of \(.replies_201)) | \((.received_per_sec / $h * 1000 | round) / 10) % of /healthz | ≥ 2,000 msgs/s | \(if .received_per_sec >= 2000 then "yes" else "**NO**" end) |"' "$WORK/e2e.json"
    jq -r --arg stop "$stop_ms" --arg start "$start_ms" '"| reconnect: \(.clients) subscribed sockets (\(.clients_on_restarted_node) on node 1), node 1 restarted (SIGTERM, started again on its port); \(.messages) messages (\(.posted_before) posted just before, \(.posted_during) during the restart via node \(.posted_during_via_node)) | \(if .all_caught_up then "**all back and caught up \(.all_caught_up_ms / 100 | round / 10) s after the SIGTERM**" else "**only \(.caught_up) of \(.clients) caught up**" end) (caught up p50 \(.caught_up_p50_ms / 100 | round / 10) s, p99 \(.caught_up_p99_ms / 100 | round / 10) s; init accepted again p50 \(.init_p50_ms / 100 | round / 10) s, p99 \(.init_p99_ms / 100 | round / 10) s; re-established p50 \(.back_p50_ms / 100 | round / 10) s, p99 \(.back_p99_ms / 100 | round / 10) s, max \(.back_max_ms / 100 | round / 10) s); **\(.got_308) got 308** (other endings \(.other_endings)); \(.reconnects) reconnects, \(.failed_attempts) failed attempts; node 1 exited \($stop) ms after the SIGTERM and answered again \($start) ms later; events replayed \(.replayed_events), live \(.live_events), interrupted \(.interrupted); **duplicates \(.duplicates)** (\(.clients_with_duplicates) sockets), **missing \(.missing)** (\(.clients_missing) sockets)\(if (.errors | length) > 0 then "; errors: \(.errors | join("; "))" else "" end) | \(if .all_caught_up then "time ÷ target = \((.all_caught_up_ms / 10000 * 1000 | round) / 10) %" else "" end) | 1,000 back and caught up ≤ 10 s, every message exactly once | \(if .all_caught_up and .all_caught_up_ms <= 10000 and .duplicates == 0 and .missing == 0 then "yes" else "**NO**" end) |"' "$WORK/reconnect.json"
    echo
    echo "/healthz: $(printf '%.0f' "$h1") req/s before, $(printf '%.0f' "$h2") req/s after (ratios use the mean). Server peak RSS (VmHWM): $(mb "$peak_rss") MB. Setup: $FANOUT_N members added over REST in $(jq -r '.members_secs * 10 | round / 10' "$WORK/fanout.json") s, sockets opened in $(jq -r '.connect_secs * 10 | round / 10' "$WORK/fanout.json") s, subscribed in $(jq -r '.subscribe_secs * 10 | round / 10' "$WORK/fanout.json") s. Fan-out per message (received, max ms): $(jq -r '[.per_message[] | "\(.received)/\(.max_ms)"] | join(", ")' "$WORK/fanout.json"). Total $((SECONDS - t0)) s."
} >"$out"
cat "$out"
