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
source "$(dirname "$0")/lib.sh"
data=${1:-$root/../shared/data/debian-minilm}
idle=${2:-10}
clients=${CLIENTS:-8}
start_background up.log "$sextant" up --data "$work/sextant" --engine-listen 127.0.0.1:7792 --api-listen 127.0.0.1:8792 --no-demo --no-ingest
wait_http http://127.0.0.1:8792/api/v2/heartbeat
start_chroma 8793
machine_line >&2
"$sextant" load --chroma http://127.0.0.1:8792 --settle-engine 127.0.0.1:7792 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/sextant.json"
"$sextant" load --chroma http://127.0.0.1:8793 --data "$data" --clients "$clients" --idle-seconds "$idle" --json | tee "$work/chroma.json"
report "Sextant search API" "ChromaDB server" "$work/sextant.json" "$work/chroma.json"
