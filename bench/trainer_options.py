"""What the trainer's CPU options give: memory layout and threads, on the networks a search trains.

    python bench/trainer_options.py --size cpu     # 4 networks <= 5 MMACs, Fashion-MNIST; 2-core CPU

For each network (the two papers' networks scaled to the budget and two of the hybrid space,
spread over MACs), each option trains the same steps from the same initialisation with
`nas.training.Training`, in a process of its own (so that thread settings do not leak from one to
the next), one after the other: steady-state training images per second (the first steps, which
carry oneDNN's set-up, apart), as a ratio to one process of all cores in the default layout, the
configuration before built-in workers. "x2 processes" is that process's rate times the cores: what
one worker per core gives when the workers do not slow each other down (bench/search_throughput.py
measures the real thing). "compiled" is `torch.compile` (Inductor) on top: its compile time,
spent in the first steps, is listed apart, with the steps of the CPU ladder's top rung it would
take to repay. The summed training loss of each option's run is listed too: layouts, thread
counts and compiled kernels sum in other orders, so runs are not bit-identical, only alike.
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


SIZES = {"cpu": OptionsSize(5.0, 2, 60, 10, 32)}

#: (threads, channels_last, compiled) of each option; the first is the baseline.
OPTIONS = {"all cores, default layout": (0, False, False), "all cores, channels-last": (0, True, False),
           "1 thread, default layout": (1, False, False), "1 thread, channels-last": (1, True, False),
           "1 thread, channels-last, compiled": (1, True, True)}
PER_CORE = "1 thread, channels-last"  # what a worker per core runs
EVAL_BATCHES = (1024, 256, 128, 64, 32)  # evaluation batch sizes compared, the first the baseline
EVAL_IMAGES = 1000  # validation images scored at each rung on the CPU
TOP_RUNG_STEPS = 625  # the CPU ladder's top rung: 20,000 images in batches of 32


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


def _measure(arch_yaml: str, threads: int, channels_last: bool, compiled: bool, size: OptionsSize) -> dict[str, float]:
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
    if compiled:
        model = torch.compile(model)
    settings = RunSettings(batch_size=size.batch_size, lr=0.4, max_train_images=size.batch_size * (size.warm + size.steps),
                           channels_last=channels_last, seed=0)
    run = Training(model, data.train, settings, mean=data.mean, std=data.std, device="cpu")
    started = time.perf_counter()
    run.run_to(size.warm)
    warm_s = time.perf_counter() - started
    started = time.perf_counter()
    run.run_to(size.warm + size.steps)
    seconds = time.perf_counter() - started
    return {"img_s": size.steps * size.batch_size / seconds, "loss_sum": run.loss_sum,
            "warm_s": warm_s - size.warm * seconds / size.steps}  # the first steps' cost beyond steady state


def _measure_eval(arch_yaml: str) -> dict[str, float]:
    """Run in a process of its own: validation images per second of one network (trained a few
    steps, in eval mode, 1 thread, channels-last) at each of EVAL_BATCHES, the best of 3 runs."""
    import torch

    from nas.data import load_dataset
    from nas.model import build_model
    from nas.training import evaluate
    from search_spaces import Arch

    torch.set_num_threads(1)
    data = load_dataset("fashion_mnist")
    val = data.val.subset(EVAL_IMAGES, 0)
    torch.manual_seed(0)
    model = build_model(Arch.from_yaml(arch_yaml)).to(memory_format=torch.channels_last)
    rates = {}
    for batch in EVAL_BATCHES:
        times = []
        for _ in range(4):  # the first run carries oneDNN's set-up for the shapes
            started = time.perf_counter()
            evaluate(model, val, mean=data.mean, std=data.std, batch_size=batch, device=torch.device("cpu"))
            times.append(time.perf_counter() - started)
        rates[str(batch)] = EVAL_IMAGES / min(times[1:])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--doc", type=Path, help="also write the table into this file (bench/NOTES.md)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, in its own process
    args = parser.parse_args()
    size = SIZES[args.size]
    if args.one:
        task = json.loads(args.one)
        if task.get("eval"):
            print(json.dumps(_measure_eval(task["arch"])))
        else:
            print(json.dumps(_measure(task["arch"], task["threads"], task["channels_last"], task["compiled"], size)))
        return
    def one(task: dict) -> dict[str, float]:
        done = subprocess.run([sys.executable, __file__, "--size", args.size, "--one", json.dumps(task)], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    started = time.perf_counter()
    rows, evals = {}, {}
    for name, arch in networks(size).items():
        rows[name] = {}
        for option, (threads, layout, compiled) in OPTIONS.items():
            rows[name][option] = one({"arch": arch, "threads": threads, "channels_last": layout, "compiled": compiled})
            print(f"{name}: {option}: {rows[name][option]['img_s']:.0f} img/s", flush=True)
        evals[name] = one({"arch": arch, "eval": True})
        print(f"{name}: evaluation: {evals[name]}", flush=True)
    import torch

    cores = len(os.sched_getaffinity(0))
    names = list(OPTIONS)
    lines = [(f"Made by `{invocation(__file__)}` on {platform.machine()}, {cores} cores, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, in {(time.perf_counter() - started) / 60:.1f} min; {size.steps} steps of "
             f"batch {size.batch_size} after {size.warm} warm-up steps, per network and option. Training images per "
             f"second as a ratio to `{names[0]}` ({cores} threads) in the same run; `{PER_CORE} x{cores} processes`: "
             f"that rate times the cores. Compile: the compiled run's first {size.warm} steps beyond their "
             f"steady-state time, and the top-rung steps ({TOP_RUNG_STEPS}) it takes to repay against `{PER_CORE}` "
             "(never: not faster)."), "",
             "| network | " + " | ".join(names)
             + f" | {PER_CORE} x{cores} processes | compile, s | repaid after, steps | summed loss, each option |",
             "|---|" + "---|" * (len(names) + 4)]
    for name, by_option in rows.items():
        base = by_option[names[0]]["img_s"]
        cells = [f"{by_option[o]['img_s'] / base:.2f}x" for o in names]
        cells[0] = f"1.00x ({base:.0f} img/s)"
        scaled = cores * by_option[PER_CORE]["img_s"] / base
        compiled, plain = by_option["1 thread, channels-last, compiled"], by_option[PER_CORE]
        saved_per_step = size.batch_size / plain["img_s"] - size.batch_size / compiled["img_s"]
        repaid = f"{compiled['warm_s'] / saved_per_step:.0f}" if saved_per_step > 0 else "never"
        losses = ", ".join(f"{by_option[o]['loss_sum']:.1f}" for o in names)
        lines.append(f"| {name} | {' | '.join(cells)} | {scaled:.2f}x | {compiled['warm_s']:.1f} | {repaid} | {losses} |")
    lines += ["", (f"Evaluation ({EVAL_IMAGES} validation images, eval mode, 1 thread, channels-last, best of 3): "
                   f"images per second at each batch size, as a ratio to batch {EVAL_BATCHES[0]}."), "",
              "| network | " + " | ".join(f"batch {b}" for b in EVAL_BATCHES) + " |",
              "|---|" + "---|" * len(EVAL_BATCHES)]
    for name, rates in evals.items():
        base = rates[str(EVAL_BATCHES[0])]
        cells = [f"{rates[str(b)] / base:.2f}x" for b in EVAL_BATCHES]
        cells[0] = f"1.00x ({base:.0f} img/s)"
        lines.append(f"| {name} | {' | '.join(cells)} |")
    text = "\n".join(lines) + "\n"
    publish(text, f"trainer_options_{args.size}.md", "Trainer options on the CPU", args.doc, f"trainer-options-{args.size}")


if __name__ == "__main__":
    main()
