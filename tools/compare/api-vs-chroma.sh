#!/usr/bin/env bash
# Sextant's search API against ChromaDB's server, both over HTTP/JSON, same data,
# host and harness, in one run.
#
#   tools/compare/api-vs-chroma.sh [DATASET_DIR] [IDLE_SECONDS]
#
# `sextant load --chroma URL` speaks ChromaDB's REST API (the routes chromadb's
# HttpClient uses): it drives Sextant's ChromaDB-compatible routes (sextant up,
# engine + API) and ChromaDB 1.5 (PyPI, `chroma run`) identically: 8 concurrent
# clients of vector queries (the public debian-minilm queries, k = 10), the 40,000
# records loaded over HTTP in batches of 1,000, then a max-rate re-ingest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${1:-$root/../shared/data/debian-minilm}
idle=${2:-10}
clients=${CLIENTS:-8}
venv=$here/.venv-chroma
if [ ! -x "$venv/bin/chroma" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "chromadb>=1.5,<1.6"
fi
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
work=$(mktemp -d /tmp/sextant-compare-XXXXXX)
cleanup() { kill "$up_pid" "$chroma_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$sextant" up --data "$work/sextant" --engine-listen 127.0.0.1:7792 --api-listen 127.0.0.1:8792 --no-demo > "$work/up.log" 2>&1 &
up_pid=$!
"$venv/bin/chroma" run --path "$work/chroma" --host 127.0.0.1 --port 8793 > "$work/chroma.log" 2>&1 &
chroma_pid=$!
for url in http://127.0.0.1:8792/api/v2/heartbeat http://127.0.0.1:8793/api/v2/heartbeat; do
  for _ in $(seq 1 150); do curl -sf "$url" >/dev/null 2>&1 && break; sleep 0.2; done
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); chromadb $("$venv/bin/pip" show chromadb | awk '/^Version/{print $2}')" >&2
"$sextant" load --chroma http://127.0.0.1:8792 --settle-engine 127.0.0.1:7792 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/sextant.json"
"$sextant" load --chroma http://127.0.0.1:8793 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/chroma.json"
python3 - "$work/sextant.json" "$work/chroma.json" <<'PY'
import json, sys
s, c = (json.load(open(p)) for p in sys.argv[1:3])
print("\n| over HTTP/JSON (ChromaDB's REST API) | Sextant search API | ChromaDB server | ratio |")
print("|---|---|---|---|")
def row(name, a, b, fmt="{:,.0f}", better="higher"):
    ratio = a / b if better == "higher" else b / a
    print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.1f}x |")
row("queries/s, 8 clients, idle", s["idle"]["qps"], c["idle"]["qps"])
row("p50 ms, idle", s["idle"]["p50_ms"], c["idle"]["p50_ms"], "{:.2f}", "lower")
row("p99 ms, idle", s["idle"]["p99_ms"], c["idle"]["p99_ms"], "{:.2f}", "lower")
row("recall@10, idle", s["idle"]["recall_at_10"], c["idle"]["recall_at_10"], "{:.4f}")
row("load over HTTP, records/s (until indexed)", s["initial_load_records_per_second"], c["initial_load_records_per_second"])
row("queries/s during max-rate ingest", s["during_ingest"]["qps"], c["during_ingest"]["qps"])
row("p99 ms during ingest", s["during_ingest"]["p99_ms"], c["during_ingest"]["p99_ms"], "{:.2f}", "lower")
PY
