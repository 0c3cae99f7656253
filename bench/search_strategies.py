"""Which search finds the best front for the compute: samplers x search options x seeds.

    python bench/search_strategies.py --size cpu        # 2 MMACs, 20 archs per search; 2-core CPU
    python bench/search_strategies.py --size full       # 20 MMACs, 50 archs, the full proxy; a GPU
    python bench/search_strategies.py --size cpu --report    # table and plot from the results only

Every search is the real `nas-search` (Fashion-MNIST, hybrid space) in a process of its own with
one thread, `--jobs` at a time. Each finished search appends one JSON line to
bench/results/search_strategies_<size>.jsonl (a re-run skips what is there): its wall time, its CPU
time (the process's own, read with wait4, so that searches running side by side do not blur each
other's cost), the trial counts, and the hypervolume of its front after every trained architecture.
The hypervolume is `nas.results.hypervolume`: validation accuracy against MACs / budget, reference
point (budget, accuracy 0), the same for every search.

Options compared, each on its own against the default (budget-aware sampling, no early stopping,
no pre-screening: the default when this was measured, so pinned here), `plain` (the space without
budget-aware sampling: over-budget samples are rejected), `halving` and `halving_k0.33`
(Pareto-mode successive halving, nas.search.Halving, keeping half or a third at every rung),
`prescreen` (NASWOT pre-screening of 8 candidates per trained one).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import RESULTS, ResultsFile, Size, add_size_argument, replace_section, run_command

SAMPLERS = ("random", "tpe", "nsgaii")
VARIANTS: dict[str, list[str]] = {
    # Early stopping is pinned off outside the halving variants: the default when this was measured.
    "default": ["search.halving.enabled=false"],
    "plain": ["search.budget_aware=false", "search.halving.enabled=false"],
    "halving": ["search.halving.enabled=true", "search.halving.keep=0.5", "search.halving.screen_keep=null"],
    "halving_k0.33": ["search.halving.enabled=true", "search.halving.keep=0.33",
                      "search.halving.screen_keep=null"],
    "prescreen": ["search.prescreen=naswot", "search.halving.enabled=false"],
}


@dataclass(frozen=True)
class SearchesSize(Size):
    n_trials: int
    overrides: tuple[str, ...]  # proxy settings shared by every search of this size
    samplers: tuple[str, ...] = SAMPLERS


SIZES = {
    # The CPU proxy's recipe of 2026-11-24 (one epoch, batch 64, lr 0.4; the default is batch 32
    # since) on 2,000 training and 500 validation
    # images (of its 5,000 and 1,000) under a small budget, so that the 45 searches take about an
    # hour on two cores. NSGA-II's first generation (population 20, conf/sampler/nsgaii.yaml) is
    # random sampling of its own, so at this size it measures one more random sampler.
    "cpu": SearchesSize(2.0, 20, ("proxy.on_cpu.max_train_images=2000", "proxy.on_cpu.max_val_images=500",
                          "proxy.zero_cost=false")),
    "full": SearchesSize(20.0, 50, ("proxy.zero_cost=false",)),
}
KEY = ("sampler", "variant", "seed")  # what names one search of the results file


def run_one(size: SearchesSize, sampler: str, variant: str, seed: int, workdir: Path) -> dict:
    """One search in its own process; its row for the table."""
    name = f"{sampler}-{variant}-s{seed}"
    out = workdir / name
    overrides = [
        f"sampler={sampler}", f"search.seed={seed}", f"budget.mflops={size.budget_mflops:g}",
        f"search.n_trials={size.n_trials}", f"study.name={name}", f"output_dir={out}", *size.overrides,
        *VARIANTS[variant],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # cpu_s, the search's own CPU time, is its cost: the searches running side by side blur the wall time.
    finished = run_command("search", overrides, cwd=workdir, log=workdir / f"{name}.log", env=env)
    row = {"sampler": sampler, "variant": variant, "seed": seed, "wall_s": round(finished.wall_s, 1),
           "cpu_s": round(finished.cpu_s, 1)}
    row.update(_study_summary(f"sqlite:///{out / 'study.db'}", name, size.budget_mflops))
    return row


def _study_summary(storage: str, name: str, budget_mflops: float) -> dict:
    """Counts, the front's hypervolume after each trained architecture (in completion order, with
    the seconds since the first trial started), the seconds spent in admitted trials (`trial_s`)
    and in their training steps (`train_s`, as the trainer measured it, up to the rung for
    trials stopped early)."""
    import optuna
    from optuna.trial import TrialState

    from nas.attrs import Status, TrialAttr
    from nas.results import hypervolume, pareto_front, trained_members
    from nas.search import trial_counts

    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials)
    admitted = sorted((t for t in trials if t.user_attrs.get(TrialAttr.STATUS) == Status.ADMITTED and t.datetime_complete),
                      key=lambda t: t.datetime_complete)
    curve = []
    for k in range(1, len(admitted) + 1):
        done = [t for t in admitted[:k] if t.state == TrialState.COMPLETE]
        front = pareto_front(trained_members(done))
        seconds = (admitted[k - 1].datetime_complete - start).total_seconds()
        curve.append([k, round(seconds, 1), round(hypervolume(front, budget_mflops), 5) if front else 0.0])
    counts = trial_counts(study)
    trial_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in admitted)
    train_s = sum(t.user_attrs.get(TrialAttr.TRAIN_S, 0.0) for t in admitted)
    return {**{k: counts[k] for k in ("trained", "pruned", "rejected", "prescreened", "failed")},
            "trial_s": round(trial_s, 1), "train_s": round(train_s, 1), "hv": curve[-1][2] if curve else 0.0,
            "curve": curve}


def run(args: argparse.Namespace, size: SearchesSize, out: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    results = ResultsFile(out, KEY)
    done = results.done()
    samplers = args.samplers or size.samplers
    todo = [(s, v, seed) for seed in args.seeds for v in VARIANTS for s in samplers if (s, v, seed) not in done]
    if not out.exists():
        results.append_header({
            "size": args.size, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "command": f"python bench/search_strategies.py --size {args.size}",
            "size_settings": dataclasses.asdict(size)})
    print(f"{len(todo)} searches to run ({len(done)} done), {args.jobs} at a time", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="search-strategies-", dir=args.workdir))
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, size, *job, workdir): job for job in todo}
        for i, future in enumerate(as_completed(futures), 1):
            row = future.result()
            results.append(row)
            print(f"[{i}/{len(todo)} {time.perf_counter() - started:.0f}s] {row['sampler']:>6} {row['variant']:>9} "
                  f"seed {row['seed']}: hv {row['hv']:.4f}, {row['trained']} trained ({row['pruned']} stopped), "
                  f"{row['rejected']} rejected, cpu {row['cpu_s']:.0f}s", flush=True)


def report(size_name: str, out: Path) -> str:
    """The markdown table (mean +- sd over seeds) and the plot; returns the table."""
    import numpy as np

    headers, rows = ResultsFile(out, KEY).read()
    header = headers[0] if headers else {}
    lines = [
        f"Made by `{header.get('command', '')}` on {header.get('machine', '?')}, {header.get('date', '?')}; "
        f"{len(rows)} searches. Mean +- sd over seeds.",
        "",
        "| sampler | variant | seeds | hypervolume | trained (stopped early) | rejected | samples inside | "
        "CPU s | CPU s vs default | training s | training s vs default |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_cpu, base_train = {}, {}
    for sampler in SAMPLERS:
        for variant in VARIANTS:
            group = [r for r in rows if r["sampler"] == sampler and r["variant"] == variant]
            if not group:
                continue
            hv = np.array([r["hv"] for r in group])
            cpu = np.array([r["cpu_s"] for r in group])
            train = np.array([r["train_s"] for r in group])
            if variant == "default":
                base_cpu[sampler], base_train[sampler] = cpu.mean(), train.mean()
            inside = [1 - r["rejected"] / max(1, r["trained"] + r["rejected"] + r["failed"] + r["prescreened"])
                      for r in group]
            ratio = f"{cpu.mean() / base_cpu[sampler]:.2f}" if sampler in base_cpu else "-"
            train_ratio = f"{train.mean() / base_train[sampler]:.2f}" if sampler in base_train else "-"
            lines.append(
                f"| {sampler} | {variant} | {len(group)} | {hv.mean():.4f} +- {hv.std(ddof=1) if len(hv) > 1 else 0:.4f} "
                f"| {np.mean([r['trained'] for r in group]):.0f} ({np.mean([r['pruned'] for r in group]):.1f}) "
                f"| {np.mean([r['rejected'] for r in group]):.1f} | {100 * np.mean(inside):.0f}% "
                f"| {cpu.mean():.0f} | {ratio} | {train.mean():.0f} | {train_ratio} |"
            )
    table = "\n".join(lines)
    _plot(rows, RESULTS / f"search_strategies_{size_name}.png")
    (RESULTS / f"search_strategies_{size_name}.md").write_text(table + "\n")
    return table


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    samplers = [s for s in SAMPLERS if any(r["sampler"] == s for r in rows)]
    fig, axes = plt.subplots(len(samplers), 2, figsize=(11, 3.2 * len(samplers)), squeeze=False)
    for i, sampler in enumerate(samplers):
        for variant in VARIANTS:
            group = [r for r in rows if r["sampler"] == sampler and r["variant"] == variant and r["curve"]]
            if not group:
                continue
            n = min(len(r["curve"]) for r in group)
            by_k = np.mean([[c[2] for c in r["curve"][:n]] for r in group], axis=0)
            axes[i][0].plot(range(1, n + 1), by_k, label=variant)
            # Against time: each seed's curve on a common time grid, then the mean.
            end = max(r["curve"][-1][1] for r in group)
            grid = np.linspace(0, end, 100)
            at = [np.interp(grid, [0] + [c[1] for c in r["curve"]], [0] + [c[2] for c in r["curve"]],
                            right=r["curve"][-1][2]) for r in group]
            axes[i][1].plot(grid, np.mean(at, axis=0), label=variant)
        axes[i][0].set(title=f"{sampler}: hypervolume by trained architectures", xlabel="architectures trained",
                       ylabel="hypervolume")
        axes[i][1].set(title=f"{sampler}: hypervolume by wall time", xlabel="seconds", ylabel="hypervolume")
        axes[i][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, help="only these (default: the size's)")
    parser.add_argument("--jobs", type=int, default=2, help="searches at a time, one thread each")
    parser.add_argument("--workdir", default=None, help="where the searches' studies go (default: a temp folder)")
    parser.add_argument("--report", action="store_true", help="only write the table and plot from the results")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, help="a Markdown file whose search-strategies section is replaced")
    args = parser.parse_args()
    size = SIZES[args.size]
    out = args.out or RESULTS / f"search_strategies_{args.size}.jsonl"
    if not args.report:
        run(args, size, out)
    table = report(args.size, out)
    print(table)
    if args.doc:
        replace_section(args.doc, "search-strategies", table + "\n")


if __name__ == "__main__":
    main()
