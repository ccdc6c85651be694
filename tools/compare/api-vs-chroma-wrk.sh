#!/usr/bin/env bash
# Search API throughput against ChromaDB's server with wrk (C, a small share of
# the 2 cores) as the HTTP load generator, so the figure is the servers' and not
# the harness's. Both get the same 40,000 debian-minilm records (loaded over
# HTTP by `sextant load --prepare-only`) and the same query bodies (the public
# queries, k = 10, include distances), 8 connections, back to back in one run.
#
#   tools/compare/api-vs-chroma-wrk.sh [DATASET_DIR] [SECONDS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
data=${1:-$root/../shared/data/debian-minilm}
seconds=${2:-15}
connections=${CONNECTIONS:-8}
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
start_background up.log "$sextant" up --data "$work/sextant" --engine-listen 127.0.0.1:7792 --api-listen 127.0.0.1:8792 --no-demo --no-ingest
wait_http http://127.0.0.1:8792/api/v2/heartbeat
start_chroma 8793
"$sextant" load --chroma http://127.0.0.1:8792 --settle-engine 127.0.0.1:7792 --data "$data" --prepare-only "$work/sextant.requests"
"$sextant" load --chroma http://127.0.0.1:8793 --data "$data" --prepare-only "$work/chroma.requests"
echo "$(machine_line); wrk -t2 -c$connections -d${seconds}s"
run() { # name port requests
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$here/wrk-query.lua" "http://127.0.0.1:$2" -- "$3" > "$work/$1.wrk"
  awk -v name="$1" '/Requests\/sec/{q=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} /Non-2xx|errors/{e=e" "$0}
    END{printf "%s: %s queries/s, p50 %s, p99 %s%s\n", name, q, p50, p99, (e==""?"":" ERRORS:"e)}' "$work/$1.wrk"
}
for round in 1 2; do
  run sextant-api 8792 "$work/sextant.requests"
  run chromadb 8793 "$work/chroma.requests"
done
