"""The latency front against the MACs front on Fashion-MNIST: which networks move.

    python bench/latency_front.py [--doc docs/latency.md]     # about 12 minutes on 2 cores

Runs the README's search (`nas-search budget.mflops=5`, Fashion-MNIST, a worker per core) twice
with the same seed, once with objective=pareto (accuracy vs MACs) and once with objective=latency
(accuracy vs measured CPU ms, MACs still the budget), each in a folder of its own under
runs/bench-latency-front/ (a finished study is reused on a re-run: delete the folder to start
again). Then, with nothing else running:

1. every network the MACs search trained to the top rung is timed again (`nas.latency`, 100 runs)
   and both fronts are drawn over that one set of networks: accuracy vs MACs and accuracy vs ms.
   The table lists each network on either front, and the papers' networks, with the front(s)
   each is on: the networks that move are the ones on one front only;
2. the same over the latency search's own top-rung networks, with the milliseconds it measured
   during the search (while its other worker trained), beside the quiet re-measurement;
3. what each search's front offers: its fastest and its most accurate member, in quiet ms.

Fronts are on validation accuracy (what the search selects on); test accuracy is shown where the
search measured it (its own front's members, once each).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from _harness import ROOT, invocation, publish, run_command

FOLDER = ROOT / "runs" / "bench-latency-front"
SEARCH = ("budget.mflops=5", "search.seed=0")


def run(objective: str) -> tuple[Path, float | None]:
    """The search's run folder (the search made now, or found finished) and its wall time if run now."""
    out = FOLDER / objective
    if (out / "pareto.csv").is_file():
        return out, None
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [*SEARCH, f"objective={objective}", f"study.name=latency-front-{objective}", f"output_dir={out}"]
    finished = run_command("search", args, cwd=ROOT, log=FOLDER / f"{objective}.log")
    return out, finished.wall_s


def table(members: list, ms: dict[int, float], searched_ms: dict[int, float] | None) -> list[str]:
    """Rows for every member on either front over `members` and for the papers' networks, with the
    front(s) each is on."""
    from nas.results.front import pareto_front

    on_macs = {m.trial for m in pareto_front(members, "macs")}
    timed = [dataclasses.replace(m, latency_ms=ms[m.trial]) for m in members]
    on_ms = {m.trial for m in pareto_front(timed, "latency_ms")}
    header = "| trial | val_acc | test_acc | MMACs | quiet ms |" + (" ms in the search |" if searched_ms else "") \
        + " on the front of | network |"
    lines = [header, "|---|---|---|---|---|" + ("---|" if searched_ms else "") + "---|---|"]
    shown = [m for m in members if m.trial in on_macs | on_ms or m.reference]
    for m in sorted(shown, key=lambda m: ms[m.trial]):
        where = ("both" if m.trial in on_macs & on_ms else "MACs only" if m.trial in on_macs
                 else "latency only" if m.trial in on_ms else "neither")
        test = "-" if m.test_acc is None else f"{m.test_acc:.4f}"
        during = f" {searched_ms[m.trial]:.3f} |" if searched_ms else ""
        name = f"reference {m.reference}" if m.reference else f"`{m.genotype}`".replace("|", "\\|")
        lines.append(f"| {m.trial} | {m.val_acc:.4f} | {test} | {m.mmacs:.2f} | {ms[m.trial]:.3f} |{during} {where} | "
                     f"{name} |")
    moved = len(on_macs ^ on_ms)
    lines.append("")
    lines.append(f"{len(members)} networks trained to the top rung; MACs front {len(on_macs)}, latency front "
                 f"{len(on_ms)}, on both {len(on_macs & on_ms)}; {moved} move (on one front only).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doc", type=Path, help="also replace the latency-front section of this doc")
    args = parser.parse_args()
    import optuna

    from nas import latency
    from nas.attrs import StudyAttr
    from nas.results import trained_members
    from nas.timing import machine

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    lines = []
    fronts = {}
    walls = {}
    for objective in ("pareto", "latency"):
        out, walls[objective] = run(objective)
        study = optuna.load_study(study_name=f"latency-front-{objective}", storage=f"sqlite:///{out / 'study.db'}")
        members = trained_members(study.get_trials(deepcopy=False), study.user_attrs.get(StudyAttr.TEST_ACC))
        ms = {m.trial: latency(m.arch, repeats=100, warmup=10).median_ms for m in members}
        searched = {m.trial: m.latency_ms for m in members} if objective == "latency" else None
        title = ("The MACs search (objective=pareto): its networks, timed after it" if objective == "pareto" else
                 "The latency search (objective=latency): its networks, timed during it and after it")
        lines += [f"### {title}", "", *table(members, ms, searched), ""]
        fronts[objective] = (members, ms)
    from nas.results.front import pareto_front

    lines += ["### What each search's own front offers (quiet ms)", "",
              "| search | front | fastest member: ms, val_acc, MMACs | most accurate member: ms, val_acc, MMACs |",
              "|---|---|---|---|"]
    for objective, axis in (("pareto", "macs"), ("latency", "latency_ms")):
        members, ms = fronts[objective]
        timed = [dataclasses.replace(m, latency_ms=ms[m.trial]) for m in members]
        front = pareto_front(timed, axis)
        fast = min(front, key=lambda m: ms[m.trial])
        best = max(front, key=lambda m: (m.val_acc, -ms[m.trial]))
        lines.append(f"| objective={objective} | {len(front)} | {ms[fast.trial]:.3f} ms, {fast.val_acc:.4f}, "
                     f"{fast.mmacs:.2f} | {ms[best.trial]:.3f} ms, {best.val_acc:.4f}, {best.mmacs:.2f} |")
    wall = ", ".join(f"{o} {w / 60:.1f} min" for o, w in walls.items() if w is not None) or "both reused"
    head = (f"Made by `{invocation(__file__)}` on {machine()}, {time.strftime('%Y-%m-%d')}, in "
            f"{(time.time() - started) / 60:.1f} min (searches: {wall}); `nas-search {' '.join(SEARCH)}` with "
            "objective=pareto and objective=latency. Quiet ms: `nas.latency`, batch 1, 1 thread, median of 100 runs, "
            "timed after the searches with nothing else running.")
    publish("\n".join([head, "", *lines]) + "\n", "latency_front_cpu.md", "Latency front vs MACs front",
            args.doc, "latency-front")


if __name__ == "__main__":
    main()
