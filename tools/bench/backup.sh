#!/usr/bin/env bash
# Backup and restore of the 40,000-record debian-minilm collection plus the
# SQLite files, to a local S3 server (moto, from the test virtualenv), one run:
# full backup, incremental backup after 1,000 new records, restore.
#
#   tools/bench/backup.sh [DATASET_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${1:-$root/../shared/data/debian-minilm}
"$root/tools/python-env"
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
work=$(mktemp -d /tmp/sextant-bench-backup-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { kill "$engine_pid" "$moto_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port
"$root/.venv-test/bin/python" -m moto.server -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
"$sextant" engine --data "$work/root" --listen 127.0.0.1:7797 > "$work/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 1 100); do curl -s "$AWS_ENDPOINT_URL" >/dev/null 2>&1 && break; sleep 0.1; done
curl -s -X PUT "$AWS_ENDPOINT_URL/backups" > /dev/null
mkdir -p "$work/inbox"
cp "$data"/csv/batch_*.csv "$work/inbox/"
"$sextant" ingest --data "$work/root" --engine 127.0.0.1:7797 --collection debian --source "$work/inbox" \
  --mapping "$root/tools/mappings/debian-minilm.json" --vectors "$data/base.fvecs" --once --no-progress > /dev/null 2>&1
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); data: 40,000 records + ingest ledger; moto $("$root/.venv-test/bin/pip" show moto | awk '/^Version/{print $2}')"
json() { python3 -c "import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print($1)"; }
"$sextant" backup --data "$work/root" --engine 127.0.0.1:7797 --to s3://backups/kb --json 2>/dev/null \
  | json '"full backup: %.2f s, %d files, %.1f MB, %.1f MB uploaded" % (r["seconds"], r["files"], r["totalBytes"]/1e6, r["uploadedBytes"]/1e6)'
# 1,000 new records (new ids, vectors rows 0..999 of base.fvecs).
python3 - "$data/csv/batch_1.csv" "$work/inbox/extra.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
with open(sys.argv[2], "w", newline="", encoding="utf-8") as out:
    writer = csv.writer(out)
    writer.writerow(rows[0])
    for row in rows[1:1001]:
        writer.writerow([row[0] + "-new"] + row[1:])
PY
sed 's/"batch_1.csv": 0,/"batch_1.csv": 0, "extra.csv": 0,/' "$root/tools/mappings/debian-minilm.json" > "$work/mapping.json"
"$sextant" ingest --data "$work/root" --engine 127.0.0.1:7797 --collection debian --source "$work/inbox" \
  --mapping "$work/mapping.json" --vectors "$data/base.fvecs" --once --no-progress > /dev/null 2>&1
"$sextant" backup --data "$work/root" --engine 127.0.0.1:7797 --to s3://backups/kb --json 2>/dev/null \
  | json '"incremental backup after 1,000 records: %.2f s, %.1f MB of %.1f MB uploaded (%.1f%%)" % (r["seconds"], r["uploadedBytes"]/1e6, r["totalBytes"]/1e6, 100*r["uploadedBytes"]/r["totalBytes"])'
"$sextant" restore --from s3://backups/kb --data "$work/restored" --json 2>/dev/null \
  | json '"restore: %.2f s, %d files, %.1f MB, %d records" % (r["seconds"], r["files"], r["totalBytes"]/1e6, r["records"])'
