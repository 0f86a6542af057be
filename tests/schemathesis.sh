#!/usr/bin/env bash
# The API contract check: start `imrelay serve` (SQLite in a temp dir, an API
# key, an in-process mock platform), then run schemathesis against its
# /openapi.json with every check. Any server error or any answer that the
# document does not describe fails the run. Bounded (examples per operation)
# so it takes about a minute on 2 cores. Fails loudly, never skips.
#
#   bash tests/schemathesis.sh            (tests/run calls it)
#   ST_EXAMPLES=200 bash tests/schemathesis.sh   (a longer run)
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is required and missing" >&2; exit 1; }
done
VENV="${IMRELAY_ST_VENV:-$HOME/.cache/imrelay/schemathesis-venv}"
REQ=tests/python/schemathesis-requirements.txt
want="$(grep -E '^schemathesis==' "$REQ" | cut -d= -f3)"
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$want" ]; then
    command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 is missing; run: apt-get install -y python3 python3-venv" >&2; exit 1; }
    python3 -m venv "$VENV" || { echo "FAIL: python3 -m venv failed; run: apt-get install -y python3-venv" >&2; exit 1; }
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
fi
"$VENV/bin/schemathesis" --version | grep -qx "schemathesis, version $want" \
    || { echo "FAIL: schemathesis $want is not installed in $VENV" >&2; exit 1; }

# shellcheck source=tests/lib/gateway.sh
source tests/lib/gateway.sh
build_imrelay

WORK=$(mktemp -d)
free_ports
KEY=ci-schemathesis-key-0123456789abcdef
{ config_head "$KEY"; cat <<TOML
[channels.alerts]
[[channels.alerts.destinations]]
type = "dingtalk_robot"
access_token = "ci-robot"
secret = "SECci0123456789abcdef"
base_url = "\${mock.url}"
# Nothing listens on port 9: a dead letter at the first attempt.
[channels.down]
retry = { base = "20ms", cap = "50ms", max_attempts = 1 }
[[channels.down.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
allow_private = true
[alerting.routes.ci]
channels = ["alerts"]
[[callbacks]]
name = "ci-wecom"
platform = "wecom"
token = "ci-callback-token"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
receive_id = "ww0123456789abcdef"
forward = [{ url = "http://127.0.0.1:9/events", secret = "whsec_Y2ktc2NoZW1hdGhlc2lzLWZvcndhcmQtc2VjcmV0LTA=", allow_private = true }]
[[callbacks]]
name = "ci-feishu"
platform = "feishu"
verification_token = "ci-verification-token"
forward = [{ url = "http://127.0.0.1:9/events", secret = "whsec_Y2ktc2NoZW1hdGhlc2lzLWZvcndhcmQtc2VjcmV0LTA=", allow_private = true }]
[[people]]
name = "zhangsan"
dingtalk = { mobile = "13800000001" }
[[schedules]]
name = "dba"
[[schedules.layers]]
rotation = "weekly"
start = "2026-01-05"
people = ["zhangsan"]
[[escalation_policies]]
name = "critical"
[[escalation_policies.steps]]
after = "5m"
notify = [{ channel = "alerts", to = ["oncall:dba"] }]
TOML
} >"$WORK/imrelay.toml"
IMRELAY_LOG_FORMAT=json "$BIN" serve --config "$WORK/imrelay.toml" 2>"$WORK/serve.log" &
PID=$!
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop; rm -rf "$WORK"' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 100); do
    curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$BASE/readyz" >/dev/null || { echo "FAIL: the gateway never became ready" >&2; cat "$WORK/serve.log" >&2; exit 1; }

# A message and a dead letter, so the read endpoints have something to show.
post() {
    curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$2" "$BASE$1"
}
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
ST_MESSAGE_ID=$(post /v1/messages '{"channel": "alerts", "text": "schemathesis"}' | json_field '["id"]')
post /v1/messages '{"channel": "down", "text": "schemathesis dead letter"}' >/dev/null
ST_DEAD_ID=""
for _ in $(seq 100); do
    ST_DEAD_ID=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/v1/dlq" \
        | python3 -c 'import json, sys; print(([i["delivery_id"] for i in json.load(sys.stdin)["items"]] + [""])[0])')
    [ -n "$ST_DEAD_ID" ] && break
    sleep 0.1
done
[ -n "$ST_DEAD_ID" ] || { echo "FAIL: no dead letter appeared for the schemathesis run" >&2; cat "$WORK/serve.log" >&2; exit 1; }
export ST_MESSAGE_ID ST_DEAD_ID

ROOT="$PWD"
set +e
# From the scratch folder: schemathesis keeps a cache in its working directory.
# Every check runs: that is schemathesis's default, and `--checks all` is not
# given because it would override what tests/schemathesis.toml sets per operation.
(cd "$WORK" && timeout 600 "$VENV/bin/schemathesis" --config-file "$ROOT/tests/schemathesis.toml" run "$BASE/openapi.json" \
    --header "Authorization: Bearer $KEY" \
    --max-examples "${ST_EXAMPLES:-100}" \
    --workers 2 \
    --seed "${ST_SEED:-20261201}" \
    --no-color \
    --generation-database none \
    --report junit --report-dir "$WORK/report" \
    "$@")
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "FAIL: schemathesis found answers that break /openapi.json (exit $rc); the gateway's log:" >&2
    tail -n 40 "$WORK/serve.log" >&2
    exit 1
fi
if grep -qE '"level":"ERROR"|panicked' "$WORK/serve.log"; then
    echo "FAIL: the gateway logged errors during the schemathesis run:" >&2
    grep -E '"level":"ERROR"|panicked' "$WORK/serve.log" | head -20 >&2
    exit 1
fi
echo "schemathesis: 0 failures"
