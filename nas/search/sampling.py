"""The default sampler: Optuna's TPE, shown every trial at the highest rung of the ladder it reached.

TPE splits the finished trials into a good set (the best `gamma(n)`: 2 of 20) and the rest, and
proposes what is likely under the good set and unlikely under the rest. Optuna ranks completed
trials on their values and stopped (pruned) ones by the deepest step they reported, then their
value there (`trial.report`), which a multi-objective study cannot record (optuna#3450). In the
Pareto mode every trial the ladder stopped therefore ties with every other, whether it was stopped
at the screening rung or one rung below the top, and the references, which have no sampled
parameters to learn from, take good-set places: in the three searches of the CPU headline of
2026-12-04, the scaled ShuffleNet v1 held one of the two places in 20 of the 27 samples TPE guided.

`RungTPESampler` shows TPE each searched trial as finished at the highest rung it reached: its
first value is that rung's number (0 for the screening rung) plus its validation accuracy there,
so that a trial that climbed higher ranks above every trial stopped lower (Optuna's own order for
pruned trials), and among the trials of one rung the more accurate ranks higher; its cost (MMACs,
or latency) is unchanged, so the good set is still made of non-dominated fronts. The references
are left out, and so is a stopped trial whose network was promoted later and trained again
(`search.halving.late`) once that trial has finished: it shows the same network higher up. The
study itself is not changed: only what TPE reads.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ..attrs import StudyAttr, TrialAttr

__all__ = ["RungTPESampler", "seen_at_their_rungs"]


class RungTPESampler(optuna.samplers.TPESampler):
    """`optuna.samplers.TPESampler` (same arguments) that learns from every rung a trial reached
    (module text). In a study without the search's records it is plain TPE."""

    def _sample(self, study: optuna.Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        # TPE reads the trials it splits through `study._get_trials`, here and nowhere else. Both are
        # Optuna's private names: should they move, tests/test_halving.py's draws fail.
        return super()._sample(_AtTheirRungs(study), trial, search_space)  # type: ignore[arg-type]


class _AtTheirRungs:
    """A study whose finished trials read as `seen_at_their_rungs` makes them; the rest is the
    study's own."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return seen_at_their_rungs(trials, self._study.user_attrs.get(StudyAttr.OBJECTIVE))


def seen_at_their_rungs(trials: list[FrozenTrial], objective: str | None) -> list[FrozenTrial]:
    """`trials` as `RungTPESampler` shows them to TPE, for a search of `objective` (pareto,
    latency or accuracy; None, not a search's study: unchanged). References are left out; every
    other finished trial with validation accuracies at rungs (`rung_val_acc`) becomes a completed
    trial valued (rung number + accuracy at its highest rung, then its cost: MMACs in the Pareto
    mode, ms with objective=latency). A stopped trial trained again in a finished trial is left
    out. The others (running, rejected, pre-screened) are unchanged.
    New objects: the study's cached trials are not touched."""
    cost = {"pareto": lambda a: [a[TrialAttr.MACS] / 1e6], "latency": lambda a: [a[TrialAttr.LATENCY_MS]],
            "accuracy": lambda a: []}.get(objective or "")
    if cost is None:
        return trials
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    again = {t.user_attrs[TrialAttr.PROMOTED_FROM] for t in trials
             if TrialAttr.PROMOTED_FROM in t.user_attrs and t.state in finished}
    seen = []
    for trial in trials:
        attrs = trial.user_attrs
        if attrs.get(TrialAttr.REFERENCE) or trial.number in again:
            continue
        rungs = attrs.get(TrialAttr.RUNG_VAL_ACC)
        if rungs and trial.state in finished:
            highest = max(rungs, key=float)
            trial = copy.copy(trial)
            trial.state = TrialState.COMPLETE
            trial.values = [len(rungs) - 1 + float(rungs[highest]), *cost(attrs)]
        seen.append(trial)
    return seen
