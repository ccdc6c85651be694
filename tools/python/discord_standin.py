#!/usr/bin/env python3
"""A local stand-in for Discord (Gateway v10 over WebSocket, JSON encoding, and
the REST API), for the bot gateway's tests. It speaks the documented shapes:

  GET  /api/v10/gateway/bot                 {"url": "ws://…/gateway"}; 401 for an unknown token
  WS   /gateway                             op 10 Hello (heartbeat_interval), op 2 Identify → READY,
                                            op 6 Resume → replays missed events then RESUMED (op 9 if the
                                            session is unknown), op 1 Heartbeat → op 11 ACK; close 4004 on a
                                            bad token
  POST /api/v10/channels/{id}/messages      records the message; X-RateLimit-Bucket/-Remaining/-Reset-After
                                            headers from a per-channel bucket (--bucket-limit per
                                            --bucket-seconds); a request into an empty bucket is a 429 and
                                            counted as a violation

Control routes:
  POST /control/bots {"token", "username", "user_id"}
  POST /control/message {"token", "channel_id", "content", "guild_id"?, "mention"?: bool}
  POST /control/drop {"token"}                 drops the live WebSocket without a close frame's grace
  POST /control/ratelimit {"token", "count", "retry_after"}   the next `count` sends answer 429
  GET  /control/sent?token=T                  messages the bot posted, identify/resume counts, violations

usage: discord_standin.py --port N [--heartbeat-ms 1000] [--bucket-limit 5] [--bucket-seconds 1]
"""
import argparse
import asyncio
import json
import time
import uuid

from aiohttp import WSMsgType, web

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--heartbeat-ms", type=int, default=1000)
parser.add_argument("--bucket-limit", type=int, default=5)
parser.add_argument("--bucket-seconds", type=float, default=1.0)
args = parser.parse_args()

bots = {}       # token -> bot state
sessions = {}   # session id -> {"token", "events": [(seq, payload)], "seq"}


def bot_for(request):
    auth = request.headers.get("Authorization", "")
    return bots.get(auth[4:]) if auth.startswith("Bot ") else None


async def gateway_bot(request):
    if bot_for(request) is None:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
    return web.json_response({"url": f"ws://127.0.0.1:{args.port}/gateway", "shards": 1,
                              "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})


async def post_message(request):
    bot = bot_for(request)
    if bot is None:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
    channel = request.match_info["channel"]
    body = await request.json()
    now = time.time()
    bucket = bot["buckets"].setdefault(channel, {"remaining": args.bucket_limit, "reset": now + args.bucket_seconds})
    if now >= bucket["reset"]:
        bucket.update(remaining=args.bucket_limit, reset=now + args.bucket_seconds)
    headers = lambda: {"X-RateLimit-Bucket": "msg-" + channel, "X-RateLimit-Limit": str(args.bucket_limit),
                       "X-RateLimit-Remaining": str(bucket["remaining"]),
                       "X-RateLimit-Reset-After": "%.3f" % max(0.0, bucket["reset"] - time.time())}
    if bot["rate_limit"] > 0:
        bot["rate_limit"] -= 1
        return web.json_response({"message": "You are being rate limited.", "retry_after": bot["retry_after"], "global": False},
                                 status=429, headers=headers())
    if bucket["remaining"] <= 0:
        bot["violations"] += 1
        return web.json_response({"message": "You are being rate limited.", "retry_after": bucket["reset"] - now, "global": False},
                                 status=429, headers=headers())
    bucket["remaining"] -= 1
    content = body.get("content", "")
    if len(content) > 2000:
        return web.json_response({"message": "Invalid Form Body", "code": 50035}, status=400)
    reply_to = (body.get("message_reference") or {}).get("message_id")
    bot["sent"].append({"channel_id": channel, "content": content, "reply_to": reply_to, "at": now})
    return web.json_response({"id": str(int(now * 1e6)), "channel_id": channel, "content": content}, headers=headers())


async def dispatch(bot, event_type, data):
    session = sessions.get(bot.get("session"))
    if session is None:
        bot["pending"].append((event_type, data))
        return
    session["seq"] += 1
    payload = {"op": 0, "s": session["seq"], "t": event_type, "d": data}
    session["events"].append((session["seq"], payload))
    ws = bot.get("ws")
    if ws is not None and not ws.closed:
        await ws.send_json(payload)


async def gateway(request):
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    await ws.send_json({"op": 10, "d": {"heartbeat_interval": args.heartbeat_ms}})
    bot = None
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op = payload.get("op")
            if op == 1:
                await ws.send_json({"op": 11})
            elif op == 2:
                bot = bots.get(payload["d"].get("token"))
                if bot is None:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                bot["identifies"] += 1
                sid = uuid.uuid4().hex
                sessions[sid] = {"events": [], "seq": 0}
                bot["session"] = sid
                bot["ws"] = ws
                await dispatch(bot, "READY", {"v": 10, "session_id": sid, "resume_gateway_url": f"ws://127.0.0.1:{args.port}/gateway",
                                              "user": {"id": bot["user_id"], "username": bot["username"], "bot": True}})
                for event_type, data in bot["pending"]:
                    await dispatch(bot, event_type, data)
                bot["pending"].clear()
            elif op == 6:
                d = payload["d"]
                bot = bots.get(d.get("token"))
                session = sessions.get(d.get("session_id"))
                if bot is None:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if session is None or bot.get("session") != d.get("session_id"):
                    await ws.send_json({"op": 9, "d": False})
                    continue
                bot["resumes"] += 1
                bot["ws"] = ws
                for seq, event in session["events"]:
                    if seq > d.get("seq", 0):
                        await ws.send_json(event)
                session["seq"] += 1
                await ws.send_json({"op": 0, "s": session["seq"], "t": "RESUMED", "d": {}})
    finally:
        if bot is not None and bot.get("ws") is ws:
            bot["ws"] = None
    return ws


async def control(request):
    name = request.match_info["name"]
    p = await request.json() if request.method == "POST" and request.can_read_body else dict(request.query)
    if name == "bots":
        bots.setdefault(p["token"], {"username": p.get("username", "bot"), "user_id": str(p.get("user_id", "900")), "sent": [],
                                     "buckets": {}, "rate_limit": 0, "retry_after": 0.5, "violations": 0, "identifies": 0,
                                     "resumes": 0, "pending": [], "ws": None, "session": None, "next_message": 1})
        return web.json_response({"ok": True})
    bot = bots.get(p.get("token"))
    if bot is None:
        return web.json_response({"ok": False, "error": "unknown bot"}, status=404)
    if name == "message":
        mid = str(1000 + bot["next_message"])
        bot["next_message"] += 1
        content = p["content"]
        mentions = []
        if p.get("mention"):
            content = f"<@{bot['user_id']}> " + content
            mentions = [{"id": bot["user_id"], "username": bot["username"], "bot": True}]
        data = {"id": mid, "channel_id": str(p["channel_id"]), "content": content, "mentions": mentions,
                "author": {"id": "77", "username": "user", "bot": bool(p.get("author_bot", False))}}
        if p.get("guild_id"):
            data["guild_id"] = str(p["guild_id"])
        await dispatch(bot, "MESSAGE_CREATE", data)
        return web.json_response({"ok": True, "message_id": mid})
    if name == "drop":
        ws = bot.get("ws")
        if ws is not None:
            await ws.close(code=4000, message=b"Unknown error, reconnect.")
        return web.json_response({"ok": True, "dropped": ws is not None})
    if name == "ratelimit":
        bot["rate_limit"] = int(p.get("count", 1))
        bot["retry_after"] = float(p.get("retry_after", 0.5))
        return web.json_response({"ok": True})
    if name == "sent":
        return web.json_response({"sent": bot["sent"], "identifies": bot["identifies"], "resumes": bot["resumes"],
                                  "violations": bot["violations"], "connected": bot.get("ws") is not None})
    return web.json_response({"ok": False}, status=404)


app = web.Application()
app.add_routes([web.get("/api/v10/gateway/bot", gateway_bot), web.post("/api/v10/channels/{channel}/messages", post_message),
                web.get("/gateway", gateway), web.get("/gateway/", gateway), web.route("*", "/control/{name}", control)])
web.run_app(app, host="127.0.0.1", port=args.port, print=None)
