#!/usr/bin/env bash
# Schemathesis (4.x) check of a running Parley against the Twilio Chat v2 OpenAPI spec,
# limited to the operations Parley implements (Services, Users, Roles, Bindings, Credentials).
#
# Needs: PARLEY_URL, ACCOUNT_SID, AUTH_TOKEN (compat/run sets them).
# Optional: SCHEMATHESIS (binary), PARLEY_SPEC (spec path), SCHEMA_REPORT_DIR,
#           COMPAT_SCHEMA_MAX_EXAMPLES (default 20), COMPAT_SCHEMA_MAX_TIME (seconds, default 90),
#           COMPAT_SCHEMA_SEED (default 20261124; "random" for a new one each run).
# Exit status: schemathesis's (non-zero on any failure).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# In a fresh clone shared/ sits next to the repository root.
SPEC="${PARLEY_SPEC:-$REPO/../shared/spec/twilio_chat_v2.json}"
ST="${SCHEMATHESIS:-$HERE/.venv/bin/schemathesis}"
: "${PARLEY_URL:?PARLEY_URL is required}" "${ACCOUNT_SID:?ACCOUNT_SID is required}" "${AUTH_TOKEN:?AUTH_TOKEN is required}"
[ -f "$SPEC" ] || { echo "schema_check: spec not found at $SPEC" >&2; exit 2; }

REPORT_DIR="${SCHEMA_REPORT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/parley-schemathesis.XXXXXX")}"
mkdir -p "$REPORT_DIR"
SEED_ARGS=()
if [ "${COMPAT_SCHEMA_SEED:-20261124}" != random ]; then
    SEED_ARGS=(--seed "${COMPAT_SCHEMA_SEED:-20261124}")
fi

# Implemented operations only. Path templates as written in the spec:
#   /v2/Services, /v2/Services/{Sid}
#   /v2/Services/{ServiceSid}/Users[/{Sid}], …/Users/{UserSid}/Bindings[/{Sid}]
#   /v2/Services/{ServiceSid}/Roles[/{Sid}], /v2/Services/{ServiceSid}/Bindings[/{Sid}]
#   /v2/Credentials[/{Sid}]
# Channels, Members, Messages, Invites, Webhooks and User Channels are not matched.
INCLUDE='^/v2/(Services(/\{Sid\})?|Services/\{ServiceSid\}/(Users(/\{Sid\})?|Users/\{UserSid\}/Bindings(/\{Sid\})?|Roles(/\{Sid\})?|Bindings(/\{Sid\})?)|Credentials(/\{Sid\})?)$'

# status_code_conformance is excluded: the spec documents only the 2xx responses, so every
# correct 400/401/404/409 would count as "undocumented".
exec "$ST" run "$SPEC" \
    --url "$PARLEY_URL" \
    --auth "$ACCOUNT_SID:$AUTH_TOKEN" \
    --include-path-regex "$INCLUDE" \
    --exclude-checks status_code_conformance \
    --max-examples "${COMPAT_SCHEMA_MAX_EXAMPLES:-20}" \
    --max-time "${COMPAT_SCHEMA_MAX_TIME:-90}" \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    --report junit --report-dir "$REPORT_DIR" \
    "${SEED_ARGS[@]}"
