#!/usr/bin/env bash
# BM25 top-10 over the debian-minilm bodies: Sextant's index (sextant bench bm25)
# beside tantivy (PyPI tantivy 0.27, en_stem analyzer) and SQLite FTS5 (its
# porter tokenizer, bm25() ranking), same documents and 1,000 queries,
# single-threaded, one query at a time, in one run.
# Usage: tools/compare/bm25.sh DATASET [PASSES]
set -euo pipefail
dataset=$(cd "$1" && pwd)
passes=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$here/.venv-text
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tantivy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tantivy==0.27.*"
fi
(cd "$root" && swift build -c release --product sextant >&2)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
sextant_json=$("$root/.build/release/sextant" bench bm25 --dataset "$dataset" --passes "$passes")
tantivy_json=$("$venv/bin/python" "$here/tantivy_bm25.py" "$dataset" "$passes")
fts5_json=$("$venv/bin/python" "$here/fts5_bm25.py" "$dataset" "$passes")
echo "sextant: $sextant_json"
echo "tantivy: $tantivy_json"
echo "fts5:    $fts5_json"
python3 - "$sextant_json" "$tantivy_json" "$fts5_json" <<'PY'
import json, sys
s, t, f = (json.loads(a) for a in sys.argv[1:4])
print(f"queries/s   sextant {s['qps']:.0f}  tantivy {t['qps']:.0f}  fts5 {f['qps']:.0f}  ratio to tantivy {s['qps'] / t['qps']:.2f}x")
print(f"build docs/s sextant {s['build_documents_per_second']:.0f}  tantivy {t['build_documents_per_second']:.0f}  fts5 {f['build_documents_per_second']:.0f}  ratio {s['build_documents_per_second'] / t['build_documents_per_second']:.2f}x")
print(f"index bytes sextant {s['index_bytes']} (memory)  tantivy {t['index_bytes']}  fts5 {f['index_bytes']}")
PY
