"""A third block type in one file, as a module of `search_spaces/blocks/` is: plain 3x3 conv-BN-ReLU.

Its stage spec, module, count, sampling and registry entry; the tests register it for one test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from search_spaces.layers import Count, conv_bn
from search_spaces.registry import BlockType, StageSampling

__all__ = ["TOY", "TOY_SAMPLING", "ToyBlock", "ToyStage"]


@dataclass(frozen=True)
class ToyStage:
    """`repeats` plain 3x3 conv -> BN -> ReLU blocks; the first has `stride`."""

    out_channels: int
    repeats: int
    stride: int = 1

    block: ClassVar[str] = "toy"
    GENE: ClassVar[str] = "toy"
    CODES: ClassVar[dict[str, str]] = {"out_channels": "c", "repeats": "n", "stride": "s"}

    def unit_kwargs(self, index: int, *, first_in_network: bool) -> dict[str, Any]:
        return {}

    def check_input(self, in_channels: int, *, first_in_network: bool) -> None:
        pass


class ToyBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.body = conv_bn(in_channels, out_channels, 3, stride=stride, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @staticmethod
    def count(in_channels: int, out_channels: int, height: int, width: int, *, stride: int) -> Count:
        count = Count(height, width)
        count.conv_bn(in_channels, out_channels, 3, stride=stride)
        return count


# Nothing to draw but the widths, which the hybrid space snaps to multiples of 8.
TOY_SAMPLING = StageSampling(lambda trial, i: {}, lambda fields: 8)

# A file in search_spaces/blocks/ would end `TOY = register_block(BlockType(...))` and so register on
# import; this one lives outside, so that each test registers it (`registered_block(TOY)`) and only
# for as long as it runs, and the other tests see the built-in block types alone.
TOY = BlockType(ToyStage, ToyBlock, ToyBlock.count, TOY_SAMPLING)
