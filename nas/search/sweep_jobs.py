"""Inside a job of the `hydra/sweeper=nas` sweep: the trial a user's training app reports to and
is stopped by, the same successive halving as the search (`nas.search.halving`) in any mode.

The sweep itself (sampling, pricing, launching, telling) is the plugin's, in
`hydra_plugins/nas_sweeper/_impl.py`; it hands each job a `nas_trial` handle that this reads.
"""

from __future__ import annotations

from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..attrs import TrialAttr
from ..secrets import with_password
from .halving import Halving, record_and_decide

__all__ = ["RungTrial", "current_trial"]


def current_trial(cfg: DictConfig) -> optuna.Trial | RungTrial | None:
    """Inside a job launched by the nas sweeper: the trial to `report` to and ask `should_prune`
    (Optuna's own for one objective without halving; else a `RungTrial` that answers both the same
    way). None when the job was started some other way."""
    handle = cfg.get("nas_trial") if isinstance(cfg, DictConfig) else None
    if handle is None:
        return None
    pruner = instantiate(handle.pruner) if handle.get("pruner") else None
    study = optuna.load_study(study_name=handle.study, storage=with_password(handle.storage), pruner=pruner)
    trial = optuna.trial.Trial(study, int(handle.trial_id))
    h = handle.get("halving")
    if h is None and len(study.directions) == 1:
        return trial
    halving = None if h is None else Halving(tuple(h.rungs), h.keep, h.min_trials)
    return RungTrial(study, trial, halving, pareto=bool(handle.pareto))


class RungTrial:
    """A job's trial under the sweeper's successive halving (nas.search.halving), or in a multi-objective
    study without it: `report(value, step)` records the value at the rungs and decides there,
    `should_prune()` tells the decision (never, without halving). The rest is the Optuna trial's.
    Works in the Pareto mode, where Optuna's own `report` raises."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, halving: Halving | None, *, pareto: bool) -> None:
        self._study, self._trial, self._halving, self._pareto = study, trial, halving, pareto
        self._single = len(study.directions) == 1
        self._stop = False

    def report(self, value: float, step: int) -> None:
        if self._single:
            self._trial.report(value, step)  # the dashboard's learning curves (single objective only)
        if self._halving is not None and step in self._halving.rungs:
            self._stop = not record_and_decide(self._study, self._trial, step, value, self._halving,
                                            cost=TrialAttr.MACS if self._pareto else None)
            if self._stop:
                self._trial.set_user_attr(TrialAttr.PRUNED_AT, step)
                self._trial.set_user_attr(TrialAttr.VAL_ACC, value)

    def should_prune(self) -> bool:
        return self._stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)
