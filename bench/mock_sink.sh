#!/usr/bin/env bash
# Requests/s the mock serves as a benchmark sink (DingTalk robot endpoint).
# Usage: bench/mock_sink.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --profile bench-release -p imrelay >/dev/null
bin=${CARGO_TARGET_DIR:-target}/bench-release/imrelay
port=19977
"$bin" mock --listen 127.0.0.1:$port --accept-unknown --no-bodies 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf 127.0.0.1:$port/_mock/health >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(date -u +%F)"
wrk -t2 -c"$conns" -d"${secs}s" -s bench/mock_sink.lua "http://127.0.0.1:$port"
curl -s "127.0.0.1:$port/_mock/counts" | python3 -c 'import json,sys; c=json.load(sys.stdin); print("mock accepted:", sum(v["accepted"] for v in c.values()), "rejected:", sum(v["rejected"] for v in c.values()))'
