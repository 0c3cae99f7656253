"""What each proxy recipe of the rank table costs, measured alone: the table's own seconds were
taken with other jobs sharing the machine, so its cost column cannot separate recipes that differ
by less than that noise (batch 32 against batch 64, say).

    python bench/proxy_cost.py [--archs 8] [--repeats 2] [--doc docs/proxy-quality.md]

One process, one torch thread, nothing else running. For each recipe, the same architectures of
the rank table (spread over its MACs range) are trained as the table trains them; the cost is the
median over repeats of the wall time per architecture (training and validation), and is reported
as a ratio to `today_b128_lr0.1` measured in the same run, with the set-up (first step) apart.
Writes bench/results/proxy_cost_cpu.{md,json} (`bench/rank_correlation.py` takes its costs from
the JSON when it is there); with --doc, also the `proxy-cost` section of that file.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from _harness import RESULTS, invocation, publish
from rank_table import SIZES, read_table

BASELINE = "today_b128_lr0.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=8, help="architectures timed, spread over the table's MACs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--recipes", help="comma-separated variants (default: every variant of the CPU size)")
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()

    import numpy as np
    import torch

    from nas.data import load_dataset
    from nas.model import build_model
    from nas.training import fit
    from search_spaces import Arch

    torch.set_num_threads(1)
    size = SIZES["cpu"]
    header, _ = read_table(RESULTS / "rank_table_cpu.jsonl")
    if header is None:
        raise SystemExit("bench/results/rank_table_cpu.jsonl: no table (run bench/rank_table.py first)")
    names = args.recipes.split(",") if args.recipes else list(size.variants)
    unknown = sorted(set(names) - set(size.variants))
    if unknown:
        raise SystemExit(f"--recipes: unknown {', '.join(unknown)} (allowed: {', '.join(size.variants)})")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    picks = np.linspace(0, len(header["archs"]) - 1, args.archs).round().astype(int)
    archs = [(int(i), Arch.from_genotype(header["archs"][i]["genotype"])) for i in picks]
    data = load_dataset("fashion_mnist")
    started = time.perf_counter()
    seconds: dict[str, list[float]] = {n: [] for n in names}
    setup: dict[str, list[float]] = {n: [] for n in names}
    for repeat in range(args.repeats):
        for name in names:  # interleaved: a drift of the machine's speed hits every recipe alike
            r = size.variants[name]
            val = data.val.subset(r.val_images or size.val_images, 0)
            for index, arch in archs:
                torch.manual_seed(10_000 + index)
                model = build_model(arch)
                t0 = time.perf_counter()
                result = fit(model, data.train, val, r.settings(index + r.seed_offset), mean=data.mean,
                             std=data.std, device="cpu")
                seconds[name].append(time.perf_counter() - t0)
                setup[name].append(result.setup_s)
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {statistics.median(seconds[name]):.2f} s / arch",
                  flush=True)
    base = statistics.median(seconds[BASELINE])
    lines = [
        f"Cost of each proxy recipe, measured alone (`{invocation(__file__)}`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, 1 process x 1 thread, "
        f"torch {torch.__version__}; {len(archs)} architectures of the rank table x {args.repeats} repeats, "
        f"{time.perf_counter() - started:.0f} s in all): median wall time per architecture (training and "
        f"validation) as a ratio to `{BASELINE}` in the same run; set-up is the time to the end of the first step.",
        "",
        "| recipe | steps | cost vs today | set-up vs today's run |",
        "|---|---|---|---|",
    ]
    for name in names:
        r = size.variants[name]
        steps = r.epochs * ((r.images or 54000) // r.batch_size)
        lines.append(f"| `{name}` | {steps} | {statistics.median(seconds[name]) / base:.2f}x | "
                     f"{statistics.median(setup[name]) / base:.3f}x |")
    text = "\n".join(lines) + "\n"
    ratios = {name: round(statistics.median(seconds[name]) / base, 4) for name in names}
    (RESULTS / "proxy_cost_cpu.json").write_text(json.dumps(
        {"baseline": BASELINE, "cost_vs_baseline": ratios, "command": invocation(__file__),
         "date": time.strftime("%Y-%m-%d")}, indent=1) + "\n")
    publish(text, "proxy_cost_cpu.md", "Proxy cost (CPU)", args.doc, "proxy-cost")


if __name__ == "__main__":
    main()
