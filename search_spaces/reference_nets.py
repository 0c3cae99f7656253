"""The papers' networks as `Arch` specs: ShuffleNet v1 (Table 1) and MobileNeXt (mnext.py).

They anchor the counters to published numbers and mark familiar points on a search's plot.
"""

from __future__ import annotations

import math

from .blocks.sandglass import SandglassStage
from .blocks.shuffle import ShuffleStage
from .checks import make_divisible
from .constraints import SMALL_INPUT
from .spec import Arch, Head, Stem

__all__ = ["mobilenext", "reference", "references", "shufflenet_v1"]

SHUFFLENET_GROUPS = (1, 2, 3, 4, 8)
SHUFFLENET_SCALES = ("0.25", "0.5", "1.0", "1.5", "2.0")
# ShuffleNet v1 Table 1: output channels of stage 2 at 1x for each g (doubling in stages 3, 4).
SHUFFLENET_STAGE2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
SHUFFLENET_REPEATS = (4, 8, 4)
# Stem widths of the authors' released models (megvii ShuffleNet-Series) by scale.
SHUFFLENET_STEM = {"0.25": 6, "0.5": 12, "1.0": 24, "1.5": 24, "2.0": 48}

MOBILENEXT_WIDTHS = ("0.35", "0.5", "0.75", "1.0", "1.4")
# mnext.py stage list (t, c, n, s); the 960 stage repeats 3 times per the authors' erratum.
MOBILENEXT_STAGES = (
    (2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
    (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1),
)


def references() -> list[str]:
    """Names accepted by `reference`."""
    names = [f"shufflenet_v1_g{g}_{s}x" for g in SHUFFLENET_GROUPS for s in SHUFFLENET_SCALES]
    return names + [f"mobilenext_{w}" for w in MOBILENEXT_WIDTHS]


def reference(name: str, num_classes: int = 1000, in_channels: int = 3, resolution: int = 224) -> Arch:
    """The published network `name` (see `references()`).

    At resolutions up to 64 the stem is the small-image one (stride 1, no pool), as in the
    search spaces; at ImageNet size it is the paper's.
    """
    small = resolution <= SMALL_INPUT
    for g in SHUFFLENET_GROUPS:
        for s in SHUFFLENET_SCALES:
            if name == f"shufflenet_v1_g{g}_{s}x":
                return _shufflenet_v1(g, s, small).replace(
                    num_classes=num_classes, in_channels=in_channels, resolution=resolution
                )
    for w in MOBILENEXT_WIDTHS:
        if name == f"mobilenext_{w}":
            return _mobilenext(float(w), small).replace(
                num_classes=num_classes, in_channels=in_channels, resolution=resolution
            )
    raise KeyError(f"unknown reference network {name!r} (known: {', '.join(references())})")


def shufflenet_v1(groups: int, scale: float, num_classes: int = 1000, in_channels: int = 3,
                  resolution: int = 224) -> Arch:
    """ShuffleNet v1 with `groups` at any width scale (the published ones are 0.25x to 2x), e.g.
    scaled to a budget. The stem is the released models' at their scales and 24 x scale
    (at most 24) otherwise."""
    if groups not in SHUFFLENET_STAGE2:
        raise ValueError(f"groups must be one of {sorted(SHUFFLENET_STAGE2)}, not {groups}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale}")
    name = next((s for s in SHUFFLENET_SCALES if float(s) == scale), None)
    return _shufflenet_v1(groups, name or scale, resolution <= SMALL_INPUT).replace(
        num_classes=num_classes, in_channels=in_channels, resolution=resolution
    )


def mobilenext(width: float, num_classes: int = 1000, in_channels: int = 3, resolution: int = 224) -> Arch:
    """MobileNeXt at any width multiplier (the published ones are 0.35 to 1.4), e.g. scaled to a
    budget; the last stage stays at 1280 channels below 1.0, as in mnext.py."""
    if not width > 0:
        raise ValueError(f"width must be positive, not {width}")
    return _mobilenext(width, resolution <= SMALL_INPUT).replace(
        num_classes=num_classes, in_channels=in_channels, resolution=resolution
    )


def _shufflenet_v1(groups: int, scale: str | float, small: bool) -> Arch:
    # "ShuffleNet s x" scales every width by s; snapping stage 2 to a multiple of 4g keeps the
    # bottleneck (out/4) divisible by g, and later stages double it as in Table 1.
    width = make_divisible(SHUFFLENET_STAGE2[groups] * float(scale), 4 * groups)
    stem = SHUFFLENET_STEM[scale] if isinstance(scale, str) else 24 * min(scale, 1.0)
    stem_channels = max(1, math.ceil(stem / groups)) * groups
    stem = Stem(stem_channels, stride=1, pool=False) if small else Stem(stem_channels, stride=2, pool=True)
    stages = tuple(
        ShuffleStage(width * 2**i, repeats, stride=2, groups=groups)
        for i, repeats in enumerate(SHUFFLENET_REPEATS)
    )
    return Arch(stem=stem, stages=stages)


def _mobilenext(width: float, small: bool) -> Arch:
    stem = Stem(make_divisible(32 * width, 8), stride=1 if small else 2, act="relu6")
    stages = []
    for t, c, n, s in MOBILENEXT_STAGES:
        out = make_divisible(c * width, 8)
        if c == 1280 and width < 1:
            out = 1280  # mnext.py keeps the last stage at 1280 for narrow models
        # mnext.py keeps both depthwise layers in the t=2 stage and in single-block stride-1
        # stages; elsewhere a width-changing block drops them.
        keep = t == 2 or (n == 1 and s == 1)
        stages.append(SandglassStage(out, n, stride=s, reduction=t, keep_3x3=keep))
    return Arch(stem=stem, stages=tuple(stages), head=Head(dropout=0.2))
