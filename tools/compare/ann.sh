#!/usr/bin/env bash
# Sextant's index against hnswlib on the same data, settings and machine, in one run.
# Rounds alternate the two engines so machine noise falls on both alike; each
# round reports the best of --passes query passes per ef.
#
#   tools/compare/ann.sh [DATASET_DIR] [ROUNDS]
#   QUANTIZATION=none tools/compare/ann.sh     the walk on float16 vectors (default: int8, a new collection's)
#
# Prints JSON lines (one per engine, round, ef and build thread count) and a
# summary table of medians. hnswlib comes from PyPI into tools/compare/.venv.
set -euo pipefail
source "$(dirname "$0")/lib-hnswlib.sh"
data=${1:-$root/../shared/data/debian-minilm}
rounds=${2:-3}
efs=${EFS:-16,32,64,128,256}

out=$(mktemp)
args=(--base "$data/base.fvecs" --queries "$data/queries.fvecs" --groundtruth "$data/groundtruth.ivecs"
      --k 10 --ef "$efs" --m 16 --ef-construction 200 --metric cosine --passes 3)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$rounds"); do
  for threads in 1 2; do
    "$sextant" bench ann "${args[@]}" --threads "$threads" --quantization "${QUANTIZATION:-int8}" --json | sed "s/^{/{\"engine\":\"sextant\",\"round\":$round,/" | tee -a "$out"
    "$venv/bin/python" "$here/hnswlib_ann.py" "${args[@]}" --threads "$threads" | sed "s/^{/{\"round\": $round, /" | tee -a "$out"
  done
done
"$venv/bin/python" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def eng(r): return "sextant" if r["engine"] == "sextant" else "hnswlib"
med = {}
for r in rows:
    med.setdefault((eng(r), r["build_threads"], r["ef"]), []).append(r)
print("\n| ef | recall sextant | recall hnswlib | QPS sextant | QPS hnswlib | QPS ratio |")
print("|---|---|---|---|---|---|")
for ef in sorted({r["ef"] for r in rows}):
    s, h = med[("sextant", 1, ef)], med[("hnswlib", 1, ef)]
    qs, qh = statistics.median(x["qps"] for x in s), statistics.median(x["qps"] for x in h)
    print(f"| {ef} | {s[0]['recall']:.4f} | {h[0]['recall']:.4f} | {qs:,.0f} | {qh:,.0f} | {qs/qh:.2f}x |")
# Build figures are per build, the same in every ef's row: take the first ef's.
first = min(r["ef"] for r in rows)
def resident(r): return r.get("resident_bytes_per_vector", r["bytes_per_vector"])
print("\n| build threads | build s sextant | build s hnswlib | resident bytes/vector sextant | bytes/vector hnswlib | memory ratio |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    s, h = med[("sextant", t, first)], med[("hnswlib", t, first)]
    bs, bh = statistics.median(x["build_seconds"] for x in s), statistics.median(x["build_seconds"] for x in h)
    print(f"| {t} | {bs:.2f} | {bh:.2f} | {resident(s[0]):.0f} | {h[0]['bytes_per_vector']:.0f} | {resident(s[0])/h[0]['bytes_per_vector']:.2f}x |")
s1 = statistics.median(x["build_seconds"] for x in med[("sextant", 1, first)])
s2 = statistics.median(x["build_seconds"] for x in med[("sextant", 2, first)])
print(f"\nsextant build speed-up with 2 threads: {s1/s2:.2f}x")
PY
rm -f "$out"
