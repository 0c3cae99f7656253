"""The test split, read once per network at the end of a search: the front's members (and the
reference networks) that reached the top rung are scored on it with their kept weights, and the
score is recorded in the study's `test_acc` attribute ({trial number: accuracy}; a finished
trial's own attributes cannot change). It is never read before, and never used to select."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

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
    scored = 0
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
        model = model.to(target, memory_format=memory_format(target))
        acc = evaluate(model, data.test, mean=data.mean, std=data.std, device=target)
        study.set_user_attr(StudyAttr.TEST_ACC, {**study.user_attrs.get(StudyAttr.TEST_ACC, {}), str(member.trial): acc})
        scored += 1
    log.info("test accuracy measured for %d network(s) of the front (the test split's only use)", scored)
    return scored
