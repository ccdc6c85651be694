"""Drives Sextant's Chroma Search API with the real chromadb 1.5.9 package: a
collection whose schema declares a BM25 sparse index on the documents (the
client computes each record's sparse vector with chroma_bm25 and sends it in
metadata), then `collection.search(...)` with a dense Knn, a sparse Knn, Rrf
of both, filters (metadata, #document, #id), group_by, select, limit/offset
and Knn defaults; each answer is compared with an exact reference computed
here from the same records. Exit status 0 when all pass.

    .venv-chroma/bin/python tools/python/test_chroma_search.py --port 8080 --dataset DIR [--token KEY]
"""
import argparse
import gzip
import json
import math
import re

import numpy as np
import chromadb
from chromadb import Schema, SparseVectorIndexConfig, K, Knn, Rrf, Search
from chromadb.execution.expression.operator import GroupBy, MinK
from chromadb.config import Settings
from chromadb.errors import ChromaError
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction
from checks import check, read_fvecs

RECORDS = 2000


class Reference:
    """Exact answers over the records as stored: float16 vectors (the engine's
    storage), squared L2 distances (Chroma's l2), and BM25 sparse dot products
    with the query scaled by ln(1 + (n - n_t + 0.5)/(n_t + 0.5))."""

    def __init__(self, ids, vectors, documents, metadatas, sparse):
        self.ids = ids
        self.vectors = vectors.astype(np.float16).astype(np.float32)
        self.documents = documents
        self.metadatas = metadatas
        self.sparse = sparse  # id -> {index: value}
        self.holding = {}
        for vector in sparse.values():
            for index in vector:
                self.holding[index] = self.holding.get(index, 0) + 1

    def accepted(self, where=None, contains=None, ids=None):
        out = []
        for position, rid in enumerate(self.ids):
            if where and not all(self.metadatas[position].get(k) == v for k, v in where.items()):
                continue
            if contains and contains not in self.documents[position]:
                continue
            if ids is not None and rid not in ids:
                continue
            out.append(position)
        return out

    def dense(self, query, limit, **filters):
        positions = self.accepted(**filters)
        q = np.array(query, dtype=np.float32)
        distances = ((self.vectors[positions] - q) ** 2).sum(axis=1)
        order = np.argsort(distances, kind="stable")[:limit]
        return [(self.ids[positions[i]], float(distances[i])) for i in order]

    def sparse_knn(self, query, limit, **filters):
        n = len(self.ids)
        weights = {}
        for index, value in zip(query.indices, query.values):
            nt = min(self.holding.get(index, 0), n)
            weights[index] = value * math.log(1 + (n - nt + 0.5) / (nt + 0.5))
        scored = []
        for position in self.accepted(**filters):
            vector = self.sparse.get(self.ids[position], {})
            if not any(index in vector for index in weights):
                continue
            dot = sum(weight * vector[index] for index, weight in weights.items() if index in vector)
            scored.append((self.ids[position], 1 - dot))
        scored.sort(key=lambda item: (item[1], item[0]))
        return scored[:limit]


def same_ranking(found_ids, found_scores, expected, label, tolerance):
    """Same length; scores equal within tolerance; ids equal except inside near-ties."""
    check(len(found_ids) == len(expected), f"{label}: {len(found_ids)} results, reference {len(expected)}")
    for position, (rid, score) in enumerate(zip(found_ids, found_scores)):
        want_id, want_score = expected[position]
        check(abs(score - want_score) <= tolerance, f"{label} #{position}: score {score} vs {want_score} ({rid} vs {want_id})")
        if rid != want_id:
            tied = [e for e in expected if abs(e[1] - want_score) <= tolerance]
            check(any(e[0] == rid for e in tied), f"{label} #{position}: {rid} is not {want_id} nor tied with it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--token")
    ap.add_argument("--dataset", required=True)
    a = ap.parse_args()

    with gzip.open(a.dataset + "/records.jsonl.gz", "rt", encoding="utf-8") as f:
        records = [json.loads(next(f)) for _ in range(RECORDS)]
    vectors = np.array(read_fvecs(a.dataset + "/base.fvecs", RECORDS), dtype=np.float32)
    ids = [r["id"] for r in records]
    documents = [r["title"] + ". " + r["body"] for r in records]
    metadatas = [{"section": r["metadata"]["section"], "size": r["metadata"]["installed_size"],
                  "priority": r["metadata"]["priority"]} for r in records]

    headers = {"Authorization": f"Bearer {a.token}"} if a.token else None
    client = chromadb.HttpClient(host=a.host, port=a.port, headers=headers, settings=Settings(anonymized_telemetry=False))
    bm25 = ChromaBm25EmbeddingFunction()
    schema = Schema().create_index(
        config=SparseVectorIndexConfig(source_key=K.DOCUMENT, embedding_function=bm25, bm25=True), key="bm25_sparse")
    collection = client.create_collection(name="search-kb", schema=schema)
    echoed = collection.schema.serialize_to_json() if collection.schema else None
    check(echoed is not None and echoed["keys"]["bm25_sparse"]["sparse_vector"]["sparse_vector_index"]["config"]["bm25"] is True,
          f"the collection echoes its schema: {echoed}")

    for start in range(0, RECORDS, 500):
        end = start + 500
        collection.add(ids=ids[start:end], embeddings=vectors[start:end].tolist(), documents=documents[start:end],
                       metadatas=[dict(m) for m in metadatas[start:end]])
    check(collection.count() == RECORDS, "count after add")

    # The client computed each document's BM25 sparse vector into its metadata; it reads back as a SparseVector.
    stored = collection.get(ids=[ids[0]], include=["metadatas"])
    sparse_value = stored["metadatas"][0]["bm25_sparse"]
    expected_vector = bm25([documents[0]])[0]
    check(list(sparse_value.indices) == list(expected_vector.indices), "sparse vector indices round-trip")
    check(all(abs(x - y) < 1e-6 for x, y in zip(sparse_value.values, expected_vector.values)), "sparse vector values round-trip")
    sparse = {}
    for start in range(0, RECORDS, 500):
        batch = collection.get(ids=ids[start:start + 500], include=["metadatas"])
        for rid, metadata in zip(batch["ids"], batch["metadatas"]):
            vector = metadata["bm25_sparse"]
            sparse[rid] = dict(zip(vector.indices, vector.values))
    reference = Reference(ids, vectors, documents, metadatas, sparse)

    queries = [(vectors[i].tolist(), text) for i, text in
               [(11, "video editing software"), (400, "python library for parsing"), (1500, "game"), (901, "network monitoring daemon")]]

    fused_results = 0
    for number, (dense_query, text) in enumerate(queries):
        # Dense Knn: squared L2 over the float16 vectors, exact on a collection this small.
        result = collection.search(Search().rank(Knn(query=dense_query, limit=50)).limit(10).select(K.DOCUMENT, K.SCORE, "section"))
        expected = reference.dense(dense_query, 10)
        same_ranking(result["ids"][0], result["scores"][0], expected, f"dense {number}", 2e-3)
        check(result["documents"][0][0] == documents[ids.index(result["ids"][0][0])], "selected documents")
        check(all(set(m) == {"section"} for m in result["metadatas"][0]), f"a selected field trims metadata: {result['metadatas'][0][:2]}")
        check(result["embeddings"] == [None], "unselected columns are null")

        # Sparse Knn by text: the client embeds it with chroma_bm25; the server applies IDF.
        result = collection.search(Search().rank(Knn(query=text, key="bm25_sparse", limit=20)).limit(10).select(K.SCORE))
        query_vector = bm25.embed_query([text])[0]
        expected = reference.sparse_knn(query_vector, 10)
        check(len(expected) > 0, f"reference finds '{text}'")
        same_ranking(result["ids"][0], result["scores"][0], expected, f"sparse '{text}'", 1e-4)

        # Rrf of both (no defaults: records both legs found), weights 0.7 / 0.3.
        rrf = Rrf([Knn(query=dense_query, return_rank=True, limit=100),
                   Knn(query=text, key="bm25_sparse", return_rank=True, limit=100)], k=60, weights=[0.7, 0.3])
        result = collection.search(Search().rank(rrf).limit(10).select(K.SCORE, K.DOCUMENT))
        dense_ranks = {rid: rank for rank, (rid, _) in enumerate(reference.dense(dense_query, 100))}
        sparse_ranks = {rid: rank for rank, (rid, _) in enumerate(reference.sparse_knn(query_vector, 100))}
        fused = sorted(((rid, -(0.7 / (60 + dense_ranks[rid]) + 0.3 / (60 + sparse_ranks[rid])))
                        for rid in set(dense_ranks) & set(sparse_ranks)), key=lambda item: (item[1], item[0]))[:10]
        same_ranking(result["ids"][0], result["scores"][0], fused, f"rrf {number}", 1e-6)
        fused_results += len(fused)
    check(fused_results >= 10, f"the fused rankings overlap on some queries ({fused_results} results in all)")

    dense_query, text = queries[0]
    # Filters: metadata equality and a document substring, as conjuncts.
    result = collection.search(Search().where((K("section") == "video") & K.DOCUMENT.contains("video"))
                               .rank(Knn(query=dense_query, limit=30)).limit(10).select(K.SCORE, "section"))
    expected = reference.dense(dense_query, 10, where={"section": "video"}, contains="video")
    same_ranking(result["ids"][0], result["scores"][0], expected, "filtered dense", 2e-3)
    check(all(m["section"] == "video" for m in result["metadatas"][0]), "the filter holds")
    # #id restricts the candidates.
    chosen = ids[100:160]
    result = collection.search(Search().where(K.ID.is_in(chosen)).rank(Knn(query=text, key="bm25_sparse", limit=10)).select(K.SCORE))
    expected = reference.sparse_knn(bm25.embed_query([text])[0], 10, ids=set(chosen))
    same_ranking(result["ids"][0], result["scores"][0], expected, "#id filter", 1e-4)

    # Offset pages through the same ranking.
    first = collection.search(Search().rank(Knn(query=dense_query, limit=40)).limit(20))
    page = collection.search(Search().rank(Knn(query=dense_query, limit=40)).limit(10, offset=10))
    check(page["ids"][0] == first["ids"][0][10:20], "offset pages the ranking")

    # group_by: at most 2 per section, each section's best by score, all re-sorted by score.
    result = collection.search(Search().rank(Knn(query=dense_query, limit=60))
                               .group_by(GroupBy(keys=K("section"), aggregate=MinK(keys=K.SCORE, k=2)))
                               .limit(30).select(K.SCORE, "section"))
    ranked = reference.dense(dense_query, 60)
    kept, per_section = [], {}
    for rid, score in ranked:
        section = metadatas[ids.index(rid)]["section"]
        if per_section.get(section, 0) < 2:
            per_section[section] = per_section.get(section, 0) + 1
            kept.append((rid, score))
    same_ranking(result["ids"][0], result["scores"][0], kept[:30], "group_by", 2e-3)
    check(len(kept) < 60, "grouping dropped records")

    # A Knn with a default keeps records only the other leg found (union), scored with the default.
    union = Rrf([Knn(query=dense_query, return_rank=True, limit=5, default=1000),
                 Knn(query=text, key="bm25_sparse", return_rank=True, limit=5, default=1000)], k=60)
    result = collection.search(Search().rank(union).limit(20).select(K.SCORE))
    dense_top = [rid for rid, _ in reference.dense(dense_query, 5)]
    sparse_top = [rid for rid, _ in reference.sparse_knn(bm25.embed_query([text])[0], 5)]
    check(set(result["ids"][0]) == set(dense_top) | set(sparse_top), f"defaults give the union: {result['ids'][0]}")

    # Several searches in one request; a search without rank returns the filter's records.
    batch = collection.search([Search().where(K("section") == "games").limit(5).select(K.DOCUMENT),
                               Search().rank(Knn(query=dense_query, limit=3)).limit(3)])
    check(len(batch["ids"]) == 2 and len(batch["ids"][0]) == 5 and len(batch["ids"][1]) == 3, "two searches, two answers")
    check(all(metadatas[ids.index(rid)]["section"] == "games" for rid in batch["ids"][0]), "unranked search filters")

    # A document regex filters as Chroma's does ($ only at the very end, as Python's \Z).
    pattern = "(?i)^lib[a-z]+|video$"
    by_regex = collection.search(Search().where(K.DOCUMENT.regex(pattern)).limit(len(ids)))
    expected = {rid for rid, doc in zip(ids, documents) if re.search(pattern.replace("$", r"\Z"), doc)}
    check(set(by_regex["ids"][0]) == expected and expected, f"document regex: {len(by_regex['ids'][0])} vs {len(expected)}")
    not_regex = collection.search(Search().where(K.DOCUMENT.not_regex("[0-9]")).limit(len(ids)))
    check(set(not_regex["ids"][0]) == {rid for rid, doc in zip(ids, documents) if not re.search("[0-9]", doc)},
          "document not_regex")
    # Unsupported parts answer Chroma's error shape with a clear message.
    try:
        collection.search(Search().where(K.DOCUMENT.regex("(?<=lib)x")).rank(Knn(query=dense_query)))
        check(False, "a look-behind was accepted")
    except ChromaError as error:
        check("not supported" in str(error), f"clear message: {error}")
    try:
        collection.search(Search().rank(Knn(query=text, key="no_such_key")))
        check(False, "a sparse Knn on an undeclared key was accepted")
    except Exception as error:  # the client may refuse it first (no embedding function for the key)
        check("no_such_key" in str(error) or "embedding" in str(error).lower(), f"clear message: {error}")

    print("all checks passed")


if __name__ == "__main__":
    main()
