#!/usr/bin/env bash
# What TLS costs the engine, in one run: two engines on loopback, one plaintext
# and one serving TLS 1.3 with a certificate from a throwaway CA
# (tools/make-certs), each loaded with the same records, then 8 clients query
# each idle, in interleaved rounds.
#
#   tools/compare/tls.sh [ROUNDS] [RECORDS]      default 3 rounds, 20000 records
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
records=${2:-20000}
dataset=$root/../shared/data/debian-minilm
certs=$work/certs
"$root/tools/make-certs" "$certs" engine >&2
start_background plain.log "$sextant" engine --data "$work/plain" --listen 127.0.0.1:8121
start_background tls.log "$sextant" engine --data "$work/tls" --listen 127.0.0.1:8122 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
sleep 1.5
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $records records, 8 clients, idle queries" >&2
out=$work/rounds.jsonl
for round in $(seq 1 "$rounds"); do
  for target in "plain 127.0.0.1:8121" "tls tls://127.0.0.1:8122"; do
    set -- $target
    "$sextant" load --engine "$2" --engine-ca-file "$certs/ca.pem" --data "$dataset" --limit "$records" --modes semantic \
      --rounds 1 --idle-seconds 8 --collection "tls-bench-$round" --json |
      python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); p=r["phases"][0]["phase"]; print(json.dumps({"target": sys.argv[1], "round": int(sys.argv[2]), "qps": p["qps"], "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"]}))' "$1" "$round" |
      tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(target, key): return statistics.median(r[key] for r in rows if r["target"] == target)
plain, tls = med("plain", "qps"), med("tls", "qps")
print("| | plaintext | TLS 1.3 | TLS cost |")
print("|---|---|---|---|")
print(f"| queries/s (median of rounds) | {plain:,.0f} | {tls:,.0f} | {100 * (1 - tls / plain):.1f}% |")
print(f"| p50 ms | {med('plain', 'p50_ms'):.3f} | {med('tls', 'p50_ms'):.3f} | |")
print(f"| p99 ms | {med('plain', 'p99_ms'):.3f} | {med('tls', 'p99_ms'):.3f} | |")
PY
