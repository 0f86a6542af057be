-- wrk script: POST /v1/messages, one message per request, to the channel named
-- by the BENCH_CHANNEL environment variable (bench/run sets it).
local key = os.getenv("BENCH_KEY") or "bench-key-0123456789abcdef"
local channel = os.getenv("BENCH_CHANNEL") or "held"
wrk.method = "POST"
wrk.path = "/v1/messages"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"channel":"' .. channel .. '","text":"benchmark message 告警: disk 91% full on db-1"}'
