# Shared set-up of the index comparisons with hnswlib (sourced by ann.sh and
# ann-scale.sh). Provides: $here $root $venv (hnswlib and numpy from PyPI),
# $sextant (a release build of this checkout).
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$here/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q hnswlib numpy
fi
(cd "$root" && swift build -c release --product sextant >&2)
sextant=$root/.build/release/sextant
