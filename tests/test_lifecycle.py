"""One trial lifecycle (nas.search.trials) for the search and the sweeper: the same values for a rejected
sample, the same training slots, the same limit on rejections in a row. Each test runs both."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.errors import ConfigError
from nas.apps import run_search

APP = Path(__file__).resolve().parent.parent / "examples" / "sweeper_app" / "train.py"
BUDGET = 0.8  # MMACs: the plain space rejects most samples at the 1x16x16 input both use


def _run(kind: str, tmp_path: Path, make_cfg, n_trials: int, max_rejected: int) -> tuple[optuna.Study, str]:
    """A search or a sweep over the plain space (no budget-aware sampling, so that samples are
    rejected); the study and the error it stopped with ('' when it finished)."""
    if kind == "search":
        cfg = make_cfg(f"search.n_trials={n_trials}", f"budget.mflops={BUDGET}", "search.budget_aware=false",
                       f"search.max_rejected={max_rejected}", "sampler=random")
        try:
            run_search(cfg, progress=False)
            error = ""
        except ConfigError as err:
            error = str(err)
        storage = f"sqlite:///{Path(cfg.output_dir) / 'study.db'}"
        return optuna.load_study(study_name=cfg.study.name, storage=storage), error
    done = subprocess.run(
        [sys.executable, str(APP), "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "epochs=1", "train_fraction=0.3",
         f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.budget.mflops={BUDGET}",
         "hydra.sweeper.budget_aware=false", f"hydra.sweeper.max_rejected={max_rejected}",
         "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler", "~hydra.sweeper.sampler.n_startup_trials"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=900,
    )
    storage = f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"
    return optuna.load_study(study_name="sweeper-example", storage=storage), "" if done.returncode == 0 else done.stderr


@pytest.mark.parametrize("kind", ["search", "sweeper"])
def test_rejected_samples_and_slots(kind: str, tmp_path: Path, make_cfg) -> None:
    study, error = _run(kind, tmp_path, make_cfg, n_trials=3, max_rejected=2000)
    assert error == ""
    admitted = [t for t in study.trials if t.user_attrs.get("status") == "admitted"]
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "rejected"]
    assert len(admitted) == 3  # exactly the slots asked for
    assert rejected, f"{BUDGET} MMACs must reject some samples of the plain space"
    for t in rejected:
        mmacs = t.user_attrs["macs"] / 1e6
        assert mmacs > BUDGET and t.values == [-math.inf, mmacs]  # worst accuracy, the MMACs it would cost
        assert t.system_attrs["constraints:mmacs_over_budget"] == pytest.approx(mmacs - BUDGET)
    for t in admitted:
        assert t.user_attrs["macs"] / 1e6 <= BUDGET and math.isfinite(t.values[0])


@pytest.mark.parametrize("kind", ["search", "sweeper"])
def test_rejections_in_a_row_stop_with_one_message(kind: str, tmp_path: Path, make_cfg) -> None:
    study, error = _run(kind, tmp_path, make_cfg, n_trials=50, max_rejected=2)
    field = "search.max_rejected" if kind == "search" else "hydra.sweeper.max_rejected"
    assert f"the sampler proposed 2 over-budget architectures in a row ({field}=2)" in error, error[-2000:]
    statuses = [t.user_attrs.get("status") for t in study.trials]
    assert statuses[-2:] == ["rejected", "rejected"]
