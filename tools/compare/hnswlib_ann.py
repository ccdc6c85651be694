#!/usr/bin/env python3
"""hnswlib on the same data and settings as `sextant bench ann`, printing the same JSON lines.

Fairness: queries go through hnswlib's C++ loop (knn_query on the whole query
matrix with num_threads=1), so no per-query Python overhead is charged to it;
that is still one query at a time on one thread. Recall uses the same tie rule
as Sextant: a result counts if it is as close as the k-th true neighbour
(within 1e-6), because the dataset holds duplicate vectors.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

import hnswlib
import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy()


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def exact_distance(q, v, metric):
    q = q.astype(np.float64)
    v = v.astype(np.float64)
    if metric == "cosine":
        return 1 - (v @ q) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(q))
    if metric == "ip":
        return 1 - v @ q
    return ((v - q) ** 2).sum(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--groundtruth", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="16,32,64,128,256")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()

    base = read_fvecs(a.base)
    queries = read_fvecs(a.queries)
    truth = read_ivecs(a.groundtruth)
    n, dim = base.shape
    space = {"cosine": "cosine", "ip": "ip", "l2": "l2"}[a.metric]

    rss_before = rss_bytes()
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=n, ef_construction=a.ef_construction, M=a.m, random_seed=100)
    start = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=a.threads)
    build_seconds = time.perf_counter() - start
    rss_delta = rss_bytes() - rss_before
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        index.save_index(f.name)
        file_bytes = os.path.getsize(f.name)

    thresholds = np.array([exact_distance(queries[i], base[truth[i, a.k - 1]][None, :], a.metric)[0]
                           for i in range(len(queries))])
    for ef in [int(x) for x in a.ef.split(",")]:
        index.set_ef(ef)
        best = float("inf")
        labels = None
        for _ in range(max(1, a.passes)):
            start = time.perf_counter()
            labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
            best = min(best, time.perf_counter() - start)
        hits = 0
        hits_by_id = 0
        for i in range(len(queries)):
            d = exact_distance(queries[i], base[labels[i]], a.metric)
            hits += int((d <= thresholds[i] + 1e-6).sum())
            hits_by_id += len(set(labels[i].tolist()) & set(truth[i, :a.k].tolist()))
        print(json.dumps({
            "ef": ef, "recall": hits / (len(queries) * a.k), "qps": len(queries) / best,
            "build_seconds": build_seconds, "bytes_per_vector": file_bytes / n,
            "rss_bytes_per_vector": rss_delta / n, "recall_by_id": hits_by_id / (len(queries) * a.k),
            "k": a.k, "build_threads": a.threads, "engine": "hnswlib " + getattr(hnswlib, "__version__", "?"),
            "vectors": n, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, sort_keys=True),
            flush=True)


if __name__ == "__main__":
    main()
