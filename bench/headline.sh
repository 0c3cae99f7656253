#!/usr/bin/env bash
# Search + training of the front + the comparison with the papers' networks and with random search,
# into docs/RESULTS.md. With a GPU: the full size (bench/headline.py --size gpu); without one: the
# CPU size (about 20 minutes on 2 cores). Extra arguments go to bench/headline.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" bench/headline.py "$@"
