#!/usr/bin/env bash
# Push fan-out bench: one message into a channel of 10,000 members (one binding each, half apn,
# half fcm) against the fake APNs/FCM (`parley-fakes`, release build), then the same with the fake
# APNs answering 503 to everything.
#
#   bench/push.sh [sqlite|postgres]        (default sqlite)
#
# Steps: build (once); start parley-fakes on two free ports; seed with parley-bench-seed
# (`bindings --users N --per-user 1 --via sql`: account, API key, service, N users through the
# store, N fcm bindings bulk-inserted); start `parley serve` with PARLEY_APNS_URL /
# PARLEY_APNS_SANDBOX_URL / PARLEY_FCM_URL at the fakes; create over HTTP an APNs token-auth
# credential (TEST-ONLY .p8 + {key_id, team_id, topic}) and an FCM service-account credential
# whose token_uri is the fake's /token; point every odd user's binding at the APNs credential
# (binding_type apn) and every even one at the FCM one (SQL UPDATE); create one channel over HTTP
# and insert the N members with SQL (the members_count trigger keeps the count); enable
# Notifications.NewMessage.Enabled; then
#  run 1: POST one message (From=bench-sender, not a member) and poll /metrics every 50 ms:
#         parley_push_sends_total (delivered) over time gives pushes/s and the times by which
#         50 % / 99 % / 100 % of the sends were answered (measured from just before the POST);
#         parley_push_event_to_send_seconds gives bucket bounds for p50/p99; the fakes'
#         /_fake/requests count what arrived; VmHWM of parley is the peak RSS.
#  run 2: POST /_fake/mode {"mode":"unavailable"} on the fake APNs, clear the fakes' request
#         logs, POST a second message: all N/2 FCM pushes must arrive while APNs deliveries are
#         retried; RSS is sampled for HOLD seconds.
#
# NODES=2 (PostgreSQL only) starts a second `parley serve` on the same database before the runs:
# both nodes' push workers share the fan-out and the sends (counted from both nodes' /metrics);
# the message is posted to the first node. Results then go to push-postgres-2nodes.md.
#
# Writes bench/results/push-<backend>.md (also printed). Knobs: MEMBERS=10000, HOLD=30, NODES=1.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKEND=${1:-sqlite}
MEMBERS=${MEMBERS:-10000}
HOLD=${HOLD:-30}
NODES=${NODES:-1}
EXTRA_PIDS=()
FAKES=$TARGET_DIR/release/parley-fakes
FIXTURES=$ROOT/crates/parley-push/tests/fixtures
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS

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

sql() {
    if [[ "$BACKEND" == sqlite ]]; then
        sqlite3 -separator $'\t' "${DB_URL#sqlite://}" "$1"
    else
        psql -qtA -F $'\t' -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"
    fi
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- fakes ---------------------------------------------------------------------------------------
APNS_PORT=$(free_port)
FCM_PORT=$(free_port)
"$FAKES" --quiet --apns-listen "127.0.0.1:$APNS_PORT" --fcm-listen "127.0.0.1:$FCM_PORT" \
    >"$WORK/fakes.out" 2>&1 &
FAKES_PID=$!
trap 'rc=$?; set +e; kill "$FAKES_PID" "${EXTRA_PIDS[@]}" 2>/dev/null; (exit $rc); cleanup' EXIT
APNS=http://127.0.0.1:$APNS_PORT
FCM=http://127.0.0.1:$FCM_PORT
for _ in $(seq 1 100); do
    curl -fsS "$FCM/_fake/mode" >/dev/null 2>&1 && curl -fsS --http2-prior-knowledge "$APNS/_fake/mode" >/dev/null 2>&1 && break
    sleep 0.1
done
log "fakes: APNs $APNS, FCM $FCM (pid $FAKES_PID)"
export PARLEY_APNS_URL=$APNS PARLEY_APNS_SANDBOX_URL=$APNS PARLEY_FCM_URL=$FCM PARLEY_FCM_TOKEN_URI_ALLOW=$FCM
fake() { # fake BASE METHOD PATH [JSON]
    local base=$1 method=$2 path=$3 body=${4:-}
    local h2=()
    [[ "$base" == "$APNS" ]] && h2=(--http2-prior-knowledge)
    if [[ -n "$body" ]]; then
        curl -fsS "${h2[@]}" -X "$method" -H 'Content-Type: application/json' -d "$body" "$base$path"
    else
        curl -fsS "${h2[@]}" -X "$method" "$base$path"
    fi
}

# ---- data ----------------------------------------------------------------------------------------
case "$BACKEND" in
    sqlite) DB_URL="sqlite://$WORK/push.db" ;;
    postgres) DB_URL=$(new_pg_db) ;;
    *) die "backend must be sqlite or postgres" ;;
esac
log "seeding $MEMBERS users with one binding each ($BACKEND)"
"$SEED" bindings --database-url "$DB_URL" --users "$MEMBERS" --per-user 1 --via sql \
    --sample 10 --out-dir "$WORK/push-seed" >"$WORK/push.seed.json"
IS=$(jq -r .service_sid "$WORK/push.seed.json")
AUTH="Authorization: Basic $(printf '%s:%s' "$(jq -r .account_sid "$WORK/push.seed.json")" \
    "$(jq -r .auth_token "$WORK/push.seed.json")" | base64 -w0)"

start_server push "$DB_URL"
post() { # post PATH FORM-ARGS… (curl --data-urlencode each); prints the JSON answer
    local path=$1; shift
    local args=()
    for a in "$@"; do args+=(--data-urlencode "$a"); done
    curl -fsS -H "$AUTH" "${args[@]}" "$BASE$path"
}
APN_CRED=$(post /v2/Credentials "Type=apn" "FriendlyName=bench-apns" "Sandbox=false" \
    "PrivateKey@$FIXTURES/TEST-ONLY-apns-authkey.p8" \
    'Secret={"key_id":"KEY1234567","team_id":"TEAM123456","topic":"com.example.chat"}' | jq -r .sid)
SA=$(jq -cn --rawfile key "$FIXTURES/TEST-ONLY-fcm-sa-key.pem" --arg uri "$FCM/token" '{
    type: "service_account", project_id: "demo-project", private_key_id: "kid",
    private_key: $key, client_email: "push@demo-project.iam.gserviceaccount.com",
    client_id: "1", token_uri: $uri }')
FCM_CRED=$(post /v2/Credentials "Type=fcm" "FriendlyName=bench-fcm" "Secret=$SA" | jq -r .sid)
[[ "$APN_CRED" == CR* && "$FCM_CRED" == CR* ]] || die "credentials: '$APN_CRED' '$FCM_CRED'"
CH=$(post "/v2/Services/$IS/Channels" "FriendlyName=push-bench" | jq -r .sid)
post "/v2/Services/$IS" "Notifications.NewMessage.Enabled=true" >/dev/null
stop_server   # bulk SQL with the server stopped
now_us=$(( $(date +%s) * 1000000 ))
sql "update bindings set binding_type = 'apn', credential_sid = '$APN_CRED'
      where service_sid = '$IS' and cast(substr(identity, 6) as integer) % 2 = 1;
     update bindings set credential_sid = '$FCM_CRED'
      where service_sid = '$IS' and cast(substr(identity, 6) as integer) % 2 = 0;
     insert into members (sid, account_sid, service_sid, channel_sid, user_sid, identity, role_sid,
                          attributes, notification_level, date_created, date_updated)
     select 'MB' || substr(u.sid, 3), u.account_sid, u.service_sid, '$CH', u.sid, u.identity,
            s.default_channel_role_sid, null, 'default', $now_us, $now_us
       from users u join services s on s.sid = u.service_sid where u.service_sid = '$IS';" >/dev/null
[[ "$BACKEND" == postgres ]] && sql "analyze" >/dev/null
read -r n_apn n_fcm < <(sql "select sum(case when binding_type = 'apn' then 1 else 0 end),
    sum(case when binding_type = 'fcm' then 1 else 0 end) from bindings where service_sid = '$IS'" | tr '\t' ' ')
start_server push2 "$DB_URL"
members=$(curl -fsS -H "$AUTH" "$BASE/v2/Services/$IS/Channels/$CH" | jq -r .members_count)
log "channel $CH: $members members; bindings: $n_apn apn ($APN_CRED), $n_fcm fcm ($FCM_CRED)"
[[ "$members" == "$MEMBERS" ]] || die "members_count is $members"
rss_start=$(proc_kb VmRSS)
BASES=("$BASE")
if (( NODES > 1 )); then
    [[ "$BACKEND" == postgres ]] || die "NODES > 1 needs the postgres backend"
    for i in $(seq 2 "$NODES"); do
        "$PARLEY" serve --listen 127.0.0.1:0 --database-url "$DB_URL" >"$WORK/node$i.out" 2>"$WORK/node$i.log" &
        EXTRA_PIDS+=($!)
        node=""
        for _ in $(seq 1 600); do
            node=$(grep -ao 'listening on http://[0-9.]*:[0-9]*' "$WORK/node$i.log" | head -1 | sed 's/^listening on //' || true)
            [[ -n "$node" ]] && break
            sleep 0.1
        done
        [[ -n "$node" ]] || die "node $i did not start (see $WORK/node$i.log)"
        BASES+=("$node")
        log "node $i on $node"
    done
fi
all_metrics() { for b in "${BASES[@]}"; do curl -fsS "$b/metrics"; done; }

metric_sum() { # metric_sum NAME LABEL-REGEX: sum of the samples of NAME whose labels match
    all_metrics | awk -v n="$1" -v re="$2" '
        index($1, n) == 1 && substr($1, length(n) + 1, 1) ~ /[{ ]|^$/ && $1 ~ re { s += $NF } END { printf "%d\n", s }'
}
delivered() { metric_sum parley_push_sends_total "outcome=\"delivered\"" ; }
# hist_q Q [PROVIDER-REGEX]: upper bound (s) of the event_to_send bucket holding quantile Q.
hist_q() {
    all_metrics | awk -v q="$1" -v re="${2:-.}" '
        $1 ~ /^parley_push_event_to_send_seconds_bucket/ && $1 ~ re {
            match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
            if (!(le in c)) order[++n] = le
            c[le] += $NF }
        END { total = c["+Inf"]; if (total == 0) { print "n/a"; exit }
              for (i = 1; i <= n; i++) if (c[order[i]] >= q * total) { print "≤ " order[i]; exit } }'
}

# run_fanout TAG EXPECTED: post one message, poll delivered sends until EXPECTED more are counted
# (or 120 s), write "seconds delivered" samples to $WORK/TAG.timeline; sets T_POST.
run_fanout() {
    local tag=$1 expected=$2 base_count
    base_count=$(delivered)
    : >"$WORK/$tag.timeline"
    T_POST=$(date +%s.%N)
    post "/v2/Services/$IS/Channels/$CH/Messages" "Body=push bench $tag" "From=bench-sender" >/dev/null
    local deadline=$((SECONDS + 120)) d=0
    while (( SECONDS < deadline )); do
        d=$(( $(delivered) - base_count ))
        echo "$(awk -v a="$T_POST" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }') $d" >>"$WORK/$tag.timeline"
        (( d >= expected )) && break
        sleep 0.05
    done
}
# when_reached FILE N: first time (s) at which the timeline reached N sends.
when_reached() { awk -v n="$2" '$2 >= n { print $1; found = 1; exit } END { if (!found) print "never" }' "$1"; }

# ---- run 1: both providers up --------------------------------------------------------------------
fake "$APNS" DELETE /_fake/requests >/dev/null
fake "$FCM" DELETE /_fake/requests >/dev/null
log "run 1: one message to $MEMBERS members"
run_fanout run1 "$MEMBERS"
r1_t50=$(when_reached "$WORK/run1.timeline" $((MEMBERS / 2)))
r1_t99=$(when_reached "$WORK/run1.timeline" $((MEMBERS * 99 / 100)))
r1_t100=$(when_reached "$WORK/run1.timeline" "$MEMBERS")
r1_first=$(when_reached "$WORK/run1.timeline" 1)
r1_done=$(tail -1 "$WORK/run1.timeline" | awk '{ print $2 }')
r1_h50=$(hist_q 0.5); r1_h99=$(hist_q 0.99)
r1_rss=$(proc_kb VmHWM)
sleep 1
r1_apns=$(fake "$APNS" GET /_fake/requests | jq '[.[] | select(.path | startswith("/3/device/")) | select(.status == 200)] | length')
r1_fcm=$(fake "$FCM" GET /_fake/requests | jq '[.[] | select(.path | contains("messages:send")) | select(.status == 200)] | length')
r1_rate=$(awk -v n="$r1_done" -v t="$r1_t100" -v f="$r1_first" 'BEGIN { if (t == "never") print "n/a"; else printf "%.0f", n / t }')
r1_rate_send=$(awk -v n="$r1_done" -v t="$r1_t100" -v f="$r1_first" 'BEGIN { if (t == "never" || t - f <= 0) print "n/a"; else printf "%.0f", n / (t - f) }')
log "run 1: $r1_done delivered; first at ${r1_first}s, 50% ${r1_t50}s, 99% ${r1_t99}s, all ${r1_t100}s; fakes saw apns=$r1_apns fcm=$r1_fcm; VmHWM $(mb "$r1_rss") MB"

# ---- run 2: fake APNs answers 503 ----------------------------------------------------------------
fake "$APNS" POST /_fake/mode '{"mode":"unavailable"}' >/dev/null
fake "$APNS" DELETE /_fake/requests >/dev/null
fake "$FCM" DELETE /_fake/requests >/dev/null
HALF=$(( n_fcm ))
log "run 2: APNs unavailable; one message, expecting $HALF fcm deliveries"
run_fanout run2 "$HALF"
r2_t100=$(when_reached "$WORK/run2.timeline" "$HALF")
r2_t99=$(when_reached "$WORK/run2.timeline" $((HALF * 99 / 100)))
r2_done=$(tail -1 "$WORK/run2.timeline" | awk '{ print $2 }')
rss_max=0
: >"$WORK/run2.rss"
for _ in $(seq 1 "$HOLD"); do
    kb=$(proc_kb VmRSS)
    echo "$kb" >>"$WORK/run2.rss"
    (( kb > rss_max )) && rss_max=$kb
    sleep 1
done
r2_rss_end=$(proc_kb VmRSS)
r2_hwm=$(proc_kb VmHWM)
r2_fcm=$(fake "$FCM" GET /_fake/requests | jq '[.[] | select(.path | contains("messages:send")) | select(.status == 200)] | length')
r2_apns_tries=$(fake "$APNS" GET /_fake/requests | jq '[.[] | select(.path | startswith("/3/device/"))] | length')
r2_retry=$(metric_sum parley_push_sends_total 'outcome="retry",provider="apns"')
queue=$(curl -fsS "$BASE/metrics" | awk '/^parley_push_queue_depth/ { printf "%s %s; ", $1, $2 }')
log "run 2: fcm delivered $r2_done (fake saw $r2_fcm) all by ${r2_t100}s; APNs attempts $r2_apns_tries; RSS max $(mb "$rss_max") MB, end $(mb "$r2_rss_end") MB; $queue"
stop_server
for p in "${EXTRA_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
EXTRA_PIDS=()
kill "$FAKES_PID" 2>/dev/null || true
[[ "$BACKEND" == postgres ]] && drop_pg_db "$DB_URL"

# ---- report --------------------------------------------------------------------------------------
yes_no() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "n/a" || v == "never") { print "**NO**"; exit }
    ok = (op == ">=") ? (v + 0 >= t) : (v + 0 < t); print ok ? "yes" : "**NO**" }'; }
mkdir -p "$BENCH_DIR/results"
out=$BENCH_DIR/results/push-$BACKEND.md
(( NODES > 1 )) && out=$BENCH_DIR/results/push-$BACKEND-${NODES}nodes.md
{
    echo "### Push fan-out bench, $BACKEND — $started_at"
    echo
    echo "* machine: $(machine)"
    echo "* command: \`NODES=$NODES bench/push.sh $BACKEND\` (MEMBERS=$MEMBERS, HOLD=$HOLD); $NODES \`parley serve\` node(s) on one database; parley-fakes (release, --quiet) on 127.0.0.1"
    echo "* data: 1 channel, $members members (SQL insert), one binding each: $n_apn apn (token auth) + $n_fcm fcm (service account); users and bindings by parley-bench-seed (store / bulk SQL), credentials over HTTP"
    echo "* times are from just before the message POST to when /metrics (polled every 50 ms) counted the sends as delivered"
    echo
    echo "#### Run 1: both fakes answering 200"
    echo
    echo "| figure | value | target | met |"
    echo "| --- | ---: | --- | --- |"
    echo "| deliveries counted (parley_push_sends_total delivered) | $r1_done of $MEMBERS | all | $( [[ "$r1_done" -ge "$MEMBERS" ]] && echo yes || echo "**NO**") |"
    echo "| requests the fakes answered 200 (APNs / FCM) | $r1_apns / $r1_fcm | $n_apn / $n_fcm | $( [[ "$r1_apns" == "$n_apn" && "$r1_fcm" == "$n_fcm" ]] && echo yes || echo "**NO**") |"
    echo "| pushes/s, whole fan-out (deliveries / time from POST to last) | $r1_rate | ≥ 5,000 | $(yes_no "$r1_rate" ">=" 5000) |"
    echo "| pushes/s, sending phase (first to last delivery) | $r1_rate_send | | |"
    echo "| first delivery after the POST | ${r1_first} s | | |"
    echo "| 50 % / 99 % / 100 % delivered after the POST | ${r1_t50} / ${r1_t99} / ${r1_t100} s | p99 < 2 s | $(yes_no "$r1_t99" "<" 2) |"
    echo "| event_to_send histogram p50 / p99 (bucket bound) | $r1_h50 / $r1_h99 s | | |"
    echo "| parley peak RSS (VmHWM) | $(mb "$r1_rss") MB (start $(mb "$rss_start") MB) | < 150 MB | $(yes_no "$(mb "$r1_rss")" "<" 150) |"
    echo
    echo "#### Run 2: fake APNs answering 503 (mode unavailable), FCM normal"
    echo
    echo "| figure | value | target | met |"
    echo "| --- | ---: | --- | --- |"
    echo "| FCM deliveries (metrics / fake saw 200) | $r2_done / $r2_fcm of $n_fcm | all | $( [[ "$r2_fcm" -ge "$n_fcm" ]] && echo yes || echo "**NO**") |"
    echo "| 99 % / 100 % of FCM delivered after the POST | ${r2_t99} / ${r2_t100} s | | |"
    echo "| APNs attempts answered 503 during the run / apns retry outcomes | $r2_apns_tries / $r2_retry | | |"
    echo "| parley RSS over ${HOLD} s after (max / end), VmHWM | $(mb "$rss_max") / $(mb "$r2_rss_end") MB, $(mb "$r2_hwm") MB | < 150 MB | $(yes_no "$(mb "$r2_hwm")" "<" 150) |"
    echo "| queue depth at the end | ${queue:-n/a} | | |"
    echo
    echo "Total script time: $((SECONDS - t0)) s."
} >"$out"
cat "$out"
