"""How much of each rung the search should keep: its promotion rule replayed on measured rung accuracies.

    python bench/promotion_replay.py --size cpu --doc docs/proxy-quality.md

The architectures of `bench/rank_table.py` (40 of the hybrid space under 5 MMACs) were each trained
up the CPU ladder in one run that no rung stops (the column `ladder_restart_eta3_noaug_40k`: rungs at
4,448 / 13,344 / 40,000 images), with their validation accuracy and wall time at every rung. The
papers' two networks, which open every search, are measured here the same way: a `nas-search` of
just them, kept in bench/results/promotion_replay_<size>.jsonl, so that a re-run reuses them (the
search records no time per rung, so theirs is their training time shared out by images seen, their
scoring left out: a few seconds less than the table's times, which include it).

The replay then plays the README search many times over for each rule: the two references first,
then `--searched` of the architectures, on two workers, each trial reaching its rungs at its
measured times; at each rung below the top the search's own rule decides
(`nas.search.halving.goes_on`: `min_trials`, the fronts and, where on, the cap counted as the
search counts them, the references always going on), and with late promotion (`search.halving.late`)
a worker that is free takes a stopped network its rung now promotes, highest rung first, before a
new one, and trains it again from the start. The architectures come in two orders: a random one (what
a random sampler proposes) and an improving one, a stand-in for a sampler that learns (sorted by
their top-rung accuracy plus Gaussian noise of half the pool's own spread, so that later ones are
better on average, as TPE's are). Each rule is a share at the screening rung and a share
at the rungs above it (`search.halving.screen_keep`, `search.halving.keep`), decided at arrival
only, also later, or with the cap (at arrival). Per rule: how many
searched networks reach the top, the chance that the front of the top rung (references included)
has at least three members, the makespan of the two workers' training (mean and 90th percentile;
a search's own set-up and scoring are left out), and the hypervolume of that front (validation
accuracy at the top against MACs / budget, `nas.results.hypervolume`).

What it cannot show: how a real sampler's later networks differ from its first ones (the improving
order only imitates it; without the cap, real README searches took 5 to 7 searched networks to the
top where the random order said 2.6: docs/search-fashion-mnist.md); the table's top rung is
scored on 1,000 validation images, the search's on all of them.
"""

from __future__ import annotations

import argparse
import heapq
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _harness import RESULTS, ResultsFile, invocation, publish, run_command
from rank_table import read_table

from nas.attrs import TrialAttr
from nas.dominance import nondominated_fronts
from nas.results import FrontMember, hypervolume
from nas.search.halving import goes_on, most_reaching, Halving

COLUMN = {"cpu": "ladder_restart_eta3_noaug_40k"}  # the ladder measured, per size


@dataclass(frozen=True)
class Rule:
    screen_keep: float
    keep: float
    cap: bool = False  # search.halving.cap
    late: bool = False  # search.halving.late
    note: str = ""


BUDGET_MFLOPS = 5.0
RULES = [
    Rule(0.2, 0.2, note="the default until 2026-12-05"),
    Rule(0.2, 0.25, note="the default's shares, decided at arrival"),
    Rule(0.2, 0.2, late=True),
    Rule(0.15, 0.2, late=True),
    Rule(0.15, 0.25, late=True, note="the default on 2026-12-05 morning"),
    Rule(0.1, 0.25, late=True),
    Rule(0.2, 0.25, late=True, note="default"),
    Rule(0.15, 0.33, late=True),
    *(Rule(screen, keep, cap=True, note="tried" if (screen, keep) == (0.4, 0.6) else "")
      for screen in (0.25, 0.33, 0.4) for keep in (0.5, 0.6)),
]
ORDERS = ("random", "improving")
NOISE = 0.5  # of the pool's spread, in the improving order


@dataclass(frozen=True)
class Network:
    name: str
    mmacs: float
    acc: tuple[float, ...]  # validation accuracy at each rung
    seconds: tuple[float, ...]  # wall time from the start of its training to the end of each rung
    reference: bool = False


def ladder_networks(table: Path, column: str) -> tuple[list[int], list[Network]]:
    """The rungs and the architectures of `column` in a rank table."""
    header, rows = read_table(table)
    rows = [r for r in rows if r["column"] == column]
    if header is None or not rows:
        raise SystemExit(f"{table}: no column {column} (run bench/rank_table.py --columns {column} first)")
    rungs = [int(r) for r in rows[0]["ladder"]]
    mmacs = {a["arch"]: a["mmacs"] for a in header["archs"]}
    return rungs, [Network(f"arch {r['arch']}", mmacs[r["arch"]], tuple(r["rung_acc"][f"{i}"] for i in rungs),
                           tuple(r["rung_s"][f"{i}"] for i in rungs))
                   for r in rows]


def references(results: ResultsFile, rungs: Sequence[int]) -> list[Network]:
    """The papers' networks up the same ladder: measured once by the search itself, then reused."""
    if not results.read()[1]:
        with tempfile.TemporaryDirectory() as out:
            args = [f"budget.mflops={BUDGET_MFLOPS:g}", "search.n_trials=2", "study.name=replay-references",
                    f"output_dir={out}"]
            run_command("search", args, cwd=Path(__file__).resolve().parent.parent)
            import optuna

            study = optuna.load_study(study_name="replay-references", storage=f"sqlite:///{out}/study.db")
            results.append_header({"command": f"nas-search {' '.join(args[:-1])}", "date": time.strftime("%Y-%m-%d"),
                                   "machine": f"{platform.machine()}, 2 workers"})
            for t in study.trials:
                attrs = t.user_attrs
                results.append({"reference": attrs[TrialAttr.REFERENCE], "mmacs": attrs[TrialAttr.MACS] / 1e6,
                                "train_s": attrs[TrialAttr.TRAIN_S],
                                "rung_acc": [attrs[TrialAttr.RUNG_VAL_ACC][f"{i}"] for i in rungs]})
    return [Network(r["reference"], r["mmacs"], tuple(r["rung_acc"]),
                    tuple(r["train_s"] * i / rungs[-1] for i in rungs), reference=True)
            for r in results.read()[1]]


def arrivals(rng: random.Random, pool: Sequence[Network], searched: int, order: str) -> list[Network]:
    """`searched` architectures of the pool in a random order, or in an improving one."""
    drawn = rng.sample(list(pool), searched)
    if order == "random":
        return drawn
    spread = NOISE * statistics.pstdev(n.acc[-1] for n in pool)
    return sorted(drawn, key=lambda n: n.acc[-1] + rng.gauss(0.0, spread))


def play(trials: Sequence[Network], rule: Rule, min_trials: int = 4, workers: int = 2) -> dict[str, float]:
    """One search: its trials in order (references first), rungs decided as they arrive, and with
    `rule.late` a worker that is free first takes a stopped network its rung now promotes (the
    highest rung first, then the earliest started), trained again from the start: as the search
    does it (`nas.search.halving.late_promotion`)."""
    top = len(trials[0].acc) - 1
    measured: list[list[Network]] = [[] for _ in range(top + 1)]
    events: list[tuple[float, int, int]] = []  # (time, trial, rung)
    started: dict[int, float] = {}
    queue = iter(range(len(trials)))
    climbing: set[Network] = set()  # gone on from a rung, not yet measured at the next
    stopped: list[tuple[int, int]] = []  # (trial, rung), in the order they were stopped

    def decide(me: Network, rung: int) -> bool:
        others = [o for o in measured[rung] if o is not me]
        searched = [o for o in others if not o.reference]
        return goes_on((-me.acc[rung], me.mmacs), [(-o.acc[rung], o.mmacs) for o in others],
                       rule.screen_keep if rung == 0 else rule.keep, min_trials=min_trials,
                       searched=len(searched) + 1 if rule.cap else None,
                       gone_on=sum(o in measured[rung + 1] or o in climbing for o in searched))

    def start(now: float) -> None:
        if rule.late:
            for rung in reversed(range(top)):
                for i, at in sorted(stopped):
                    if at == rung and decide(trials[i], rung):
                        stopped.remove((i, at))
                        climbing.add(trials[i])
                        started[i] = now
                        heapq.heappush(events, (now + trials[i].seconds[rung + 1], i, rung + 1))
                        return
        i = next(queue, None)
        if i is not None:
            started[i] = now
            heapq.heappush(events, (now + trials[i].seconds[0], i, 0))

    for _ in range(workers):
        start(0.0)
    end = 0.0
    while events:
        now, i, rung = heapq.heappop(events)
        climbing.discard(trials[i])
        me = trials[i]
        go_on = rung < top and (me.reference or decide(me, rung))
        measured[rung].append(me)
        if go_on:
            climbing.add(me)
            heapq.heappush(events, (started[i] + me.seconds[rung + 1], i, rung + 1))
        else:
            end = max(end, now)
            if rung < top:
                stopped.append((i, rung))
            start(now)
    at_top = measured[top]
    front = nondominated_fronts([(-n.acc[top], n.mmacs) for n in at_top])[0]
    members = [FrontMember(trial=k, val_acc=n.acc[top], macs=round(n.mmacs * 1e6), params=0, genotype=n.name,
                           arch_yaml="") for k, n in enumerate(at_top)]
    return {"searched_top": sum(not n.reference for n in at_top), "front": len(front), "makespan": end,
            "hv": hypervolume(members, BUDGET_MFLOPS)}


def report(refs: Sequence[Network], pool: Sequence[Network], rungs: Sequence[int], searched: int,
           draws: int) -> str:
    described = ", ".join(f"{r.name} ({r.mmacs:.2f} MMACs, {' / '.join(f'{a:.3f}' for a in r.acc)} at the "
                          f"rungs, {r.seconds[-1]:.0f} s)" for r in refs)
    lines = [f"Replayed: the two references and {searched} of {len(pool)} architectures, {draws} draws per "
             f"rule and order (the same draws for every rule), two workers; rungs at "
             f"{' / '.join(f'{i:,}' for i in rungs)} training images; `min_trials` 4. "
             f"References: {described}.",
             "",
             "| order | screen_keep | keep | decided | searched at the top (at most) | front >= 3 "
             "| makespan, s (p90) | hypervolume |",
             "|---|---|---|---|---|---|---|---|"]
    for order in ORDERS:
        searches = [[*refs, *arrivals(random.Random(seed), pool, searched, order)] for seed in range(draws)]
        for rule in RULES:
            runs = [play(trials, rule) for trials in searches]
            makespans = sorted(r["makespan"] for r in runs)
            halving = Halving(tuple(rungs[:-1]), rule.keep, 4, rule.screen_keep, rule.cap)
            most = most_reaching(halving, searched)[-1]
            at_top = statistics.mean(r["searched_top"] for r in runs)
            three = sum(r["front"] >= 3 for r in runs) / draws
            decided = "with the cap" if rule.cap else "also later" if rule.late else "at arrival"
            note = f" ({rule.note})" if rule.note else ""
            makespan = f"{statistics.mean(makespans):.0f} ({makespans[int(0.9 * draws)]:.0f})"
            lines.append(f"| {order} | {rule.screen_keep:g}{note} | {rule.keep:g} | {decided} | {at_top:.2f} "
                         f"({most}) | {three:.0%} | {makespan} | "
                         f"{statistics.mean(r['hv'] for r in runs):.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(COLUMN), default="cpu")
    parser.add_argument("--searched", type=int, default=18, help="searched trials a search (the README's: 18)")
    parser.add_argument("--draws", type=int, default=2000, help="searches replayed per rule")
    parser.add_argument("--doc", type=Path, help="a Markdown file whose marked section is replaced")
    args = parser.parse_args()
    started = time.perf_counter()
    rungs, pool = ladder_networks(RESULTS / f"rank_table_{args.size}.jsonl", COLUMN[args.size])
    if not 1 <= args.searched <= len(pool):
        raise SystemExit(f"--searched: {args.searched} is not allowed (allowed: 1..{len(pool)}, the measured ones)")
    refs = references(ResultsFile(RESULTS / f"promotion_replay_{args.size}.jsonl", ("reference",)), rungs)
    text = report(refs, pool, rungs, args.searched, args.draws)
    text += f"\nMade by `{invocation(__file__)}` in {time.perf_counter() - started:.0f} s.\n"
    title = f"Promotion rules replayed ({args.size} size)"
    publish(text, f"promotion_replay_{args.size}.md", title, args.doc, "promotion-replay")


if __name__ == "__main__":
    main()
