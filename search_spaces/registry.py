"""The one table of block types: each entry ties a YAML/genotype name to its stage spec, its module,
its analytic count and (optionally) how the hybrid space draws it.

Parsing (`spec`), building (`network`), sampling (`spaces`) and counting (`nas.complexity`) all
read this table. It fills itself: its first reader imports every module of `search_spaces.blocks`
(the built-in ones first, in `BUILT_IN` order), and each registers its block type, so adding a block
type is one new file there. The registry never imports a block module by name, so they may import it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .layers import Count

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
_BLOCKS_PACKAGE = f"{__package__}.blocks"
_loading = False  # set once the block modules are (being) imported


def _table() -> dict[str, BlockType]:
    """The table, with every module of `search_spaces.blocks` imported (so registered) first."""
    global _loading
    if not _loading:
        _loading = True  # first: each block module registers, which reads the table, while it loads
        try:
            package = importlib.import_module(_BLOCKS_PACKAGE)
            found = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
            others = [name for name in found if name not in package.BUILT_IN and not name.startswith("_")]
            for name in (*package.BUILT_IN, *others):
                importlib.import_module(f"{_BLOCKS_PACKAGE}.{name}")
        except BaseException:
            _loading = False  # a failed import is raised again on the next read, not left half done
            raise
    return _TABLE


def _rank(entry: BlockType) -> int:
    # The built-in block types come first and in `BUILT_IN` order whichever block module is imported
    # first: one imported directly registers last, since its own registration loads the others.
    built_in = importlib.import_module(_BLOCKS_PACKAGE).BUILT_IN
    module = entry.stage.__module__.removeprefix(f"{_BLOCKS_PACKAGE}.")
    return built_in.index(module) if module in built_in else len(built_in)


def register_block(entry: BlockType) -> BlockType:
    """Add a block type; a name, a genotype code or a stage spec can be registered once."""
    table = _table()
    if entry.name in table:
        raise ValueError(f"block: {entry.name!r} is already registered")
    for other in table.values():
        if other.gene == entry.gene:
            raise ValueError(f"stage.GENE: {entry.gene!r} is already the code of block {other.name!r}")
        if other.stage is entry.stage:
            raise ValueError(f"stage: {entry.stage.__name__} is already the stage of block {other.name!r}")
    table[entry.name] = entry
    ordered = sorted(table.values(), key=_rank)  # stable: the others keep their registration order
    table.clear()
    table.update((e.name, e) for e in ordered)
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
    """Every registered block type: the built-in ones in `BUILT_IN` order, then in registration order."""
    return tuple(_table().values())


def get_block(name: str) -> BlockType:
    table = _table()
    if name not in table:
        raise KeyError(f"block: unknown block type {name!r} (allowed: {', '.join(table)})")
    return table[name]


def block_of(stage: Any) -> BlockType:
    """The block type of a stage spec instance."""
    for entry in _table().values():
        if type(stage) is entry.stage:
            return entry
    raise TypeError(f"stage: {type(stage).__name__} is not a registered stage type")


def sampled_blocks() -> tuple[str, ...]:
    """Names of the block types the spaces can draw, in `block_types()` order."""
    return tuple(name for name, entry in _table().items() if entry.sampling is not None)


class _View(Mapping[str, Any]):
    """A read-only, always current name -> attribute view of the table."""

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def __getitem__(self, name: str) -> Any:
        return getattr(_table()[name], self._attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_table()))

    def __len__(self) -> int:
        return len(_table())

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
