"""SQLite FTS5's side of tools/compare/bm25.sh: the debian-minilm bodies in an
FTS5 table (porter tokenizer), the 1,000 public queries as OR of their words,
top 10 by bm25(), single-threaded. Prints JSON."""
import os
import re
import sqlite3
import sys
import tempfile
import time

from bm25_common import best_pass, load, report

dataset = sys.argv[1]
passes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
bodies, queries = load(dataset)
path = os.path.join(tempfile.mkdtemp(prefix="fts5-bm25-"), "index.db")
db = sqlite3.connect(path)
db.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize='porter unicode61')")
start = time.perf_counter()
db.executemany("INSERT INTO docs(body) VALUES (?)", ((b,) for b in bodies))
db.commit()
build = time.perf_counter() - start
texts = [" OR ".join('"' + w + '"' for w in re.findall(r"\w+", q)) or '"nothing"' for q in queries]
query = "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 10"
qps, mean_hits = best_pass(lambda text: len(db.execute(query, (text,)).fetchall()), texts, passes)
report(len(bodies), build, os.path.getsize(path), len(texts), qps, mean_hits)
