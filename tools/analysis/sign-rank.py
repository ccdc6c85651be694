#!/usr/bin/env python3
"""How far down a sign-code (1 bit per dimension) ranking of the unindexed tail
the true top-10 records sit, for tails of several sizes: the figures behind
StorageLimits.tailRerankCount.

    tools/analysis/sign-rank.py [DATASET_DIR]      (numpy; e.g. .venv-test/bin/python)

For each tail size, three random tails of the debian-minilm base vectors; for
each of every other public query, the Hamming rank inside the tail of each
ground-truth top-10 record that is in it (ties counted against it).
"""
import sys
import numpy as np

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/debian-minilm"


def vectors(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    rows = raw.reshape(-1, raw[0] + 1)[:, 1:]
    return rows.view(dtype) if dtype == np.float32 else rows


base = vectors(f"{data}/base.fvecs", np.float32)
queries = vectors(f"{data}/queries.fvecs", np.float32)
truth = vectors(f"{data}/groundtruth.ivecs", np.int32)[:, :10]
base_codes = np.packbits(base < 0, axis=1)
query_codes = np.packbits(queries < 0, axis=1)
popcount = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint16)
random = np.random.default_rng(1)

for size in [512, 1024, 2048, 4096, 8192, 32768]:
    ranks = []
    for _ in range(3):
        tail = random.choice(len(base), size, replace=False)
        in_tail = np.zeros(len(base), bool)
        in_tail[tail] = True
        for query in range(0, len(queries), 2):
            distances = popcount[np.bitwise_xor(base_codes[tail], query_codes[query])].sum(1)
            for record in truth[query]:
                if in_tail[record]:
                    own = popcount[np.bitwise_xor(base_codes[record], query_codes[query])].sum()
                    ranks.append(int((distances <= own).sum()))
    ranks = np.array(ranks)
    within = " ".join(f"<={n}: {(ranks <= n).mean():.4f}" for n in (64, 128, 256, 512, 1024))
    print(f"tail {size:6d}: {len(ranks):5d} top-10 records in it; 99.5% within {np.percentile(ranks, 99.5):.0f}, "
          f"99.9% within {np.percentile(ranks, 99.9):.0f}, all within {ranks.max()}; {within}")
