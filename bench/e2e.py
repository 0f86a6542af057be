#!/usr/bin/env python3
"""Submit N messages to an imrelay gateway in batches and (optionally) wait
until the mock platform has accepted them all.

usage: e2e.py submit GATEWAY KEY CHANNEL N            (queue only)
       e2e.py deliver GATEWAY KEY CHANNEL N MOCK TARGET
       e2e.py paced GATEWAY KEY CHANNEL N MOCK TARGET RATE
                                                        (one message per request,
                                                         RATE a second, as a quiet
                                                         gateway sees them)
       e2e.py count MOCK TARGET                         (accepted so far)
       e2e.py first MOCK TARGET BASE T0                 (wait for BASE+1;
                                                         seconds since T0, epoch)
Prints one JSON object with the figures. Standard library only.
"""
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

BATCH = 1000


def post(url, key, body):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def get(url, key=None):
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def submit(gw, key, channel, n):
    """Submit n messages, 4 batch requests in flight; returns ids and seconds."""
    bodies = []
    for start in range(0, n, BATCH):
        msgs = [
            {"channel": channel, "text": "e2e message %d 告警: disk 91%% full" % i}
            for i in range(start, min(n, start + BATCH))
        ]
        bodies.append({"messages": msgs})
    t0 = time.monotonic()
    ids = []

    def one(body):
        status, resp = post(gw + "/v1/messages/batch", key, body)
        if status != 202:
            raise SystemExit("batch answered %d: %s" % (status, str(resp)[:300]))
        return [r.get("id") for r in resp.get("results", [])]

    with ThreadPoolExecutor(4) as ex:
        for got in ex.map(one, bodies):
            ids.extend(got)
    return ids, time.monotonic() - t0, t0


def paced(gw, key, channel, n, rate):
    """Submit n single messages, one request each, at `rate` a second."""
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        due = t0 + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        status, resp = post(gw + "/v1/messages", key,
                            {"channel": channel, "text": "paced message %d 告警" % i})
        if status != 202:
            raise SystemExit("answered %d: %s" % (status, str(resp)[:300]))
        ids.append(resp.get("id"))
    return ids, time.monotonic() - t0, t0


def delivered(mock, target):
    c = get(mock + "/_mock/counts")
    return c.get(target, {}).get("accepted", 0)


def main():
    if sys.argv[1] == "count":
        print(delivered(sys.argv[2], sys.argv[3]))
        return
    if sys.argv[1] == "first":
        mock, target, base, t0 = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        deadline = time.time() + 600
        while delivered(mock, target) <= base:
            if time.time() > deadline:
                raise SystemExit("nothing delivered within 600 s of the restart")
            time.sleep(0.005)
        print(json.dumps({"first_delivery_s": round(time.time() - t0, 3)}))
        return
    mode, gw, key, channel, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    if mode == "submit":
        ids, secs, _ = submit(gw, key, channel, n)
        print(json.dumps({"submitted": len(ids), "submit_s": round(secs, 3),
                          "accepted_per_s": round(len(ids) / secs)}))
        return
    mock, target = sys.argv[6], sys.argv[7]
    base = delivered(mock, target)
    if mode == "paced":
        ids, secs, t0 = paced(gw, key, channel, n, float(sys.argv[8]))
    else:
        ids, secs, t0 = submit(gw, key, channel, n)
    deadline = time.monotonic() + 600
    while delivered(mock, target) - base < n:
        if time.monotonic() > deadline:
            raise SystemExit("not all delivered within 600 s")
        time.sleep(0.02)
    total = time.monotonic() - t0
    out = {"n": n, "submit_s": round(secs, 3), "all_delivered_s": round(total, 3),
           "deliveries_per_s": round(n / total)}
    # Accept-to-delivered latency from the gateway's own record of a sample.
    lats = []
    step = max(1, len(ids) // 500)
    for i in ids[::step]:
        m = get(gw + "/v1/messages/" + i, key)
        lat = latency_ms(m)
        if lat is not None:
            lats.append(lat)
    if lats:
        lats.sort()
        pct = lambda p: lats[min(len(lats) - 1, int(p / 100 * len(lats)))]
        out.update({"sample": len(lats), "accept_to_delivered_ms_p50": pct(50),
                    "p99": pct(99), "max": lats[-1]})
    print(json.dumps(out))


def latency_ms(m):
    """Milliseconds from acceptance (`created_at`) to the end of the attempt
    that delivered (the gateway's clock, so no client-side skew)."""
    ends = [
        h["finished_at"]
        for d in m.get("deliveries", [])
        for h in d.get("history", [])
        if h.get("outcome") == "delivered"
    ]
    if not ends:
        return None
    return max(ends) - m["created_at"]


if __name__ == "__main__":
    main()
