#!/usr/bin/env bash
# The bot gateway under the issue's load: 100 Telegram bots on one gateway, each
# receiving a message per second from the Telegram stand-in, extractive answers
# from the demo collection (3,077 Debian packages, all-MiniLM-L6-v2 in Swift
# embedding each question). `sextant up` runs engine, API and gateway.
#
#   tools/bench/bots.sh [BOTS] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bots=${1:-100}
seconds=${2:-60}
"$root/tools/setup" >&2
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
work=$(mktemp -d /tmp/sextant-bench-bots-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tg=$(free_port); eng=$(free_port); api=$(free_port); adm=$(free_port)
cleanup() { kill "$up_pid" "$tg_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python3 "$root/tools/python/telegram_standin.py" --port "$tg" > "$work/telegram.log" 2>&1 &
tg_pid=$!
# The gateway's Telegram base URL: passed through up's environment-free flags is not possible, so run the gateway directly.
SEXTANT_BOTS_KEY=$(head -c 32 /dev/urandom | base64) "$sextant" up --data "$work/root" --engine-listen 127.0.0.1:$eng \
  --api-listen 127.0.0.1:$api --no-ingest --no-bots > "$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 300); do grep -q "Sextant is up" "$work/up.log" && break; sleep 0.2; done
export SEXTANT_BOTS_KEY=$(head -c 32 /dev/urandom | base64)
"$sextant" bots --data "$work/root" --engine 127.0.0.1:$eng --listen 127.0.0.1:$adm --telegram-api "http://127.0.0.1:$tg" \
  > "$work/bots.log" 2>&1 &
bots_pid=$!
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$adm/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $bots bots, 1 message/s each, $seconds s; demo collection, MiniLM"
python3 "$here/bots_load.py" --gateway "http://127.0.0.1:$adm" --telegram "http://127.0.0.1:$tg" --pid "$bots_pid" \
  --bots "$bots" --seconds "$seconds" --collection demo
kill "$bots_pid" 2>/dev/null || true
