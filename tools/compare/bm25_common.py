"""What tantivy_bm25.py and fts5_bm25.py share: the debian-minilm bodies and
queries, and the timing of single-threaded query passes (best of N)."""
import gzip
import json
import os
import time


def load(dataset):
    with gzip.open(os.path.join(dataset, "records.jsonl.gz"), "rt", encoding="utf-8") as f:
        bodies = [json.loads(line).get("body") or "" for line in f]
    with open(os.path.join(dataset, "queries.txt"), encoding="utf-8") as f:
        queries = [line.rstrip("\n") for line in f][:1000]
    return bodies, queries


def best_pass(run_query, queries, passes):
    """(queries per second of the fastest pass, mean hits per query)."""
    best, hits = float("inf"), 0
    for _ in range(passes):
        start = time.perf_counter()
        found = sum(run_query(query) for query in queries)
        best, hits = min(best, time.perf_counter() - start), found
    return len(queries) / best, hits / len(queries)


def report(documents, build_seconds, index_bytes, queries, qps, mean_hits):
    print(json.dumps({"documents": documents, "build_seconds": build_seconds,
                      "build_documents_per_second": documents / build_seconds, "index_bytes": index_bytes,
                      "queries": queries, "qps": qps, "mean_hits": mean_hits}))
