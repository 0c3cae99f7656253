"""Building networks from specs."""

from __future__ import annotations

from search_spaces import Arch, Network

__all__ = ["build_model"]


def build_model(arch: Arch) -> Network:
    """The `nn.Module` that `arch` describes, freshly initialised."""
    if not isinstance(arch, Arch):
        raise TypeError(f"build_model expects an Arch, got {type(arch).__name__}")
    return Network(arch)
