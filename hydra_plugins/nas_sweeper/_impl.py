"""The `hydra/sweeper=nas` engine: architecture search around a user's own Hydra training app.

Each trial's architecture is sampled from a space and priced against the budget before any job
is launched (the search's own lifecycle, `nas.search.trials`); admitted ones go to the configured
Hydra launcher with the architecture in the job's config (`arch`, an `Arch` YAML node) and a trial
handle (`nas_trial`) the job reads with `nas.search.current_trial` to report and be pruned. The
jobs' return values are the objectives (MMACs is added as the last one with `pareto: true`).
Imported by the plugin class when a sweep starts (torch and Optuna load then, not on discovery).
"""

from __future__ import annotations

import logging
import math
import os
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

from nas.attrs import StudyAttr, TrialAttr
from nas.secrets import PASSWORD_ENV, redact, split_password, with_password
from nas.errors import ConfigError, SearchAborted
from nas.results import write_outputs
from nas.search import (RejectionLimit, Withdrawn, admit, artifact_store, check_identity, fail_dead_trials, record_arch, rejected_values,
                        sample_and_price, this_process, trial_counts)
from search_spaces import Budget, DataShape, get_space
from search_spaces.fields import check_fields

from ._settings import NasSweeperConfig

__all__ = ["run_sweep", "sweeper_settings"]

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


def run_sweep(conf: NasSweeperConfig, launcher: Any, config: DictConfig, arguments: list[str]) -> list[Sequence[JobReturn]]:
    """Sample, price, launch and tell until `n_trials` architectures were trained by the jobs."""
    check_fields(conf, "hydra.sweeper", ConfigError)
    parser = OverridesParser.create()
    for override in parser.parse_overrides(arguments):
        if override.is_sweep_override():
            raise ConfigError(override.key_or_group, "the nas sweeper samples architectures; give other values fixed")
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = with_password(conf.storage or f"sqlite:///{sweep_dir / 'study.db'}")
    # Jobs get the URL without its password, which they find in the environment: Hydra writes every
    # job's overrides (and logs them), and the handle is one of them.
    shown, password = split_password(storage)
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    directions = [*conf.directions, *(["minimize"] if conf.pareto else [])]
    study = optuna.create_study(
        study_name=conf.study_name, storage=storage, sampler=instantiate(conf.sampler),
        pruner=instantiate(conf.pruner) if conf.pruner else None, directions=directions, load_if_exists=True,
    )
    shape = DataShape(conf.data_shape.in_channels, conf.data_shape.resolution, conf.data_shape.num_classes)
    # A resumed sweep must be the same search, as a resumed nas-search must.
    identity = {
        StudyAttr.SPACE: conf.space,
        StudyAttr.INPUT: f"{shape.in_channels}x{shape.resolution}x{shape.resolution}",
        StudyAttr.NUM_CLASSES: shape.num_classes,
        StudyAttr.BUDGET_MFLOPS: float(conf.budget.mflops),
        StudyAttr.BUDGET_MPARAMS: None if conf.budget.mparams is None else float(conf.budget.mparams),
    }
    if check_identity(study, identity, "hydra.sweeper.study_name"):
        study.set_metric_names([*conf.objectives, *(["MMACs"] if conf.pareto else [])])
    space = get_space(conf.space)
    budget = Budget(conf.budget.mflops, conf.budget.mparams)
    store = artifact_store(str(sweep_dir / "artifacts"))
    log.info("nas sweeper: study %s in %s, space %s, budget %g MMACs", conf.study_name, redact(storage),
             conf.space, budget.mflops)

    results, job_index, failures_in_row = [], 0, 0
    rejections = RejectionLimit(conf.max_rejected, "hydra.sweeper.max_rejected", "hydra.sweeper.budget.mflops")
    process = this_process()
    while True:
        # A sweep killed mid-job (SIGKILL, Ctrl-C, SystemExit in a job) left its trials RUNNING: the
        # process recorded on them is gone, so they are failed and their slots trained again.
        fail_dead_trials(study, grace_s=120.0)
        counts = trial_counts(study)
        if counts["trained"] >= conf.n_trials:
            break
        batch = []
        while len(batch) < min(conf.n_jobs, conf.n_trials - counts["trained"] - counts["running"]):
            trial = study.ask()
            trial.set_user_attr(TrialAttr.PROCESS, process)
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
            handle = {"study": conf.study_name, "storage": shown, "number": trial.number,
                      "trial_id": trial._trial_id, "pruner": conf.pruner,  # noqa: SLF001 (Trial has no public id)
                      "halving": None if conf.halving is None else OmegaConf.to_container(OmegaConf.structured(conf.halving)),
                      "pareto": conf.pareto}
            batch.append((trial, cost, [*arguments, f"+{conf.arch_key}={_override_value(arch.to_dict())}",
                                        f"+nas_trial={_override_value(handle)}"]))
        if not batch:  # every slot is held by another sweep's running trials
            time.sleep(1.0)
            continue
        try:
            returns = launcher.launch([b[2] for b in batch], initial_job_idx=job_index)
        except SystemExit as err:  # a job called sys.exit(): Hydra's launchers catch only Exception
            running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            for trial, _, _ in batch:
                if trial.number in running:  # the jobs before the one that exited were told
                    trial.set_user_attr(TrialAttr.FAILURE, f"the job exited (SystemExit: {err.code}) instead of "
                                                           "returning its objective(s)")
                    study.tell(trial, state=TrialState.FAIL)
            job_index += len(batch)
            failures_in_row += len(batch)
            if failures_in_row >= conf.max_failures:
                raise SearchAborted(f"{failures_in_row} jobs failed in a row (hydra.sweeper.max_failures)") from None
            continue
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


def _score(value: Any) -> float | None:
    """A job's return value as a number (a float, a NumPy or 0-d torch scalar); None for anything else."""
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # a dict, a list, a tensor of several values
        return None


def _tell(study: optuna.Study, trial: optuna.Trial, cost: Any, ret: JobReturn, conf: NasSweeperConfig) -> bool:
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
    scores = [_score(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(scores) != len(conf.objectives) or not all(v is not None and math.isfinite(v) for v in scores):
        trial.set_user_attr(TrialAttr.FAILURE, f"job returned {value!r}; expected {len(conf.objectives)} finite number(s)")
        study.tell(trial, state=TrialState.FAIL)
        return False
    for name, v in zip(conf.objectives, scores):
        trial.set_user_attr(name, v)
    if conf.directions[0] == "maximize":
        trial.set_user_attr(TrialAttr.VAL_ACC, scores[0])  # the front in pareto.csv is drawn on the first objective
    study.tell(trial, [*scores, cost.mmacs] if conf.pareto else scores)
    return True


def sweeper_settings(conf: Any) -> NasSweeperConfig:
    """The sweeper's settings as the dataclass, from what Hydra passes the plugin."""
    merged = OmegaConf.merge(OmegaConf.structured(NasSweeperConfig), {k: v for k, v in conf.items() if k != "_recursive_"})
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
