"""Architectures per hour: one process with zero-cost scores, the default memory layout and
evaluation in batches of 1,024 (the configuration before built-in workers) beside the defaults (a
worker per core, channels-last and smaller evaluation batches on the CPU, no zero-cost scores),
in one run, on the same space, budget, data, ladder and seeds.

    python bench/search_throughput.py --size cpu      # Fashion-MNIST, 5 MMACs, 12 architectures each; 2-core CPU
    python bench/search_throughput.py --size gpu      # 20 MMACs, 40 architectures; a GPU (not yet run)

Each configuration is the real `nas-search` in a process of its own, under runs/throughput-<size>/,
one after the other (never side by side). From each study: architectures trained per hour of the
search loop (first trial's start to last trial's end), training images per second in all, the
share of the trials' wall time spent outside training steps, the mean set-up time (to the end of a
trial's first step) apart, and the front's hypervolume (validation accuracy) and best test
accuracy, so that speed is not bought with quality. The table goes to bench/results/ and, with
`--doc`, into bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import RESULTS, ROOT, Size, add_size_argument, invocation, publish, run_command


@dataclass(frozen=True)
class ThroughputSize(Size):
    n_trials: int
    overrides: tuple[str, ...]  # shared by both configurations


SIZES = {
    "cpu": ThroughputSize(5.0, 12, ("data=fashion_mnist", "search.start_from_references=false", "search.seed=0")),
    "gpu": ThroughputSize(20.0, 40, ("data=fashion_mnist", "search.start_from_references=false", "search.seed=0")),
}

CONFIGS = {
    "before": ("search.workers=1", "proxy.zero_cost=true", "proxy.channels_last=false", "proxy.eval_batch_size=1024"),
    "defaults": (),
}


def measure(study_name: str, output_dir: Path, budget_mflops: float) -> dict[str, float]:
    """Throughput and quality of one finished study."""
    import optuna
    from optuna.trial import TrialState

    from nas.attrs import StudyAttr, TrialAttr
    from nas.results import outcome

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{output_dir / 'study.db'}")
    trials = [t for t in study.trials if t.user_attrs.get(TrialAttr.STATUS) == "admitted"
              and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    top = max(int(k) for t in trials for k in t.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {}))
    images = sum(int(t.user_attrs.get(TrialAttr.PRUNED_AT) or top) for t in trials)
    loop_s = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    trial_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    train_s = sum(float(t.user_attrs[TrialAttr.TRAIN_S]) for t in trials)
    setups = [float(t.user_attrs[TrialAttr.SETUP_S]) for t in trials if TrialAttr.SETUP_S in t.user_attrs]
    result = outcome(study, budget_mflops)
    tests = [m.test_acc for m in result.front if m.test_acc is not None]
    return {"trained": len(trials), "reached_top": sum(t.state == TrialState.COMPLETE for t in trials),
            "loop_s": loop_s, "arch_per_hour": 3600 * len(trials) / loop_s, "images": images,
            "img_s": images / loop_s, "outside_share": 1 - train_s / trial_s,
            "setup_s": sum(setups) / len(setups) if setups else float("nan"),
            "hypervolume": result.hypervolume, "best_test": max(tests, default=float("nan")),
            "workers": len({t.user_attrs.get(TrialAttr.WORKER) for t in trials}),
            "test_recorded": len(study.user_attrs.get(StudyAttr.TEST_ACC, {}))}


def run(size_name: str, size: ThroughputSize) -> dict[str, dict[str, float]]:
    root = ROOT / "runs" / f"throughput-{size_name}"
    shutil.rmtree(root, ignore_errors=True)  # one run measures both: nothing resumed from an earlier one
    results = {}
    for name, extra in CONFIGS.items():
        study, out = f"throughput-{size_name}-{name}", root / name
        args = [*size.overrides, f"budget.mflops={size.budget_mflops:g}", f"search.n_trials={size.n_trials}", *extra,
                f"study.name={study}", f"output_dir={out.relative_to(ROOT)}"]
        print(f"{name}: nas-search {' '.join(args)}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        finished = run_command("search", args, cwd=ROOT, log=root / f"{name}.log")
        results[name] = {**measure(study, out, size.budget_mflops), "process_s": finished.wall_s}
    return results


def report(results: dict[str, dict[str, float]], command: str, seconds: float) -> str:
    import torch

    before, after = results["before"], results["defaults"]
    rows = [
        ("architectures trained", "trained", "{:.0f}"), ("of them reached the top rung", "reached_top", "{:.0f}"),
        ("worker processes", "workers", "{:.0f}"), ("search loop, s", "loop_s", "{:.0f}"),
        ("architectures per hour", "arch_per_hour", "{:.1f}"), ("training images per second, all workers", "img_s", "{:.0f}"),
        ("share of trial wall time outside training steps", "outside_share", "{:.1%}"),
        ("mean set-up per trial (to the end of its first step), s", "setup_s", "{:.2f}"),
        ("front hypervolume (validation)", "hypervolume", "{:.4f}"), ("best test accuracy on the front", "best_test", "{:.4f}"),
        ("whole command, s", "process_s", "{:.0f}"),
    ]
    lines = [f"Made by `{command}` on {platform.machine()}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, in {seconds / 60:.1f} min. `before`: {' '.join(CONFIGS['before'])}; "
             "`defaults`: no overrides. Both on the same data, budget, ladder and seed, one after the other.",
             "", "| | before | defaults | ratio |", "|---|---|---|---|"]
    for label, key, fmt in rows:
        ratio = after[key] / before[key] if key in ("arch_per_hour", "img_s") and before[key] else None
        lines.append(f"| {label} | {fmt.format(before[key])} | {fmt.format(after[key])} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--doc", type=Path, help="also write the table into this file (bench/NOTES.md)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.size, SIZES[args.size])
    text = report(results, invocation(__file__), time.perf_counter() - started)
    publish(text, f"search_throughput_{args.size}.md", "Search throughput", args.doc, f"search-throughput-{args.size}")
    (RESULTS / f"search_throughput_{args.size}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
