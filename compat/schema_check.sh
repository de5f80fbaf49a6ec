#!/usr/bin/env bash
# Schemathesis (4.x) check of a running Parley against the Twilio Chat v2 OpenAPI spec,
# limited to the operations Parley implements: every Chat v2 operation.
#
# Two runs against the same server:
#   1. examples, coverage, fuzzing — fetch/update/list operations aimed at real data
#      (schema/fixtures.py creates it; schema/fixtures.toml wires the identifiers in);
#   2. stateful — create/fetch/update/delete chains that follow the responses' identifiers.
#
# Needs: PARLEY_URL, ACCOUNT_SID, AUTH_TOKEN (compat/run sets them).
# Optional: SCHEMATHESIS (binary), PYTHON, PARLEY_SPEC (spec path), SCHEMA_REPORT_DIR,
#           COMPAT_SCHEMA_MAX_EXAMPLES (default 20),
#           COMPAT_SCHEMA_MAX_TIME (seconds per run, default 60),
#           COMPAT_SCHEMA_SEED (default 20261124; "random" for a new one each run).
# Exit status: non-zero if either run finds a failure (or cannot start).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# In a fresh clone shared/ sits next to the repository root.
SPEC="${PARLEY_SPEC:-$HERE/spec/twilio_chat_v2.json}"
ST="${SCHEMATHESIS:-$HERE/.venv/bin/schemathesis}"
PY="${PYTHON:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
: "${PARLEY_URL:?PARLEY_URL is required}" "${ACCOUNT_SID:?ACCOUNT_SID is required}" "${AUTH_TOKEN:?AUTH_TOKEN is required}"
[ -f "$SPEC" ] || { echo "schema_check: spec not found at $SPEC" >&2; exit 2; }

REPORT_DIR="${SCHEMA_REPORT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/parley-schemathesis.XXXXXX")}"
mkdir -p "$REPORT_DIR"
SEED_ARGS=()
if [ "${COMPAT_SCHEMA_SEED:-20261124}" != random ]; then
    SEED_ARGS=(--seed "${COMPAT_SCHEMA_SEED:-20261124}")
fi

# Twilio's spec plus Parley's documented deviations (see schema/prepare_spec.py for each one).
DERIVED="$REPORT_DIR/chat_v2_for_parley.json"
"$PY" "$HERE/schema/prepare_spec.py" "$SPEC" "$DERIVED" || { echo "schema_check: prepare_spec failed" >&2; exit 2; }

# A service, role, credential, user, binding, channel (with members, messages, an invite and a
# webhook) to aim fetch/update/list operations at.
FIXTURES="$("$PY" "$HERE/schema/fixtures.py")" || { echo "schema_check: fixture setup failed" >&2; exit 2; }
eval "$FIXTURES"
FUZZ_CONFIG="$REPORT_DIR/schemathesis-fuzz.toml"
cat "$HERE/schema/schemathesis.toml" "$HERE/schema/fixtures.toml" >"$FUZZ_CONFIG"

# Implemented operations only. Path templates as written in the spec:
#   /v2/Services, /v2/Services/{Sid}
#   /v2/Services/{ServiceSid}/Users[/{Sid}], …/Users/{UserSid}/Bindings[/{Sid}]
#   /v2/Services/{ServiceSid}/Users/{UserSid}/Channels[/{ChannelSid}]
#   /v2/Services/{ServiceSid}/Roles[/{Sid}], /v2/Services/{ServiceSid}/Bindings[/{Sid}]
#   /v2/Services/{ServiceSid}/Channels[/{Sid}]
#   /v2/Services/{ServiceSid}/Channels/{ChannelSid}/{Members,Messages,Invites,Webhooks}[/{Sid}]
#   /v2/Credentials[/{Sid}]
INCLUDE='^/v2/(Services(/\{Sid\})?|Services/\{ServiceSid\}/(Users(/\{Sid\})?|Users/\{UserSid\}/Bindings(/\{Sid\})?|Users/\{UserSid\}/Channels(/\{ChannelSid\})?|Roles(/\{Sid\})?|Bindings(/\{Sid\})?|Channels(/\{Sid\})?|Channels/\{ChannelSid\}/(Members|Messages|Invites|Webhooks)(/\{Sid\})?)|Credentials(/\{Sid\})?)$'

run() { # run CONFIG PHASES NAME
    echo "=== schema_check: $3 (phases: $2)"
    # status_code_conformance is excluded: the spec documents only the 2xx responses, so
    # every correct 400/401/404/409 would count as "undocumented".
    "$ST" --config-file "$1" run "$DERIVED" \
        --url "$PARLEY_URL" \
        --auth "$ACCOUNT_SID:$AUTH_TOKEN" \
        --include-path-regex "$INCLUDE" \
        --exclude-checks status_code_conformance \
        --phases "$2" \
        --max-examples "${COMPAT_SCHEMA_MAX_EXAMPLES:-20}" \
        --max-time "${COMPAT_SCHEMA_MAX_TIME:-60}" \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        --report junit --report-junit-path "$REPORT_DIR/junit-$3.xml" \
        ${SEED_ARGS[@]+"${SEED_ARGS[@]}"}
}

# schemathesis and hypothesis keep caches (.schemathesis/, .hypothesis/) in the working
# directory: keep them out of the repository.
cd "$REPORT_DIR" || exit 2
rc=0
run "$FUZZ_CONFIG" examples,coverage,fuzzing fuzz || rc=1
run "$HERE/schema/schemathesis.toml" stateful stateful || rc=1
echo "=== schema_check: $([ "$rc" = 0 ] && echo PASSED || echo FAILED) (reports in $REPORT_DIR)"
exit "$rc"
