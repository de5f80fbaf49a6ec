#!/usr/bin/env bash
# Webhook bench: message posting with post-event webhooks off and on, and the webhook calls a
# local receiver gets while messages are posted at full speed.
#
#   bench/webhooks.sh [sqlite] [postgres]        (default: both)
#
# Per backend, against a fresh database:
#  1. a webhook receiver (`parley-fakes --webhook-sink-listen`, release build: 200 to every call,
#     counts them) on a free port; one service, SPREAD channels created over HTTP;
#  2. posting with wrk -c$POST_CONNS (bench/lua/post.lua, every request with
#     `X-Twilio-Webhook-Enabled: true`, a random channel per request), three runs on the same
#     server: webhooks OFF (the service has no PostWebhookUrl), ON (PostWebhookUrl = the receiver,
#     WebhookFilters=onMessageSent), OFF again; /healthz before and after;
#  3. for the ON run: calls the receiver counted during the measured window (calls/s), and how
#     long the backlog took to drain after posting stopped, until every message posted with
#     webhooks on (warm-up included, counted in the database) had its call.
# Targets (issue 12): posting with webhooks on ≥ 90 % of the rate with them off (mean of the two
# OFF runs); calls keep up with posting (calls/s in the window ≥ 90 % of posts/s, backlog drained
# within 10 s).
#
# Writes bench/results/webhooks-<backend>.md (also printed). Knobs: see bench/lib.sh;
# POST_CONNS=64, SPREAD=100.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKENDS=("$@")
[[ ${#BACKENDS[@]} -gt 0 ]] || BACKENDS=(sqlite postgres)
POST_CONNS=${POST_CONNS:-64}
SPREAD=${SPREAD:-100}
POST_LUA=$BENCH_DIR/lua/post.lua
FAKES=$TARGET_DIR/release/parley-fakes

if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$PARLEY" && -x "$SEED" && -x "$FAKES" ]]; then
    log "BENCH_SKIP_BUILD=1: using the release binaries as they are"
else
    log "cargo build --release -p parley-server -p parley-fakes -p parley-bench-seed"
    (cd "$ROOT" && cargo build --release -p parley-server -p parley-fakes -p parley-bench-seed)
fi
ensure_tools
command -v python3 >/dev/null || die "python3 is required (free ports)"
PARLEY_SECRET_KEY=$(openssl rand -hex 32)
export PARLEY_SECRET_KEY

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sql() {
    if [[ "$BACKEND" == sqlite ]]; then
        sqlite3 -separator $'\t' "${DB_URL#sqlite://}" "$1"
    else
        psql -qtA -F $'\t' -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"
    fi
}

# ---- receiver ------------------------------------------------------------------------------------
SINK_PORT=$(free_port)
"$FAKES" --quiet --apns-listen "127.0.0.1:$(free_port)" --fcm-listen "127.0.0.1:$(free_port)" \
    --webhook-sink-listen "127.0.0.1:$SINK_PORT" >"$WORK/fakes.out" 2>&1 &
FAKES_PID=$!
trap 'rc=$?; set +e; kill "$FAKES_PID" 2>/dev/null; (exit $rc); cleanup' EXIT
SINK=http://127.0.0.1:$SINK_PORT
for _ in $(seq 1 100); do
    curl -fsS "$SINK/_sink/count" >/dev/null 2>&1 && break
    sleep 0.1
done
sink_count() { curl -fsS "$SINK/_sink/count"; }
# CPU time (clock ticks) of a process (user + system), and of the whole machine (busy ticks).
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# cpu_sample: "server receiver machine" ticks now.
cpu_sample() { echo "$(proc_ticks "$SERVER_PID") $(proc_ticks "$FAKES_PID") $(busy_ticks)"; }
# cpu_row LABEL "START" "END" MESSAGES: CPU ms per message of the server, the receiver and the
# rest of the machine (wrk, the bench, other processes) over a window.
cpu_row() {
    awk -v label="$1" -v a="$2" -v b="$3" -v n="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        s = (y[1] - x[1]) / hz * 1000 / n; r = (y[2] - x[2]) / hz * 1000 / n
        m = (y[3] - x[3]) / hz * 1000 / n; o = m - s - r
        printf "| %s | %.3f | %.3f | %.3f | %.3f |\n", label, s, r, o, m }'
}
# The measured window of a backgrounded bench run: sample CPU and messages around it.
window() {
    sleep "${WRK_WARMUP%s}"
    sleep 0.5
    W_CPU0=$(cpu_sample); W_MSG0=$(sql "select count(*) from messages"); W_T0=$(date +%s.%N)
    sleep "$((${WRK_DURATION%s} - 1))"
    W_CPU1=$(cpu_sample); W_MSG1=$(sql "select count(*) from messages"); W_T1=$(date +%s.%N)
}
log "webhook receiver $SINK (pid $FAKES_PID)"
for BACKEND in "${BACKENDS[@]}"; do
    started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$SECONDS
    case "$BACKEND" in
        sqlite) DB_URL="sqlite://$WORK/webhooks.db" ;;
        postgres) DB_URL=$(new_pg_db) ;;
        *) die "backend must be sqlite or postgres" ;;
    esac
    "$SEED" platform --database-url "$DB_URL" --users 10 --sample 10 --out-dir "$WORK/wh-seed" \
        >"$WORK/wh.seed.json"
    IS=$(jq -r .service_sid "$WORK/wh.seed.json")
    AUTH="Authorization: Basic $(printf '%s:%s' "$(jq -r .account_sid "$WORK/wh.seed.json")" \
        "$(jq -r .auth_token "$WORK/wh.seed.json")" | base64 -w0)"
    start_server "webhooks-$BACKEND" "$DB_URL"
    urls=()
    for _ in $(seq 1 "$SPREAD"); do urls+=("$BASE/v2/Services/$IS/Channels"); done
    curl -fsS -H "$AUTH" -d "FriendlyName=bench" "${urls[@]}" | jq -r .sid >"$WORK/channels.txt"
    [[ $(wc -l <"$WORK/channels.txt") == "$SPREAD" ]] || die "channel creation failed"
    check POST "/v2/Services/$IS/Channels/$(head -1 "$WORK/channels.txt")/Messages" "Body=hello"

    G=webhooks-$BACKEND
    bench "$G" healthz "GET /healthz" - "$POST_CONNS" static /healthz
    WEBHOOKS=1 LUA=$POST_LUA bench "$G" post_off "POST …/Messages, webhooks OFF (no PostWebhookUrl)" - \
        "$POST_CONNS" "$IS" "$WORK/channels.txt" &
    BENCH_BG=$!
    window
    wait "$BENCH_BG"
    RESULT_ROWS+=("$G|post_off|POST …/Messages, webhooks OFF (no PostWebhookUrl)|-|$POST_CONNS|$WORK/$G.post_off.json")
    cpu_off=$(cpu_row "webhooks OFF" "$W_CPU0" "$W_CPU1" "$((W_MSG1 - W_MSG0))")

    # Webhooks on: the receiver, onMessageSent.
    check POST "/v2/Services/$IS" "PostWebhookUrl=$SINK/hook&WebhookFilters=onMessageSent&WebhookMethod=POST"
    sleep 1
    curl -fsS -X DELETE "$SINK/_sink/count" >/dev/null
    before=$(sql "select count(*) from messages")
    # bench() runs a warm-up then the measured window; the window's calls are the difference of
    # the receiver's count sampled around the measured wrk run (read from its JSON timing).
    WEBHOOKS=1 LUA=$POST_LUA bench "$G" post_on "POST …/Messages, webhooks ON (onMessageSent to a local receiver)" - \
        "$POST_CONNS" "$IS" "$WORK/channels.txt" &
    BENCH_BG=$!
    # Sample the receiver once the warm-up is over (wrk's measured run starts after it) and at
    # the end of the measured window.
    warm=${WRK_WARMUP%s}
    dur=${WRK_DURATION%s}
    sleep "$warm"
    sleep 0.5
    c_start=$(sink_count)
    s_start=$(date +%s.%N)
    W_CPU0=$(cpu_sample); W_MSG0=$(sql "select count(*) from messages")
    sleep "$((dur - 1))"
    c_end=$(sink_count)
    s_end=$(date +%s.%N)
    W_CPU1=$(cpu_sample); W_MSG1=$(sql "select count(*) from messages")
    wait "$BENCH_BG"
    cpu_on=$(cpu_row "webhooks ON" "$W_CPU0" "$W_CPU1" "$((W_MSG1 - W_MSG0))")
    RESULT_ROWS+=("$G|post_on|POST …/Messages, webhooks ON (onMessageSent to a local receiver)|-|$POST_CONNS|$WORK/$G.post_on.json")
    posted_on=$(( $(sql "select count(*) from messages") - before ))
    drain_start=$(date +%s.%N)
    drained=no
    for _ in $(seq 1 1200); do
        [[ $(sink_count) -ge $posted_on ]] && { drained=yes; break; }
        sleep 0.1
    done
    drain_secs=$(awk -v a="$drain_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    calls_total=$(sink_count)
    window_cps=$(awk -v a="$c_start" -v b="$c_end" -v s="$s_start" -v e="$s_end" 'BEGIN { printf "%.1f", (b - a) / (e - s) }')

    check POST "/v2/Services/$IS" "PostWebhookUrl="
    WEBHOOKS=1 LUA=$POST_LUA bench "$G" post_off2 "POST …/Messages, webhooks OFF again" - \
        "$POST_CONNS" "$IS" "$WORK/channels.txt"
    bench "$G" healthz_after "GET /healthz (again)" - "$POST_CONNS" static /healthz
    peak_rss=$(proc_kb VmHWM)
    stop_server
    [[ "$BACKEND" == postgres ]] && drop_pg_db "$DB_URL"
    rm -f "$WORK"/webhooks.db*

    rps() { jq -r '.rps' "$WORK/$G.$1.json"; }
    mkdir -p "$BENCH_DIR/results"
    out=$BENCH_DIR/results/webhooks-$BACKEND.md
    {
        echo "### Webhook bench, $BACKEND — $started_at"
        echo
        echo "* machine: $(machine)"
        echo "* command: \`bench/webhooks.sh $BACKEND\` (wrk -t$WRK_THREADS -c$POST_CONNS -d$WRK_DURATION after a $WRK_WARMUP warm-up, \`bench/lua/post.lua\` with WEBHOOKS=1, $SPREAD channels; receiver: \`parley-fakes --webhook-sink-listen\`)"
        echo
        table "$G"
        echo
        echo "| check | value | target | met |"
        echo "| --- | ---: | --- | --- |"
        awk -v on="$(rps post_on)" -v a="$(rps post_off)" -v b="$(rps post_off2)" 'BEGIN {
            off = (a + b) / 2; r = on / off * 100
            printf "| posting with webhooks on ÷ off (mean of both OFF runs) | %.0f / %.0f msg/s = %.1f %% | ≥ 90 %% | %s |\n", on, off, r, (r >= 90) ? "yes" : "**NO**" }'
        awk -v c="$window_cps" -v p="$(rps post_on)" 'BEGIN { r = c / p * 100
            printf "| webhook calls/s during the measured ON window ÷ posts/s | %.0f / %.0f = %.1f %% | ≥ 90 %% | %s |\n", c, p, r, (r >= 90) ? "yes" : "**NO**" }'
        echo "| backlog after posting stopped: calls received / messages posted with webhooks on (warm-up included) | $calls_total / $posted_on, drained in $drain_secs s | all, within 10 s | $([[ $drained == yes ]] && awk -v d="$drain_secs" 'BEGIN { print (d <= 10) ? "yes" : "**NO**" }' || echo "**NO**") |"
        echo "| peak RSS (VmHWM) | $(mb "$peak_rss") MB | | |"
        echo
        echo "CPU per message posted, over each measured window (ms; \"rest\" is wrk, the bench and anything else on the machine; the machine has $(nproc) cores):"
        echo
        echo "| run | server | receiver | rest | whole machine |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        echo "$cpu_off"
        echo "$cpu_on"
        echo
        echo "Total time for this backend: $((SECONDS - t0)) s."
    } >"$out"
    cat "$out"
    RESULT_ROWS=()
done
