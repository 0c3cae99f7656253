"""MobileNeXt sandglass blocks (Zhou et al. 2020): the stage spec, the module and its count, the sampling.

One block type in one file, registered with the registry as `sandglass` (genotype code `sg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..checks import MAX_REPEATS, ArchError, check_choice, check_float, check_int, make_divisible
from ..layers import Count, conv_bn
from ..registry import BlockType, StageSampling, register_block

__all__ = ["IDENTITY_MULTS", "REDUCTIONS", "SANDGLASS", "SANDGLASS_SAMPLING", "Sandglass", "SandglassStage"]

#: Reduction ratios t and identity tensor multipliers the spaces draw.
REDUCTIONS = (2, 3, 4, 6, 8)
IDENTITY_MULTS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class SandglassStage:
    """`repeats` MobileNeXt sandglass blocks (Zhou et al. 2020, Sec. 3.2); the first has `stride`.

    hidden = in // reduction, clamped to at least ceil(out/6) rounded to 16 (the authors' mnext.py).
    `identity_mult` m adds the shortcut to the first round(C*m) channels only. With `keep_3x3`
    false, a block that changes width drops the depthwise layers as mnext.py does (the first one,
    and the last one too unless it strides).
    """

    out_channels: int
    repeats: int
    stride: int = 1
    reduction: int = 6
    identity_mult: float = 1.0
    keep_3x3: bool = True

    block: ClassVar[str] = "sandglass"
    GENE: ClassVar[str] = "sg"
    CODES: ClassVar[dict[str, str]] = {
        "out_channels": "c", "repeats": "n", "stride": "s", "reduction": "t",
        "identity_mult": "m", "keep_3x3": "k",
    }

    def __post_init__(self) -> None:
        check_int("out_channels", self.out_channels, 1)
        check_int("repeats", self.repeats, 1, MAX_REPEATS)
        check_choice("stride", self.stride, (1, 2))
        check_int("reduction", self.reduction, 1)
        check_float("identity_mult", self.identity_mult, 0.0, 1.0, low_open=True)
        check_choice("keep_3x3", self.keep_3x3, (False, True))
        object.__setattr__(self, "identity_mult", float(self.identity_mult))

    def unit_kwargs(self, index: int, *, first_in_network: bool) -> dict[str, Any]:
        """Keyword arguments of the stage's `index`-th Sandglass besides widths and stride."""
        return {"reduction": self.reduction, "identity_mult": self.identity_mult, "keep_3x3": self.keep_3x3}

    def check_input(self, in_channels: int, *, first_in_network: bool) -> None:
        if in_channels < self.reduction:
            raise ArchError(
                "reduction",
                f"{self.reduction} exceeds in_channels={in_channels}: the reduced width "
                "in_channels // reduction would be 0",
            )


class Sandglass(nn.Module):
    """MobileNeXt sandglass block (Zhou et al. 2020, Fig. 3b and Table 1).

    3x3 depthwise -> BN -> ReLU6 -> 1x1 reduce -> BN -> 1x1 expand -> BN -> ReLU6 ->
    3x3 depthwise (stride) -> BN, with an identity shortcut on the first round(C*m) channels
    when stride is 1 and the width does not change.
    """

    @staticmethod
    def hidden_width(in_channels: int, out_channels: int, reduction: int) -> int:
        """in // t, but never below out/6 (rounded up to 16), as in the authors' mnext.py."""
        hidden = in_channels // reduction
        if hidden < out_channels / 6.0:
            hidden = make_divisible(math.ceil(out_channels / 6.0), 16)
        return hidden

    @staticmethod
    def depthwise_layers(in_channels: int, out_channels: int, stride: int, keep_3x3: bool) -> tuple[bool, bool]:
        """Which of the two depthwise convolutions exist. mnext.py drops them in blocks that
        change width unless told to keep them: the first always, the last unless it strides."""
        if keep_3x3 or in_channels == out_channels:
            return True, True
        return False, stride == 2

    @staticmethod
    def identity_channels(in_channels: int, out_channels: int, stride: int, identity_mult: float) -> int:
        """Channels that receive the shortcut (0 when the block has none)."""
        if stride != 1 or in_channels != out_channels:
            return 0
        return round(in_channels * identity_mult)

    @staticmethod
    def count(
        in_channels: int,
        out_channels: int,
        height: int,
        width: int,
        *,
        stride: int,
        reduction: int,
        identity_mult: float = 1.0,
        keep_3x3: bool = True,
    ) -> Count:
        """MACs and params of the block built with the same arguments, for a `height` x `width` input."""
        hidden = Sandglass.hidden_width(in_channels, out_channels, reduction)
        dw_in, dw_out = Sandglass.depthwise_layers(in_channels, out_channels, stride, keep_3x3)
        count = Count(height, width)
        if dw_in:
            count.conv_bn(in_channels, in_channels, 3, groups=in_channels)
        count.conv_bn(in_channels, hidden, 1)
        count.conv_bn(hidden, out_channels, 1)
        if dw_out:
            count.conv_bn(out_channels, out_channels, 3, stride=stride, groups=out_channels)
        return count

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        reduction: int,
        identity_mult: float = 1.0,
        keep_3x3: bool = True,
    ) -> None:
        super().__init__()
        hidden = self.hidden_width(in_channels, out_channels, reduction)
        dw_in, dw_out = self.depthwise_layers(in_channels, out_channels, stride, keep_3x3)
        self.identity = self.identity_channels(in_channels, out_channels, stride, identity_mult)
        self.dw_in = conv_bn(in_channels, in_channels, 3, groups=in_channels, act="relu6") if dw_in else None
        self.reduce = conv_bn(in_channels, hidden, 1)  # linear: no activation at the narrow point
        self.expand = conv_bn(hidden, out_channels, 1, act="relu6")
        self.dw_out = (
            conv_bn(out_channels, out_channels, 3, stride=stride, groups=out_channels) if dw_out else None
        )
        last = self.dw_out if self.dw_out is not None else self.expand
        self.residual_bn = last[1] if self.identity else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.dw_in is None else self.dw_in(x)
        out = self.expand(self.reduce(out))
        if self.dw_out is not None:
            out = self.dw_out(out)
        if not self.identity:
            return out
        k = self.identity
        if k == out.shape[1]:
            return out + x
        return torch.cat([out[:, :k] + x[:, :k], out[:, k:]], dim=1)


def _suggest_sandglass(trial: Any, i: int) -> dict[str, Any]:
    return {
        "reduction": trial.suggest_categorical(f"s{i}_t", REDUCTIONS),
        "identity_mult": trial.suggest_categorical(f"s{i}_idm", IDENTITY_MULTS),
    }


# Output widths are multiples of 8, as in mnext.py.
SANDGLASS_SAMPLING = StageSampling(_suggest_sandglass, lambda fields: 8)

SANDGLASS = register_block(BlockType(SandglassStage, Sandglass, Sandglass.count, SANDGLASS_SAMPLING))
