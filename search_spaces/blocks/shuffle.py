"""ShuffleNet v1 units (Zhang et al. 2018): the stage spec, the module and its count, the sampling.

One block type in one file, registered with the registry as `shuffle` (genotype code `shuf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import MAX_REPEATS, ArchError, check_choice, check_int
from ..layers import Count, conv_bn
from ..registry import BlockType, StageSampling, register_block

__all__ = ["GROUPS", "SHUFFLE", "SHUFFLE_SAMPLING", "ShuffleStage", "ShuffleUnit", "channel_shuffle"]

#: Group counts the spaces draw (ShuffleNet v1 Table 1's).
GROUPS = (1, 2, 3, 4, 8)


@dataclass(frozen=True)
class ShuffleStage:
    """`repeats` ShuffleNet v1 units (Zhang et al. 2018, Sec. 3.2); the first has `stride`.

    Bottleneck width is out_channels // 4 in every unit. A stride-2 unit concatenates an
    average-pooled shortcut, so its branch produces out_channels - in_channels channels.
    """

    out_channels: int
    repeats: int
    stride: int = 2
    groups: int = 3
    shuffle: bool = True

    block: ClassVar[str] = "shuffle"
    GENE: ClassVar[str] = "shuf"
    CODES: ClassVar[dict[str, str]] = {
        "out_channels": "c", "repeats": "n", "stride": "s", "groups": "g", "shuffle": "x",
    }

    def __post_init__(self) -> None:
        check_int("out_channels", self.out_channels, 1)
        check_int("repeats", self.repeats, 1, MAX_REPEATS)
        check_choice("stride", self.stride, (1, 2))
        check_int("groups", self.groups, 1)
        check_choice("shuffle", self.shuffle, (False, True))
        g, c = self.groups, self.out_channels
        if c % g or (c // 4) % g or c < 4:
            raise ArchError(
                "out_channels",
                f"{c} does not suit groups={g}: the grouped 1x1 convolutions need out_channels and "
                f"its bottleneck out_channels//4 divisible by groups (use a multiple of {4 * g})",
            )

    def unit_kwargs(self, index: int, *, first_in_network: bool) -> dict[str, Any]:
        """Keyword arguments of the stage's `index`-th ShuffleUnit besides widths and stride."""
        group_first = not (first_in_network and index == 0)
        return {"groups": self.groups, "shuffle": self.shuffle, "group_first": group_first}

    def check_input(self, in_channels: int, *, first_in_network: bool) -> None:
        """Raise ArchError unless a stage fed `in_channels` can be built."""
        g = self.groups
        if self.stride == 1 and in_channels != self.out_channels:
            raise ArchError(
                "stride",
                f"a stride-1 ShuffleNet unit adds its input, so in_channels ({in_channels}) must "
                f"equal out_channels ({self.out_channels}); use stride 2 to change width",
            )
        if self.stride == 2 and self.out_channels <= in_channels:
            raise ArchError(
                "out_channels",
                f"{self.out_channels} must exceed in_channels ({in_channels}): a stride-2 unit "
                "concatenates its input, so the branch produces out_channels - in_channels",
            )
        if not first_in_network and in_channels % g:
            raise ArchError(
                "groups",
                f"{g} does not divide in_channels={in_channels}, which the first grouped 1x1 "
                "convolution needs",
            )
        if self.stride == 2 and (self.out_channels - in_channels) % g:
            raise ArchError(
                "out_channels",
                f"out_channels - in_channels = {self.out_channels - in_channels} (the stride-2 "
                f"branch) must be divisible by groups={g}",
            )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape channels to (groups, C/groups), transpose, flatten (ShuffleNet v1, Sec. 3.1).

    A channels-last input is shuffled in that layout and stays in it: flattening it as NCHW
    copies it into the default layout, and the layers after it then mix the two (ShuffleNet v1
    trains 1.15x as fast on one CPU thread with the layout kept, bench/NOTES.md)."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups).transpose(3, 4)
        return nhwc.reshape(n, h, w, c).permute(0, 3, 1, 2)
    x = x.reshape(n, groups, c // groups, h, w)
    x = x.transpose(1, 2)
    return x.reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2b/2c).

    1x1 group conv -> BN -> ReLU -> channel shuffle -> 3x3 depthwise (stride) -> BN ->
    1x1 group conv -> BN, then: stride 1, add the input and ReLU; stride 2, concatenate a 3x3
    stride-2 average-pooled input and ReLU.
    """

    @staticmethod
    def widths(in_channels: int, out_channels: int, stride: int) -> tuple[int, int]:
        """(bottleneck, branch output): bottleneck = out/4 of the unit's full output (Sec. 3.3);
        a stride-2 unit's branch makes only the channels the concatenated shortcut lacks."""
        bottleneck = out_channels // 4
        branch = out_channels - in_channels if stride == 2 else out_channels
        return bottleneck, branch

    @staticmethod
    def count(
        in_channels: int,
        out_channels: int,
        height: int,
        width: int,
        *,
        stride: int,
        groups: int,
        shuffle: bool = True,
        group_first: bool = True,
    ) -> Count:
        """MACs and params of the unit built with the same arguments, for a `height` x `width` input."""
        bottleneck, branch = ShuffleUnit.widths(in_channels, out_channels, stride)
        count = Count(height, width)
        count.conv_bn(in_channels, bottleneck, 1, groups=groups if group_first else 1)
        count.conv_bn(bottleneck, bottleneck, 3, stride=stride, groups=bottleneck)
        count.conv_bn(bottleneck, branch, 1, groups=groups)
        return count

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        groups: int,
        shuffle: bool = True,
        group_first: bool = True,
    ) -> None:
        super().__init__()
        bottleneck, branch = self.widths(in_channels, out_channels, stride)
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"stride-1 unit needs in_channels == out_channels, got {in_channels} -> {out_channels}")
        if branch <= 0 or branch % groups or bottleneck % groups:
            raise ValueError(
                f"ShuffleUnit {in_channels}->{out_channels} (stride {stride}) cannot use groups={groups}: "
                f"bottleneck {bottleneck} and branch {branch} must be positive multiples of groups"
            )
        self.stride, self.groups, self.shuffle = stride, groups, shuffle and groups > 1
        # The network's first unit sees only the stem's few channels: its first 1x1 is not
        # grouped (Sec. 3.3, "we do not apply group convolution on the first pointwise layer").
        self.compress = conv_bn(in_channels, bottleneck, 1, groups=groups if group_first else 1, act="relu")
        self.depthwise = conv_bn(bottleneck, bottleneck, 3, stride=stride, groups=bottleneck)
        self.expand = conv_bn(bottleneck, branch, 1, groups=groups)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        # The BatchNorm that ends the residual branch (None when nothing is added to the input).
        self.residual_bn = self.expand[1] if stride == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.compress(x)
        if self.shuffle:
            out = channel_shuffle(out, self.groups)
        out = self.expand(self.depthwise(out))
        if self.shortcut is None:
            return F.relu(x + out)
        return F.relu(torch.cat([self.shortcut(x), out], dim=1))


def _suggest_shuffle(trial: Any, i: int) -> dict[str, Any]:
    groups = trial.suggest_categorical(f"s{i}_groups", GROUPS)
    # Shuffling a single group is the identity, so the switch only exists for g > 1.
    shuffle = trial.suggest_categorical(f"s{i}_shuffle", (True, False)) if groups > 1 else True
    return {"groups": groups, "shuffle": shuffle}


# Output widths: the unit's grouped 1x1 convolutions need 4g (its bottleneck is out/4), and a
# stride-2 unit concatenates its input, so its output must be wider than its input.
SHUFFLE_SAMPLING = StageSampling(_suggest_shuffle, lambda fields: 4 * fields["groups"], widens=True)

SHUFFLE = register_block(BlockType(ShuffleStage, ShuffleUnit, ShuffleUnit.count, SHUFFLE_SAMPLING))
