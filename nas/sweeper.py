"""The `hydra/sweeper=nas` engine: architecture search around a user's own Hydra training app.

Each trial's architecture is sampled from a space and priced against the budget before any job
is launched; admitted ones go to the configured Hydra launcher with the architecture in the job's
config (`arch`, an `Arch` YAML node) and a trial handle (`nas_trial`) the job can report to and be
pruned by. The jobs' return values are the objectives (MMACs is added as the last one with
`pareto: true`). The plugin class in `hydra_plugins/nas_sweeper` only forwards here; the settings'
dataclasses live there too (`_settings.py`, light: Hydra imports the plugin on every discovery)
and are re-exported here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from hydra_plugins.nas_sweeper.config import NasSweeperConf, SweepHalvingConf
from search_spaces import Budget, DataShape, get_space

from .attrs import StudyAttr, TrialAttr
from .checks import redact, require_positive
from .errors import ConfigError, SearchAborted
from .halving import Halving, record_and_decide
from .outputs import write_outputs
from .storage import artifact_store
from .trials import RejectionLimit, Withdrawn, admit, record_arch, rejected_values, sample_and_price, trial_counts

__all__ = ["NasSweeperConf", "RungTrial", "SweepHalvingConf", "current_trial", "run_sweep", "sweeper_settings"]

log = logging.getLogger(__name__)


def _override_value(value: Any) -> str:
    """A value in Hydra's override grammar (dicts, lists, quoted strings)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def _validate(conf: NasSweeperConf) -> None:
    get_space(conf.space)
    for name in ("in_channels", "resolution", "num_classes"):
        require_positive(f"hydra.sweeper.data_shape.{name}", getattr(conf.data_shape, name), integer=True)
    require_positive("hydra.sweeper.budget.mflops", conf.budget.mflops)
    if conf.budget.mparams is not None:
        require_positive("hydra.sweeper.budget.mparams", conf.budget.mparams)
    if len(conf.objectives) != len(conf.directions) or not conf.objectives:
        raise ConfigError("hydra.sweeper.directions", "give one direction (maximize|minimize) per objective")
    if any(d not in ("maximize", "minimize") for d in conf.directions):
        raise ConfigError("hydra.sweeper.directions", f"{list(conf.directions)} (allowed: maximize, minimize)")
    if conf.pruner and (conf.pareto or len(conf.objectives) > 1):
        raise ConfigError("hydra.sweeper.pruner", "Optuna's pruners are single-objective: set pareto=false and one objective")
    if conf.halving is not None:
        if conf.pruner:
            raise ConfigError("hydra.sweeper.halving", "cannot be combined with hydra.sweeper.pruner (choose one)")
        if conf.directions[0] != "maximize":
            raise ConfigError("hydra.sweeper.halving", "decides on the first objective, which must be maximized")
        rungs = list(conf.halving.rungs)
        if not rungs or rungs != sorted(set(rungs)) or rungs[0] < 1:
            raise ConfigError("hydra.sweeper.halving.rungs", f"{rungs} is not allowed (allowed: ascending steps >= 1)")
        if not 0 < conf.halving.keep <= 1:
            raise ConfigError("hydra.sweeper.halving.keep", f"{conf.halving.keep} is out of range (allowed: 0 < keep <= 1)")
    for name in ("n_trials", "n_jobs", "max_failures", "max_rejected"):
        if getattr(conf, name) < 1:
            raise ConfigError(f"hydra.sweeper.{name}", f"{getattr(conf, name)} is not allowed (allowed: >= 1)")


def run_sweep(conf: NasSweeperConf, launcher: Any, config: DictConfig, arguments: list[str]) -> list[Sequence[JobReturn]]:
    """Sample, price, launch and tell until `n_trials` architectures were trained by the jobs."""
    _validate(conf)
    parser = OverridesParser.create()
    for override in parser.parse_overrides(arguments):
        if override.is_sweep_override():
            raise ConfigError(override.key_or_group, "the nas sweeper samples architectures; give other values fixed")
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = conf.storage or f"sqlite:///{sweep_dir / 'study.db'}"
    directions = [*conf.directions, *(["minimize"] if conf.pareto else [])]
    study = optuna.create_study(
        study_name=conf.study_name, storage=storage, sampler=instantiate(conf.sampler),
        pruner=instantiate(conf.pruner) if conf.pruner else None, directions=directions, load_if_exists=True,
    )
    study.set_metric_names([*conf.objectives, *(["MMACs"] if conf.pareto else [])])
    shape = DataShape(conf.data_shape.in_channels, conf.data_shape.resolution, conf.data_shape.num_classes)
    study.set_user_attr(StudyAttr.INPUT, f"{shape.in_channels}x{shape.resolution}x{shape.resolution}")
    study.set_user_attr(StudyAttr.NUM_CLASSES, shape.num_classes)
    study.set_user_attr(StudyAttr.BUDGET_MFLOPS, float(conf.budget.mflops))
    space = get_space(conf.space)
    budget = Budget(conf.budget.mflops, conf.budget.mparams)
    store = artifact_store(str(sweep_dir / "artifacts"))
    log.info("nas sweeper: study %s in %s, space %s, budget %g MMACs", conf.study_name, redact(storage),
             conf.space, budget.mflops)

    results, job_index, failures_in_row = [], 0, 0
    rejections = RejectionLimit(conf.max_rejected, "hydra.sweeper.max_rejected", "hydra.sweeper.budget.mflops")
    while (counts := trial_counts(study))["trained"] < conf.n_trials:
        batch = []
        while len(batch) < min(conf.n_jobs, conf.n_trials - counts["trained"] - counts["running"]):
            trial = study.ask()
            arch, cost = sample_and_price(trial, space, shape, budget, budget_aware=conf.budget_aware)
            rejections.count(not budget.admits(cost))
            if not budget.admits(cost):
                study.tell(trial, rejected_values(cost, conf.directions, conf.pareto))
                continue
            try:
                admit(study, trial, conf.n_trials)
            except Withdrawn as err:  # other sweeps on this storage hold the last slots
                study.tell(trial, state=TrialState.FAIL)
                log.info("trial %d withdrawn: %s", trial.number, err)
                break
            record_arch(trial, arch, store)
            handle = {"study": conf.study_name, "storage": storage, "number": trial.number,
                      "trial_id": trial._trial_id, "pruner": conf.pruner,  # noqa: SLF001 (Trial has no public id)
                      "halving": None if conf.halving is None else OmegaConf.to_container(OmegaConf.structured(conf.halving)),
                      "pareto": conf.pareto}
            batch.append((trial, cost, [*arguments, f"+{conf.arch_key}={_override_value(arch.to_dict())}",
                                        f"+nas_trial={_override_value(handle)}"]))
        if not batch:  # every slot is held by another sweep's running trials
            time.sleep(1.0)
            continue
        returns = launcher.launch([b[2] for b in batch], initial_job_idx=job_index)
        job_index += len(batch)
        results.append(returns)
        for (trial, cost, _), ret in zip(batch, returns):
            failures_in_row = 0 if _tell(study, trial, cost, ret, conf) else failures_in_row + 1
            if failures_in_row >= conf.max_failures:
                raise SearchAborted(f"{failures_in_row} jobs failed in a row (hydra.sweeper.max_failures)")
    if conf.directions[0] == "maximize":
        write_outputs(study, sweep_dir, budget_mflops=budget.mflops, shape=shape, artifact_dir=str(sweep_dir / "artifacts"))
    else:
        log.info("no pareto.csv: the first objective (%s) is minimized, the front is drawn for accuracies", conf.objectives[0])
    return results


def _tell(study: optuna.Study, trial: optuna.Trial, cost: Any, ret: JobReturn, conf: NasSweeperConf) -> bool:
    """Record a job's outcome; False when it failed."""
    if ret.status == JobStatus.FAILED:
        err = ret._return_value  # noqa: SLF001 (JobReturn keeps the job's exception here)
        if isinstance(err, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            return True
        trial.set_user_attr(TrialAttr.FAILURE, f"{type(err).__name__}: {err}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s: %s", trial.number, type(err).__name__, err)
        return False
    value = ret.return_value
    scores = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(scores) != len(conf.objectives) or not all(math.isfinite(v) for v in scores):
        trial.set_user_attr(TrialAttr.FAILURE, f"job returned {value!r}; expected {len(conf.objectives)} finite number(s)")
        study.tell(trial, state=TrialState.FAIL)
        return False
    for name, v in zip(conf.objectives, scores):
        trial.set_user_attr(name, v)
    if conf.directions[0] == "maximize":
        trial.set_user_attr(TrialAttr.VAL_ACC, scores[0])  # the front in pareto.csv is drawn on the first objective
    study.tell(trial, [*scores, cost.mmacs] if conf.pareto else scores)
    return True


def current_trial(cfg: DictConfig) -> optuna.Trial | RungTrial | None:
    """Inside a job launched by the nas sweeper: the trial to `report` to and ask `should_prune`
    (Optuna's own for one objective without halving; else a `RungTrial` that answers both the same
    way). None when the job was started some other way."""
    handle = cfg.get("nas_trial") if isinstance(cfg, DictConfig) else None
    if handle is None:
        return None
    pruner = instantiate(handle.pruner) if handle.get("pruner") else None
    study = optuna.load_study(study_name=handle.study, storage=handle.storage, pruner=pruner)
    trial = optuna.trial.Trial(study, int(handle.trial_id))
    h = handle.get("halving")
    if h is None and len(study.directions) == 1:
        return trial
    halving = None if h is None else Halving(tuple(h.rungs), h.keep, h.min_trials)
    return RungTrial(study, trial, halving, pareto=bool(handle.pareto))


class RungTrial:
    """A job's trial under the sweeper's successive halving (nas.halving), or in a multi-objective
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
            self._stop = not record_and_decide(self._study, self._trial, step, value, self._halving, pareto=self._pareto)
            if self._stop:
                self._trial.set_user_attr(TrialAttr.PRUNED_AT, step)
                self._trial.set_user_attr(TrialAttr.VAL_ACC, value)

    def should_prune(self) -> bool:
        return self._stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def sweeper_settings(conf: Any) -> NasSweeperConf:
    """The sweeper's settings as the dataclass, from what Hydra passes the plugin."""
    merged = OmegaConf.merge(OmegaConf.structured(NasSweeperConf), {k: v for k, v in conf.items() if k != "_recursive_"})
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
