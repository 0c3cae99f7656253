"""Building networks from specs, within a limit on their size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from search_spaces import Arch, Network
from search_spaces.fields import Rule, positive

from .complexity import Complexity, complexity
from .errors import ConfigError

__all__ = ["MAX_MPARAMS", "LimitsConfig", "build_model", "check_size"]

#: Networks with more parameters than this (millions) are refused unless the caller raises the limit
#: (`limits.max_mparams`). The built-in spaces sample at most ~71 M (1000 classes); at 100 M the
#: weights, gradients and momentum alone take 1.2 GB before any activation.
MAX_MPARAMS = 100.0


@dataclass
class LimitsConfig:
    """The `limits` config group: what a typo must not be able to start; raise a limit if you mean it."""

    max_mparams: float = MAX_MPARAMS  # refuse to build networks with more parameters (millions)

    RULES: ClassVar[dict[str, Rule]] = {"max_mparams": positive()}


def check_size(arch: Arch, max_mparams: float | None = MAX_MPARAMS) -> Complexity:
    """The architecture's counted cost; raises `ConfigError` when its parameters exceed
    `max_mparams` (None: no limit). Counting is analytic: nothing is allocated."""
    cost = complexity(arch)
    if max_mparams is not None and cost.mparams > max_mparams:
        raise ConfigError(
            "limits.max_mparams",
            f"the architecture has {cost.mparams:,.1f} M parameters, over the limit of {max_mparams:g} M "
            f"(its weights, gradients and momentum alone take {12 * cost.params / 1e9:,.1f} GB); raise the limit if "
            "you mean it (limits.max_mparams=N on the command line, max_mparams=N in build_model)",
        )
    return cost


def build_model(arch: Arch, *, max_mparams: float | None = MAX_MPARAMS) -> Network:
    """The `nn.Module` that `arch` describes, freshly initialised, once `check_size` admits it."""
    if not isinstance(arch, Arch):
        raise TypeError(f"build_model expects an Arch, got {type(arch).__name__}")
    check_size(arch, max_mparams)
    return Network(arch)
