"""What the trainer's CPU options give: memory layout and threads, on the networks a search trains.

    python bench/trainer_options.py --size cpu     # 6 networks <= 5 MMACs, Fashion-MNIST; 2-core CPU

For each network (the two papers' networks scaled to the budget and four of the hybrid space,
spread over MACs), each option trains the same steps from the same initialisation with
`nas.training.Training`, in a process of its own (so that thread settings do not leak from one to
the next), one after the other: steady-state training images per second (the first steps, which
carry oneDNN's set-up, apart), as a ratio to one process of all cores in the default layout, the
configuration before built-in workers. "x2 processes" is that process's rate times the cores: what
one worker per core gives when the workers do not slow each other down (bench/search_throughput.py
measures the real thing). The summed training loss of each option's run is listed too: layouts
and thread counts sum in other orders, so runs are not bit-identical, only alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import ROOT, Size, add_size_argument, invocation, publish


@dataclass(frozen=True)
class OptionsSize(Size):
    archs: int  # of the space, besides the two references
    steps: int  # measured, after `warm` steps
    warm: int
    batch_size: int


SIZES = {"cpu": OptionsSize(5.0, 4, 60, 10, 32)}

#: (threads, channels_last) of each option; the first is the baseline.
OPTIONS = {"all cores, default layout": (0, False), "all cores, channels-last": (0, True),
           "1 thread, default layout": (1, False), "1 thread, channels-last": (1, True)}


def networks(size: OptionsSize) -> dict[str, str]:
    """name -> arch YAML: the scaled references and `size.archs` of the hybrid space over MACs."""
    from nas.complexity import complexity
    from nas.search import RandomSuggests
    from nas.search.references import scaled_references
    from search_spaces import Budget, DataShape, get_space

    shape, budget = DataShape(1, 28, 10), Budget(size.budget_mflops)
    found = {name: arch.to_yaml() for name, arch in scaled_references(shape, budget).items()}
    space, rng = get_space("hybrid"), RandomSuggests(2026)
    samples = sorted(((complexity(a).mmacs, a) for a in (space(rng, shape) for _ in range(400))), key=lambda t: t[0])
    samples = [(m, a) for m, a in samples if m <= size.budget_mflops]
    for k in range(size.archs):
        mmacs, arch = samples[(2 * k + 1) * len(samples) // (2 * size.archs)]
        found[f"hybrid {mmacs:.2f} MMACs"] = arch.to_yaml()
    return found


def _measure(arch_yaml: str, threads: int, channels_last: bool, size: OptionsSize) -> dict[str, float]:
    """Run in a process of its own: train and time one network under one option."""
    import torch

    from nas.data import load_dataset
    from nas.model import build_model
    from nas.training import RunSettings, Training
    from search_spaces import Arch

    if threads:
        torch.set_num_threads(threads)
    data = load_dataset("fashion_mnist")
    torch.manual_seed(0)
    model = build_model(Arch.from_yaml(arch_yaml))
    settings = RunSettings(batch_size=size.batch_size, lr=0.4, max_train_images=size.batch_size * (size.warm + size.steps),
                           channels_last=channels_last, seed=0)
    run = Training(model, data.train, settings, mean=data.mean, std=data.std, device="cpu")
    run.run_to(size.warm)
    started = time.perf_counter()
    run.run_to(size.warm + size.steps)
    seconds = time.perf_counter() - started
    return {"img_s": size.steps * size.batch_size / seconds, "loss_sum": run.loss_sum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--doc", type=Path, help="also write the table into this file (bench/NOTES.md)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, in its own process
    args = parser.parse_args()
    size = SIZES[args.size]
    if args.one:
        task = json.loads(args.one)
        print(json.dumps(_measure(task["arch"], task["threads"], task["channels_last"], size)))
        return
    started = time.perf_counter()
    rows = {}
    for name, arch in networks(size).items():
        rows[name] = {}
        for option, (threads, layout) in OPTIONS.items():
            one = json.dumps({"arch": arch, "threads": threads, "channels_last": layout})
            done = subprocess.run([sys.executable, __file__, "--size", args.size, "--one", one], cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            rows[name][option] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{name}: {option}: {rows[name][option]['img_s']:.0f} img/s", flush=True)
    import torch

    cores = len(os.sched_getaffinity(0))
    names = list(OPTIONS)
    lines = [f"Made by `{invocation(__file__)}` on {platform.machine()}, {cores} cores, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, in {(time.perf_counter() - started) / 60:.1f} min; {size.steps} steps of "
             f"batch {size.batch_size} after {size.warm} warm-up steps, per network and option. Training images per "
             f"second as a ratio to `{names[0]}` ({cores} threads) in the same run; `x{cores} processes`: the 1-thread "
             "rate times the cores.", "",
             "| network | " + " | ".join(names) + f" | 1 thread, channels-last x{cores} processes | summed loss, each option |",
             "|---|" + "---|" * (len(names) + 2)]
    for name, by_option in rows.items():
        base = by_option[names[0]]["img_s"]
        cells = [f"{by_option[o]['img_s'] / base:.2f}x" for o in names]
        cells[0] = f"1.00x ({base:.0f} img/s)"
        scaled = cores * by_option[names[-1]]["img_s"] / base
        losses = ", ".join(f"{by_option[o]['loss_sum']:.1f}" for o in names)
        lines.append(f"| {name} | {' | '.join(cells)} | {scaled:.2f}x | {losses} |")
    text = "\n".join(lines) + "\n"
    publish(text, f"trainer_options_{args.size}.md", "Trainer options on the CPU", args.doc, f"trainer-options-{args.size}")


if __name__ == "__main__":
    main()
