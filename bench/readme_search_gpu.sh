#!/usr/bin/env bash
# The README's search (`nas-search budget.mflops=5`) on a GPU, where it runs the full ladder of
# conf/proxy (three epochs of the whole training split at the top rung) instead of the CPU's smaller
# one. Prints the machine, the search's own output, its wall time and pareto.csv; copies pareto.csv,
# pareto.png and the worker's log to DEST.
# Usage: bench/readme_search_gpu.sh DEST [PYTHON [TIMEOUT_S]]  (PYTHON: .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
dest=$1 python=${2:-.venv/bin/python} limit=${3:-3600}
out=runs/hybrid-fashion_mnist-5.0M
mkdir -p "$dest"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)  cpu: $(nproc) cores"
echo "torch: $("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
start=$(date +%s)
timeout -s INT "$limit" "$python" -m nas search budget.mflops=5 2>&1 | tr '\r' '\n' | grep -v -E 'arch/s|s/arch'
status=${PIPESTATUS[0]}
echo "search exit status: $status  wall time: $(( $(date +%s) - start )) s"
cp "$out"/pareto.csv "$out"/pareto.png "$out"/search-worker*.log "$dest"/ 2>/dev/null
[ -f "$out"/pareto.csv ] && cut -c1-220 "$out"/pareto.csv
exit "$status"
