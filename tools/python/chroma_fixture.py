"""Chroma persist directories for the import tests, made by the real chromadb
package (1.5.9, from tools/python/requirements-chroma.txt), and dumps of what
Chroma itself answers for them.

    chroma_fixture.py build DIR [--records N]   several collections, with deletes,
                                                 updates, upserts and a tail still in
                                                 Chroma's write-ahead queue
    chroma_fixture.py dump DIR OUT.json         every collection and record as Chroma's
                                                 own client reads them back
    chroma_fixture.py readd DIR URL             re-add DIR's records to a Chroma server
                                                 through chromadb-client (the benchmark's peer);
                                                 prints the seconds the adds took
    chroma_fixture.py scaled DIR FVECS N        one collection of N records (vectors from an
                                                 fvecs file, short documents, three metadata
                                                 fields) for the import benchmark
"""
import json
import random
import sys
import time

import chromadb
from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

WORDS = ("tender road works school lunch catering bridge repair hospital cleaning software licence audit "
         "consulting energy supply water network waste collection fleet vehicles printing").split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def vectors(rng, count, dim):
    return [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(count)]


def build(path, records):
    rng = random.Random(7)
    client = chromadb.PersistentClient(path=path)
    # Chroma's default embedding function is recorded, never called: every write carries its vectors.
    tenders = client.create_collection("tenders", configuration={"hnsw": {"space": "cosine"}},
                                       metadata={"source": "feed", "version": 3}, embedding_function=DefaultEmbeddingFunction())
    ids = [f"T-{i:06d}" for i in range(records)]
    batch = 1000
    for start in range(0, records, batch):
        chunk = ids[start:start + batch]
        tenders.add(ids=chunk, embeddings=vectors(rng, len(chunk), 384),
                    documents=[sentence(rng, 12) for _ in chunk],
                    metadatas=[{"value_eur": rng.randint(1000, 5_000_000), "score": rng.random(), "open": rng.random() < 0.5,
                                "buyer": rng.choice(["city", "region", "state"])} for _ in chunk])
    tenders.delete(ids=ids[10:60])
    tenders.update(ids=ids[100:130], documents=[f"updated {i}" for i in range(30)],
                   metadatas=[{"buyer": "ministry", "score": None} for _ in range(30)],
                   embeddings=vectors(rng, 30, 384))
    tenders.upsert(ids=ids[200:220] + [f"N-{i}" for i in range(20)], embeddings=vectors(rng, 40, 384),
                   documents=[sentence(rng, 6) for _ in range(40)], metadatas=[{"value_eur": 7} for _ in range(40)])
    # Fewer than Chroma's sync threshold (1,000) after the last persist: these stay in its queue.
    tail = [f"Q-{i}" for i in range(150)]
    tenders.add(ids=tail, embeddings=vectors(rng, 150, 384), documents=[sentence(rng, 5) for _ in tail],
                metadatas=[{"value_eur": i, "tags": ["late", "queued"]} for i in range(150)])
    tenders.delete(ids=tail[:5])

    notes = client.create_collection("notes", metadata={"hnsw:space": "l2", "owner": "team"}, embedding_function=None)
    note_ids = [f"n{i}" for i in range(400)]
    notes.add(ids=note_ids, embeddings=vectors(rng, 400, 8), documents=[None if i % 7 == 0 else sentence(rng, 4) for i in range(400)],
              metadatas=[None if i % 5 == 0 else {"k": i} for i in range(400)])
    notes.update(ids=note_ids[:3], embeddings=vectors(rng, 3, 8))

    client.create_collection("empty-one", embedding_function=None)


def dump(path, out):
    client = chromadb.PersistentClient(path=path)
    result = []
    for collection in sorted(client.list_collections(), key=lambda c: c.name):
        got = collection.get(include=["embeddings", "documents", "metadatas"])
        records = []
        for i, record_id in enumerate(got["ids"]):
            records.append({"id": record_id, "embedding": [float(x) for x in got["embeddings"][i]],
                            "document": got["documents"][i], "metadata": got["metadatas"][i]})
        result.append({"name": collection.name, "metadata": collection.metadata,
                       "configuration": json.loads(json.dumps(collection.configuration_json, default=str)),
                       "records": sorted(records, key=lambda r: r["id"])})
    with open(out, "w") as f:
        json.dump(result, f)


def readd(path, url):
    host, port = url.split("//")[1].split(":")
    source = chromadb.PersistentClient(path=path)
    target = chromadb.HttpClient(host=host, port=int(port))
    def read_all(collection):
        # Chroma's get refuses a whole large collection at once ("too many SQL variables"): page it.
        got = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
        while True:
            page = collection.get(include=["embeddings", "documents", "metadatas"], limit=5000, offset=len(got["ids"]))
            if not page["ids"]:
                return got
            for key in got:
                got[key].extend(page[key])

    everything = [(c, read_all(c)) for c in source.list_collections()]
    started = time.time()
    for collection, got in everything:
        created = target.create_collection(collection.name, metadata=collection.metadata, embedding_function=None)
        for start in range(0, len(got["ids"]), 1000):
            end = start + 1000
            created.add(ids=got["ids"][start:end], embeddings=got["embeddings"][start:end],
                        documents=got["documents"][start:end], metadatas=got["metadatas"][start:end])
    print(f"{time.time() - started:.3f}")


def scaled(path, fvecs, count):
    import struct
    rng = random.Random(11)
    client = chromadb.PersistentClient(path=path)
    collection = client.create_collection("feed", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    with open(fvecs, "rb") as f:
        done = 0
        while done < count:
            n = min(1000, count - done)
            rows = []
            for _ in range(n):
                (d,) = struct.unpack("<i", f.read(4))
                rows.append(list(struct.unpack(f"<{d}f", f.read(4 * d))))
            ids = [f"r{done + i}" for i in range(n)]
            collection.add(ids=ids, embeddings=rows, documents=[sentence(rng, 10) for _ in ids],
                           metadatas=[{"value_eur": rng.randint(1, 10**6), "buyer": rng.choice(["city", "region"]), "day": done // 80000}
                                      for _ in ids])
            done += n


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "build":
        count = int(sys.argv[sys.argv.index("--records") + 1]) if "--records" in sys.argv else 3000
        build(sys.argv[2], count)
    elif command == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif command == "readd":
        readd(sys.argv[2], sys.argv[3])
    elif command == "scaled":
        scaled(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {command}")
