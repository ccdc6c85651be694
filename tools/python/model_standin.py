#!/usr/bin/env python3
"""A local stand-in for the model APIs the ingestion worker calls, speaking the
same request and reply shapes: Gemini generateContent and batchEmbedContents
(generativelanguage.googleapis.com/v1beta) and OpenAI-compatible /v1/embeddings.
Deterministic replies; fault injection for the retry and failure paths.

  model_standin.py --port N [--key KEY] [--fail-every N] [--fail-marker TEXT]

--fail-every N   every Nth generateContent request answers 429 (then succeeds on retry)
--fail-marker T  a generateContent prompt containing T answers 500, every time
--slow-marker T  an answer prompt (bots, chat) containing T is answered after --slow-seconds
POST /v1/chat/completions   OpenAI-compatible chat, answering like generateContent does
GET /stats       request counts, as JSON
"""
import argparse, hashlib, json, re, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--key", default="standin-key")
parser.add_argument("--fail-every", type=int, default=0)
parser.add_argument("--fail-marker", default="")
parser.add_argument("--dimension", type=int, default=64)
parser.add_argument("--slow-marker", default="", help="an answer prompt containing this waits --slow-seconds")
parser.add_argument("--slow-seconds", type=float, default=5.0)
args = parser.parse_args()
lock = threading.Lock()
stats = {"generate": 0, "generate_429": 0, "generate_500": 0, "gemini_embed": 0, "openai_embed": 0, "unauthorized": 0}


def vector(text):
    values, counter = [], 0
    while len(values) < args.dimension:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    return values[: args.dimension]


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without this, Nagle and the
    # client's delayed ACK add ~40 ms to every keep-alive reply.
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                return self.reply(200, stats)
        self.reply(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path.startswith("/v1beta/models/"):
            if self.headers.get("x-goog-api-key") != args.key:
                with lock:
                    stats["unauthorized"] += 1
                return self.reply(403, {"error": {"code": 403, "message": "API key not valid", "status": "PERMISSION_DENIED"}})
            if self.path.endswith(":generateContent"):
                return self.generate(body)
            if self.path.endswith(":batchEmbedContents"):
                with lock:
                    stats["gemini_embed"] += 1
                texts = [r["content"]["parts"][0]["text"] for r in body["requests"]]
                return self.reply(200, {"embeddings": [{"values": vector(t)} for t in texts]})
        if self.path == "/v1/chat/completions":
            if self.headers.get("Authorization") != f"Bearer {args.key}":
                return self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            prompt = "\n".join(m.get("content", "") for m in body.get("messages", []))
            return self.reply(200, {"object": "chat.completion", "model": body.get("model"),
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer(prompt)},
                                                 "finish_reason": "stop"}]})
        if self.path == "/v1/embeddings":
            if self.headers.get("Authorization") != f"Bearer {args.key}":
                return self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            with lock:
                stats["openai_embed"] += 1
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
            data.reverse()  # the index field, not the order, says which is which
            return self.reply(200, {"object": "list", "data": data, "model": body["model"]})
        self.reply(404, {"error": {"code": 404, "message": "not found"}})

    def answer(self, prompt):
        """A grounded answer to the bots' and chat's prompt: names the first passage, slow when told."""
        if args.slow_marker and args.slow_marker in prompt:
            import time
            time.sleep(args.slow_seconds)
        first = re.search(r"\[1\] ([^\n]*)", prompt)
        question = prompt.rsplit("Question:", 1)[-1].strip()
        return f"LLM answer to '{question}', from [1] {first.group(1) if first else 'nothing'}."

    def generate(self, body):
        prompt = "".join(p.get("text", "") for c in body["contents"] for p in c["parts"])
        if "Answer the user's question" in prompt:
            with lock:
                stats["generate"] += 1
            return self.reply(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": self.answer(prompt)}]},
                                                    "finishReason": "STOP", "index": 0}]})
        with lock:
            stats["generate"] += 1
            count = stats["generate"]
        if args.fail_every and count % args.fail_every == 0:
            with lock:
                stats["generate_429"] += 1
            print(f"injected 429 on request {count}", flush=True)
            return self.reply(429, {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}})
        if args.fail_marker and args.fail_marker in prompt:
            with lock:
                stats["generate_500"] += 1
            print(f"injected 500 on request {count}", flush=True)
            return self.reply(500, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}})
        texts = re.split(r"\n\[\d+\]\n", prompt)[1:]
        summaries = ["Summary: " + " ".join(t.split()[:5]) for t in texts]
        return self.reply(200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(summaries)}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": len(prompt.split()), "candidatesTokenCount": 5 * len(texts)},
        })


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print(f"listening on {args.port}", flush=True)
server.serve_forever()
