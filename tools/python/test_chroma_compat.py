"""Drives Sextant's ChromaDB-compatible API with the real chromadb-client (1.5.x
from PyPI), the way the seeds' applications use ChromaDB: an HttpClient, a
collection, add with documents and metadatas, queries with filters, get,
update, delete, count. Every result is asserted. Exit status 0 when all pass.

    python tools/python/test_chroma_compat.py --host 127.0.0.1 --port 8080 [--token KEY]

Embeddings are passed explicitly (precomputed debian-minilm vectors when
--dataset is given, small hand-made ones otherwise): ChromaDB's server never
embeds, and the client's default embedding function would need a model download.
"""
import argparse
import gzip
import json
import re
import math

import chromadb
from chromadb.config import Settings
from chromadb.errors import ChromaError, NotFoundError
from checks import check, read_fvecs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--token")
    ap.add_argument("--dataset", help="debian-minilm folder: use its real records and vectors")
    a = ap.parse_args()

    headers = {"Authorization": f"Bearer {a.token}"} if a.token else None
    client = chromadb.HttpClient(host=a.host, port=a.port, headers=headers,
                                 settings=Settings(anonymized_telemetry=False))
    check(client.heartbeat() > 0, "heartbeat")
    check(isinstance(client.get_version(), str), "version")

    # A knowledge base like the seeds': documents with metadata, vectors from a sentence model.
    if a.dataset:
        records = []
        with gzip.open(a.dataset + "/records.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                records.append(json.loads(line))
                if len(records) == 300:
                    break
        vectors = read_fvecs(a.dataset + "/base.fvecs", 300)
        ids = [r["id"] for r in records]
        docs = [r["title"] + ". " + r["body"] for r in records]
        metas = [{"section": r["metadata"]["section"], "size": r["metadata"]["installed_size"],
                  "arch": r["metadata"]["architecture"], "priority": r["metadata"]["priority"]} for r in records]
    else:
        ids = [f"doc{i}" for i in range(300)]
        vectors = [[math.cos(i * 0.1 + j) for j in range(16)] for i in range(300)]
        docs = [f"document number {i}" for i in range(300)]
        metas = [{"section": ["web", "net", "libs"][i % 3], "size": i * 10, "arch": "all" if i % 2 else "amd64",
                  "priority": "optional"} for i in range(300)]
    dim = len(vectors[0])

    for c in client.list_collections():
        if c.name == "kb-compat":
            client.delete_collection("kb-compat")
    collection = client.create_collection(name="kb-compat", metadata={"hnsw:space": "cosine", "owner": "seed"},
                                          embedding_function=None)
    check(collection.name == "kb-compat", "create name")
    check(collection.metadata == {"hnsw:space": "cosine", "owner": "seed"}, f"collection metadata {collection.metadata}")
    try:
        client.create_collection(name="kb-compat", embedding_function=None)
        check(False, "creating an existing collection must fail")
    except ChromaError:
        pass
    same = client.get_or_create_collection(name="kb-compat", embedding_function=None)
    check(same.id == collection.id, "get_or_create returns the same collection")

    # add in batches, as the seeds' ingestion does
    for start in range(0, 300, 100):
        collection.add(ids=ids[start:start + 100], embeddings=vectors[start:start + 100],
                       documents=docs[start:start + 100], metadatas=metas[start:start + 100])
    check(collection.count() == 300, f"count {collection.count()}")
    check(client.get_collection("kb-compat", embedding_function=None).count() == 300, "count through get_collection")

    # query: nearest first, defaults include documents, metadatas and distances
    result = collection.query(query_embeddings=[vectors[7], vectors[42]], n_results=5)
    check(result["ids"][0][0] == ids[7] and result["ids"][1][0] == ids[42], f"self is nearest {result['ids']}")
    check(result["distances"][0][0] < 1e-3, f"self distance {result['distances'][0][0]}")
    check(result["distances"][0] == sorted(result["distances"][0]), "distances ascend")
    check(result["documents"][0][0] == docs[7], "query returns documents")
    check(result["metadatas"][0][0] == metas[7], f"query returns metadatas {result['metadatas'][0][0]} vs {metas[7]}")
    check(result["embeddings"] is None, "embeddings not included by default")

    # filtered queries
    section = metas[0]["section"]
    filtered = collection.query(query_embeddings=[vectors[0]], n_results=10, where={"section": section})
    check(all(m["section"] == section for m in filtered["metadatas"][0]), "where $eq")
    expected = sum(1 for m in metas if m["section"] == section)
    check(len(filtered["ids"][0]) == min(10, expected), "never fewer than k that match")
    big = collection.query(query_embeddings=[vectors[1]], n_results=20,
                           where={"$and": [{"size": {"$gt": 1000}}, {"arch": {"$in": ["all", "amd64"]}}]},
                           include=["metadatas", "distances"])
    check(all(m["size"] > 1000 for m in big["metadatas"][0]), "where $and/$gt/$in")
    check(big["documents"] is None, "include honoured")
    word = docs[3].split()[0]
    by_doc = collection.query(query_embeddings=[vectors[3]], n_results=3, where_document={"$contains": word})
    check(ids[3] in by_doc["ids"][0], "where_document $contains")
    # $regex and $not_regex: the engine's linear-time matcher against Python's re on the same documents.
    pattern = "^" + re.escape(docs[3][:10]) + "|[0-9]{3}$"
    by_regex = collection.get(where_document={"$regex": pattern}, limit=1000)
    # Python's $ also matches before a final newline; Rust's (Chroma's) only at the end, as \Z does.
    expected = {i for i, d in zip(ids, docs) if re.search(pattern.replace("$", r"\Z"), d)}
    check(set(by_regex["ids"]) == expected, f"where_document $regex: {len(by_regex['ids'])} vs {len(expected)}")
    not_regex = collection.get(where_document={"$not_regex": "[aeiou]{2}"}, limit=1000)
    check(set(not_regex["ids"]) == {i for i, d in zip(ids, docs) if not re.search("[aeiou]{2}", d)}, "where_document $not_regex")

    # get
    got = collection.get(ids=[ids[5], ids[6]], include=["documents", "metadatas", "embeddings"])
    check(sorted(got["ids"]) == sorted([ids[5], ids[6]]), "get by ids")
    idx = got["ids"].index(ids[5])
    check(got["documents"][idx] == docs[5], "get document")
    check(len(got["embeddings"][idx]) == dim, "get embeddings")
    page = collection.get(limit=10, offset=20)
    check(len(page["ids"]) == 10, "get with limit/offset")
    filtered_get = collection.get(where={"priority": {"$ne": "nonexistent"}}, limit=5)
    check(len(filtered_get["ids"]) == 5, "get with where $ne")
    peek = collection.peek(3)
    check(len(peek["ids"]) == 3, "peek")

    # update and upsert
    collection.update(ids=[ids[10]], embeddings=[vectors[10]],
                      metadatas=[{"section": "updated", "size": 1, "arch": "all", "priority": "x"}],
                      documents=["an updated document"])
    updated = collection.get(ids=[ids[10]])
    check(updated["documents"][0] == "an updated document", "update document")
    check(updated["metadatas"][0]["section"] == "updated", "update metadata")
    collection.upsert(ids=[ids[11], "brand-new"], embeddings=[vectors[11], vectors[12]],
                      documents=["upserted existing", "upserted new"], metadatas=[{"k": 1}, {"k": 2}])
    check(collection.count() == 301, "upsert adds the new id")
    check(collection.get(ids=[ids[11]])["documents"][0] == "upserted existing", "upsert replaces")

    # delete by ids and by filter
    collection.delete(ids=[ids[0], ids[1]])
    check(collection.count() == 299, "delete by ids")
    collection.delete(where={"section": "updated"})
    check(collection.count() == 298, "delete by where")
    check(collection.get(ids=[ids[0]])["ids"] == [], "deleted record is gone")

    # errors arrive as chromadb exceptions
    try:
        collection.query(query_embeddings=[[0.1] * (dim + 1)], n_results=1)
        check(False, "wrong dimension must fail")
    except ChromaError:
        pass
    try:
        client.get_collection("does-not-exist")
        check(False, "missing collection must fail")
    except (NotFoundError, ChromaError, ValueError):
        pass

    # modify and delete the collection
    collection.modify(metadata={"owner": "changed"})
    check(client.get_collection("kb-compat", embedding_function=None).metadata["owner"] == "changed", "modify metadata")
    check(client.count_collections() >= 1, "count_collections")
    client.delete_collection("kb-compat")
    check("kb-compat" not in [c.name for c in client.list_collections()], "delete_collection")
    print("chromadb-client compatibility: all checks passed")


if __name__ == "__main__":
    main()
