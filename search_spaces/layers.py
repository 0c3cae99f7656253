"""Layers every block is made of: `conv_bn` and its analytic twin `Count`, and the activations.

A block builds itself from `conv_bn` and counts itself with `Count.conv_bn` on the same arguments,
so the counter and the module cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "Count", "DepthwiseConv2d", "conv_bn"]

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
    conv: nn.Conv2d
    if groups == in_channels == out_channels and kernel_size > 1:
        conv = DepthwiseConv2d(out_channels, kernel_size, stride)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                         bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_channels)]
    if act is not None:
        layers.append(ACTIVATIONS[act](inplace=True))
    return nn.Sequential(*layers)


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution (a filter per channel, no bias, 'same' padding): an `nn.Conv2d`
    with the same parameters and function, which trains faster on the CPU on maps smaller than
    its kernel (a 3x3 kernel on the 2x2 maps of MobileNeXt's last stages).

    PyTorch's CPU kernel for the weight gradient of such a map takes 20-100x its forward time (a
    2x2 map of 1,280 channels, batch 32: 23 ms against 0.2 ms on one core); summed kernel tap by
    kernel tap it takes under 1 ms. Everywhere else (a GPU, larger maps, evaluation) this is
    `nn.Conv2d`'s own forward and backward."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(channels, channels, kernel_size, stride, kernel_size // 2, groups=channels,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = x.shape[-2] < self.kernel_size[0] or x.shape[-1] < self.kernel_size[1]
        if small and self.training and x.device.type == "cpu" and torch.is_grad_enabled():
            return _SmallMapDepthwise.apply(x, self.weight, self.stride, self.padding)
        return super().forward(x)


class _SmallMapDepthwise(torch.autograd.Function):
    """Depthwise convolution whose weight gradient is a sum over the kernel's taps."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad, ctx.stride, ctx.padding,
                                                groups=x.shape[1])
        if ctx.needs_input_grad[1]:
            # d out[n, c, y, x] / d w[c, i, j] = padded x[n, c, y * sh + i, x * sw + j]
            padded = F.pad(x, (pw, pw, ph, ph))
            (kh, kw), (ho, wo) = weight.shape[-2:], grad.shape[-2:]
            taps = [(grad * padded[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw])
                    .sum((0, 2, 3)) for i in range(kh) for j in range(kw)]
            grad_w = torch.stack(taps, 1).view_as(weight)
        return grad_x, grad_w, None, None


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
