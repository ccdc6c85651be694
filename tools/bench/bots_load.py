#!/usr/bin/env python3
"""Load for the bot gateway: N bots on one gateway, each sent one message per
second by the Telegram stand-in for D seconds. Prints the gateway's own
update-received→reply-sent latencies and the stand-in's enqueue→reply ones,
and the gateway's memory with no bots and with N idle bots.

    bots_load.py --gateway URL --telegram URL --pid PID --bots 100 --seconds 60 --collection demo
"""
import argparse, json, threading, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--gateway", required=True)
ap.add_argument("--telegram", required=True)
ap.add_argument("--pid", type=int, required=True)
ap.add_argument("--bots", type=int, default=100)
ap.add_argument("--seconds", type=int, default=60)
ap.add_argument("--collection", default="demo")
a = ap.parse_args()


def call(url, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


questions = ["how do I transfer files over http", "a fast json parser", "postgres client library", "image viewer",
             "python web framework", "compress files with zstd", "monitor network traffic", "edit pdf documents"]
time.sleep(2)
base_rss = rss_mb(a.pid)
tokens = [f"{100000 + i}:BenchToken{i:04d}xyz" for i in range(a.bots)]
for i, token in enumerate(tokens):
    call(a.telegram + "/control/bots", {"token": token, "username": f"bench{i}"})
    call(a.gateway + "/v1/bots", {"platform": "telegram", "name": f"bench{i}", "token": token, "collection": a.collection})
deadline = time.time() + 120
while time.time() < deadline:
    running = sum(1 for b in call(a.gateway + "/v1/bots") if b["status"] == "running")
    if running == a.bots:
        break
    time.sleep(0.5)
print(f"bots running: {running} of {a.bots}")
time.sleep(5)
idle_rss = rss_mb(a.pid)
print(f"gateway RSS: {base_rss:.1f} MB with no bots, {idle_rss:.1f} MB with {a.bots} idle bots "
      f"({(idle_rss - base_rss) * 1024 / a.bots:.0f} KB per idle bot)")

# Warm-up (first embeds, connections), then measure.
for i, token in enumerate(tokens):
    call(a.telegram + "/control/message", {"token": token, "chat_id": 1000 + i, "text": questions[i % len(questions)]})
time.sleep(5)
call(a.telegram + "/control/stats/reset", {})
call(a.gateway + "/v1/stats/reset", {})
sent = 0
start = time.time()
for second in range(a.seconds):
    tick = start + second
    for i, token in enumerate(tokens):
        # Spread each second's messages evenly, as independent users would.
        target = tick + i / a.bots
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        call(a.telegram + "/control/message", {"token": token, "chat_id": 1000 + i, "text": questions[(i + second) % len(questions)]})
        sent += 1
elapsed = time.time() - start
time.sleep(5)
gateway = call(a.gateway + "/v1/stats")
standin = call(a.telegram + "/control/stats")
print(f"sent {sent} messages in {elapsed:.1f} s ({sent / elapsed:.1f}/s) to {a.bots} bots; peak RSS during load {rss_mb(a.pid):.1f} MB")
print(f"gateway, update received -> reply sent: {gateway['replies']} replies, p50 {gateway['reply_p50_ms']:.2f} ms, "
      f"p99 {gateway['reply_p99_ms']:.2f} ms, max {gateway['reply_max_ms']:.2f} ms")
print(f"stand-in, message enqueued -> reply arrived: {standin['count']} replies, p50 {standin['p50_ms']:.2f} ms, "
      f"p99 {standin['p99_ms']:.2f} ms, max {standin['max_ms']:.2f} ms")
