"""Does the search beat hand design at a budget? The default search, random sampling and the
papers' networks, over seeds, in one command.

    bash bench/headline.sh                  # --size cpu without a GPU, --size gpu with one
    python bench/headline.py --size cpu     # the same, by hand (resumable: run it again to go on)
    python bench/headline.py --size cpu --seeds 1  # the first seed only, this time
    python bench/headline.py --size cpu --report   # only the table, from what is on disk

For each seed, under runs/headline-<size>/, two real `nas-search` runs in processes of their own:
1. `search`: the defaults (TPE, the ladder, built-in workers). Its first two trials are the papers'
   networks scaled to the budget (ShuffleNet v1 g=3 and MobileNeXt at the widest multiplier that
   fits, `search.start_from_references`), trained up the same ladder to the same top rung as
   every searched network: the hand-design baseline, like with like.
2. `random`: random sampling with the same ladder, the same number of trials and the same two
   references as its first trials, so that the two differ only in the sampler: the same compute,
   and the same promotion rule met by the sampled networks (the references take places at the
   rungs; a random arm without them let its first three sampled trials through every rung, where
   the search let one, 2026-12-04). The references are trained again there (the same seed and
   recipe, so the same networks), and only the search's are reported.
Each search scores its front once on the test split when it ends (it selects on validation only).
The report takes, per seed: the test accuracies of each front's searched members and of the
references, the hypervolume of each set's test-accuracy front (`nas.results.hypervolume`), and the
best test accuracy of each search at or below each reference's MACs; then means, standard
deviations and the paired differences per seed, and the wall time of each part. It goes to
docs/RESULTS.md between its `headline-<size>` markers. Each finished search is one line of
bench/results/headline_<size>.jsonl: a re-run (in this session or a later one) skips what is there
and resumes an interrupted study.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import RESULTS, ROOT, ResultsFile, Size, add_size_argument, replace_section, run_command


@dataclass(frozen=True)
class HeadlineSize(Size):
    n_trials: int  # architectures of the default search, its two references included
    seeds: int
    search: tuple[str, ...]  # overrides of both searches


SIZES = {
    # The CPU ladder (one epoch of 40,000 images at the top, conf/proxy on_cpu) under 5 MMACs:
    # 6 to 9 minutes a search on 2 cores, two searches a seed (2026-12-04, AMD EPYC).
    "cpu": HeadlineSize(5.0, 20, 3, ()),
    # The GPU ladder (three epochs of the whole training split at the top); not yet run.
    "gpu": HeadlineSize(20.0, 50, 3, ()),
}

DATA = "data=fashion_mnist"
ARMS = ("search", "random")


def _study(size_name: str, arm: str, seed: int) -> str:
    return f"headline-{size_name}-{arm}-s{seed}"


def results_file(size_name: str) -> ResultsFile:
    """One line per finished (seed, arm): its front and references, kept under bench/results/ so
    that a later session (or a fresh clone) resumes where this one stopped."""
    return ResultsFile(RESULTS / f"headline_{size_name}.jsonl", key=("seed", "arm"))


def run(size_name: str, size: HeadlineSize, root: Path, log: Path, seeds: int) -> None:
    """Every search of the first `seeds` seeds that the results file does not hold yet."""
    results = results_file(size_name)
    done = results.done()
    common = [DATA, f"budget.mflops={size.budget_mflops:g}", *size.search]
    for seed in range(seeds):
        for arm in ARMS:
            if (seed, arm) in done:
                continue
            study = _study(size_name, arm, seed)
            out = root / f"{arm}-s{seed}"
            extra = [*(["sampler=random"] if arm == "random" else []), f"search.n_trials={size.n_trials}"]
            args = [*common, *extra, f"search.seed={seed}", f"study.name={study}", f"output_dir={out.relative_to(ROOT)}"]
            print(f"seed {seed}, {arm}: nas-search {' '.join(args)}", flush=True)
            with log.open("a") as f:
                f.write(f"\n$ nas-search {' '.join(args)}\n")
            wall_s = run_command("search", args, cwd=ROOT, log=log).wall_s
            results.append({"seed": seed, "arm": arm, "rows": rows(out), "wall_s": round(wall_s, 1),
                            "command": f"nas-search {' '.join(args)}", "date": time.strftime("%Y-%m-%d"),
                            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"})


def rows(folder: Path) -> list[dict]:
    """A finished search's pareto.csv: its front members and references, with test accuracy."""
    with (folder / "pareto.csv").open() as f:
        return [{"trial": int(r["trial"]), "reference": r["reference"], "on_front": r["on_front"] == "true",
                 "val_acc": float(r["val_acc"]), "test_acc": float(r["test_acc"]) if r["test_acc"] else None,
                 "mmacs": float(r["mmacs"]), "genotype": r["genotype"]} for r in csv.DictReader(f)]


def _hv(points: list[dict], budget: float) -> float:
    """The hypervolume of the test-accuracy front (test accuracy in the accuracy slot)."""
    from nas.results import FrontMember, hypervolume

    tested = [FrontMember(trial=p["trial"], val_acc=p["test_acc"], macs=round(p["mmacs"] * 1e6), params=0,
                          genotype=p["genotype"], arch_yaml="")
              for p in points if p["test_acc"] is not None]
    return hypervolume(tested, budget) if tested else 0.0


def _best_under(points: list[dict], mmacs: float) -> float | None:
    under = [p["test_acc"] for p in points if p["mmacs"] <= mmacs and p["test_acc"] is not None]
    return max(under) if under else None


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def report(size_name: str, size: HeadlineSize) -> str:
    _, results = results_file(size_name).read()
    by = {(r["seed"], r["arm"]): r for r in results}
    per_seed, seconds = [], {}
    for seed in range(size.seeds):
        if not all((seed, arm) in by for arm in ARMS):
            continue
        search, random = by[(seed, "search")]["rows"], by[(seed, "random")]["rows"]
        refs = [r for r in search if r["reference"]]
        searched = [r for r in search if not r["reference"] and r["on_front"]]
        sampled = [r for r in random if not r["reference"] and r["on_front"]]
        per_seed.append({"seed": seed, "search": searched, "random": sampled, "references": refs})
        seconds.update({f"{arm}-s{seed}": by[(seed, arm)]["wall_s"] for arm in ARMS})
    if not per_seed:
        raise SystemExit(f"no seed finished yet ({results_file(size_name).path}): run without --report first")
    budget = size.budget_mflops
    last = by[(per_seed[-1]["seed"], "random")]
    meta = {"date": last["date"], "machine": last["machine"]}
    lines = [
        f"Made by `bash bench/headline.sh` (`python bench/headline.py --size {size_name}`) on {meta['machine']}, "
        f"{meta['date']}: Fashion-MNIST, budget {budget:g} MMACs, {len(per_seed)} of {size.seeds} seeds; per seed the "
        f"default search ({size.n_trials} architectures, its first two the scaled references) and random sampling "
        f"({size.n_trials} architectures, the same ladder and the same two references first; its front's "
        "sampled networks below). Every network below was trained up the same ladder "
        "to the same top rung; test accuracy measured once, after each search; the searches select on validation.",
        "",
        "| seed | set | model | MMACs | val acc (top rung) | test acc | genotype |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in per_seed:
        for arm in ("search", "random", "references"):
            for r in sorted(s[arm], key=lambda r: r["mmacs"]):
                name = r["reference"] or f"trial {r['trial']}"
                test = "-" if r["test_acc"] is None else f"**{r['test_acc']:.4f}**"
                lines.append(f"| {s['seed']} | {arm} | {name} | {r['mmacs']:.2f} | {r['val_acc']:.4f} | {test} | "
                             f"`{r['genotype'].replace('|', chr(92) + '|')}` |")
    hv = {arm: [_hv(s[arm], budget) for s in per_seed] for arm in ("search", "random", "references")}
    lines += ["", "Hypervolume of each set's test-accuracy front (test accuracy x share of the budget saved), per seed "
              "and mean ± sd:", ""]
    for arm, values in hv.items():
        lines.append(f"- {arm}: {', '.join(f'{v:.4f}' for v in values)}; {_mean_sd(values)}")
    diffs = [a - b for a, b in zip(hv["search"], hv["random"], strict=True)]
    lines.append(f"- search - random, paired by seed: {', '.join(f'{d:+.4f}' for d in diffs)}; {_mean_sd(diffs)}")
    lines += ["", "Best test accuracy at or below each reference's MACs, against the reference's own (points):", ""]
    names = sorted({r["reference"] for s in per_seed for r in s["references"]})
    for name in names:
        for arm in ("search", "random"):
            gaps, cells = [], []
            for s in per_seed:
                ref = next((r for r in s["references"] if r["reference"] == name), None)
                best = _best_under(s[arm], ref["mmacs"]) if ref and ref["test_acc"] is not None else None
                if best is None:
                    cells.append(f"seed {s['seed']}: none")
                    continue
                gaps.append(100 * (best - ref["test_acc"]))
                cells.append(f"seed {s['seed']}: {best:.4f} vs {ref['test_acc']:.4f} ({gaps[-1]:+.2f})")
            mean = f"mean {statistics.mean(gaps):+.2f} points" if gaps else "no model at or below it"
            lines.append(f"- {name}, {arm}: {'; '.join(cells)}; {mean}")
    total = sum(seconds.values())
    lines += ["", "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in sorted(seconds.items()))
              + f"; total {total / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_size_argument(parser, SIZES, default=None, help="default: gpu when CUDA is available")
    parser.add_argument("--report", action="store_true", help="only the table, from what is on disk")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "RESULTS.md")
    parser.add_argument("--seeds", type=int, help="run only the first N seeds this time (default: all of the size's)")
    args = parser.parse_args()
    if args.size is None:
        import torch

        args.size = "gpu" if torch.cuda.is_available() else "cpu"
    size = SIZES[args.size]
    root = ROOT / "runs" / f"headline-{args.size}"
    root.mkdir(parents=True, exist_ok=True)
    if not args.report:
        run(args.size, size, root, root / "headline.log", min(args.seeds or size.seeds, size.seeds))
    text = report(args.size, size)
    print(text)
    replace_section(args.doc, f"headline-{args.size}", text)


if __name__ == "__main__":
    main()
