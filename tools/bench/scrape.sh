#!/usr/bin/env bash
# Initial scrape and re-scrape of a real documentation site served from
# loopback: Debian's PostgreSQL 15 manual (1,169 HTML pages, postgresql-doc-15,
# installed here when missing), with the default embedder (all-MiniLM-L6-v2
# in Swift), one run:
#   1. initial scrape into an empty collection (every page fetched, chunked, embedded, upserted)
#   2. re-scrape with nothing changed (conditional GETs answered 304)
#   3. re-scrape after editing 10 pages
#
#   tools/bench/scrape.sh [--embedder NAME] [--concurrency N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
docs=/usr/share/doc/postgresql-doc-15/html
if [ ! -d "$docs" ]; then
  if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql-doc-15 >&2
fi
"$root/tools/setup" >&2
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
work=$(mktemp -d /tmp/sextant-bench-scrape-XXXXXX)
cp -r "$docs" "$work/site"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { kill "$engine_pid" "$site_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python3 "$root/tools/python/site_server.py" --root "$work/site" --port "$port" > "$work/site.log" 2>&1 &
site_pid=$!
"$sextant" engine --data "$work/root" --listen 127.0.0.1:7798 > "$work/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); site: PostgreSQL 15 manual, $(find "$work/site" -name '*.html' | wc -l) HTML pages, $(du -sm "$work/site" | cut -f1) MB"
scrape() { "$sextant" scrape --data "$work/root" --engine 127.0.0.1:7798 --collection pgdocs --site "http://127.0.0.1:$port/" \
  --once --delay-ms 0 --json "$@" 2>"$work/scrape.err" | tail -1; }
report() { python3 -c "
import json,sys
r=json.loads(sys.stdin.read())
print('%-34s %6.1f s  %5d pages fetched, %5d not modified, %4d changed, %5d chunks upserted, %4d deleted  (%.1f pages/s)' % (
  '$1', r['seconds'], r['pagesFetched'], r['pagesNotModified'], r['pagesChanged'], r['chunksUpserted'], r['chunksDeleted'],
  (r['pagesFetched'] + r['pagesNotModified']) / r['seconds']))
open('$work/$1.json','w').write(json.dumps(r))"; }
scrape "$@" | report initial
scrape "$@" | report "re-scrape, nothing changed"
# Ten pages get a new sentence in their last paragraph.
for f in $(ls "$work/site"/*.html | sort | head -10); do
  python3 - "$f" <<'PY'
import sys
p = sys.argv[1]; s = open(p, encoding="utf-8", errors="surrogateescape").read()
i = s.rfind("</p>")
if i > 0:
    open(p, "w", encoding="utf-8", errors="surrogateescape").write(s[:i] + " Edited for the benchmark." + s[i:])
PY
done
scrape "$@" | report "re-scrape, 10 pages edited"
python3 -c "
import json
a=json.load(open('$work/initial.json')); b=json.load(open('$work/re-scrape, nothing changed.json'))
print('re-scrape / initial time: %.1f%%' % (100*b['seconds']/a['seconds']))"
echo "records in the collection: $("$sextant" count --engine 127.0.0.1:7798 --collection pgdocs)"
