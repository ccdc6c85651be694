"""Drives the real engine with the Python client: create, upsert, query, get,
filters, error statuses. Exit status 0 when every check passes.

    python tools/python/test_sextant_client.py --engine 127.0.0.1:7700
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sextant_client import Client, SextantError  # noqa: E402
from checks import check


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--token")
    a = ap.parse_args()
    host, port = a.engine.rsplit(":", 1)
    client = Client(host, int(port), token=a.token)
    check(client.heartbeat() > 0, "heartbeat")
    check(client.server_info().allocator.startswith("jemalloc"), "server info")

    info = client.create_collection("py", dimension=3, metric="cosine", metadata={"owner": "python"})
    check(info.name == "py" and info.dimension == 3, "create")
    check(client.create_collection("py", dimension=3, get_or_create=True).id == info.id, "get_or_create")

    ids = ["a", "b", "c", "d"]
    vectors = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]
    docs = ["apple pie", "banana bread", "cherry tart", "apple and banana"]
    metas = [{"fruit": "apple", "n": 1, "sweet": True}, {"fruit": "banana", "n": 2, "sweet": True},
             {"fruit": "cherry", "n": 3, "sweet": False}, {"fruit": "mix", "n": 4, "ratio": 0.5}]
    result = client.upsert("py", ids, vectors, documents=docs, metadatas=metas)
    check(result["affected"] == 4 and result["lsn"] >= 1, f"upsert {result}")
    check(client.count("py") == 4, "count")

    hits = client.query("py", [[1, 0.1, 0]], k=2)[0]
    check([h["id"] for h in hits] == ["a", "d"], f"query order {hits}")
    check(hits[0]["distance"] < hits[1]["distance"], "distances ascend")
    check(hits[0]["metadata"] == {"fruit": "apple", "n": 1, "sweet": True}, f"metadata types survive {hits[0]}")
    filtered = client.query("py", [[1, 0, 0]], k=4, where={"$and": [{"sweet": True}, {"n": {"$gte": 2}}]})[0]
    check([h["id"] for h in filtered] == ["b"], f"filtered query {filtered}")
    by_doc = client.get("py", where_document={"$contains": "apple"})
    check(sorted(r["id"] for r in by_doc) == ["a", "d"], f"where_document {by_doc}")
    got = client.get("py", ids=["c"], include=("embeddings", "metadatas"))
    check(got[0]["metadata"]["fruit"] == "cherry", "get metadata")
    check(all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(got[0]["embedding"], [0, 0, 1])), "stored vector")

    def expect_error(status, fn):
        try:
            fn()
        except SextantError as e:
            check(e.status == status, f"expected {status}, got {e}")
            return e
        check(False, f"expected {status}, got success")

    expect_error("ALREADY_EXISTS", lambda: client.add("py", ["a"], [[1, 0, 0]]))
    e = expect_error("INVALID_ARGUMENT", lambda: client.upsert("py", ["x"], [[1, 0]]))
    check("dimension" in e.message, f"message names the problem: {e.message}")
    expect_error("INVALID_ARGUMENT", lambda: client.upsert("py", ["x"], [[float("nan"), 0, 0]]))
    expect_error("INVALID_ARGUMENT", lambda: client.query("py", [[1, 0, 0]], where={"n": {"$gt": "x"}}))
    expect_error("NOT_FOUND", lambda: client.count("missing"))

    # Words: no text index yet, then one built by a modify; lexical and hybrid search.
    expect_error("FAILED_PRECONDITION", lambda: client.search("py", "lexical", texts=["apple"]))
    info = client.modify_collection("py", text_index={"k1": 1.2, "b": 0.75})
    check(info.HasField("text_index") and math.isclose(info.text_index.k1, 1.2), f"text index reported {info}")
    lexical = client.search("py", "lexical", texts=["apples"], k=5)[0]
    check(sorted(h["id"] for h in lexical) == ["a", "d"] and all(h["score"] > 0 for h in lexical), f"lexical {lexical}")
    hybrid = client.search("py", "hybrid", vectors=[[0, 0, 1]], texts=["banana"], k=2,
                           fusion={"semantic": 1, "lexical": 1})[0]
    # b and d hold the word and are in the vector ranking too: they beat c, first by vector alone.
    check({h["id"] for h in hybrid} == {"b", "d"} and hybrid[0]["score"] >= hybrid[1]["score"], f"hybrid {hybrid}")
    expect_error("INVALID_ARGUMENT", lambda: client.search("py", "hybrid", vectors=[[0, 0, 1]], texts=[]))
    client.modify_collection("py", drop_text_index=True)
    expect_error("FAILED_PRECONDITION", lambda: client.search("py", "lexical", texts=["apple"]))
    check(client.delete("py", where={"fruit": {"$in": ["apple", "banana"]}}) == 2, "delete by filter")
    check(client.count("py") == 2, "count after delete")
    client.delete_collection("py")
    check(client.list_collections() == [], "delete collection")
    client.close()
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
