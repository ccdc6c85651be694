#!/usr/bin/env bash
# The engine against ChromaDB's server on the same data, host and harness, in one run.
#
#   tools/compare/engine-vs-chroma.sh [DATASET_DIR] [IDLE_SECONDS]
#
# Both are driven by `sextant load`: 8 concurrent query clients (the public
# debian-minilm queries, k=10), an initial load of the 40,000 records, an idle
# measurement, then a max-rate re-ingest while the clients keep querying. The
# engine is reached over its binary protocol; ChromaDB (1.5, from PyPI, started
# here on loopback) over its REST API, exactly as chromadb's HttpClient calls it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
data=${1:-$root/../shared/data/debian-minilm}
idle=${2:-10}
clients=${CLIENTS:-8}
# ENGINE_ARGS: extra engine flags, e.g. ENGINE_ARGS=--reads-first
start_background engine.log "$sextant" engine --data "$work/sextant" --listen 127.0.0.1:7791 ${ENGINE_ARGS:-}
start_chroma 8791
machine_line >&2
"$sextant" load --engine 127.0.0.1:7791 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/sextant.json"
"$sextant" load --chroma http://127.0.0.1:8791 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/chroma.json"
report "Sextant engine" "ChromaDB server" "$work/sextant.json" "$work/chroma.json"
