#!/usr/bin/env bash
# Moving in from ChromaDB, timed against its peer in one run: `sextant import
# --from-chroma DIR` of a Chroma persist directory of N records, against
# re-adding the same records through chromadb-client to a fresh Chroma server.
#
#   tools/compare/chroma-import.sh [N]        default 100000
#   ENGINE_ARGS="--unindexed-limit 200000" tools/compare/chroma-import.sh   the engine with other settings
#
# The persist directory is made once by the real chromadb package from the
# scaled debian-minilm vectors (into the ignored .scaled/ folder). Prints both
# times, the ratio, and the Sextant time until every record is also indexed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
records=${1:-100000}
scaled=$root/.scaled/$records
if [ ! -f "$scaled/base.fvecs" ]; then
  python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
  python3 "$root/../shared/data/scaled/make_scaled.py" --records "$records" --out "$scaled" >&2
fi
persist=$root/.scaled/chroma-persist-$records
if [ ! -f "$persist/chroma.sqlite3" ]; then
  echo "building a Chroma persist directory of $records records (once)" >&2
  "$venv/bin/python" "$root/tools/python/chroma_fixture.py" scaled "$persist" "$scaled/base.fvecs" "$records"
fi
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $records records, 384-d; $(du -sh "$persist" | cut -f1) persist directory" >&2

start_chroma 8111
chroma_seconds=$("$venv/bin/python" "$root/tools/python/chroma_fixture.py" readd "$persist" http://127.0.0.1:8111)

# shellcheck disable=SC2086 # ENGINE_ARGS is a list of flags, e.g. "--unindexed-limit 200000"
start_background engine.log "$sextant" engine --data "$work/engine" --listen 127.0.0.1:8112 ${ENGINE_ARGS:-}
for _ in $(seq 1 100); do grep -q "listening on" "$work/engine.log" 2>/dev/null && break; sleep 0.1; done
started=$(date +%s.%N)
"$sextant" import --from-chroma "$persist" --engine 127.0.0.1:8112 >&2
imported=$(date +%s.%N)
while true; do
  unindexed=$("$sextant" collections --stats --engine 127.0.0.1:8112 2>/dev/null | python3 -c 'import json,sys; print(sum(json.loads(l).get("unindexed_records", 0) for l in sys.stdin))')
  [ "$unindexed" = 0 ] && break
  sleep 0.05
done
indexed=$(date +%s.%N)
python3 - "$chroma_seconds" "$started" "$imported" "$indexed" "$records" <<'PY'
import sys
chroma, started, imported, indexed, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
mine, through = imported - started, indexed - started
print(f"| records | chromadb-client re-add s | sextant import s | ratio | sextant import until indexed s | ratio |")
print(f"|---|---|---|---|---|---|")
print(f"| {n:,} | {chroma:.1f} | {mine:.1f} | {chroma / mine:.1f}x | {through:.1f} | {chroma / through:.1f}x |")
PY
