"""Shared fixtures: configs composed from the real conf/ files, tiny and fast."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nas.cli import CONF_DIR
from nas.config import NasConfig, register_configs

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

#: A search small enough for a unit test: synthetic 16x16 data, a few cheap candidates.
FAST = [
    "data=synthetic",
    "budget.mflops=1.0",
    "proxy.train_fraction=0.3",
    "search.n_trials=3",
    "proxy.batch_size=64",
    "proxy.device=cpu",
    "proxy.on_cpu=null",
    "search.probe_samples=200",
]


def compose_config(overrides: list[str]) -> NasConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., NasConfig]:
    """`make_cfg("search.n_trials=5", ...)`: FAST plus overrides, writing under tmp_path."""

    def make(*overrides: str, name: str = "t") -> NasConfig:
        out = tmp_path / "runs" / name
        return compose_config([*FAST, f"study.name={name}", f"output_dir={out}", *overrides])

    return make
