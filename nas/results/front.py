"""What a study has found: its trained architectures (front members to be), their front (accuracy
against MACs, or against measured latency with objective=latency) and its hypervolume, computed
once per write and handed to every output."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from search_spaces import Arch

from ..attrs import Status, StudyAttr, TrialAttr
from ..dominance import nondominated
from ..files import atomic_write
from ..search import fully_trained

__all__ = ["FRONT_COLUMNS", "FrontMember", "Outcome", "by_cost", "cost_axis", "hypervolume", "outcome", "pareto_front",
           "trained_members", "write_front_csv"]


@dataclass(frozen=True)
class FrontMember:
    """A fully trained architecture of a study, as the front and its outputs see it."""

    trial: int
    val_acc: float
    macs: int
    params: int
    genotype: str
    arch_yaml: str = field(repr=False)  # as the study stores it
    test_acc: float | None = None  # measured once when the search ends (never used to select)
    reference: str | None = None  # a paper's network scaled to the budget (nas.search.references)
    latency_ms: float | None = None  # objective=latency: measured CPU ms per image (nas.latency)

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

    def cost(self, axis: str) -> float:
        """What the front weighs against accuracy (`cost_axis`): MMACs, or ms (inf if not timed)."""
        if axis == TrialAttr.MACS:
            return self.mmacs
        return math.inf if self.latency_ms is None else self.latency_ms


def cost_axis(study: optuna.Study) -> str:
    """The cost a study's front weighs against accuracy: `latency_ms` for objective=latency, else
    `macs`."""
    return TrialAttr.LATENCY_MS if study.user_attrs.get(StudyAttr.OBJECTIVE) == "latency" else TrialAttr.MACS


def trained_members(trials: Sequence[FrozenTrial], test_acc: dict[str, float] | None = None) -> list[FrontMember]:
    """Fully trained, within-budget trials (pruned, failed and rejected ones excluded), with their
    test accuracy where `test_acc` (the study's, by trial number) has it."""
    test_acc = test_acc or {}
    return [
        FrontMember(t.number, float(a[TrialAttr.VAL_ACC]), int(a[TrialAttr.MACS]), int(a[TrialAttr.PARAMS]),
                    str(a[TrialAttr.GENOTYPE]), str(a[TrialAttr.ARCH_YAML]),
                    test_acc.get(str(t.number)), a.get(TrialAttr.REFERENCE), a.get(TrialAttr.LATENCY_MS))
        for t in trials if fully_trained(t) for a in (t.user_attrs,)
    ]


def pareto_front(members: Sequence[FrontMember], axis: str = TrialAttr.MACS) -> list[FrontMember]:
    """The non-dominated members (higher accuracy, lower cost on `axis`: fewer MACs, or fewer
    milliseconds; `nas.dominance`), sorted by that cost. Members with identical scores dominate
    neither and both stay."""
    points = [(-m.val_acc, m.cost(axis)) for m in members]
    return by_cost((members[i] for i in nondominated(points)), axis)


def by_cost(members: Iterable[FrontMember], axis: str = TrialAttr.MACS) -> list[FrontMember]:
    """Members in the order fronts are shown: by their cost on `axis` (MACs, or ms), then the more
    accurate, then by trial."""
    return sorted(members, key=lambda c: (c.cost(axis), -c.val_acc, c.trial))


def hypervolume(front: Sequence[FrontMember], max_cost: float, axis: str = TrialAttr.MACS) -> float:
    """Area dominated by the front in (cost / max_cost, accuracy), reference point (1, 0); the
    cost is MMACs, or ms on the latency axis."""
    points = sorted((min(c.cost(axis) / max_cost, 1.0), c.val_acc) for c in front)
    area, best = 0.0, 0.0
    for i, (x, acc) in enumerate(points):
        best = max(best, acc)  # the best accuracy reachable at this cost or less
        right = points[i + 1][0] if i + 1 < len(points) else 1.0
        area += best * (right - x)
    return area


@dataclass(frozen=True)
class Outcome:
    """A study's result at one moment: everything the table, CSV, plot and report show."""

    study_name: str
    budget_mflops: float
    trained: list[FrontMember]
    front: list[FrontMember]
    hypervolume: float  # of the front (0 when empty)
    rejected_mmacs: list[float]  # MMACs of the samples refused for the budget
    trials: int  # trials of any state
    axis: str = TrialAttr.MACS  # the front's cost: macs, or latency_ms (objective=latency)

    @property
    def references(self) -> list[FrontMember]:
        """The trained reference networks (on the front or not), by MACs."""
        return sorted((m for m in self.trained if m.reference), key=lambda m: m.macs)

    def rows(self) -> list[tuple[FrontMember, bool]]:
        """What the table and pareto.csv show: the front, then the references not on it, each with
        whether it is on the front."""
        on_front = {m.trial for m in self.front}
        return [(m, True) for m in self.front] + [(m, False) for m in self.references if m.trial not in on_front]


def outcome(study: optuna.Study, budget_mflops: float) -> Outcome:
    """The study's front and its hypervolume, computed once from one read of its trials. On the
    latency axis the hypervolume's cost is relative to the slowest trained network's."""
    trials = study.get_trials(deepcopy=False)
    trained = trained_members(trials, study.user_attrs.get(StudyAttr.TEST_ACC))
    axis = cost_axis(study)
    front = pareto_front(trained, axis)
    rejected = [t.user_attrs[TrialAttr.MACS] / 1e6 for t in trials if t.user_attrs.get(TrialAttr.STATUS) == Status.REJECTED]
    scale = budget_mflops if axis == TrialAttr.MACS else max(
        (c.cost(axis) for c in trained if math.isfinite(c.cost(axis))), default=1.0)
    return Outcome(study.study_name, budget_mflops, trained, front,
                   hypervolume(front, scale, axis) if front else 0.0, rejected, len(trials), axis)


FRONT_COLUMNS = ("trial", "genotype", "val_acc", "test_acc", "mmacs", "mparams", "yaml", "reference", "on_front",
                 "latency_ms")


def write_front_csv(result: Outcome, yaml_paths: dict[int, str], path: Path) -> None:
    """One row per front member, then one per reference network not on the front (`on_front`
    false); `test_acc` is empty until measured, `latency_ms` unless objective=latency timed it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FRONT_COLUMNS)
    for c, on_front in result.rows():
        writer.writerow([c.trial, c.genotype, f"{c.val_acc:.4f}", "" if c.test_acc is None else f"{c.test_acc:.4f}",
                         f"{c.mmacs:.3f}", f"{c.mparams:.4f}", yaml_paths.get(c.trial, ""), c.reference or "",
                         str(on_front).lower(), "" if c.latency_ms is None else f"{c.latency_ms:.4f}"])
    atomic_write(path, buffer.getvalue())
