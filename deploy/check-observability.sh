#!/usr/bin/env bash
# Observability checks for CI : the Prometheus rules compile and their
# unit tests pass, and a running gateway's live /metrics passes
# `promtool check metrics`. Installs Debian's `prometheus` package (promtool)
# when missing; fails loudly when anything is missing or wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found: installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
for tool in promtool curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is required and missing" >&2; exit 1; }
done
promtool --version | head -1

echo "-- promtool check rules"
promtool check rules deploy/prometheus/imrelay-rules.yml
echo "-- promtool test rules"
promtool test rules deploy/prometheus/imrelay-rules.test.yml

echo "-- live /metrics of a running gateway"
# shellcheck source=tests/lib/gateway.sh
source tests/lib/gateway.sh
build_imrelay
WORK=$(mktemp -d)
free_ports
KEY=ci-obs-key-0123456789abcdef
{ config_head "$KEY"; cat <<TOML
[channels.ok]
[[channels.ok.destinations]]
type = "dingtalk_robot"
access_token = "ci-robot"
secret = "SECci0123456789abcdef"
base_url = "\${mock.url}"
# Nothing listens on port 9: retries, then a dead letter.
[channels.down]
retry = { base = "20ms", cap = "50ms", max_attempts = 2 }
[[channels.down.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
allow_private = true
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
for channel in ok down; do
    curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
        -d "{\"channel\": \"$channel\", \"text\": \"observability check\"}" "$BASE/v1/messages" >/dev/null
done
# Wait for one delivery and one dead letter, so every metric family has samples.
for _ in $(seq 100); do
    curl -fsS "$BASE/metrics" >"$WORK/metrics.txt"
    if grep -q 'outcome="delivered"' "$WORK/metrics.txt" && grep -q 'outcome="dead"' "$WORK/metrics.txt"; then
        break
    fi
    sleep 0.1
done
for want in imrelay_messages_accepted_total imrelay_deliveries_total imrelay_delivery_latency_seconds_bucket \
    imrelay_platform_request_duration_seconds_bucket imrelay_queue_deliveries imrelay_dlq_deliveries \
    imrelay_breaker_state imrelay_ready; do
    grep -q "^$want" "$WORK/metrics.txt" || { echo "FAIL: /metrics has no $want" >&2; cat "$WORK/metrics.txt" >&2; exit 1; }
done
echo "$(grep -vc '^#' "$WORK/metrics.txt") samples; promtool check metrics:"
promtool check metrics <"$WORK/metrics.txt"
# At the default log level (warn), a failed attempt's JSON line names its message and trace.
grep '"attempt failed"' "$WORK/serve.log" | head -1 | grep -q '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' \
    || { echo "FAIL: a failed attempt's log line lacks its trace id" >&2; cat "$WORK/serve.log" >&2; exit 1; }
IMRELAY_API_KEY=$KEY "$BIN" status --server "$BASE" | tee "$WORK/status.txt"
for want in "Dead-letter queue: 1" "dingtalk_robot:" "webhook:" "Success rate since start"; do
    grep -q "$want" "$WORK/status.txt" || { echo "FAIL: imrelay status does not show \"$want\"" >&2; exit 1; }
done

echo "-- OTLP export (cargo feature otlp): lints and the export test"
cargo clippy -q --locked -p imrelay-gateway --features otlp --all-targets -- -D warnings
cargo test -q --locked -p imrelay-gateway --features otlp --test it obs_otlp
echo "observability checks passed"
