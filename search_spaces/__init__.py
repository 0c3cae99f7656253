"""Blocks, architecture specs and search spaces: ShuffleNet v1 units and MobileNeXt sandglass blocks.

Knows nothing of Optuna storage or training; spaces take any object with Optuna's `suggest_*`.

The constraints (`DataShape`, `Budget`) are imported at once and need no torch: they are also
config schemas, which Hydra imports on every plugin discovery. Everything else is imported, all
together, on first use (blocks, specs and spaces register their block types as they load).
"""

from __future__ import annotations

import importlib
from typing import Any

from .constraints import SMALL_INPUT, Budget, DataShape

_MODULES = {
    ".block_types": ("SANDGLASS", "SHUFFLE"),
    ".blocks": ("BLOCKS", "Count", "Sandglass", "ShuffleUnit", "channel_shuffle"),
    ".network": ("Network", "build_network"),
    ".references": ("mobilenext", "reference", "references", "shufflenet_v1"),
    ".registry": ("BlockType", "StageSampling", "block_of", "block_types", "get_block", "register_block",
                  "registered_block"),
    ".spaces": ("SPACES", "Space", "Usage", "get_space", "register_space"),
    ".spec": ("STAGE_TYPES", "Arch", "ArchError", "Head", "SandglassStage", "ShuffleStage", "Stage", "Stem",
              "make_divisible"),
}

__all__ = ["SMALL_INPUT", "Budget", "DataShape", *(name for names in _MODULES.values() for name in names)]


def __getattr__(name: str) -> Any:
    if not any(name in names for names in _MODULES.values()):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module, names in _MODULES.items():
        loaded = importlib.import_module(module, __name__)
        globals().update({n: getattr(loaded, n) for n in names})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
