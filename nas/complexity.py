"""Multiply-adds and parameters of an architecture, counted analytically from its spec.

MACs follow the papers' "FLOPs": one per multiply-add of every convolution and linear layer
(biases, BatchNorm, activations, pooling and additions are not counted). Params count every
trainable tensor, BatchNorm included. The count takes microseconds, so a search can price
thousands of samples before building any of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from search_spaces import Arch, Sandglass, SandglassStage, ShuffleStage, ShuffleUnit

__all__ = ["Complexity", "complexity"]


@dataclass(frozen=True)
class Complexity:
    """MACs and parameters of a network at one input size, with a per-part breakdown."""

    macs: int
    params: int
    input_size: tuple[int, int, int]
    parts: tuple[tuple[str, int], ...] = ()  # (part name, MACs): stem, stage0.., head

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6

    @property
    def mparams(self) -> float:
        return self.params / 1e6


class _Counter:
    """Accumulates conv/linear layers at a running spatial size."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.channels, self.height, self.width = channels, height, width
        self.macs = self.params = 0

    def conv(self, out: int, kernel: int, *, stride: int = 1, groups: int = 1, src: int | None = None) -> None:
        """A bias-free conv + BatchNorm from `src` channels (default: the running width)."""
        cin = self.channels if src is None else src
        self.height, self.width = math.ceil(self.height / stride), math.ceil(self.width / stride)
        weights = out * (cin // groups) * kernel * kernel
        self.macs += weights * self.height * self.width
        self.params += weights + 2 * out  # BatchNorm's scale and shift
        self.channels = out

    def pool(self, stride: int) -> None:
        self.height, self.width = math.ceil(self.height / stride), math.ceil(self.width / stride)


def _count_shuffle_unit(c: _Counter, cin: int, out: int, stride: int, stage: ShuffleStage, first: bool) -> None:
    bottleneck, branch = ShuffleUnit.widths(cin, out, stride)
    c.conv(bottleneck, 1, groups=1 if first else stage.groups, src=cin)
    c.conv(bottleneck, 3, stride=stride, groups=bottleneck)
    c.conv(branch, 1, groups=stage.groups)
    c.channels = out


def _count_sandglass(c: _Counter, cin: int, out: int, stride: int, stage: SandglassStage) -> None:
    hidden = Sandglass.hidden_width(cin, out, stage.reduction)
    dw_in, dw_out = Sandglass.depthwise_layers(cin, out, stride, stage.keep_3x3)
    if dw_in:
        c.conv(cin, 3, groups=cin, src=cin)
    c.conv(hidden, 1, src=cin)
    c.conv(out, 1)
    if dw_out:
        c.conv(out, 3, stride=stride, groups=out)


def count_arch(arch: Arch, input_size: Sequence[int] | None = None) -> Complexity:
    """Analytic MACs and params of `arch` for an input of `input_size` (C, H, W)."""
    if input_size is None:
        input_size = (arch.in_channels, arch.resolution, arch.resolution)
    if len(input_size) != 3 or any(int(v) < 1 for v in input_size):
        raise ValueError(f"input_size: expected (channels, height, width), got {tuple(input_size)}")
    channels, height, width = (int(v) for v in input_size)
    if channels != arch.in_channels:
        raise ValueError(f"input_size: {channels} channels, but the architecture takes {arch.in_channels}")
    c = _Counter(channels, height, width)
    parts = []
    c.conv(arch.stem.channels, 3, stride=arch.stem.stride)
    if arch.stem.pool:
        c.pool(2)
    parts.append(("stem", c.macs))
    for i, stage in enumerate(arch.stages):
        before = c.macs
        for j in range(stage.repeats):
            cin, stride = c.channels, stage.stride if j == 0 else 1
            if isinstance(stage, ShuffleStage):
                _count_shuffle_unit(c, cin, stage.out_channels, stride, stage, first=i == 0 and j == 0)
            else:
                _count_sandglass(c, cin, stage.out_channels, stride, stage)
        parts.append((f"stage{i}", c.macs - before))
    head_macs = c.channels * arch.num_classes
    parts.append(("head", head_macs))
    return Complexity(
        macs=c.macs + head_macs,
        params=c.params + head_macs + arch.num_classes,
        input_size=(channels, height, width),
        parts=tuple(parts),
    )


def complexity(arch_or_model: Arch | nn.Module, input_size: Sequence[int] | None = None) -> Complexity:
    """MACs and params of an `Arch` or of a model built from one.

    `input_size` is (C, H, W); it defaults to the spec's own input (`in_channels`, `resolution`).
    A module that was not built from an `Arch` is measured with ptflops' aten backend instead
    (which also counts the bias additions of linear layers).

    Example:
        >>> from search_spaces import reference
        >>> round(complexity(reference("shufflenet_v1_g3_1.0x")).mmacs, 1)
        137.5
    """
    if isinstance(arch_or_model, Arch):
        return count_arch(arch_or_model, input_size)
    arch = getattr(arch_or_model, "arch", None)
    if isinstance(arch, Arch):
        return count_arch(arch, input_size)
    if not isinstance(arch_or_model, nn.Module):
        raise TypeError(f"expected an Arch or an nn.Module, got {type(arch_or_model).__name__}")
    return _count_with_ptflops(arch_or_model, tuple(input_size or (3, 224, 224)))


def _count_with_ptflops(model: nn.Module, input_size: tuple[int, ...]) -> Complexity:
    from ptflops import get_model_complexity_info

    macs, params = get_model_complexity_info(
        model, input_size, as_strings=False, print_per_layer_stat=False, backend="aten"
    )
    return Complexity(macs=int(macs), params=int(params), input_size=input_size)  # type: ignore[arg-type]
