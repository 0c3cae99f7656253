"""The one table of block types: each entry ties a YAML/genotype name to its stage spec, its module,
its analytic count and (optionally) how the hybrid space draws it.

Parsing (`spec`), building (`network`), sampling (`spaces`) and counting (`nas.complexity`) all
read this table, so adding a block type is one `register_block` call beside its classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import Count

__all__ = [
    "BLOCKS",
    "SAMPLED_BLOCKS",
    "STAGE_TYPES",
    "BlockType",
    "StageSampling",
    "block_of",
    "block_types",
    "get_block",
    "register_block",
    "registered_block",
    "sampled_blocks",
]

#: Genotype tokens that are not stages; a stage gene may not take them.
_RESERVED_GENES = ("in", "stem", "head")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_GENE = re.compile(r"[a-z][a-z0-9]*")  # no "_": the genotype splits a token's fields on it


@dataclass(frozen=True)
class StageSampling:
    """How the hybrid space draws a stage of this block type (ShuffleNet v1's three-stage layout).

    `suggest(trial, i)` draws the structural fields of stage `i` (with stable parameter names such
    as `s{i}_groups`) as keyword arguments of the stage spec; `width_multiple(fields)` is what the
    stage's output width must be a multiple of; `widens` says a stride-2 block concatenates its
    input, so its output must be wider than its input.
    """

    suggest: Callable[[Any, int], dict[str, Any]]
    width_multiple: Callable[[Mapping[str, Any]], int]
    widens: bool = False


@dataclass(frozen=True)
class BlockType:
    """One block type. Its name and genotype code are the stage spec's `block` and `GENE`.

    `stage` is a frozen dataclass taking `out_channels, repeats, stride` and its own fields, with
    class attributes `block`, `GENE`, `CODES` and methods `unit_kwargs(index, first_in_network=...)`
    and `check_input(in_channels, first_in_network=...)`. `module(in_channels, out_channels,
    stride=..., **unit_kwargs)` builds one block; `count(in_channels, out_channels, height, width,
    stride=..., **unit_kwargs)` returns the same block's `Count` (MACs, params, output size).
    """

    stage: type
    module: type
    count: Callable[..., Count]
    sampling: StageSampling | None = None  # None: the spaces never draw this block type

    def __post_init__(self) -> None:
        if not (isinstance(self.stage, type) and is_dataclass(self.stage)):
            raise ValueError(f"stage: expected a dataclass type, got {self.stage!r}")
        for attr in ("block", "GENE", "CODES", "unit_kwargs", "check_input"):
            if not hasattr(self.stage, attr):
                raise ValueError(f"stage: {self.stage.__name__} lacks {attr!r}")
        name, gene = self.stage.block, self.stage.GENE  # type: ignore[attr-defined]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"stage.block: {name!r} is not a lowercase name (allowed: {_NAME.pattern})")
        if not isinstance(gene, str) or not _GENE.fullmatch(gene) or gene in _RESERVED_GENES:
            raise ValueError(
                f"stage.GENE: {gene!r} is not allowed (lowercase letters and digits, "
                f"not one of {', '.join(_RESERVED_GENES)})"
            )
        if not isinstance(self.module, type):
            raise ValueError(f"module: expected a class, got {self.module!r}")
        if not callable(self.count):
            raise ValueError(f"count: expected a function, got {self.count!r}")

    @property
    def name(self) -> str:
        """The YAML `block:` name."""
        return str(self.stage.block)  # type: ignore[attr-defined]

    @property
    def gene(self) -> str:
        """The genotype token's leading code."""
        return str(self.stage.GENE)  # type: ignore[attr-defined]


_TABLE: dict[str, BlockType] = {}


def register_block(entry: BlockType) -> BlockType:
    """Add a block type; a name, a genotype code or a stage spec can be registered once."""
    if entry.name in _TABLE:
        raise ValueError(f"block: {entry.name!r} is already registered")
    for other in _TABLE.values():
        if other.gene == entry.gene:
            raise ValueError(f"stage.GENE: {entry.gene!r} is already the code of block {other.name!r}")
        if other.stage is entry.stage:
            raise ValueError(f"stage: {entry.stage.__name__} is already the stage of block {other.name!r}")
    _TABLE[entry.name] = entry
    return entry


@contextmanager
def registered_block(entry: BlockType) -> Iterator[BlockType]:
    """Register `entry` for the duration of a `with` block (tests, experiments), then remove it."""
    register_block(entry)
    try:
        yield entry
    finally:
        del _TABLE[entry.name]


def block_types() -> tuple[BlockType, ...]:
    """Every registered block type, in registration order."""
    return tuple(_TABLE.values())


def get_block(name: str) -> BlockType:
    if name not in _TABLE:
        raise KeyError(f"block: unknown block type {name!r} (allowed: {', '.join(_TABLE)})")
    return _TABLE[name]


def block_of(stage: Any) -> BlockType:
    """The block type of a stage spec instance."""
    for entry in _TABLE.values():
        if type(stage) is entry.stage:
            return entry
    raise TypeError(f"stage: {type(stage).__name__} is not a registered stage type")


def sampled_blocks() -> tuple[str, ...]:
    """Names of the block types the spaces can draw, in registration order."""
    return tuple(name for name, entry in _TABLE.items() if entry.sampling is not None)


class _View(Mapping[str, Any]):
    """A read-only, always current name -> attribute view of the table."""

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def __getitem__(self, name: str) -> Any:
        return getattr(_TABLE[name], self._attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_TABLE))

    def __len__(self) -> int:
        return len(_TABLE)

    def __repr__(self) -> str:
        return repr(dict(self))


class _Names(Sequence[str]):
    """A read-only, always current sequence of `sampled_blocks()`."""

    def __getitem__(self, index: Any) -> Any:
        return sampled_blocks()[index]

    def __len__(self) -> int:
        return len(sampled_blocks())

    def __repr__(self) -> str:
        return repr(sampled_blocks())


#: Stage spec types by `block:` name (a view of the table).
STAGE_TYPES: Mapping[str, type] = _View("stage")
#: Block modules by `block:` name (a view of the table).
BLOCKS: Mapping[str, type] = _View("module")
#: Block names the hybrid space chooses from (a view of the table).
SAMPLED_BLOCKS: Sequence[str] = _Names()
