"""The reference table of proxy quality: K architectures of the hybrid space, each trained with a
reference recipe and with every proxy variant under study, plus zero-cost scores, MACs, params.

    python bench/rank_table.py --size cpu      # 40 archs <= 5 MMACs, Fashion-MNIST subsets; 2-core CPU
    python bench/rank_table.py --size full     # 60 archs <= 20 MMACs, the whole training split; a GPU

One JSON line per (architecture, column) in bench/results/rank_table_<size>.jsonl, appended as
each finishes: an interrupted run continues where it stopped (run the same command). Columns run
in priority order (zero-cost scores, reference, today's proxy, candidate variants, the ladders,
the shorter reference that checks convergence), so a partial table is still a useful one.
A ladder column trains each architecture up a search's fidelity ladder in one run and scores it
at every rung, for the per-rung ranking that chooses the ladder's schedule, eta and screening rung.
`bench/rank_correlation.py` reads the table.

    python bench/rank_table.py --size cpu --columns ladder_single --archs 2 --max-images 320 \
        --out /tmp/smoke.jsonl                 # a smoke run: 2 archs, a tiny top, a file of its own
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import random
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from _harness import RESULTS, ROOT, ResultsFile, Size, add_size_argument, invocation

if TYPE_CHECKING:
    from torch import nn

    from nas.data import Dataset, Split
    from nas.search.ladder import Ladder
    from nas.training import RunSettings


@dataclass(frozen=True)
class Column:
    """How one column of the table trains each architecture (a reference or a proxy variant), as
    the header's `columns` store it; `settings` turns it into the engine's `RunSettings`."""

    images: int | None  # training images drawn per run (None: the whole training split)
    epochs: int
    batch_size: int
    lr: float
    label_smoothing: float = 0.1
    warmup: float = 0.2
    weight_decay: float = 5e-4
    val_images: int | None = None  # validation images scored (None: all of the size's)
    same_images: bool = False  # every architecture sees the same images in the same order
    seed_offset: int = 0  # another draw of images, order and augmentation (test-retest)
    init_offset: int = 0  # another initialisation of each architecture (test-retest of a reference)
    augment: bool = True  # random flips and 2-pixel translations (Fashion-MNIST's data config); False: none

    def settings(self, seed: int) -> RunSettings:
        """The trainer's settings for one run of this column, drawing images and order with `seed`."""
        from nas.training import RunSettings  # here: torch loads only where a network is trained

        return RunSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                           warmup=self.warmup, max_train_images=self.images, seed=seed,
                           flip=self.augment, pad_crop=2 if self.augment else 0)


@dataclass(frozen=True)
class LadderColumn(Column):
    """A column that trains each architecture up a search's fidelity ladder (`nas.search.ladder`)
    whose top rung is the column's recipe, in one run that no rung stops, and scores it at every
    rung: how well each rung ranks architectures, and at what cost. A single schedule can also be
    read between its rungs (`reads`), so that one run serves several etas; restarts cannot, since
    the schedule restarts only at the rungs of its own eta."""

    eta: int = field(kw_only=True)  # ratio of one rung's steps to the rung below
    restart: bool = field(kw_only=True)  # the schedule restarts at each rung (warm restarts), else one over the top
    rewarm: bool = field(default=True, kw_only=True)  # each restart warms up again; False: starts at the peak lr
    rungs: int = field(kw_only=True)  # the top and the rungs below it, the lowest the screening rung
    reads: tuple[int, ...] = field(default=(), kw_only=True)  # also read at the top's steps / each (single schedule)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", tuple(self.reads))  # a list, as the header's JSON stores it
        if self.restart and self.reads:
            raise ValueError("reads between the rungs need a single schedule (restart=False)")

    def ladder(self, settings: RunSettings, n_train: int) -> Ladder:
        """The search's ladder (`ladder_for`) for a run with `settings` on a training split of
        `n_train` images, cut to its top `rungs` rungs."""
        from nas.search.ladder import ladder_for

        # Every rung down to one step.
        whole = ladder_for(settings, n_train, self.eta, 1, self.restart, rewarm=self.rewarm)
        return dataclasses.replace(whole, steps=whole.steps[-self.rungs:])

    def read_points(self, ladder: Ladder) -> list[int]:
        """The steps at which a run is scored: the ladder's rungs and the top's steps / each of `reads`."""
        return sorted({*ladder.steps, *(math.ceil(ladder.top / d) for d in self.reads)})


def is_ladder(fields: Mapping) -> bool:
    """Whether a column's stored fields (the header's `columns`) are a ladder's."""
    return "eta" in fields


def column_of(fields: Mapping) -> Column:
    """A column from its stored fields; fields added since it was stored take their defaults."""
    return (LadderColumn if is_ladder(fields) else Column)(**fields)


@dataclass(frozen=True)
class TableSize(Size):
    archs: int
    val_images: int | None  # the fixed validation subset every column is scored on
    reference: dict[str, Column]  # the first is the reference, the others check its convergence
    variants: dict[str, Column]  # proxy variants, in the order they run
    ladders: dict[str, LadderColumn]  # ladders, in the order they run (after the variants)


# nas-train's recipe (SGD with Nesterov momentum, one-cycle with 10% warm-up, weight decay 5e-4,
# label smoothing 0.1) at batch 64 and peak lr 0.4. nas-train's batch 128 / lr 0.1 suits its 30
# epochs; in the few hundred steps of the CPU size it left the first networks at 0.73-0.80
# validation accuracy, below a linear classifier (`ref_nastrain_e4` measures that ranking too).
def _reference(images: int | None, epochs: int, batch_size: int = 64, lr: float = 0.4, **kw) -> Column:
    return Column(images, epochs, batch_size, lr, warmup=0.1, **kw)


SIZES = {
    "cpu": TableSize(
        budget_mflops=5.0,
        archs=40,
        val_images=2000,
        reference={"ref_e4": _reference(12000, 4), "ref_e2": _reference(12000, 2),
                   "ref_nastrain_e4": _reference(12000, 4, batch_size=128, lr=0.1),
                   # The reference again from another initialisation and draw of images, scored on
                   # the whole validation split: how much of its ranking is noise.
                   "ref_e4_rep": _reference(12000, 4, val_images=6000, seed_offset=1000, init_offset=1000)},
        variants={
            "today_b128_lr0.1": Column(5000, 1, 128, 0.1, val_images=1000),  # main's CPU default
            "b64_lr0.4": Column(5000, 1, 64, 0.4, val_images=1000),
            "b128_lr0.4": Column(5000, 1, 128, 0.4, val_images=1000),
            "b64_lr0.4_n2500_e2": Column(2500, 2, 64, 0.4, val_images=1000),
            "b64_lr0.4_n2500": Column(2500, 1, 64, 0.4, val_images=1000),
            "b64_lr0.4_ls0": Column(5000, 1, 64, 0.4, label_smoothing=0.0, val_images=1000),
            "b64_lr0.2": Column(5000, 1, 64, 0.2, val_images=1000),
            "b64_lr0.4_e2": Column(5000, 2, 64, 0.4, val_images=1000),
            "b64_lr0.4_seed2": Column(5000, 1, 64, 0.4, val_images=1000, seed_offset=1000),
            "b64_lr0.4_same": Column(5000, 1, 64, 0.4, val_images=1000, same_images=True),
            "b64_lr0.4_same_v6000": Column(5000, 1, 64, 0.4, val_images=6000, same_images=True),
            "b32_lr0.2": Column(5000, 1, 32, 0.2, val_images=1000),  # twice the steps of b64
            "b32_lr0.4": Column(5000, 1, 32, 0.4, val_images=1000),
            "b32_lr0.4_n2500": Column(2500, 1, 32, 0.4, val_images=1000),  # b64_lr0.4's steps
            "b16_lr0.4_n2500": Column(2500, 1, 16, 0.4, val_images=1000),
        },
        # The CPU proxy's top rung (conf/proxy `on_cpu`: 20,000 images x 1 epoch, batch 32, lr 0.4). The
        # single schedule is read at the rungs of eta 3 (top/27 to the top) and of eta 2 (top/8 to the top).
        ladders={
            "ladder_restart_eta3": LadderColumn(20000, 1, 32, 0.4, val_images=1000, eta=3, restart=True, rungs=3),
            "ladder_single": LadderColumn(20000, 1, 32, 0.4, val_images=1000, eta=3, restart=False, rungs=4,
                                          reads=(2, 4, 8)),
            "ladder_restart_eta2": LadderColumn(20000, 1, 32, 0.4, val_images=1000, eta=2, restart=True, rungs=4),
            # The default ladder without augmentation: a one-epoch top rung shows each image once.
            "ladder_restart_eta3_noaug": LadderColumn(20000, 1, 32, 0.4, val_images=1000, eta=3, restart=True,
                                                      rungs=3, augment=False),
            # ...and its rungs after the first starting at the peak lr, without a second warm-up.
            "ladder_peak_eta3_noaug": LadderColumn(20000, 1, 32, 0.4, val_images=1000, eta=3, restart=True,
                                                   rewarm=False, rungs=3, augment=False),
            # Today's CPU ladder (since 2026-12-04): a top rung of 40,000 images, no augmentation.
            "ladder_restart_eta3_noaug_40k": LadderColumn(40000, 1, 32, 0.4, val_images=1000, eta=3, restart=True,
                                                          rungs=3, augment=False),
        },
    ),
    "full": TableSize(
        budget_mflops=20.0,
        archs=60,
        val_images=None,
        reference={"ref_e15": _reference(None, 15), "ref_e8": _reference(None, 8),
                   "ref_nastrain_e15": _reference(None, 15, batch_size=128, lr=0.1),
                   "ref_e15_rep": _reference(None, 15, seed_offset=1000, init_offset=1000)},
        variants={
            "today_b128_lr0.1": Column(None, 1, 128, 0.1),
            "b256_lr0.2": Column(None, 1, 256, 0.2),
            "b128_lr0.4": Column(None, 1, 128, 0.4),
            "b256_lr0.8": Column(None, 1, 256, 0.8),
            "b128_lr0.4_n20000": Column(20000, 1, 128, 0.4),
            "b128_lr0.4_e2": Column(None, 2, 128, 0.4),
        },
        # The GPU proxy's top rung (conf/proxy: the whole training split x 3 epochs, batch 128, lr 0.1).
        ladders={
            "ladder_restart_eta3": LadderColumn(None, 3, 128, 0.1, eta=3, restart=True, rungs=3),
            "ladder_single": LadderColumn(None, 3, 128, 0.1, eta=3, restart=False, rungs=4, reads=(2, 4, 8)),
            "ladder_restart_eta2": LadderColumn(None, 3, 128, 0.1, eta=2, restart=True, rungs=4),
        },
    ),
}

LINEAR = "linear:"  # column prefix of the linear-classifier baseline rows (arch -1), one per recipe
SAMPLE_SEED = 2026
DRAWS = 20000  # random samples of the space the stratified choice picks from
KEY = ("arch", "column")  # what names a row of the table (the linear baselines are arch -1)


def choose_archs(size: TableSize, shape, seed: int = SAMPLE_SEED) -> list:
    """`size.archs` architectures under the budget, spread evenly over MACs: random samples of the
    space, then for each of `archs` MACs targets from the smallest sample to the budget the
    nearest sample not taken yet."""
    import numpy as np

    from nas.complexity import complexity
    from nas.search import RandomSuggests
    from search_spaces import get_space

    space, rng = get_space("hybrid"), RandomSuggests(seed)
    feasible, seen = [], set()
    for _ in range(DRAWS):
        arch = space(rng, shape)
        mmacs = complexity(arch).mmacs
        if mmacs <= size.budget_mflops and arch.genotype() not in seen:
            seen.add(arch.genotype())
            feasible.append((mmacs, arch))
    if len(feasible) < size.archs:
        raise SystemExit(f"only {len(feasible)} of {DRAWS} samples fit {size.budget_mflops} MMACs")
    feasible.sort(key=lambda t: t[0])
    macs = np.array([m for m, _ in feasible])
    taken: set[int] = set()
    chosen = []
    for target in np.linspace(macs[0], size.budget_mflops, size.archs):
        order = np.argsort(np.abs(macs - target), kind="stable")
        pick = next(int(i) for i in order if int(i) not in taken)
        taken.add(pick)
        chosen.append(feasible[pick][1])
    return chosen


# -- worker processes -------------------------------------------------------------------------------

_DATA = None


def _init_worker(threads: int) -> None:
    import torch

    from nas.data import load_dataset

    global _DATA
    torch.set_num_threads(threads)
    _DATA = load_dataset("fashion_mnist")


def _run_task(task: dict) -> dict:
    """Train (or score) one architecture for one column; returns the table row."""
    import torch

    from nas.model import build_model
    from nas.training import fit, zero_cost_scores
    from search_spaces import Arch

    data = _DATA
    index = task["arch"]
    r = column_of(task["recipe"]) if task["recipe"] else None
    # One initialisation per architecture, shared by every column but a replicate's.
    torch.manual_seed(10_000 + index + (r.init_offset if r else 0))
    if task["column"].startswith(LINEAR):
        # The baseline every network should beat: a linear classifier on the pixels, same recipe.
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(data.train.images[0].numel(), 10))
    else:
        model = build_model(Arch.from_yaml(task["arch_yaml"]))
    val = data.val.subset(task["val_images"], 0) if task["val_images"] else data.val
    started = time.perf_counter()
    row = {"arch": index, "column": task["column"]}
    if task["column"] == "zero_cost":
        row.update(zero_cost_scores(model, data.train, mean=data.mean, std=data.std, seed=index))
    else:
        reference = task["column"].removeprefix(LINEAR).startswith("ref")
        # The reference draws the same images for every architecture; a proxy draws its own per
        # trial, as in a search, unless the recipe says otherwise.
        settings = r.settings(r.seed_offset if reference or r.same_images else index + r.seed_offset)
        if isinstance(r, LadderColumn):
            row.update(_climb(model, r, settings, data, val, task["device"], started))
        else:
            result = fit(model, data.train, val, settings, mean=data.mean, std=data.std, device=task["device"])
            row.update(val_acc=result.val_acc, train_s=round(result.train_s, 3), img_s=round(result.img_s, 1),
                       curve=[round(m.val_acc, 4) for m in result.history], loss_sum=round(result.loss_sum, 4),
                       device=result.device)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _climb(model: nn.Module, r: LadderColumn, settings: RunSettings, data: Dataset, val: Split, device: str,
           started: float) -> dict:
    """Train `model` up the column's whole ladder in one run, as a search's trial that every rung
    promotes, and score it on `val` at each read point. The row's `rung_acc` and `rung_s` (seconds
    since the task began: what screening at that rung costs) are keyed by training images seen;
    `ladder` lists the ladder's own rungs among them."""
    from nas.training import Training

    ladder = r.ladder(settings, len(data.train))
    run = Training(model, data.train, settings, mean=data.mean, std=data.std, device=device, restarts=ladder.restarts,
                   rewarm=ladder.rewarm)
    acc, seconds = {}, {}
    for steps in r.read_points(ladder):
        run.run_to(steps)
        acc[str(run.images_seen)] = run.evaluate(val)
        seconds[str(run.images_seen)] = round(time.perf_counter() - started, 3)
    result = run.result(acc[str(run.images_seen)])
    return {"val_acc": result.val_acc, "rung_acc": acc, "rung_s": seconds, "ladder": list(ladder.images),
            "images_seen": run.images_seen, "train_images": result.train_images, "train_s": round(result.train_s, 3),
            "img_s": round(result.img_s, 1), "device": result.device}


# -- the run ----------------------------------------------------------------------------------------


def _header(size_name: str, size: TableSize, recipes: dict[str, Column], archs: list,
            args: argparse.Namespace) -> dict:
    """The header's fields: what the table holds (the columns' `recipes`) and how it was made."""
    import torch

    from nas.complexity import complexity

    return {
        "size": size_name,
        "budget_mflops": size.budget_mflops,
        "sample_seed": SAMPLE_SEED,
        "archs": [
            {"arch": i, "genotype": a.genotype(), "mmacs": round(complexity(a).mmacs, 4),
             "mparams": round(complexity(a).mparams, 5)}
            for i, a in enumerate(archs)
        ],
        "columns": {name: dataclasses.asdict(r) for name, r in recipes.items()},
        "val_images": size.val_images,
        "command": invocation(__file__),
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT, check=False).stdout.strip(),  # blank outside a checkout
        "torch": torch.__version__,
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "threads": args.threads,
    }


def read_table(path: Path) -> tuple[dict | None, list[dict]]:
    """The header and rows of a table file (None and no rows where there is none yet)."""
    headers, rows = ResultsFile(path, KEY).read()
    header = None
    for item in headers:
        # A resumed run that adds columns appends a header naming them.
        header = item if header is None else {**header, "columns": {**header["columns"], **item["columns"]}}
    return header, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--out", type=Path, help="table file (default: bench/results/rank_table_<size>.jsonl)")
    parser.add_argument("--workers", type=int, default=2, help="processes training side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--columns", help="comma-separated subset of the columns to run (default: all)")
    parser.add_argument("--archs", type=int, help="run only the first N architectures (a smoke run; the header "
                        "still lists them all, so the table can be completed later)")
    parser.add_argument("--max-images", type=int, help="cap on the training images of the columns run (a smoke "
                        "run; needs --out: its recipes are not the size's; continue it with the same cap)")
    args = parser.parse_args()
    if args.max_images and not args.out:
        parser.error("--max-images needs --out: a smoke run's recipes are not the size's")

    from search_spaces import Arch, DataShape

    size = SIZES[args.size]
    columns = ["zero_cost", next(iter(size.reference)), *size.variants, *size.ladders, *list(size.reference)[1:]]
    if args.columns:
        wanted = args.columns.split(",")
        unknown = sorted(set(wanted) - set(columns))
        if unknown:
            raise SystemExit(f"--columns: unknown {', '.join(unknown)} (allowed: {', '.join(columns)})")
        columns = [c for c in columns if c in wanted]
    recipes = {**size.reference, **size.variants, **size.ladders}
    if args.max_images:  # the header records the capped recipes of the columns run
        recipes = {n: dataclasses.replace(r, images=min(r.images or args.max_images, args.max_images))
                   if n in columns else r for n, r in recipes.items()}
    out = args.out or RESULTS / f"rank_table_{args.size}.jsonl"
    table = ResultsFile(out, KEY)
    header, _ = read_table(out)
    if header is None:
        archs = choose_archs(size, DataShape(1, 28, 10))
    else:  # a table's architectures are the ones in its header (sampling may have changed since)
        archs = [Arch.from_genotype(a["genotype"]) for a in header["archs"]]
    fresh = _header(args.size, size, recipes, archs, args)
    if header is None:
        table.append_header(fresh)
    elif [a["genotype"] for a in header["archs"]] != [a["genotype"] for a in fresh["archs"]]:
        raise SystemExit(f"{out} holds a table of other architectures; move it away to start a new one")
    else:
        # Checked on every run, not only when columns are added: rows of another recipe (a smoke
        # run's cap) must not join a column. Recipes stored before a field was added read with
        # that field's default.
        stored = {n: column_of(r) for n, r in header["columns"].items()}
        changed = [n for n, r in recipes.items() if n in stored and stored[n] != r]
        if changed:
            raise SystemExit(f"{out}: the recipes of {', '.join(changed)} changed; move the table away to start anew")
        if set(fresh["columns"]) != set(header["columns"]):
            table.append_header(fresh)
    done = table.done()

    n_archs = min(args.archs or len(archs), len(archs))
    # The linear baselines are cheap and run before the checks of the reference. The checks run
    # last, in a shuffled order: cut short, they still hold a random subset of the architectures
    # rather than the smallest ones.
    checks = set(list(size.reference)[1:])
    shuffled = random.Random(SAMPLE_SEED).sample(range(len(archs)), len(archs))

    def arch_tasks(column: str) -> list[dict]:
        recipe = recipes.get(column)
        return [
            {"arch": i, "column": column, "arch_yaml": archs[i].to_yaml(), "device": args.device,
             "recipe": dataclasses.asdict(recipe) if recipe else None,
             "val_images": (recipe.val_images if recipe and recipe.val_images else size.val_images)}
            for i in (shuffled if column in checks else range(len(archs)))
            if i < n_archs and (i, column) not in done
        ]

    # One per trained column but the ladders, whose rungs are compared with one another.
    linear = [
        {"arch": -1, "column": LINEAR + c, "arch_yaml": None, "device": args.device,
         "recipe": dataclasses.asdict(recipes[c]), "val_images": recipes[c].val_images or size.val_images}
        for c in columns if c in recipes and c not in size.ladders and (-1, LINEAR + c) not in done
    ]
    tasks = [t for c in columns if c not in checks for t in arch_tasks(c)]
    tasks += linear + [t for c in columns if c in checks for t in arch_tasks(c)]
    print(f"{out}: {len(done)} rows done, {len(tasks)} to run ({n_archs} archs x {len(columns)} columns)",
          flush=True)
    if not tasks:
        return
    import multiprocessing as mp

    started = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(args.threads,)) as pool:
        for n, row in enumerate(pool.imap_unordered(_run_task, tasks, chunksize=1), 1):
            table.append(row)
            if "rung_acc" in row:
                acc = "val_acc " + ", ".join(f"{a:.4f} at {k}" for k, a in row["rung_acc"].items())
            else:
                acc = f"val_acc {row['val_acc']:.4f}" if "val_acc" in row else f"synflow {row['synflow']:.2f}"
            print(f"[{n}/{len(tasks)} {time.perf_counter() - started:6.0f}s] arch {row['arch']:2d} "
                  f"{row['column']}: {acc} ({row['seconds']:.1f}s)", flush=True)
    print(f"done in {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
