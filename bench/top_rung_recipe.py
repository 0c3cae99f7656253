"""What the CPU ladder's top rung gives the best networks, by recipe and length: is 0.88 within reach?

    python bench/top_rung_recipe.py --size cpu     # 2 networks x 8 variants, Fashion-MNIST; 2-core CPU

Each network climbs the CPU ladder (`proxy.on_cpu`: one epoch of 20,000 images at batch 32, lr 0.4,
no augmentation, the schedule restarting at each rung) to its top in one run, as a trial the
search promotes all the way, and is scored on the whole validation split (6,000 images; the
search scores 1,000 of them). Each variant changes one thing of that recipe, or the top rung's
length. The networks: ShuffleNet v1 g=3 scaled to the budget (the README search's most accurate
network) and the best searched one of the README search (test 0.865). Two processes of one
thread each, as the search's two workers on 2 cores; the seconds are each run's training time.

One JSON line per (variant, network, seed) in bench/results/top_rung_recipe_<size>.jsonl,
appended as each finishes: an interrupted run continues where it stopped (run the same command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from _harness import RESULTS, ResultsFile, Size, add_size_argument, invocation


@dataclass(frozen=True)
class RecipeSize(Size):
    seeds: tuple[int, ...]
    base: tuple[tuple[str, object], ...]  # the top rung's RunSettings fields


_CPU_TOP = (("epochs", 1), ("batch_size", 32), ("lr", 0.4), ("max_train_images", 20000), ("flip", False),
            ("pad_crop", 0))  # proxy.on_cpu
SIZES = {"cpu": RecipeSize(5.0, (0, 1), _CPU_TOP)}

#: name -> fields replacing the base recipe's (`restart`: the schedule restarts at the ladder's
#: rungs); the first is the baseline.
VARIANTS: dict[str, dict] = {
    "CPU top rung (today)": {},
    "one schedule over the top": {"restart": False},
    "no label smoothing": {"label_smoothing": 0.0},
    "batch 64, lr 0.8": {"batch_size": 64, "lr": 0.8},
    "lr 0.2": {"lr": 0.2},
    "no weight decay": {"weight_decay": 0.0},
    "warm-up 0.1": {"warmup": 0.1},
    "30,000 images": {"max_train_images": 30000},
}

#: The README search's best searched network (2026-12-03, trial 4: test 0.8653, 2.10 MMACs).
SEARCHED = ("in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c96_n2_s2_g8_x1|shuf_c120_n5_s2_g2_x1"
            "|shuf_c240_n1_s2_g3_x1|head_d0")


def networks(size: RecipeSize) -> dict[str, str]:
    """name -> arch YAML."""
    from nas.search.references import scaled_references
    from search_spaces import Arch, Budget, DataShape

    refs = scaled_references(DataShape(1, 28, 10), Budget(size.budget_mflops))
    shufflenet = next(name for name in refs if name.startswith("shufflenet"))
    searched = Arch.from_genotype(SEARCHED)
    return {shufflenet: refs[shufflenet].to_yaml(), "searched 2.10 MMACs": searched.to_yaml()}


def _train(task: dict) -> dict:
    """Climb the ladder of one variant with one network; the result line."""
    import torch

    torch.set_num_threads(1)
    from nas.data import load_dataset
    from nas.model import build_model
    from nas.search.ladder import ladder_for
    from nas.training import RunSettings, Training
    from search_spaces import Arch

    data = load_dataset("fashion_mnist")
    fields = dict(task["fields"])
    restart = fields.pop("restart", True)
    settings = RunSettings(**fields, seed=task["seed"])
    torch.manual_seed(1000 + task["seed"])  # one initialisation per network and seed, for every variant
    model = build_model(Arch.from_yaml(task["arch_yaml"]))
    ladder = ladder_for(settings, len(data.train), 3, None, restart)
    run = Training(model, data.train, settings, mean=data.mean, std=data.std, device="cpu",
                   restarts=ladder.restarts)
    run.run_to(run.total_steps)
    return {"variant": task["variant"], "network": task["network"], "seed": task["seed"],
            "val_acc": run.evaluate(data.val), "val_images": len(data.val), "images_seen": run.images_seen,
            "train_s": round(run.train_s, 1)}


def report(results: list[dict]) -> str:
    """Validation accuracy of each (variant, network), mean over the seeds both it and the first
    variant ran, with its difference from the first variant's in points (mean: each seed's) and its
    training time as a ratio to the first variant's."""
    nets = list(dict.fromkeys(r["network"] for r in results))
    found = {(r["variant"], r["network"], r["seed"]): r for r in results}
    base = next(iter(VARIANTS))
    lines = ["| variant | " + " | ".join(f"{n}: val acc (diff: per seed), time ratio" for n in nets) + " |",
             "|---|" + "---|" * len(nets)]
    for variant in VARIANTS:
        cells = []
        for net in nets:
            pairs = [(found[variant, net, s], found[base, net, s]) for (v, n, s) in found
                     if (v, n) == (variant, net) and (base, net, s) in found]
            if not pairs:
                cells.append("-")
                continue
            diffs = [100 * (r["val_acc"] - r0["val_acc"]) for r, r0 in pairs]
            acc = statistics.mean(r["val_acc"] for r, _ in pairs)
            ratio = sum(r["train_s"] for r, _ in pairs) / sum(r0["train_s"] for _, r0 in pairs)
            per_seed = ", ".join(f"{d:+.2f}" for d in diffs)
            cells.append(f"{acc:.4f} ({statistics.mean(diffs):+.2f}: {per_seed}), {ratio:.2f}x")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    args = parser.parse_args()
    from nas.timing import machine

    size = SIZES[args.size]
    results = ResultsFile(RESULTS / f"top_rung_recipe_{args.size}.jsonl", ("variant", "network", "seed"))
    done = results.done()
    nets = networks(size)
    tasks = [{"variant": v, "network": n, "arch_yaml": y, "seed": s, "fields": {**dict(size.base), **over}}
             for s in size.seeds for v, over in VARIANTS.items() for n, y in nets.items()
             if (v, n, s) not in done]
    if tasks:
        git = ["git", "rev-parse", "--short", "HEAD"]
        commit = subprocess.run(git, capture_output=True, text=True).stdout.strip()
        results.append_header({"command": invocation(__file__), "commit": commit, "machine": machine(),
                               "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())})
        os.environ["OMP_NUM_THREADS"] = "1"
        with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
            for done_task in as_completed([pool.submit(_train, t) for t in tasks]):
                row = done_task.result()
                results.append(row)
                print(f"{row['variant']:28} {row['network']:24} seed {row['seed']}: "
                      f"val {row['val_acc']:.4f}, {row['train_s']:.0f}s", flush=True)
    print(report(results.read()[1]))


if __name__ == "__main__":
    main()
