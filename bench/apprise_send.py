#!/usr/bin/env python3
"""Send N DingTalk robot messages with Apprise to the imrelay mock.

usage: apprise_send.py MOCK_BASE_URL TOKEN N

Apprise's DingTalk plugin has the endpoint hard-coded
(`NotifyDingTalk.notify_url = "https://oapi.dingtalk.com/robot/send?..."`) and
its URL syntax (`dingtalk://token/`) cannot name another host, so this script
points that class attribute at the mock: the payload, headers and request path
are Apprise's own. Apprise's default throttle (`request_rate_per_sec`, 5.5 s
between two sends of one plugin instance) is set to 0, as imrelay's rate limits
are lifted in the same run. Messages are sent one after another, as
`Apprise.notify` does. Prints JSON with the figures.
"""
import json
import sys
import time

import apprise
from apprise.plugins.dingtalk import NotifyDingTalk


def main():
    base, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    NotifyDingTalk.notify_url = base + "/robot/send?access_token={token}"
    NotifyDingTalk.request_rate_per_sec = 0
    ap = apprise.Apprise()
    if not ap.add("dingtalk://%s/" % token):
        raise SystemExit("apprise refused the dingtalk:// URL")
    t0 = time.monotonic()
    failed = 0
    for i in range(n):
        if not ap.notify(body="e2e message %d 告警: disk 91%% full" % i):
            failed += 1
    secs = time.monotonic() - t0
    print(json.dumps({"n": n, "failed": failed, "seconds": round(secs, 3),
                      "messages_per_s": round(n / secs), "apprise": apprise.__version__}))


if __name__ == "__main__":
    main()
