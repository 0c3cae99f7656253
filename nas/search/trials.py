"""One trial's lifecycle, shared by the search and the sweeper: propose an architecture and
price it, reject it or claim a training slot, record its spec, and count the study's trials by
outcome (trials whose process died are found by `nas.search.liveness`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces import Arch, Budget, DataShape, Space

from ..attrs import Status, TrialAttr
from ..complexity import Complexity, complexity
from ..errors import ConfigError
from .budget import budget_usage
from .storage import upload_text

__all__ = ["RejectionLimit", "Withdrawn", "admit", "claim_promotion", "fixed_arch", "fully_trained",
           "record_arch", "rejected_values", "sample_and_price", "trial_counts"]


def sample_and_price(trial: optuna.Trial, space: Space, shape: DataShape, budget: Budget,
                     worker: int = 0, budget_aware: bool = True) -> tuple[Arch, Complexity]:
    """Sample an architecture (its sizes within the budget when `budget_aware`), count it, and
    record the count (and, when over budget, the rejection) on the trial. Nothing is built."""
    arch: Arch = space(trial, shape, budget_usage(budget) if budget_aware else None)
    return fixed_arch(trial, arch, budget, worker)


def fixed_arch(trial: optuna.Trial, arch: Arch, budget: Budget, worker: int = 0) -> tuple[Arch, Complexity]:
    """Count `arch` and record the count (and, when over budget, the rejection) on the trial."""
    cost = complexity(arch)
    for key, value in ((TrialAttr.MACS, cost.macs), (TrialAttr.PARAMS, cost.params),
                       (TrialAttr.GENOTYPE, arch.genotype()), (TrialAttr.WORKER, worker)):
        trial.set_user_attr(key, value)
    # The sampler learns the feasible region from these (Optuna 5 constraints; <= 0 is feasible).
    for key, value in budget.violations(cost).items():
        trial.set_constraint(key, value)
    if not budget.admits(cost):
        trial.set_user_attr(TrialAttr.STATUS, Status.REJECTED)
        trial.set_user_attr(TrialAttr.REJECTED, True)
    return arch, cost


def rejected_values(cost: Complexity, directions: Sequence[str], pareto: bool) -> list[float]:
    """Values told for a sample over the budget, in the search and the sweeper alike. It was never
    trained: each objective gets its worst value (-inf maximized, +inf minimized), and in the
    Pareto mode the MMACs it would cost; its violated constraint keeps it out of every front and
    out of the samplers' model of good architectures (TPE and NSGA-II rank infeasible trials by
    their violation alone)."""
    worst = [-math.inf if d == "maximize" else math.inf for d in directions]
    return [*worst, cost.mmacs] if pareto else worst


class RejectionLimit:
    """Stops a search whose sampler keeps proposing over-budget architectures: `count(rejected)`
    after each sample raises a ConfigError naming `field` once `limit` come in a row."""

    def __init__(self, limit: int, field: str, budget_field: str) -> None:
        self.limit, self.field, self.budget_field = limit, field, budget_field
        self.in_row = 0

    def count(self, rejected: bool) -> None:
        self.in_row = self.in_row + 1 if rejected else 0
        if self.in_row >= self.limit:
            raise ConfigError(
                self.budget_field,
                f"the sampler proposed {self.in_row} over-budget architectures in a row ({self.field}={self.limit}); "
                "raise the budget or the limit",
            )


def fully_trained(trial: FrozenTrial) -> bool:
    """An admitted trial, or one promoted later, that completed its training and recorded its
    accuracy (not stopped early)."""
    attrs = trial.user_attrs
    return (trial.state == TrialState.COMPLETE and TrialAttr.VAL_ACC in attrs
            and attrs.get(TrialAttr.STATUS) in (Status.ADMITTED, Status.PROMOTED))


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: trained (complete or pruned after admission), rejected, failed, pruned,
    running, prescreened (scored untrained and not chosen), promoted (a stopped trial's network
    trained again, finished or running; not counted among the trained architectures)."""
    outcomes = ("trained", "rejected", "failed", "pruned", "running", "prescreened", "promoted")
    counts = dict.fromkeys(outcomes, 0)
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get(TrialAttr.STATUS)
        if status == Status.REJECTED:
            counts["rejected"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 0 if status == Status.WITHDRAWN else 1
        elif status == Status.ADMITTED and t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counts["trained"] += 1
            counts["pruned"] += t.state == TrialState.PRUNED
        elif status == Status.ADMITTED and t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif status == Status.PRESCREENED:
            counts["prescreened"] += 1
        elif status == Status.PROMOTED:
            counts["promoted"] += 1
    return counts


class Withdrawn(Exception):
    """Other workers already train the study's last architectures; this trial steps back."""


def admit(study: optuna.Study, trial: optuna.Trial, n_trials: int, wait_s: float = 30.0) -> None:
    """Claim one of the study's `n_trials` training slots or raise `Withdrawn`.

    Slots go by trial number: a trial trains when fewer than `n_trials` lower-numbered trials
    were admitted (and have not failed). It first waits until every lower-numbered trial has
    decided, so that workers sharing a study never train more than `n_trials` together.
    """
    trial.set_user_attr(TrialAttr.STATUS, Status.ADMITTED)
    deadline = time.monotonic() + wait_s
    while True:
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        undecided = [t for t in ahead if t.state == TrialState.RUNNING and TrialAttr.STATUS not in t.user_attrs]
        if not undecided or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # An undecided trial after the wait counts as admitted: better to withdraw than to overshoot.
    taken = sum(
        1 for t in ahead
        if (t.user_attrs.get(TrialAttr.STATUS) == Status.ADMITTED and t.state != TrialState.FAIL)
        or (t.state == TrialState.RUNNING and TrialAttr.STATUS not in t.user_attrs)
    )
    if taken >= n_trials:
        trial.set_user_attr(TrialAttr.STATUS, Status.WITHDRAWN)
        raise Withdrawn(f"{taken} earlier trials already hold the study's {n_trials} training slots")


def claim_promotion(study: optuna.Study, trial: optuna.Trial, genotype: str) -> float:
    """Claim the training of a stopped trial's network, promoted later (the trial's `promoted_from`;
    `nas.search.halving.late_promotion`), and return the rung it was stopped at. It holds no
    slot. Raises `Withdrawn` where a lower-numbered trial trains that network again already (two
    workers queued the same promotion), and ValueError where `genotype`, what the trial's queued
    parameters built, is not that network."""
    first = trial.user_attrs[TrialAttr.PROMOTED_FROM]
    trial.set_user_attr(TrialAttr.STATUS, Status.PROMOTED)
    trials = study.get_trials(deepcopy=False)
    twins = [t.number for t in trials if t.number < trial.number and t.state != TrialState.FAIL
             and t.user_attrs.get(TrialAttr.PROMOTED_FROM) == first]
    if twins:
        trial.set_user_attr(TrialAttr.STATUS, Status.WITHDRAWN)
        raise Withdrawn(f"trial {twins[0]} already trains trial {first}'s network again")
    stopped = next(t for t in trials if t.number == first).user_attrs
    if stopped.get(TrialAttr.GENOTYPE) != genotype:
        raise ValueError(f"trial {first}'s parameters built {genotype}, "
                         f"not its network {stopped.get(TrialAttr.GENOTYPE)}")
    return float(stopped[TrialAttr.PRUNED_AT])


def record_arch(trial: optuna.Trial, arch: Arch, store: Any) -> None:
    """An admitted trial's spec: as a user attribute (what the outputs rebuild it from) and as an
    artifact (`trial_NNNN.yaml`, downloadable from the dashboard)."""
    text = arch.to_yaml()
    trial.set_user_attr(TrialAttr.ARCH_YAML, text)
    upload_text(store, trial, f"trial_{trial.number:04d}.yaml", text, "application/yaml")
