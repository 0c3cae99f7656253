"""The block types this package ships, one registry entry each.

A new block type is its stage spec, its module with a `count`, and one `register_block` line here.
"""

from __future__ import annotations

from .blocks import Sandglass, ShuffleUnit
from .registry import BlockType, register_block
from .spaces import SANDGLASS_SAMPLING, SHUFFLE_SAMPLING
from .spec import SandglassStage, ShuffleStage

__all__ = ["SANDGLASS", "SHUFFLE"]

# Registration order is the order of the hybrid space's `s{i}_block` choices: keep it stable.
SHUFFLE = register_block(BlockType(ShuffleStage, ShuffleUnit, ShuffleUnit.count, SHUFFLE_SAMPLING))
SANDGLASS = register_block(BlockType(SandglassStage, Sandglass, Sandglass.count, SANDGLASS_SAMPLING))
