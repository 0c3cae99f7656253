"""The search engine: complexity, proxy training, Optuna studies, Pareto fronts and export.

The public API is re-exported here; submodules are implementation.
"""

from __future__ import annotations

from search_spaces import Arch, ArchError, Network

from .complexity import Complexity, complexity
from .export import load_model
from .model import build_model

__all__ = ["Arch", "ArchError", "Complexity", "Network", "build_model", "complexity", "load_model"]
