#!/usr/bin/env bash
# Sextant's index against hnswlib at scale, in one run: the scaled debian-minilm
# set of N records (built once by ../shared/data/scaled/make_scaled.py into the
# ignored .scaled/ folder), both built with 2 threads, queries single-threaded.
#
#   tools/compare/ann-scale.sh [N] [QUANTIZATIONS]      e.g. 1000000 "int8 none"
#   COLD=1 tools/compare/ann-scale.sh 1000000 int8       also a --cold pass per ef
#
# Prints each engine's JSON lines, then a table: recall and QPS per ef, QPS at
# recall@10 0.95 (interpolated between the ef values around it), build seconds,
# resident bytes per vector and peak RSS of the whole process.
set -euo pipefail
source "$(dirname "$0")/lib-hnswlib.sh"
records=${1:-1000000}
quantizations=${2:-"int8 none"}
efs=${EFS:-16,24,32,48,64,96,128}
data=${SCALED_DIR:-$root/.scaled}/$records
if [ ! -f "$data/groundtruth.ivecs" ]; then
  python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
  python3 "$root/../shared/data/scaled/make_scaled.py" --records "$records" --out "$data" >&2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
args=(--base "$data/base.fvecs" --queries "$data/queries.fvecs" --groundtruth "$data/groundtruth.ivecs"
      --k 10 --ef "$efs" --m 16 --ef-construction 200 --metric cosine --threads 2 --passes 2)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $records records; disk: $(df -h "$data" | tail -1 | awk '{print $1}')" >&2
for quantization in $quantizations; do
  cold=()
  [ "${COLD:-0}" = 1 ] && [ "$quantization" != none ] && cold=(--cold)
  "$sextant" bench ann "${args[@]}" --quantization "$quantization" --work "$data" --json | tee -a "$out"
  if [ ${#cold[@]} -gt 0 ]; then
    "$sextant" bench ann "${args[@]}" --quantization "$quantization" --work "$data" --cold --json | tee -a "$out"
  fi
done
"$venv/bin/python" "$here/hnswlib_ann.py" "${args[@]}" | tee -a "$out"
"$venv/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def name(r):
    if r.get("engine", "").startswith("hnswlib"): return "hnswlib"
    return "sextant " + r["quantization"] + (" cold" if r.get("cold") else "")
runs = {}
for r in rows: runs.setdefault(name(r), []).append(r)
def at95(rs):
    rs = sorted(rs, key=lambda r: r["ef"])
    for a, b in zip(rs, rs[1:]):
        if a["recall"] < 0.95 <= b["recall"]:
            t = (0.95 - a["recall"]) / (b["recall"] - a["recall"])
            return a["qps"] + t * (b["qps"] - a["qps"])
    return rs[0]["qps"] if rs and rs[0]["recall"] >= 0.95 else float("nan")
print("\n| engine | ef | recall@10 | QPS |")
print("|---|---|---|---|")
for n, rs in runs.items():
    for r in sorted(rs, key=lambda r: r["ef"]):
        print(f"| {n} | {r['ef']} | {r['recall']:.4f} | {r['qps']:,.0f} |")
h = runs.get("hnswlib", [{}])
print("\n| engine | QPS at recall 0.95 | vs hnswlib | build s (2 threads) | resident bytes/vector | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for n, rs in runs.items():
    q = at95(rs)
    ratio = q / at95(h) if h and h[0] else float("nan")
    resident = rs[0].get("resident_bytes_per_vector", rs[0].get("bytes_per_vector"))
    peak = rs[0].get("peak_rss_bytes", 0) / 2**20
    print(f"| {n} | {q:,.0f} | {ratio:.2f}x | {rs[0]['build_seconds']:.0f} | {resident:.0f} | {peak:,.0f} |")
PY
