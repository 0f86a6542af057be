-- wrk script: POST /v1/messages/batch with 100 messages per request.
local key = os.getenv("BENCH_KEY") or "bench-key-0123456789abcdef"
local channel = os.getenv("BENCH_CHANNEL") or "held"
local items = {}
for i = 1, 100 do
  items[i] = '{"channel":"' .. channel .. '","text":"benchmark message ' .. i .. ' 告警: disk 91% full"}'
end
wrk.method = "POST"
wrk.path = "/v1/messages/batch"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"messages":[' .. table.concat(items, ",") .. ']}'
