"""Registers `hydra/sweeper=nas` in Hydra's ConfigStore (Hydra imports this on plugin discovery).

It imports Hydra and the settings' dataclasses only: the engine (`_impl`, with torch and
Optuna) is imported when a sweep starts.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from ._settings import NasSweeperConfig, SweepHalvingConfig

__all__ = ["NasSweeperConfig", "SweepHalvingConfig"]

ConfigStore.instance().store(group="hydra/sweeper", name="nas", node=NasSweeperConfig, provider="nas_sweeper")
