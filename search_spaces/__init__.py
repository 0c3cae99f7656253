"""Blocks, architecture specs and search spaces: ShuffleNet v1 units and MobileNeXt sandglass blocks.

Knows nothing of Optuna storage or training; spaces take any object with Optuna's `suggest_*`.

The constraints (`DataShape`, `Budget`) and `FieldError` are imported at once and need no torch:
they are also config schemas, which Hydra imports on every plugin discovery. Every other name is
imported from its own module on first use (PEP 562), so that `import search_spaces` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from .constraints import SMALL_INPUT, Budget, DataShape
from .fields import FieldError

# Where each lazily imported name lives. No module is named like a name here: importing a submodule
# binds it on the package, which would hide the name (hence `reference_nets`, not `references`).
_MODULES = {
    ".blocks.sandglass": ("SANDGLASS", "Sandglass", "SandglassStage"),
    ".blocks.shuffle": ("SHUFFLE", "ShuffleStage", "ShuffleUnit", "channel_shuffle"),
    ".checks": ("ArchError", "make_divisible"),
    ".layers": ("Count",),
    ".network": ("Network", "build_network"),
    ".reference_nets": ("mobilenext", "reference", "references", "shufflenet_v1"),
    ".registry": ("BLOCKS", "STAGE_TYPES", "BlockType", "StageSampling", "block_of", "block_types",
                  "get_block", "register_block", "registered_block"),
    ".spaces": ("SPACES", "Space", "Usage", "get_space", "register_space"),
    ".spec": ("Arch", "Head", "Stage", "Stem"),
}
_SOURCE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = ["SMALL_INPUT", "Budget", "DataShape", "FieldError", *_SOURCE]


def __getattr__(name: str) -> Any:
    if name not in _SOURCE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
