"""The test split, read once per network at the end of a search: the front's members (and the
reference networks) that reached the top rung are scored on it with their kept weights, and the
score is recorded in the study's `test_acc` attribute ({trial number: accuracy}; a finished
trial's own attributes cannot change). It is never read before, and never used to select."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import torch
from torch import nn

from search_spaces import Arch

from ..attrs import StudyAttr, TrialAttr
from ..data import Dataset
from ..errors import DataError
from ..model import build_model
from ..training import evaluate, memory_format, pick_device
from .export import load_weights
from .front import outcome

__all__ = ["measure_test"]

log = logging.getLogger(__name__)


def measure_test(study: optuna.Study, data: Dataset, output_dir: Path, device: str = "auto", worker: int = 0) -> int:
    """Score on the test split each front member and reference not yet scored; how many were."""
    result = outcome(study, float(study.user_attrs.get(StudyAttr.BUDGET_MFLOPS, 1.0)))
    todo = [m for m, _ in result.rows() if m.test_acc is None]
    if not todo:
        return 0
    if len(data.test) == 0:
        log.info("no test images (data handed over without a 'test' part): no test accuracy measured")
        return 0
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    target = pick_device(device, worker)
    models = {}
    for member in todo:
        weights = trials[member.trial].user_attrs.get(TrialAttr.WEIGHTS)
        path = output_dir / str(weights)
        if not weights or not path.is_file():
            log.warning("trial %d: no kept weights (%s), so no test accuracy", member.trial, path if weights else "none")
            continue
        model = build_model(Arch.from_yaml(member.arch_yaml), max_mparams=None)
        try:
            load_weights(model, path)
        except DataError as err:
            log.warning("trial %d: %s", member.trial, err)
            continue
        models[member.trial] = model.to(target, memory_format=memory_format(target))
    accs = _evaluate_all(models, data, target)
    tested = {**study.user_attrs.get(StudyAttr.TEST_ACC, {}), **{str(n): acc for n, acc in accs.items()}}
    study.set_user_attr(StudyAttr.TEST_ACC, tested)
    log.info("test accuracy measured for %d network(s) of the front (the test split's only use)", len(accs))
    return len(accs)


def _evaluate_all(models: dict[int, nn.Module], data: Dataset, device: torch.device) -> dict[int, float]:
    """Test accuracy of each model. On the CPU, a network per core at a time, each on one thread:
    these small networks hardly use a second thread (bench/NOTES.md), and PyTorch's kernels let
    go of the GIL, so threads score side by side (a search's six networks on 2 cores: 20-22 s
    against 28 s one after the other)."""
    def score(model: nn.Module) -> float:
        return evaluate(model, data.test, mean=data.mean, std=data.std, device=device)

    cores = torch.get_num_threads()
    if device.type != "cpu" or cores < 2 or len(models) < 2:
        return {number: score(model) for number, model in models.items()}
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(cores, len(models))) as pool:
            return dict(zip(models, pool.map(score, models.values()), strict=True))
    finally:
        torch.set_num_threads(cores)
