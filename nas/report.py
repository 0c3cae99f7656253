"""After a search: reopen a finished study, report its front, and export deployable models."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search_spaces import DataShape

from .attrs import StudyAttr
from .checks import check_folder, redact
from .config import NasConfig
from .errors import ConfigError, DataError
from .export import export_model, load_weights
from .model import build_model
from .outputs import reference_points, write_outputs
from .pareto import Candidate, candidates, hypervolume, pareto_front
from .storage import make_storage
from .trials import trial_counts

__all__ = ["FrontReport", "export_models", "open_finished_study", "report_front"]

log = logging.getLogger(__name__)


def open_finished_study(cfg: NasConfig) -> optuna.Study:
    """Load `cfg.study.name` from its storage without creating anything."""
    url = cfg.storage.url or ""
    if cfg.storage.kind == "rdb" and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ConfigError("study.name", f"no study {cfg.study.name!r}: {path} does not exist (run nas-search first)")
    if cfg.storage.kind == "journal" and not cfg.storage.url:
        path = Path(cfg.storage.path or Path(cfg.output_dir) / "journal.log")
        if not path.is_file():
            raise ConfigError("study.name", f"no study {cfg.study.name!r}: {path} does not exist (run nas-search first)")
    storage = make_storage(cfg)
    try:
        return optuna.load_study(study_name=cfg.study.name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        where = redact(url) if cfg.storage.kind == "rdb" else "the journal"
        raise ConfigError("study.name", f"no study {cfg.study.name!r} in {where} (studies there: {names})") from None


def study_shape(study: optuna.Study) -> DataShape:
    """The input size and classes a study searched for, as it recorded them."""
    attrs = study.user_attrs
    try:
        channels, height, _ = (int(v) for v in attrs[StudyAttr.INPUT].split("x"))
        return DataShape(channels, height, int(attrs[StudyAttr.NUM_CLASSES]))
    except (KeyError, ValueError):
        raise ConfigError("study.name", f"study {study.study_name!r} was not made by nas-search") from None


@dataclass
class FrontReport:
    study: str
    front: list[Candidate]
    counts: dict[str, int]
    budget_mflops: float
    hypervolume: float
    references: list[tuple[str, float]]
    output_dir: Path


def report_front(cfg: NasConfig) -> FrontReport:
    """Write pareto.csv / pareto.png / export/ for the study and return what to print."""
    study = open_finished_study(cfg)
    shape = study_shape(study)
    budget = float(study.user_attrs[StudyAttr.BUDGET_MFLOPS])
    out = Path(cfg.output_dir)
    front, _ = write_outputs(study, out, budget_mflops=budget, shape=shape, artifact_dir=cfg.artifact_dir)
    return FrontReport(
        study=study.study_name, front=front, counts=trial_counts(study), budget_mflops=budget,
        hypervolume=hypervolume(front, budget) if front else 0.0, references=reference_points(shape),
        output_dir=out,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); train it again with nas-train") from None


def export_models(cfg: NasConfig, *, command: str = "", trials: Collection[int] | None = None) -> list[Path]:
    """A deployable folder per Pareto architecture under runs/<study>/models/ (see export_model);
    only those of `trials` when given."""
    study = open_finished_study(cfg)
    front = pareto_front(candidates(study.get_trials(deepcopy=False)))
    if trials is not None:
        front = [c for c in front if c.trial in trials]
    if not front:
        raise ConfigError("study.name", f"study {study.study_name!r} has no trained architecture to export yet")
    data_name = study.user_attrs.get(StudyAttr.DATA, "?")
    models = Path(cfg.output_dir) / "models"
    check_folder("output_dir", models)
    # Every file is read and checked before any folder is written: a bad one stops the export whole.
    plans = []
    for c in front:
        arch = c.arch
        trained = Path(cfg.output_dir) / "export" / f"trial_{c.trial:04d}.pt"
        metrics_file = trained.with_suffix(".metrics.json")
        metrics: dict[str, Any] = {
            "study": study.study_name, "trial": c.trial, "genotype": c.genotype, "data": data_name,
            "val_acc_proxy": c.val_acc, "mmacs": c.mmacs, "mparams": c.mparams,
            # Inputs are pixel / 255, then (x - mean) / std per channel.
            "normalize": {"mean": study.user_attrs.get(StudyAttr.DATA_MEAN), "std": study.user_attrs.get(StudyAttr.DATA_STD)},
        }
        if metrics_file.is_file():
            metrics["full_training"] = _read_json(metrics_file)
        weights = trained if trained.is_file() else None
        if weights is not None:
            load_weights(build_model(arch, max_mparams=cfg.limits.max_mparams), weights)
        plans.append((models / f"trial_{c.trial:04d}", arch, weights, metrics))
    for folder, arch, weights, metrics in plans:
        export_model(arch, folder, weights=weights, metrics=metrics, max_mparams=cfg.limits.max_mparams,
                     command=command or f"nas-export study.name={study.study_name}")
    folders = [folder for folder, *_ in plans]
    log.info("exported %d models under %s", len(folders), Path(cfg.output_dir) / "models")
    return folders
