#!/usr/bin/env python3
"""A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api),
for the bot gateway's tests and benchmark. It speaks the documented shapes:

  /bot<token>/getMe, /bot<token>/getUpdates (long polling, offset confirms),
  /bot<token>/sendMessage (MarkdownV2 checked like Telegram does: an unescaped
  reserved character is a 400 "can't parse entities"; text over 4096
  characters is a 400), 401 for unknown tokens, 429 with parameters.retry_after
  when told to rate-limit.

Control routes drive it from a test:
  POST /control/bots {"token", "username"}                 register a valid token
  POST /control/message {"token", "chat_id", "text"}       a user writes to the bot
  POST /control/other {"token"}                            an update that is not a text message
  POST /control/ratelimit {"token", "count", "retry_after"}  the next `count` sends get 429
  GET  /control/sent?token=T                               what the bot sent (text as parsed)
  GET  /control/stats                                      enqueue→reply latencies (ms) of all bots
  POST /control/stats/reset

usage: telegram_standin.py --port N
"""
import argparse
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()

lock = threading.Condition()
bots = {}          # token -> state
latencies = []     # ms from a message's enqueue to the reply's arrival
RESERVED = set("_*[]()~`>#+-=|{}.!")


def new_bot(username):
    return {"username": username, "updates": [], "next_id": 1, "sent": [], "rate_limit": 0, "retry_after": 1,
            "enqueued": {}, "errors": []}


class EntityError(ValueError):
    pass


def parse_markdown_v2(text):
    """Returns the visible text, or raises EntityError as Telegram would."""
    out = []
    open_marks = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise EntityError("can't parse entities: text must not end with a backslash")
            out.append(text[i + 1])
            i += 2
            continue
        if c in "*_~":
            if open_marks and open_marks[-1] == c:
                open_marks.pop()
            else:
                open_marks.append(c)
            i += 1
            continue
        if c == "[":
            open_marks.append("[")
            i += 1
            continue
        if c == "]":
            if not open_marks or open_marks[-1] != "[":
                raise EntityError("can't parse entities: Character ']' is reserved and must be escaped with the preceding '\\'")
            open_marks.pop()
            if i + 1 >= n or text[i + 1] != "(":
                raise EntityError("can't parse entities: link without URL")
            j = i + 2
            while j < n and text[j] != ")":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise EntityError("can't parse entities: unclosed link URL")
            i = j + 1
            continue
        if c in RESERVED:
            raise EntityError("can't parse entities: Character '%s' is reserved and must be escaped with the preceding '\\'" % c)
        out.append(c)
        i += 1
    if open_marks:
        raise EntityError("can't parse entities: can't find end of %s entity" % open_marks[-1])
    return "".join(out)


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without this, Nagle and the
    # client's delayed ACK add ~40 ms to every keep-alive reply.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def params(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if raw:
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                query.update(json.loads(raw))
            else:
                query.update(dict(urllib.parse.parse_qsl(raw.decode())))
        return query

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        path = urllib.parse.urlsplit(self.path).path
        p = self.params()
        if path.startswith("/control/"):
            return self.control(path[len("/control/"):], p)
        parts = path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot"):
            return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, method = parts[1][3:], parts[2]
        with lock:
            bot = bots.get(token)
        if bot is None:
            return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if method == "getMe":
            return self.reply(200, {"ok": True, "result": {"id": abs(hash(token)) % 10**9, "is_bot": True,
                                                          "username": bot["username"], "first_name": bot["username"]}})
        if method == "getUpdates":
            offset = int(p.get("offset", 0))
            timeout = min(float(p.get("timeout", 0)), 50)
            deadline = time.time() + timeout
            with lock:
                # Telegram semantics: calling with an offset confirms every update before it.
                bot["updates"] = [u for u in bot["updates"] if u["update_id"] >= offset]
                while not bot["updates"] and time.time() < deadline:
                    lock.wait(deadline - time.time())
                result = bot["updates"][:100]
            return self.reply(200, {"ok": True, "result": result})
        if method == "sendMessage":
            with lock:
                if bot["rate_limit"] > 0:
                    bot["rate_limit"] -= 1
                    ra = bot["retry_after"]
                    return self.reply(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after %d" % ra,
                                            "parameters": {"retry_after": ra}})
            text = p.get("text", "")
            try:
                visible = parse_markdown_v2(text) if p.get("parse_mode") == "MarkdownV2" else text
            except EntityError as e:
                with lock:
                    bot["errors"].append(str(e))
                return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: " + str(e)})
            if len(visible) > 4096:
                return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
            now = time.time()
            reply_to = (p.get("reply_parameters") or {}).get("message_id")
            with lock:
                bot["sent"].append({"chat_id": p.get("chat_id"), "text": visible, "markup": text,
                                    "parse_mode": p.get("parse_mode"), "reply_to": reply_to, "at": now})
                if reply_to in bot["enqueued"]:
                    latencies.append((now - bot["enqueued"].pop(reply_to)) * 1000)
            return self.reply(200, {"ok": True, "result": {"message_id": int(now * 1000) % 10**9, "chat": {"id": p.get("chat_id")},
                                                          "text": visible}})
        return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})

    def control(self, name, p):
        with lock:
            if name == "bots":
                bots.setdefault(p["token"], new_bot(p.get("username", "bot")))
                return self.reply(200, {"ok": True})
            bot = bots.get(p.get("token"))
            if name in ("message", "other", "ratelimit", "sent") and bot is None:
                return self.reply(404, {"ok": False, "description": "unknown bot"})
            if name in ("message", "other"):
                uid = bot["next_id"]
                bot["next_id"] += 1
                update = {"update_id": uid}
                if name == "message":
                    mid = uid * 10
                    chat = int(p.get("chat_id", 1))
                    update["message"] = {"message_id": mid, "date": int(time.time()), "chat": {"id": chat, "type": "private"},
                                         "from": {"id": chat, "is_bot": False, "first_name": "user"}, "text": p["text"]}
                    bot["enqueued"][mid] = time.time()
                else:
                    update["edited_message"] = {"message_id": uid * 10, "date": int(time.time()), "chat": {"id": 1, "type": "private"}}
                bot["updates"].append(update)
                lock.notify_all()
                return self.reply(200, {"ok": True, "update_id": uid})
            if name == "ratelimit":
                bot["rate_limit"] = int(p.get("count", 1))
                bot["retry_after"] = int(p.get("retry_after", 1))
                return self.reply(200, {"ok": True})
            if name == "sent":
                return self.reply(200, {"ok": True, "sent": bot["sent"], "errors": bot["errors"]})
            if name == "stats":
                values = sorted(latencies)
                def pct(q):
                    return values[min(len(values) - 1, int(q * len(values)))] if values else 0
                return self.reply(200, {"count": len(values), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": values[-1] if values else 0})
            if name == "stats/reset":
                latencies.clear()
                return self.reply(200, {"ok": True})
        return self.reply(404, {"ok": False})


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
