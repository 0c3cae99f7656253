#!/usr/bin/env bash
# The default search (its first trials the papers' networks) against random sampling, over seeds,
# into docs/RESULTS.md. With a GPU: the full size (bench/headline.py --size gpu); without one: the
# CPU size (3 seeds, about 20 minutes a seed on 2 cores; resumable). Extra arguments go to bench/headline.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" bench/headline.py "$@"
