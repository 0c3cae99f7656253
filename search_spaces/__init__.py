"""Blocks, architecture specs and search spaces: ShuffleNet v1 units and MobileNeXt sandglass blocks.

Knows nothing of Optuna storage or training; spaces take any object with Optuna's `suggest_*`.
"""

from __future__ import annotations

from .block_types import SANDGLASS, SHUFFLE
from .blocks import BLOCKS, Count, Sandglass, ShuffleUnit, channel_shuffle
from .network import Network, build_network
from .references import mobilenext, reference, references, shufflenet_v1
from .registry import (
    BlockType,
    StageSampling,
    block_of,
    block_types,
    get_block,
    register_block,
    registered_block,
)
from .spaces import SPACES, DataShape, Space, Usage, get_space, register_space
from .spec import (
    STAGE_TYPES,
    Arch,
    ArchError,
    Head,
    SandglassStage,
    ShuffleStage,
    Stage,
    Stem,
    make_divisible,
)

__all__ = [
    "BLOCKS",
    "SANDGLASS",
    "SHUFFLE",
    "BlockType",
    "Count",
    "StageSampling",
    "block_of",
    "block_types",
    "get_block",
    "register_block",
    "registered_block",
    "SPACES",
    "DataShape",
    "Space",
    "Usage",
    "get_space",
    "register_space",
    "STAGE_TYPES",
    "Arch",
    "ArchError",
    "Head",
    "Network",
    "Sandglass",
    "SandglassStage",
    "ShuffleStage",
    "ShuffleUnit",
    "Stage",
    "Stem",
    "build_network",
    "channel_shuffle",
    "make_divisible",
    "mobilenext",
    "reference",
    "references",
    "shufflenet_v1",
]
