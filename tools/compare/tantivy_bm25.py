"""tantivy's side of tools/compare/bm25.sh: the debian-minilm bodies indexed with
tantivy's English stemming analyzer (en_stem), the 1,000 public queries as OR
of their words, top 10 by BM25, single-threaded, one at a time. Prints JSON."""
import os
import re
import sys
import tempfile
import time

import tantivy

from bm25_common import best_pass, load, report

dataset = sys.argv[1]
passes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
bodies, queries = load(dataset)

builder = tantivy.SchemaBuilder()
builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
schema = builder.build()
folder = tempfile.mkdtemp(prefix="tantivy-bm25-")
index = tantivy.Index(schema, path=folder)
start = time.perf_counter()
writer = index.writer(heap_size=256_000_000, num_threads=1)
for body in bodies:
    writer.add_document(tantivy.Document(body=body))
writer.commit()
writer.wait_merging_threads()
build = time.perf_counter() - start
index.reload()
searcher = index.searcher()
size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
# Words only: the query parser's syntax characters would otherwise change the query.
parsed = [index.parse_query(" ".join(re.findall(r"\w+", q)) or "nothing", ["body"]) for q in queries]
qps, mean_hits = best_pass(lambda query: len(searcher.search(query, 10).hits), parsed, passes)
report(len(bodies), build, size, len(parsed), qps, mean_hits)
