"""The search engine, by stage: `nas.data` → `nas.training` → `nas.search` → `nas.results` →
`nas.apps` (entry points), over the shared leaves (`errors`, `attrs`, `complexity`, `model`, ...).

The public API is re-exported here; the rest loads on first use.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from . import search
from .apps import api as _api
from .apps.api import load_study  # noqa: F401 (exported)

# Imported at once: the function must shadow its own module's name, `nas.complexity`.
from .complexity import Complexity, complexity  # noqa: F401 (exported)


class _SearchPackage(types.ModuleType):
    """`nas.search` is the engine's package and, called, the Python API's search
    (`nas.apps.api.search`): `nas.search("budget.mflops=5", data=(x, y))`. Its modules import as
    any package's do (`import nas.search.study`)."""

    __call__ = staticmethod(_api.search)


search.__class__ = _SearchPackage

_EXPORTS = {"Arch": "search_spaces", "ArchError": "search_spaces", "Network": "search_spaces",
            "build_model": "nas.model", "load_model": "nas.results", "latency": "nas.timing",
            "Latency": "nas.timing", "SearchResult": "nas.apps", "ConfigError": "nas.errors", "DataError": "nas.errors"}

__all__ = sorted(["Complexity", "complexity", "load_study", "search", *_EXPORTS])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
