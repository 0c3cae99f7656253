"""The building blocks of the search space: ShuffleNet v1 units and MobileNeXt sandglass blocks.

Each block states its channel arithmetic in the papers' terms and counts its own MACs and params
(`count`) from the same static width helpers, so the counter and the module cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import BLOCKS
from .spec import make_divisible

__all__ = ["BLOCKS", "Count", "Sandglass", "ShuffleUnit", "channel_shuffle", "conv_bn"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape channels to (groups, C/groups), transpose, flatten (ShuffleNet v1, Sec. 3.1)."""
    n, c, h, w = x.shape
    x = x.reshape(n, groups, c // groups, h, w)
    x = x.transpose(1, 2)
    return x.reshape(n, c, h, w)


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    act: str | None = None,
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding) -> BatchNorm -> optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2,
            groups=groups, bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if act is not None:
        layers.append(ACTIVATIONS[act](inplace=True))
    return nn.Sequential(*layers)


@dataclass
class Count:
    """MACs and params of `conv_bn` layers, accumulated at a running spatial size.

    MACs follow the papers' "FLOPs": one per multiply-add of a convolution (BatchNorm, activations,
    pooling and additions are free); params count the weights and BatchNorm's scale and shift.
    """

    height: int
    width: int
    macs: int = 0
    params: int = 0

    def conv_bn(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1
    ) -> None:
        """What `conv_bn` with the same arguments adds, at the running size (then strided)."""
        self.downsample(stride)
        weights = out_channels * (in_channels // groups) * kernel_size * kernel_size
        self.macs += weights * self.height * self.width
        self.params += weights + 2 * out_channels

    def downsample(self, stride: int) -> None:
        # A 3x3 kernel with padding 1 (or a 1x1 kernel) maps H to ceil(H / stride).
        self.height, self.width = -(-self.height // stride), -(-self.width // stride)

    def add(self, other: Count) -> None:
        """Append a block counted from this one's running size: sum, and take its output size."""
        self.macs += other.macs
        self.params += other.params
        self.height, self.width = other.height, other.width


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

