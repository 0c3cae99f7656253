#!/usr/bin/env bash
# The README's search on Fashion-MNIST (`nas-search budget.mflops=5`; on a CPU, its smaller ladder),
# then a longer training of the front member with the best validation accuracy (5 epochs) and one
# test evaluation. Prints wall times.
# Usage: bench/fashion_mnist_cpu.sh [--search-only] > bench/results/fashion_mnist_cpu_<date>.txt
set -euo pipefail
cd "$(dirname "$0")/.."
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD)  cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
start=$(date +%s)
.venv/bin/nas-search budget.mflops=5 2>&1 | tr '\r' '\n' | grep -v -E 'arch/s|s/arch'
echo "search wall time: $(( $(date +%s) - start )) s"
[ "${1:-}" = "--search-only" ] && exit 0
best=$(.venv/bin/python - <<'PY'
import csv
rows = list(csv.DictReader(open("runs/hybrid-fashion_mnist-5.0M/pareto.csv")))
print(max(rows, key=lambda r: float(r["val_acc"]))["yaml"])
PY
)
start=$(date +%s)
.venv/bin/nas-train "$best" data=fashion_mnist train.epochs=5
echo "full training wall time: $(( $(date +%s) - start )) s"
cat "${best%.yaml}.metrics.json"
