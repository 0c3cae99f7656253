"""The accuracy-vs-MACs front of a study: which trials are non-dominated, as a table and a plot."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces import Arch

from .attrs import Status, TrialAttr

__all__ = [
    "Candidate",
    "atomic_write",
    "candidates",
    "hypervolume",
    "pareto_front",
    "plot_front",
    "write_front_csv",
]


@dataclass(frozen=True)
class Candidate:
    """A trained architecture of a study: what the front, the table and the plot need."""

    trial: int
    val_acc: float
    macs: int
    params: int
    genotype: str
    arch_yaml: str  # as the study stores it

    @cached_property
    def arch(self) -> Arch:
        """The spec, parsed (and validated) once, on first use."""
        return Arch.from_yaml(self.arch_yaml)

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def candidates(trials: Sequence[FrozenTrial]) -> list[Candidate]:
    """Fully trained, within-budget trials (pruned, failed and rejected ones excluded)."""
    result = []
    for t in trials:
        attrs = t.user_attrs
        if t.state != TrialState.COMPLETE or attrs.get(TrialAttr.STATUS) != Status.ADMITTED or TrialAttr.VAL_ACC not in attrs:
            continue
        result.append(
            Candidate(t.number, float(attrs[TrialAttr.VAL_ACC]), int(attrs[TrialAttr.MACS]), int(attrs[TrialAttr.PARAMS]),
                      str(attrs[TrialAttr.GENOTYPE]), str(attrs[TrialAttr.ARCH_YAML]))
        )
    return result


def pareto_front(points: Sequence[Candidate]) -> list[Candidate]:
    """The non-dominated candidates (higher accuracy, fewer MACs), sorted by MACs.

    A candidate is dominated when another is at least as good in both and better in one;
    candidates with identical scores dominate neither and both stay.
    """
    front = [
        p for p in points
        if not any(
            q.val_acc >= p.val_acc and q.macs <= p.macs and (q.val_acc > p.val_acc or q.macs < p.macs)
            for q in points
        )
    ]
    return sorted(front, key=lambda c: (c.macs, -c.val_acc, c.trial))


def hypervolume(front: Sequence[Candidate], max_mmacs: float) -> float:
    """Area dominated by the front in (MMACs / max_mmacs, accuracy), reference point (1, 0)."""
    points = sorted((min(c.mmacs / max_mmacs, 1.0), c.val_acc) for c in front)
    area, best = 0.0, 0.0
    for i, (x, acc) in enumerate(points):
        best = max(best, acc)  # the best accuracy reachable at this cost or less
        right = points[i + 1][0] if i + 1 < len(points) else 1.0
        area += best * (right - x)
    return area


def _umask() -> int:
    """The process's umask. Linux tells it in /proc; elsewhere it can only be read by setting it
    (for an instant, which is why /proc comes first)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that a reader (or a crash) never sees it half-written.

    The file gets the mode any new file would (0666 less the umask), or keeps the mode of the file
    it replaces: other users, workers and a dashboard reading a shared run folder need to read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes its files private (0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FRONT_COLUMNS = ("trial", "genotype", "val_acc", "mmacs", "mparams", "yaml")


def write_front_csv(front: Sequence[Candidate], yaml_paths: dict[int, str], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FRONT_COLUMNS)
    for c in front:
        writer.writerow([c.trial, c.genotype, f"{c.val_acc:.4f}", f"{c.mmacs:.3f}", f"{c.mparams:.4f}",
                         yaml_paths.get(c.trial, "")])
    atomic_write(path, buffer.getvalue())


def plot_front(
    study: optuna.Study,
    front: Sequence[Candidate],
    path: Path,
    *,
    budget_mmacs: float,
    references: Sequence[tuple[str, float]] = (),
) -> None:
    """Scatter of every trained trial, the front as a step line, the budget as a vertical line,
    rejected samples as ticks along the bottom, reference networks' MACs as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.get_trials(deepcopy=False)
    trained = candidates(trials)
    rejected = [t.user_attrs[TrialAttr.MACS] / 1e6 for t in trials if t.user_attrs.get(TrialAttr.STATUS) == Status.REJECTED]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([c.mmacs for c in trained], [c.val_acc * 100 for c in trained], s=18, color="#8aa4c8",
               label=f"trained ({len(trained)})")
    if front:
        xs = [c.mmacs for c in front]
        ys = [c.val_acc * 100 for c in front]
        ax.step(xs, ys, where="post", color="#c0392b", lw=1.2)
        ax.scatter(xs, ys, s=34, color="#c0392b", zorder=3, label=f"Pareto front ({len(front)})")
    ax.axvline(budget_mmacs, color="black", ls="--", lw=1, label=f"budget {budget_mmacs:g} MMACs")
    if rejected:
        bottom = ax.get_ylim()[0]
        ax.plot(rejected, [bottom] * len(rejected), "|", color="#999999", ms=10,
                label=f"rejected samples ({len(rejected)})")
    for name, mmacs in references:
        ax.axvline(mmacs, color="#2e7d32", ls=":", lw=0.8)
        ax.annotate(name, (mmacs, ax.get_ylim()[1]), rotation=90, fontsize=6, va="top", ha="right", color="#2e7d32")
    ax.set_xscale("log")
    ax.set_xlabel("MMACs per image (log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"study {study.study_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
