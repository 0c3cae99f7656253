"""The sweeper's settings (`hydra/sweeper=nas`): dataclasses with their fields' rules, no torch or
Optuna.

Hydra's plugin scan skips modules whose name starts with "_", so these classes are defined once:
the scan executes `config.py` again when it was imported before, and classes defined there would
then exist twice, which OmegaConf refuses to merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from search_spaces.constraints import Budget, DataShape
from search_spaces.fields import FieldError, Rule, fraction, one_of, positive

__all__ = ["NasSweeperConfig", "SweepHalvingConfig"]


def _spaces() -> list[str]:
    from search_spaces import SPACES  # the spaces import torch: only when a sweep is checked

    return sorted(SPACES)


@dataclass
class SweepHalvingConfig:
    rungs: list[int] = field(default_factory=lambda: [1, 2])  # the app's report steps (e.g. epochs) that decide
    keep: float = 0.33  # share of the trials reported at a rung that continue (fronts best first)
    min_trials: int = 4  # trials a rung must have seen before it stops any

    RULES: ClassVar[dict[str, Rule]] = {"keep": fraction(), "min_trials": positive(integer=True)}

    def check(self) -> None:
        rungs = list(self.rungs)
        if not rungs or rungs != sorted(set(rungs)) or rungs[0] < 1:
            raise FieldError("rungs", f"{rungs} is not allowed (allowed: ascending steps >= 1)")


@dataclass
class NasSweeperConfig:
    _target_: str = "hydra_plugins.nas_sweeper.nas_sweeper.NasSweeper"
    _recursive_: bool = False  # the sampler and pruner stay configs: jobs rebuild the pruner too
    space: str = "hybrid"  # shufflenet | mobilenext | hybrid
    data_shape: DataShape = field(default_factory=DataShape)  # of the user's data
    budget: Budget = field(default_factory=Budget)  # mflops: millions of multiply-adds; mparams: optional cap
    n_trials: int = 20  # architectures to train (pruned ones count; rejected and failed ones do not)
    n_jobs: int = 1  # architectures handed to the launcher at once
    objectives: list[str] = field(default_factory=lambda: ["val_acc"])  # names of the job's return values
    directions: list[str] = field(default_factory=lambda: ["maximize"])  # one per objective
    pareto: bool = True  # add MMACs (minimized) as the last objective
    study_name: str = "nas-sweep"
    storage: Optional[str] = None  # SQLAlchemy URL; null: SQLite in the sweep folder
    sampler: dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    pruner: Optional[dict[str, Any]] = None  # single objective only (Optuna's pruners)
    halving: Optional[SweepHalvingConfig] = None  # successive halving on (objective at a rung, MACs); any mode
    arch_key: str = "arch"  # where the job finds its architecture in its config
    budget_aware: bool = True  # draw depths and widths within what the budget leaves (false: plain space + rejection)
    max_rejected: int = 2000  # stop after this many over-budget samples in a row
    max_failures: int = 10  # stop after this many failed jobs in a row

    RULES: ClassVar[dict[str, Rule]] = {
        "space": one_of(_spaces, noun="search space"),
        "n_trials": positive(integer=True),
        "n_jobs": positive(integer=True),
        "max_rejected": positive(integer=True),
        "max_failures": positive(integer=True),
    }

    def check(self) -> None:
        if len(self.objectives) != len(self.directions) or not self.objectives:
            raise FieldError("directions", "give one direction (maximize|minimize) per objective")
        if any(d not in ("maximize", "minimize") for d in self.directions):
            raise FieldError("directions", f"{list(self.directions)} (allowed: maximize, minimize)")
        if self.pruner and (self.pareto or len(self.objectives) > 1):
            raise FieldError("pruner", "Optuna's pruners are single-objective: set pareto=false and one objective")
        if self.halving is not None:
            if self.pruner:
                raise FieldError("halving", "cannot be combined with hydra.sweeper.pruner (choose one)")
            if self.directions[0] != "maximize":
                raise FieldError("halving", "decides on the first objective, which must be maximized")
