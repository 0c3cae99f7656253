"""The plugin class Hydra instantiates; the work happens in `_impl`, imported when a sweep starts
(Hydra imports this module on every plugin discovery: no torch or Optuna here)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class NasSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.launcher: Any = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        import signal

        from nas.errors import report_user_errors

        from ._impl import run_sweep, sweeper_settings

        assert self.config is not None and self.launcher is not None
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # A job a script starts with `&` inherits SIGINT ignored, and Python keeps it so: `kill -INT`
            # (and a terminal's Ctrl-C after `fg`) would do nothing. Interrupt the sweep as in the foreground.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return report_user_errors(lambda: run_sweep(sweeper_settings(self.settings), self.launcher, self.config, arguments))
