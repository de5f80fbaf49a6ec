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
# /healthz (wrk) before and after, as the other scripts do. Writes bench/results/live-<backend>.md
# (also printed). Knobs: see bench/lib.sh and above; the open-file limit is raised to the hard
# limit (the server and the client each need > IDLE_N descriptors).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKEND=${1:-sqlite}
IDLE_N=${IDLE_N:-10000}
FANOUT_N=${FANOUT_N:-1000}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-20}
FANOUT_INTERVAL_MS=${FANOUT_INTERVAL_MS:-500}
E2E_INFLIGHT=${E2E_INFLIGHT:-32}
E2E_SECS=${E2E_SECS:-10}
E2E_WARMUP=${E2E_WARMUP:-2}
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

"$SEED" platform --database-url "$DB_URL" --users 10 --sample 10 --out-dir "$WORK/seed" >"$WORK/seed.json"
j() { jq -r ".$1" "$WORK/seed.json"; }
IS=$(j service_sid)
AUTH="Authorization: Basic $(printf '%s:%s' "$(j account_sid)" "$(j auth_token)" | base64 -w0)"
start_server "live-$BACKEND" "$DB_URL"
LIVE_ARGS=(--base "$BASE" --account "$(j account_sid)" --auth-token "$(j auth_token)"
    --key-sid "$(j api_key_sid)" --key-secret "$(j api_key_secret)" --service "$IS")

G=live-$BACKEND
bench "$G" healthz "GET /healthz" - "$WRK_CONNS" static /healthz

log "idle: $IDLE_N sockets"
"$LIVE" "${LIVE_ARGS[@]}" idle --n "$IDLE_N" --server-pid "$SERVER_PID" >"$WORK/idle.json"
log "idle: $(cat "$WORK/idle.json")"
sleep 2

log "fan-out: $FANOUT_N subscribed sockets, $FANOUT_MESSAGES messages"
"$LIVE" "${LIVE_ARGS[@]}" fanout --n "$FANOUT_N" --messages "$FANOUT_MESSAGES" \
    --interval-ms "$FANOUT_INTERVAL_MS" >"$WORK/fanout.json"
log "fan-out: $(jq -c 'del(.per_message)' "$WORK/fanout.json")"
sleep 2

log "end to end: ${E2E_SECS}s"
"$LIVE" "${LIVE_ARGS[@]}" e2e --inflight "$E2E_INFLIGHT" --warmup-secs "$E2E_WARMUP" \
    --duration-secs "$E2E_SECS" >"$WORK/e2e.json"
log "e2e: $(cat "$WORK/e2e.json")"

bench "$G" healthz_after "GET /healthz (again)" - "$WRK_CONNS" static /healthz
peak_rss=$(proc_kb VmHWM)
stop_server

h1=$(jq -r .rps "$WORK/$G.healthz.json")
h2=$(jq -r .rps "$WORK/$G.healthz_after.json")
mkdir -p "$BENCH_DIR/results"
out=$BENCH_DIR/results/live-$BACKEND.md
{
    echo "### Live-client bench, $BACKEND — $started_at"
    echo
    echo "* machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "* command: \`bench/live.sh $BACKEND\` (IDLE_N=$IDLE_N FANOUT_N=$FANOUT_N FANOUT_MESSAGES=$FANOUT_MESSAGES FANOUT_INTERVAL_MS=$FANOUT_INTERVAL_MS E2E_INFLIGHT=$E2E_INFLIGHT E2E_SECS=$E2E_SECS; /healthz: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION); client: \`parley-bench-live\` on the same machine"
    echo
    echo "| measurement | figures | ratio / per unit | target | met |"
    echo "| --- | --- | --- | --- | --- |"
    jq -r '"| \(.connections) idle sockets past init | RSS \(.rss_before_mb * 10 | round / 10) MB before, **\(.rss_after_mb * 10 | round / 10) MB** with them open (\(.still_open) still open; opened in \(.connect_secs * 10 | round / 10) s) | \((.kb_per_connection * 10 | round) / 10) KB per connection | ≤ 200 MB for 10,000 | \(if .rss_after_mb <= 200 and .still_open == .connections then "yes" else "**NO**" end) |"' "$WORK/idle.json"
    jq -r '"| fan-out of \(.messages) messages to \(.sockets) subscribed sockets | \(.deliveries) of \(.expected_deliveries) deliveries; p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, **p99 \(.p99_ms) ms**, max \(.max_ms) ms | p99 ÷ target = \((.p99_ms / 250 * 1000 | round) / 10) % | p99 < 250 ms | \(if .p99_ms < 250 and .deliveries == .expected_deliveries then "yes" else "**NO**" end) |"' "$WORK/fanout.json"
    jq -r --argjson h "$(awk -v a="$h1" -v b="$h2" 'BEGIN { print (a + b) / 2 }')" '"| end to end, 1 sender (\(.inflight) in flight) → 1 subscribed receiver | **\(.received_per_sec | floor) msgs/s** received over \(.window_secs * 10 | round / 10) s (sent 201: \(.sent_ok_per_sec | floor)/s; mean delivery \((.mean_delivery_ms * 10 | round) / 10) ms; non-201 replies \(.replies_not_201); received \(.received_total) of \(.replies_201)) | \((.received_per_sec / $h * 1000 | round) / 10) % of /healthz | ≥ 2,000 msgs/s | \(if .received_per_sec >= 2000 then "yes" else "**NO**" end) |"' "$WORK/e2e.json"
    echo
    echo "/healthz: $(printf '%.0f' "$h1") req/s before, $(printf '%.0f' "$h2") req/s after (ratios use the mean). Server peak RSS (VmHWM): $(mb "$peak_rss") MB. Setup: $FANOUT_N members added over REST in $(jq -r '.members_secs * 10 | round / 10' "$WORK/fanout.json") s, sockets opened in $(jq -r '.connect_secs * 10 | round / 10' "$WORK/fanout.json") s, subscribed in $(jq -r '.subscribe_secs * 10 | round / 10' "$WORK/fanout.json") s. Fan-out per message (received, max ms): $(jq -r '[.per_message[] | "\(.received)/\(.max_ms)"] | join(", ")' "$WORK/fanout.json"). Total $((SECONDS - t0)) s."
} >"$out"
cat "$out"
