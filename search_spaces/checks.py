"""What a spec value may be: `ArchError`, the field checks, the size limits and the width rounding.

A leaf (no torch) that the stage specs in `blocks/`, the spec in `spec.py` and the codecs share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .fields import FieldError, shown

__all__ = [
    "MAX_REPEATS",
    "MAX_STAGES",
    "ArchError",
    "check_choice",
    "check_float",
    "check_int",
    "check_stage_count",
    "make_divisible",
]

#: Units per stage and stages per network. Generous (ShuffleNet v1 and MobileNeXt use at most 8 and
#: 8; ResNet-152's deepest stage has 36 blocks), and they keep a typo such as `repeats: 1000000`
#: from building a network that fills the memory.
MAX_REPEATS = 64
MAX_STAGES = 32


class ArchError(FieldError):
    """An invalid architecture spec. `field` is the dotted path of the offending value."""


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never more than 10% below it.

    The rule of the MobileNet/MobileNeXt reference code (`_make_divisible`), used for every width.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchError(name, f"expected an integer, got {shown(value)}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ArchError(name, f"{shown(value)} is out of range (allowed: {allowed})")


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
        raise ArchError(name, f"{shown(value)} is not allowed (allowed: {', '.join(map(str, allowed))})")


def check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchError(name, f"expected a number, got {shown(value)}")
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ArchError(name, f"{value} is out of range (allowed: {bracket}{low}, {high}])")


def check_stage_count(count: int) -> None:
    # Checked before the stages are read, so that a runaway list costs nothing.
    if count > MAX_STAGES:
        raise ArchError("stages", f"{count} stages is too many (allowed: 1..{MAX_STAGES})")
