"""Multiply-adds and parameters of an architecture, counted analytically from its spec.

MACs follow the papers' "FLOPs": one per multiply-add of every convolution and linear layer
(biases, BatchNorm, activations, pooling and additions are not counted). Params count every
trainable tensor, BatchNorm included. The count takes microseconds, so a search can price
thousands of samples before building any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from search_spaces import Arch, Count, block_of

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


def count_arch(arch: Arch, input_size: Sequence[int] | None = None) -> Complexity:
    """Analytic MACs and params of `arch` for an input of `input_size` (C, H, W).

    The stem and the head are counted here; every block counts itself (its registered `count`).
    """
    if input_size is None:
        input_size = (arch.in_channels, arch.resolution, arch.resolution)
    if len(input_size) != 3 or any(int(v) < 1 for v in input_size):
        raise ValueError(f"input_size: expected (channels, height, width), got {tuple(input_size)}")
    in_channels, height, width = (int(v) for v in input_size)
    if in_channels != arch.in_channels:
        raise ValueError(f"input_size: {in_channels} channels, but the architecture takes {arch.in_channels}")
    total = Count(height, width)
    parts = []
    total.conv_bn(in_channels, arch.stem.channels, 3, stride=arch.stem.stride)
    if arch.stem.pool:
        total.downsample(2)
    parts.append(("stem", total.macs))
    channels = arch.stem.channels
    for i, stage in enumerate(arch.stages):
        before = total.macs
        count_block = block_of(stage).count
        for j in range(stage.repeats):
            total.add(
                count_block(
                    channels,
                    stage.out_channels,
                    total.height,
                    total.width,
                    stride=stage.stride if j == 0 else 1,
                    **stage.unit_kwargs(j, first_in_network=i == 0),
                )
            )
            channels = stage.out_channels
        parts.append((f"stage{i}", total.macs - before))
    head_macs = channels * arch.num_classes
    parts.append(("head", head_macs))
    return Complexity(
        macs=total.macs + head_macs,
        params=total.params + head_macs + arch.num_classes,
        input_size=(in_channels, height, width),
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
