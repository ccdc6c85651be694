"""The engine's BM25 against an exact reference written here in plain Python:
debian-minilm records go into a collection with a text index through the
Python client; every one of the 1,000 public queries is searched lexically
(top 10); the reference tokenizes with chromadb's own Bm25Tokenizer (the
tokenizer the engine reproduces) and scores every document by BM25 (k1 1.2,
b 0.75). The two top-10s must agree on every query: same scores, and the same
ids wherever scores do not tie. Then a third of the records are deleted or
rewritten and every query is checked again. Exit status 0 when all agree.

    python tools/python/test_bm25_exact.py --engine 127.0.0.1:7700 --data DATASET [--records N]
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
from collections import Counter

from chromadb.utils.embedding_functions.schemas.bm25_tokenizer import (
    DEFAULT_CHROMA_BM25_STOPWORDS,
    Bm25Tokenizer,
    get_english_stemmer,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sextant_client import Client  # noqa: E402
from checks import check

K1, B, TOP = 1.2, 0.75, 10


def vectors(path, count):
    with open(path, "rb") as f:
        out = []
        for _ in range(count):
            (dim,) = struct.unpack("<i", f.read(4))
            out.append(list(struct.unpack(f"<{dim}f", f.read(4 * dim))))
        return out


class Reference:
    """BM25 over the current documents, scored exhaustively from an inverted
    index rebuilt (by `freeze`) after each round of changes."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.documents = {}

    def set(self, record_id, text):
        self.documents[record_id] = Counter(self.tokenizer.tokenize(text or ""))

    def delete(self, record_id):
        self.documents.pop(record_id, None)

    def freeze(self):
        live = {i: c for i, c in self.documents.items() if c}
        self.n = len(live)
        self.lengths = {i: sum(c.values()) for i, c in live.items()}
        self.average = sum(self.lengths.values()) / self.n
        self.postings = {}
        for record_id, counts in live.items():
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((record_id, tf))

    def scores(self, query):
        """Every matching document's score, best first."""
        totals = Counter()
        for term in set(self.tokenizer.tokenize(query)):
            postings = self.postings.get(term, [])
            if not postings:
                continue
            idf = math.log(1 + (self.n - len(postings) + 0.5) / (len(postings) + 0.5))
            for record_id, tf in postings:
                norm = K1 * (1 - B + B * self.lengths[record_id] / self.average)
                totals[record_id] += idf * tf * (K1 + 1) / (tf + norm)
        return sorted(((score, i) for i, score in totals.items() if score > 0), key=lambda pair: -pair[0])


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def compare(client, reference, queries, label):
    reference.freeze()
    for number, query in enumerate(queries):
        everything = reference.scores(query)
        expected = everything[:TOP]
        found = client.search("bm25", "lexical", texts=[query], k=TOP, include=())[0]
        check(len(found) == len(expected), f"{label} query {number} '{query}': {len(found)} hits, reference {len(expected)}")
        for rank, (hit, (score, _)) in enumerate(zip(found, expected)):
            check(close(hit["score"], score), f"{label} query {number} '{query}' rank {rank}: score {hit['score']} vs {score}")
            # Ties may be broken either way, also across the cut at 10.
            tied = {i for s, i in everything if close(s, score)}
            check(hit["id"] in tied, f"{label} query {number} '{query}' rank {rank}: {hit['id']} not among {sorted(tied)[:5]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--records", type=int, default=8000)
    a = ap.parse_args()
    host, port = a.engine.rsplit(":", 1)
    client = Client(host, int(port))
    tokenizer = Bm25Tokenizer(get_english_stemmer(), DEFAULT_CHROMA_BM25_STOPWORDS, 40)

    records = []
    with gzip.open(os.path.join(a.data, "records.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            records.append(json.loads(line))
            if len(records) == a.records:
                break
    rows = vectors(os.path.join(a.data, "base.fvecs"), len(records))
    with open(os.path.join(a.data, "queries.txt"), encoding="utf-8") as f:
        queries = [line.rstrip("\n") for line in f][:1000]

    client.create_collection("bm25", dimension=len(rows[0]), text_index=True)
    reference = Reference(tokenizer)
    for start in range(0, len(records), 1000):
        batch = records[start:start + 1000]
        client.upsert("bm25", [r["id"] for r in batch], rows[start:start + len(batch)],
                      documents=[r["body"] for r in batch])
        for r in batch:
            reference.set(r["id"], r["body"])
    compare(client, reference, queries, "loaded")

    # Every third record deleted, every third rewritten with another's body.
    deleted = [r["id"] for r in records[0::3]]
    client.delete("bm25", ids=deleted)
    for record_id in deleted:
        reference.delete(record_id)
    rewritten = list(range(1, len(records), 3))
    for start in range(0, len(rewritten), 1000):
        batch = rewritten[start:start + 1000]
        bodies = [records[(i + 7) % len(records)]["body"] for i in batch]
        client.upsert("bm25", [records[i]["id"] for i in batch], [rows[i] for i in batch], documents=bodies)
        for i, body in zip(batch, bodies):
            reference.set(records[i]["id"], body)
    compare(client, reference, queries, "changed")
    print(f"all checks passed: {len(queries)} queries, {len(records)} records, twice")


if __name__ == "__main__":
    main()
