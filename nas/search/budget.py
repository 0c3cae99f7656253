"""The budget: caps on MACs and parameters, the share of them an architecture uses, and a
probe of how much of a space fits before a search starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import Budget, DataShape, Space, Usage

from ..complexity import complexity
from ..errors import ConfigError

__all__ = ["RandomSuggests", "budget_usage", "probe_budget"]


class RandomSuggests:
    """A throwaway trial drawing uniformly from a space's choices (for probing, not searching).

    With `smallest=True` every number takes its lower bound (the spaces grow with width and
    depth) and only the categorical choices vary: a cheap way to find the space's small end.
    """

    def __init__(self, seed: int, *, smallest: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.smallest = smallest

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if self.smallest:
            return low
        return int(self.rng.integers(0, (high - low) // step + 1)) * step + low

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if self.smallest:
            return low
        if step is None:
            return float(self.rng.uniform(low, high))
        return low + step * int(self.rng.integers(0, round((high - low) / step) + 1))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[int(self.rng.integers(0, len(choices)))]


def budget_usage(budget: Budget) -> Usage:
    """What a budget-aware space draws its sizes with: the share of `budget` an architecture uses."""
    return lambda arch: budget.usage(complexity(arch))


def probe_budget(space: Space, shape: DataShape, budget: Budget, samples: int, seed: int,
                 budget_aware: bool = True) -> dict[str, float]:
    """Price random samples of the space (drawn as the search draws them); refuse a budget that
    none of them fits."""
    rng, small = RandomSuggests(seed), RandomSuggests(seed, smallest=True)
    usage = budget_usage(budget) if budget_aware else None
    costs = [complexity(space(rng, shape, usage)) for _ in range(samples)]
    small_end = [complexity(space(small, shape)) for _ in range(samples)]
    feasible = sum(budget.admits(c) for c in costs)
    mmacs = sorted(c.mmacs for c in costs)
    smallest = min(c.mmacs for c in small_end + costs)
    summary = {"feasible": feasible / samples, "smallest": smallest, "median": mmacs[len(mmacs) // 2]}
    if not any(budget.admits(c) for c in small_end + costs):
        smallest_params = min(c.mparams for c in small_end + costs)
        field_name = "budget.mflops" if budget.mflops < smallest else "budget.mparams"
        raise ConfigError(
            field_name,
            f"no architecture fits: {2 * samples} samples of this space at "
            f"{shape.resolution}x{shape.resolution} need at least {smallest:.2f} MMACs and "
            f"{smallest_params:.3f} M params (budget: {budget.mflops:g} MMACs"
            f"{'' if budget.mparams is None else f', {budget.mparams:g} M params'}); raise the budget",
        )
    return summary
