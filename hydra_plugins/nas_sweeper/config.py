"""Registers `hydra/sweeper=nas` in Hydra's ConfigStore (Hydra imports this on plugin discovery)."""

from hydra.core.config_store import ConfigStore

from nas.sweeper import NasSweeperConf

ConfigStore.instance().store(group="hydra/sweeper", name="nas", node=NasSweeperConf, provider="nas_sweeper")
