"""The block types, one module each: its stage spec, its module and count, its sampling, its entry.

The registry imports every module here on first use; a new block type is one new file.
"""

from __future__ import annotations

__all__ = ["BUILT_IN"]

# Imported (so registered) first and in this order: it is the order of the hybrid space's
# `s{i}_block` choices, so changing it changes what a resumed study samples.
BUILT_IN = ("shuffle", "sandglass")
