#!/usr/bin/env python3
"""A local website for the scraper's tests and benchmark: serves a folder of
real HTML (for example Debian's python3-doc or postgresql-doc) on loopback.

Like a real web server it sends ETag and Last-Modified and answers conditional
GETs with 304. For the tests it can also misbehave on purpose:
  /slow/...   waits --slow-seconds before answering
  /fail/...   answers 500
and it logs every request (path, status, User-Agent, conditional headers) as a
JSON line to --log, so a test can check what the crawler really asked for.

usage: site_server.py --root DIR --port N [--log FILE] [--slow-seconds S]
"""
import argparse
import email.utils
import json
import os
import posixpath
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--root", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log")
parser.add_argument("--slow-seconds", type=float, default=5.0)
args = parser.parse_args()
root = os.path.realpath(args.root)
log_lock = threading.Lock()

TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".txt": "text/plain",
         ".xml": "application/xml", ".css": "text/css", ".js": "text/javascript", ".png": "image/png",
         ".py": "text/x-python", ".svg": "image/svg+xml"}


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without this, Nagle and the
    # client's delayed ACK add ~40 ms to every keep-alive reply.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def record(self, status):
        if not args.log:
            return
        line = json.dumps({"path": self.path, "status": status, "user_agent": self.headers.get("User-Agent", ""),
                           "if_none_match": self.headers.get("If-None-Match"),
                           "if_modified_since": self.headers.get("If-Modified-Since")})
        with log_lock, open(args.log, "a") as f:
            f.write(line + "\n")

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.record(status)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path.startswith("/slow/"):
            time.sleep(args.slow_seconds)
        if path.startswith("/fail/"):
            return self.reply(500, b"internal error")
        local = os.path.realpath(os.path.join(root, posixpath.normpath(path).lstrip("/")))
        if not local.startswith(root):
            return self.reply(404, b"not found")
        if os.path.isdir(local):
            if not path.endswith("/"):
                return self.reply(301, b"", [("Location", path + "/")])
            local = os.path.join(local, "index.html")
        if not os.path.isfile(local):
            return self.reply(404, b"not found", [("Content-Type", "text/plain")])
        st = os.stat(local)
        etag = '"%x-%x"' % (st.st_mtime_ns, st.st_size)
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        headers = [("ETag", etag), ("Last-Modified", modified),
                   ("Content-Type", TYPES.get(os.path.splitext(local)[1], "application/octet-stream"))]
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if inm is not None:
            if etag in [t.strip() for t in inm.split(",")]:
                return self.reply(304, b"", headers)
        elif ims is not None:
            try:
                if int(st.st_mtime) <= email.utils.parsedate_to_datetime(ims).timestamp():
                    return self.reply(304, b"", headers)
            except (TypeError, ValueError):
                pass
        with open(local, "rb") as f:
            body = f.read()
        self.reply(200, body, headers)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
