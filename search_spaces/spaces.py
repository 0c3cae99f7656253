"""Search spaces: functions from an Optuna-style trial to an `Arch`, defined by run.

Parameter names are stable (`s{i}_block`, `s{i}_groups`, `width_frac`, ...) so that studies can be
resumed and compared. A space takes any object with `suggest_int/float/categorical`; it never
imports Optuna, and it snaps widths so that every sample is a valid network.

Budget-aware sampling: a space draws the structure first (block types, groups, ratios), then how
much of the budget to use, `budget_frac`: a target between the structure's smallest network and the
whole budget. Then each size (depths, then widths) is drawn as a fraction `<name>_frac` in [0, 1] of
the values that still meet the target with every later size at its smallest. Multiply-adds and
parameters grow with every size, so the largest value that fits is found by bisection; every
architecture under the budget stays reachable, sizes spread over the whole range up to the budget,
and the samplers see the same distribution (a fraction in [0, 1]) in every trial. Without a budget
the fractions span the whole ranges: the plain space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .blocks.sandglass import SANDGLASS_SAMPLING, SandglassStage
from .checks import make_divisible
from .constraints import DataShape
from .reference_nets import MOBILENEXT_STAGES, SHUFFLENET_STAGE2
from .registry import SAMPLED_BLOCKS, StageSampling, get_block
from .spec import Arch, Stage, Stem

__all__ = [
    "SPACES",
    "DataShape",
    "Size",
    "Space",
    "Suggests",
    "Usage",
    "draw_sizes",
    "get_space",
    "register_space",
]

#: The block types the hybrid space chooses from: every registered block with a `sampling`.
BLOCK_TYPES = SAMPLED_BLOCKS
# Units per stage, ShuffleNet v1 layout (Table 1 uses 4, 8, 4).
SHUFFLE_DEPTHS = ((1, 6), (1, 10), (1, 6))
# Stem width divisible by every group count the spaces draw (blocks/shuffle.py GROUPS), so any first
# stage fits it.
STEM_CHANNELS = 24


class Suggests(Protocol):
    """The part of `optuna.Trial` a space uses."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


Usage = Callable[[Arch], float]  # the share of the budget an architecture uses (<= 1 fits)
Space = Callable[..., Arch]  # space(trial, shape, usage=None) -> Arch
SPACES: dict[str, Space] = {}


def register_space(name: str) -> Callable[[Space], Space]:
    """Add a space to `SPACES` under `name`; a name can be registered once."""

    def add(fn: Space) -> Space:
        if name in SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        SPACES[name] = fn
        return fn

    return add


def get_space(name: str) -> Space:
    if name not in SPACES:
        raise KeyError(f"space: unknown search space {name!r} (allowed: {', '.join(sorted(SPACES))})")
    return SPACES[name]


# -- sizes drawn within the budget ----------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """A number that grows the network: `low`, `low + step`, ..., `high`."""

    name: str
    low: float
    high: float
    step: float

    def grid(self) -> list[float]:
        count = round((self.high - self.low) / self.step) + 1
        return [self.low + i * self.step for i in range(count)]


def draw_sizes(trial: Suggests, sizes: Sequence[Size], build: Callable[[dict[str, float]], Arch],
               usage: Usage | None) -> dict[str, float]:
    """Each size in order, as a fraction of the grid values that still meet the target (see the
    module text). `build(values)` makes the architecture for one value per size.

    When even the smallest network of this structure is over the budget, every size stays at its
    smallest and the caller's budget check rejects the sample.
    """
    values = {size.name: size.low for size in sizes}
    fits: Callable[[Arch], bool] | None = None
    if usage is not None:
        floor = usage(build(values))
        share = trial.suggest_float("budget_frac", 0.0, 1.0)
        target = 1.0 if share >= 1.0 else floor + share * max(0.0, 1.0 - floor)
        fits = lambda arch: usage(arch) <= target  # noqa: E731
    feasible = fits is None or fits(build(values))
    for size in sizes:
        grid = size.grid()
        top = len(grid) - 1
        if fits is not None:
            top = _last_fitting(grid, lambda v: fits(build({**values, size.name: v}))) if feasible else 0
        frac = trial.suggest_float(f"{size.name}_frac", 0.0, 1.0)
        # floor(frac * (top + 1)): each of the top + 1 values gets an equal share of [0, 1].
        values[size.name] = grid[min(top, int(frac * (top + 1)))]
    return values


def _last_fitting(grid: list[float], fits: Callable[[float], bool]) -> int:
    """Index of the largest grid value that fits, given that the first one does (bisection)."""
    lo, hi = 0, len(grid) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(grid[mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


# -- shared pieces -------------------------------------------------------------------------------


def _stem(shape: DataShape, channels: int, *, act: str = "relu", pool: bool = True) -> Stem:
    """Stride 1 and no pool for small images; at ImageNet size stride 2 (and the paper's pool)."""
    if shape.small:
        return Stem(channels, stride=1, pool=False, act=act)
    return Stem(channels, stride=2, pool=pool, act=act)


def _snap(value: float, multiple: int, above: int | None) -> int:
    """`value` rounded to `multiple`; strictly above `above` when a concatenating unit needs it."""
    width = make_divisible(value, multiple)
    if above is not None and width <= above:
        width = (above // multiple + 1) * multiple
    return width


def _downsampling_stages(trial: Suggests, shape: DataShape, blocks: list[str], usage: Usage | None) -> Arch:
    """Three stride-2 stages (ShuffleNet v1's layout) of the given block types."""
    types = [get_block(block) for block in blocks]
    samplings: list[StageSampling] = []
    for entry in types:
        if entry.sampling is None:
            raise ValueError(f"block: {entry.name!r} has no sampling, so a space cannot draw it")
        samplings.append(entry.sampling)
    params = [sampling.suggest(trial, i) for i, sampling in enumerate(samplings)]

    def build(v: dict[str, float]) -> Arch:
        stages: list[Stage] = []
        channels = STEM_CHANNELS
        for i, (entry, sampling) in enumerate(zip(types, samplings)):
            # Table 1's stage-2 width for the stage's group count; blocks without groups take g=3's.
            base = SHUFFLENET_STAGE2[params[i].get("groups", 3)] * 2**i
            # The width also suits the next stage's grouped first 1x1 convolution.
            next_groups = params[i + 1].get("groups", 1) if i + 1 < len(blocks) else 1
            out = _snap(
                base * v["width"] * v[f"s{i}_width"],
                math.lcm(sampling.width_multiple(params[i]), next_groups),
                above=channels if sampling.widens else None,
            )
            stages.append(entry.stage(out, int(v[f"s{i}_depth"]), stride=2, **params[i]))
            channels = out
        return Arch(
            stem=_stem(shape, STEM_CHANNELS),
            stages=tuple(stages),
            num_classes=shape.num_classes,
            in_channels=shape.in_channels,
            resolution=shape.resolution,
        )

    # Structure above, then depths, then the overall width and each stage's share of it.
    sizes = [Size(f"s{i}_depth", *SHUFFLE_DEPTHS[i], 1) for i in range(len(blocks))]
    sizes += [Size("width", 0.25, 2.0, 0.25)] + [Size(f"s{i}_width", 0.5, 1.5, 0.25) for i in range(len(blocks))]
    return build(draw_sizes(trial, sizes, build, usage))


# -- the spaces ----------------------------------------------------------------------------------


@register_space("shufflenet")
def shufflenet(trial: Suggests, shape: DataShape, usage: Usage | None = None) -> Arch:
    """ShuffleNet v1 layout: three stride-2 stages of units; per stage groups, shuffle on/off,
    width and depth, plus an overall width scale."""
    return _downsampling_stages(trial, shape, ["shuffle"] * 3, usage)


@register_space("hybrid")
def hybrid(trial: Suggests, shape: DataShape, usage: Usage | None = None) -> Arch:
    """ShuffleNet v1's three-stage layout with the block type chosen per stage."""
    blocks = [trial.suggest_categorical(f"s{i}_block", tuple(BLOCK_TYPES)) for i in range(3)]
    return _downsampling_stages(trial, shape, blocks, usage)


@register_space("mobilenext")
def mobilenext(trial: Suggests, shape: DataShape, usage: Usage | None = None) -> Arch:
    """MobileNeXt's eight-stage layout (mnext.py); per stage reduction ratio t, identity tensor
    multiplier, width and depth (up to one more block than the paper), plus overall width."""
    params = [SANDGLASS_SAMPLING.suggest(trial, i) for i in range(len(MOBILENEXT_STAGES))]

    def build(v: dict[str, float]) -> Arch:
        width = v["width"]
        stages = [
            SandglassStage(make_divisible(c * width * v[f"s{i}_width"], 8), int(v[f"s{i}_depth"]), stride=s,
                           **params[i])
            for i, (_, c, _, s) in enumerate(MOBILENEXT_STAGES)
        ]
        return Arch(
            stem=_stem(shape, make_divisible(32 * width, 8), act="relu6", pool=False),
            stages=tuple(stages),
            num_classes=shape.num_classes,
            in_channels=shape.in_channels,
            resolution=shape.resolution,
        )

    sizes = [Size(f"s{i}_depth", 1, n + 1, 1) for i, (_, _, n, _) in enumerate(MOBILENEXT_STAGES)]
    sizes += [Size("width", 0.25, 1.5, 0.125)]
    sizes += [Size(f"s{i}_width", 0.5, 1.5, 0.25) for i in range(len(MOBILENEXT_STAGES))]
    return build(draw_sizes(trial, sizes, build, usage))
