"""SQLite FTS5's side of tools/compare/bm25.sh: the debian-minilm bodies in an
FTS5 table (porter tokenizer), the 1,000 public queries as OR of their words,
top 10 by bm25(), single-threaded. Prints JSON."""
import gzip
import json
import os
import re
import sqlite3
import sys
import tempfile
import time

dataset = sys.argv[1]
passes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
with gzip.open(os.path.join(dataset, "records.jsonl.gz"), "rt", encoding="utf-8") as f:
    bodies = [json.loads(line).get("body") or "" for line in f]
with open(os.path.join(dataset, "queries.txt"), encoding="utf-8") as f:
    queries = [line.rstrip("\n") for line in f][:1000]
path = os.path.join(tempfile.mkdtemp(prefix="fts5-bm25-"), "index.db")
db = sqlite3.connect(path)
db.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize='porter unicode61')")
start = time.perf_counter()
db.executemany("INSERT INTO docs(body) VALUES (?)", ((b,) for b in bodies))
db.commit()
build = time.perf_counter() - start
size = os.path.getsize(path)
texts = [" OR ".join('"' + w + '"' for w in re.findall(r"\w+", q)) or '"nothing"' for q in queries]
best = float("inf")
hits = 0
for _ in range(passes):
    start = time.perf_counter()
    found = 0
    for text in texts:
        found += len(db.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 10", (text,)).fetchall())
    best = min(best, time.perf_counter() - start)
    hits = found
print(json.dumps({"documents": len(bodies), "build_seconds": build, "build_documents_per_second": len(bodies) / build,
                  "index_bytes": size, "queries": len(texts), "qps": len(texts) / best, "mean_hits": hits / len(texts)}))
