"""The sweeper's settings (`hydra/sweeper=nas`): dataclasses only, no torch or Optuna.

Hydra's plugin scan skips modules whose name starts with "_", so these classes are defined once:
the scan executes `config.py` again when it was imported before, and classes defined there would
then exist twice, which OmegaConf refuses to merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from search_spaces.constraints import Budget, DataShape

__all__ = ["NasSweeperConf", "SweepHalvingConf"]


@dataclass
class SweepHalvingConf:
    rungs: list[int] = field(default_factory=lambda: [1, 2])  # the app's report steps (e.g. epochs) that decide
    keep: float = 0.33  # share of the trials reported at a rung that continue (fronts best first; the search's default)
    min_trials: int = 4  # trials a rung must have seen before it stops any


@dataclass
class NasSweeperConf:
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
    halving: Optional[SweepHalvingConf] = None  # successive halving on (objective at a rung, MACs); any mode
    arch_key: str = "arch"  # where the job finds its architecture in its config
    budget_aware: bool = True  # draw depths and widths within what the budget leaves (false: plain space + rejection)
    max_rejected: int = 2000  # stop after this many over-budget samples in a row
    max_failures: int = 10  # stop after this many failed jobs in a row
