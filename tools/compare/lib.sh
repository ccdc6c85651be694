# Shared set-up of the side-by-side comparisons with ChromaDB (sourced).
# Provides: $here $root $sextant $venv $work, start_background, wait_http,
# start_chroma PORT, machine_line, report TITLE_A TITLE_B A.json B.json.
# Every background process started through it is stopped on exit.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$here/.venv-chroma
if [ ! -x "$venv/bin/chroma" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "chromadb>=1.5,<1.6"
fi
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
work=$(mktemp -d /tmp/sextant-compare-XXXXXX)
background_pids=()
compare_cleanup() {
  for pid in "${background_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap compare_cleanup EXIT

# start_background LOG COMMAND...: runs COMMAND in the background, output to $work/LOG.
start_background() {
  local log=$1; shift
  "$@" > "$work/$log" 2>&1 &
  background_pids+=($!)
}

wait_http() {
  for _ in $(seq 1 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no answer from $1" >&2
  return 1
}

start_chroma() {
  start_background chroma.log "$venv/bin/chroma" run --path "$work/chroma" --host 127.0.0.1 --port "$1"
  wait_http "http://127.0.0.1:$1/api/v2/heartbeat"
}

machine_line() {
  echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); chromadb $("$venv/bin/pip" show chromadb | awk '/^Version/{print $2}')"
}

# report NAME_A NAME_B A.json B.json: the table of two `sextant load --json` reports.
report() {
  python3 - "$@" <<'PY'
import json, sys
name_a, name_b = sys.argv[1:3]
s, c = (json.load(open(p)) for p in sys.argv[3:5])
print(f"\n| | {name_a} | {name_b} | ratio |")
print("|---|---|---|---|")
def row(name, a, b, fmt="{:,.0f}", better="higher"):
    ratio = a / b if better == "higher" else b / a
    print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.1f}x |")
row("queries/s, idle", s["idle"]["qps"], c["idle"]["qps"])
row("p50 ms, idle", s["idle"]["p50_ms"], c["idle"]["p50_ms"], "{:.2f}", "lower")
row("p99 ms, idle", s["idle"]["p99_ms"], c["idle"]["p99_ms"], "{:.2f}", "lower")
row("recall@10, idle", s["idle"]["recall_at_10"], c["idle"]["recall_at_10"], "{:.4f}")
row("initial load records/s (until indexed)", s["initial_load_records_per_second"], c["initial_load_records_per_second"])
row("queries/s during max-rate ingest", s["during_ingest"]["qps"], c["during_ingest"]["qps"])
row("p99 ms during ingest", s["during_ingest"]["p99_ms"], c["during_ingest"]["p99_ms"], "{:.2f}", "lower")
row("ingest records/s while queried", s["during_ingest"]["ingest_records_per_second"], c["during_ingest"]["ingest_records_per_second"])
PY
}
