"""The architecture spec: one typed description of a network that every part of the tool shares.

A space samples an `Arch`, `nas.build_model` builds it, `nas.complexity` counts it, export writes it
as YAML (with a Hydra `_target_`) and reads it back, and its genotype string names it in logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union

from .blocks.sandglass import SandglassStage
from .blocks.shuffle import ShuffleStage
from .checks import ArchError, check_choice, check_float, check_int, check_stage_count
from .genotype import genotype_of, parse_genotype
from .registry import STAGE_TYPES
from .yaml_io import arch_from_dict, arch_to_dict, arch_to_yaml, load_yaml

__all__ = ["Arch", "Head", "Stage", "Stem"]

ACTIVATIONS = ("relu", "relu6")


@dataclass(frozen=True)
class Stem:
    """3x3 convolution -> BN -> activation, optionally followed by a 3x3 stride-2 max-pool.

    ImageNet stems: ShuffleNet v1 uses stride 2 + max-pool, MobileNeXt stride 2 without pool.
    Small images (28x28, 32x32) use stride 1 and no pool so that the stages see enough pixels.
    """

    channels: int
    stride: int = 1
    pool: bool = False
    act: str = "relu"

    def __post_init__(self) -> None:
        check_int("channels", self.channels, 1)
        check_choice("stride", self.stride, (1, 2))
        check_choice("pool", self.pool, (False, True))
        check_choice("act", self.act, ACTIVATIONS)

    GENE: ClassVar[str] = "stem"
    CODES: ClassVar[dict[str, str]] = {"channels": "c", "stride": "s", "pool": "p"}

    def output_size(self, size: int) -> int:
        size = _downsample(size, self.stride)
        return _downsample(size, 2) if self.pool else size


# The stage types this package ships, for annotations; the registry holds every stage type.
Stage = Union[ShuffleStage, SandglassStage]


@dataclass(frozen=True)
class Head:
    """Global average pool -> dropout -> linear classifier."""

    dropout: float = 0.0

    GENE: ClassVar[str] = "head"
    CODES: ClassVar[dict[str, str]] = {"dropout": "d"}

    def __post_init__(self) -> None:
        check_float("dropout", self.dropout, 0.0, 0.95)
        object.__setattr__(self, "dropout", float(self.dropout))


def _downsample(size: int, stride: int) -> int:
    # A 3x3 kernel with padding 1 (convolution or pooling) maps H to ceil(H / stride).
    return -(-size // stride)


@dataclass(frozen=True)
class Arch:
    """A whole network: input, stem, stages, head. Immutable and hashable.

    Example:
        >>> arch = Arch(stem=Stem(24), stages=(ShuffleStage(240, 4, groups=3),),
        ...             num_classes=10, in_channels=1, resolution=28)
        >>> Arch.from_yaml(arch.to_yaml()) == arch
        True
    """

    stem: Stem
    stages: tuple[Stage, ...]
    head: Head = field(default_factory=Head)
    num_classes: int = 1000
    in_channels: int = 3
    resolution: int = 224

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, 1)
        check_int("in_channels", self.in_channels, 1)
        check_int("resolution", self.resolution, 1)
        if not isinstance(self.stem, Stem):
            raise ArchError("stem", f"expected a Stem, got {type(self.stem).__name__}")
        if not isinstance(self.head, Head):
            raise ArchError("head", f"expected a Head, got {type(self.head).__name__}")
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.stages, tuple) or not self.stages:
            raise ArchError("stages", "expected a non-empty list of stages")
        check_stage_count(len(self.stages))
        channels = self.stem.channels
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, tuple(STAGE_TYPES.values())):
                raise ArchError(f"stages[{i}]", f"expected a stage, got {type(stage).__name__}")
            try:
                stage.check_input(channels, first_in_network=i == 0)
            except ArchError as err:
                raise err.under(f"stages[{i}]") from None
            channels = stage.out_channels

    # -- derived facts -------------------------------------------------------------------------

    @property
    def out_channels(self) -> int:
        """Channels entering the classifier."""
        return self.stages[-1].out_channels

    def stage_inputs(self) -> list[tuple[int, int]]:
        """(in_channels, input size) of every stage, in order."""
        channels, size = self.stem.channels, self.stem.output_size(self.resolution)
        result = []
        for stage in self.stages:
            result.append((channels, size))
            channels, size = stage.out_channels, _downsample(size, stage.stride)
        return result

    def replace(self, **changes: Any) -> Arch:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- plain data, YAML and genotype (yaml_io.py, genotype.py) ---------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data with `_target_`, ready for YAML or `hydra.utils.instantiate`."""
        return arch_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build from plain data (as written by `to_dict`); unknown keys and bad values raise."""
        return arch_from_dict(data, arch_cls=cls, stem_cls=Stem, head_cls=Head)

    def to_yaml(self) -> str:
        """YAML that `Arch.from_yaml` reads back to an equal Arch and Hydra instantiates."""
        return arch_to_yaml(self)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Arch:
        """Read an Arch from YAML text or a file path (parsed with a safe loader)."""
        return cls.from_dict(load_yaml(text_or_path))

    def genotype(self) -> str:
        """A short readable name that `Arch.from_genotype` parses back, e.g.

        `in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c240_n4_s2_g3_x1|...|head_d0`
        """
        return genotype_of(self)

    @classmethod
    def from_genotype(cls, text: str) -> Arch:
        return parse_genotype(text, arch_cls=cls, stem_cls=Stem, head_cls=Head)
