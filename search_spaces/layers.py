"""Layers every block is made of: `conv_bn` and its analytic twin `Count`, and the activations.

A block builds itself from `conv_bn` and counts itself with `Count.conv_bn` on the same arguments,
so the counter and the module cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ACTIVATIONS", "Count", "conv_bn"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


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
