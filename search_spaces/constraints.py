"""What every network of a search must fit: the data's shape and the budget.

Plain dataclasses with no torch or Optuna, so that they are also the config schemas: the search's
`budget` group and the Hydra sweeper's `data_shape` and `budget` settings (which Hydra imports on
every plugin discovery) use these very types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Protocol

from .fields import Rule, positive

__all__ = ["SMALL_INPUT", "Budget", "Cost", "DataShape"]

SMALL_INPUT = 64  # pixels; at or below, networks use the papers' CIFAR-style stems (stride 1, no pool)


@dataclass
class DataShape:
    """What a dataset fixes about every network: input channels, resolution, classes."""

    in_channels: int = 3  # input channels (1: grey, 3: RGB)
    resolution: int = 32  # input height = width, pixels
    num_classes: int = 10

    RULES: ClassVar[dict[str, Rule]] = {
        "in_channels": positive(integer=True), "resolution": positive(integer=True), "num_classes": positive(integer=True),
    }

    @property
    def small(self) -> bool:
        return self.resolution <= SMALL_INPUT


class Cost(Protocol):
    """A network's price (`nas.complexity.Complexity`)."""

    @property
    def mmacs(self) -> float: ...

    @property
    def mparams(self) -> float: ...


@dataclass
class Budget:
    """Caps per image: multiply-adds in millions (the papers' "FLOPs", hence the name `mflops`)
    and optionally parameters in millions."""

    mflops: float = 20.0
    mparams: Optional[float] = None

    RULES: ClassVar[dict[str, Rule]] = {"mflops": positive(), "mparams": positive(optional=True)}

    def violations(self, cost: Cost) -> dict[str, float]:
        """How far over each cap a network is; <= 0 is within it (Optuna's constraint convention)."""
        values = {"mmacs_over_budget": cost.mmacs - self.mflops}
        if self.mparams is not None:
            values["mparams_over_budget"] = cost.mparams - self.mparams
        return values

    def admits(self, cost: Cost) -> bool:
        return all(v <= 0 for v in self.violations(cost).values())

    def usage(self, cost: Cost) -> float:
        """The share of the budget a network uses: of its MACs cap, or of its parameter cap where
        that is the tighter one (<= 1 fits)."""
        shares = [cost.mmacs / self.mflops]
        if self.mparams is not None:
            shares.append(cost.mparams / self.mparams)
        return max(shares)
