"""After a search: reopen a finished study, report its front, and export deployable models."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..attrs import StudyAttr, TrialAttr
from ..probes import check_folder
from ..errors import ConfigError, DataError
from ..model import build_model
from ..search import NasConfig, open_finished_study, study_shape, trial_counts
from .export import TRAINING_FIELDS, export_model, load_weights, read_training_metrics
from .front import Outcome, by_cost, cost_axis, pareto_front, trained_members
from .outputs import reference_points, write_outputs

__all__ = ["FrontReport", "export_models", "report_front"]

log = logging.getLogger(__name__)


@dataclass
class FrontReport:
    outcome: Outcome
    counts: dict[str, int]
    references: list[tuple[str, float]]
    output_dir: Path


def report_front(cfg: NasConfig) -> FrontReport:
    """Write pareto.csv / pareto.png / export/ for the study and return what to print."""
    study = open_finished_study(cfg)
    shape = study_shape(study)
    budget = float(study.user_attrs[StudyAttr.BUDGET_MFLOPS])
    out = Path(cfg.output_dir)
    result, _ = write_outputs(study, out, budget_mflops=budget, shape=shape, artifact_dir=cfg.artifact_dir)
    return FrontReport(outcome=result, counts=trial_counts(study), references=reference_points(shape), output_dir=out)


def export_models(cfg: NasConfig, *, command: str = "", trials: Collection[int] | None = None) -> list[Path]:
    """A deployable folder per Pareto architecture under runs/<study>/models/ (see export_model).
    With `trials` (what nas-train chose from the front and trained), those trials, on the front
    or not: a search still running may have pushed them off it meanwhile."""
    study = open_finished_study(cfg)
    trained = trained_members(study.get_trials(deepcopy=False), study.user_attrs.get(StudyAttr.TEST_ACC))
    axis = cost_axis(study)
    front = pareto_front(trained, axis)
    if trials is not None:
        left = sorted(set(trials) - {c.trial for c in front})
        if left:
            log.warning("trial(s) %s left the front since nas-train chose them (the search went on); exported all the same",
                        ", ".join(map(str, left)))
        front = by_cost((c for c in trained if c.trial in trials), axis)
    if not front:
        raise ConfigError("study.name", f"study {study.study_name!r} has no trained architecture to export yet")
    data_name = study.user_attrs.get(StudyAttr.DATA, "?")
    models = Path(cfg.output_dir) / "models"
    check_folder("output_dir", models)
    # Every file is read and checked before any folder is written: a bad one stops the export whole.
    plans = []
    kept = {t.number: t.user_attrs.get(TrialAttr.WEIGHTS) for t in study.get_trials(deepcopy=False)}
    for c in front:
        arch = c.arch
        trained = Path(cfg.output_dir) / "export" / f"trial_{c.trial:04d}.pt"
        metrics_file = trained.with_suffix(".metrics.json")
        metrics: dict[str, Any] = {
            "study": study.study_name, "trial": c.trial, "genotype": c.genotype, "data": data_name,
            "val_acc_proxy": c.val_acc, "test_acc_search": c.test_acc, "reference": c.reference,
            "mmacs": c.mmacs, "mparams": c.mparams,
            # Inputs are pixel / 255, then (x - mean) / std per channel.
            "normalize": {"mean": study.user_attrs.get(StudyAttr.DATA_MEAN), "std": study.user_attrs.get(StudyAttr.DATA_STD)},
        }
        if metrics_file.is_file():
            full = read_training_metrics(metrics_file)
            if full is None:
                raise DataError(f"{metrics_file} cannot be read as nas-train's metrics (it needs "
                                f"{', '.join(TRAINING_FIELDS)}: an accuracy in 0..1, epochs a positive integer, "
                                "a genotype); train it again with nas-train")
            if full["genotype"] != c.genotype:  # left by another network under the same trial number
                raise DataError(f"{metrics_file} is of another network ({full['genotype']}, not trial {c.trial}'s "
                                f"{c.genotype}); train it again with nas-train")
            metrics["full_training"] = full
        weights = trained if trained.is_file() else None
        if weights is None and kept.get(c.trial) and (Path(cfg.output_dir) / kept[c.trial]).is_file():
            weights = Path(cfg.output_dir) / kept[c.trial]  # the search's top rung
            metrics["weights_from"] = "the search's top rung"
        if weights is not None:
            load_weights(build_model(arch, max_mparams=cfg.limits.max_mparams), weights)
        plans.append((models / f"trial_{c.trial:04d}", arch, weights, metrics))
    for folder, arch, weights, metrics in plans:
        export_model(arch, folder, weights=weights, metrics=metrics, max_mparams=cfg.limits.max_mparams,
                     command=command or f"nas-export study.name={study.study_name}")
    folders = [folder for folder, *_ in plans]
    log.info("exported %d models under %s", len(folders), Path(cfg.output_dir) / "models")
    return folders
