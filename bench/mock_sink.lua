-- wrk script: POST a DingTalk text message to an undeclared robot on a mock
-- started with --accept-unknown --no-bodies (the benchmark-sink setup).
wrk.method = "POST"
wrk.body   = '{"msgtype":"text","text":{"content":"benchmark message 告警"}}'
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
local i = 0
request = function()
  i = i + 1
  -- 1,000 distinct robots so the mock's per-robot rate limit state is exercised
  -- like a real sink without any robot tripping 20/min (accept_unknown robots
  -- are not rate limited).
  return wrk.format(nil, "/robot/send?access_token=bench-" .. (i % 1000))
end
