"""The architecture spec: one typed description of a network that every part of the tool shares.

A space samples an `Arch`, `nas.build_model` builds it, `nas.complexity` counts it, export writes it
as YAML (with a Hydra `_target_`) and reads it back, and its genotype string names it in logs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml

from .registry import STAGE_TYPES

__all__ = [
    "Arch",
    "ArchError",
    "Head",
    "SandglassStage",
    "ShuffleStage",
    "Stage",
    "STAGE_TYPES",
    "Stem",
    "TARGET",
    "make_divisible",
]

#: The Hydra `_target_` written into every architecture YAML; instantiating it returns the model.
TARGET = "search_spaces.build_network"
#: Version of the YAML layout, written as `format:`; bumped when a field changes meaning.
FORMAT = 1
ACTIVATIONS = ("relu", "relu6")
#: Units per stage and stages per network. Generous (ShuffleNet v1 and MobileNeXt use at most 8 and
#: 8; ResNet-152's deepest stage has 36 blocks), and they keep a typo such as `repeats: 1000000`
#: from building a network that fills the memory.
MAX_REPEATS = 64
MAX_STAGES = 32


class ArchError(ValueError):
    """An invalid architecture spec. `field` is the dotted path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message

    def under(self, prefix: str) -> ArchError:
        """The same error with its field path placed under `prefix` (e.g. `stages[2]`)."""
        return ArchError(f"{prefix}.{self.field}" if self.field else prefix, self.reason)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never more than 10% below it.

    The rule of the MobileNet/MobileNeXt reference code (`_make_divisible`), used for every width.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchError(name, f"expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ArchError(name, f"{value} is out of range (allowed: {allowed})")


def _check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
        raise ArchError(name, f"{value!r} is not allowed (allowed: {', '.join(map(str, allowed))})")


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchError(name, f"expected a number, got {value!r}")
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ArchError(name, f"{value} is out of range (allowed: {bracket}{low}, {high}])")


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
        _check_int("channels", self.channels, 1)
        _check_choice("stride", self.stride, (1, 2))
        _check_choice("pool", self.pool, (False, True))
        _check_choice("act", self.act, ACTIVATIONS)

    GENE: ClassVar[str] = "stem"
    CODES: ClassVar[dict[str, str]] = {"channels": "c", "stride": "s", "pool": "p"}

    def output_size(self, size: int) -> int:
        size = _downsample(size, self.stride)
        return _downsample(size, 2) if self.pool else size


@dataclass(frozen=True)
class ShuffleStage:
    """`repeats` ShuffleNet v1 units (Zhang et al. 2018, Sec. 3.2); the first has `stride`.

    Bottleneck width is out_channels // 4 in every unit. A stride-2 unit concatenates an
    average-pooled shortcut, so its branch produces out_channels - in_channels channels.
    """

    out_channels: int
    repeats: int
    stride: int = 2
    groups: int = 3
    shuffle: bool = True

    block: ClassVar[str] = "shuffle"
    GENE: ClassVar[str] = "shuf"
    CODES: ClassVar[dict[str, str]] = {
        "out_channels": "c", "repeats": "n", "stride": "s", "groups": "g", "shuffle": "x",
    }

    def __post_init__(self) -> None:
        _check_int("out_channels", self.out_channels, 1)
        _check_int("repeats", self.repeats, 1, MAX_REPEATS)
        _check_choice("stride", self.stride, (1, 2))
        _check_int("groups", self.groups, 1)
        _check_choice("shuffle", self.shuffle, (False, True))
        g, c = self.groups, self.out_channels
        if c % g or (c // 4) % g or c < 4:
            raise ArchError(
                "out_channels",
                f"{c} does not suit groups={g}: the grouped 1x1 convolutions need out_channels and "
                f"its bottleneck out_channels//4 divisible by groups (use a multiple of {4 * g})",
            )

    def unit_kwargs(self, index: int, *, first_in_network: bool) -> dict[str, Any]:
        """Keyword arguments of the stage's `index`-th ShuffleUnit besides widths and stride."""
        group_first = not (first_in_network and index == 0)
        return {"groups": self.groups, "shuffle": self.shuffle, "group_first": group_first}

    def check_input(self, in_channels: int, *, first_in_network: bool) -> None:
        """Raise ArchError unless a stage fed `in_channels` can be built."""
        g = self.groups
        if self.stride == 1 and in_channels != self.out_channels:
            raise ArchError(
                "stride",
                f"a stride-1 ShuffleNet unit adds its input, so in_channels ({in_channels}) must "
                f"equal out_channels ({self.out_channels}); use stride 2 to change width",
            )
        if self.stride == 2 and self.out_channels <= in_channels:
            raise ArchError(
                "out_channels",
                f"{self.out_channels} must exceed in_channels ({in_channels}): a stride-2 unit "
                "concatenates its input, so the branch produces out_channels - in_channels",
            )
        if not first_in_network and in_channels % g:
            raise ArchError(
                "groups",
                f"{g} does not divide in_channels={in_channels}, which the first grouped 1x1 "
                "convolution needs",
            )
        if self.stride == 2 and (self.out_channels - in_channels) % g:
            raise ArchError(
                "out_channels",
                f"out_channels - in_channels = {self.out_channels - in_channels} (the stride-2 "
                f"branch) must be divisible by groups={g}",
            )


@dataclass(frozen=True)
class SandglassStage:
    """`repeats` MobileNeXt sandglass blocks (Zhou et al. 2020, Sec. 3.2); the first has `stride`.

    hidden = in // reduction, clamped to at least ceil(out/6) rounded to 16 (the authors' mnext.py).
    `identity_mult` m adds the shortcut to the first round(C*m) channels only. With `keep_3x3`
    false, a block that changes width drops the depthwise layers as mnext.py does (the first one,
    and the last one too unless it strides).
    """

    out_channels: int
    repeats: int
    stride: int = 1
    reduction: int = 6
    identity_mult: float = 1.0
    keep_3x3: bool = True

    block: ClassVar[str] = "sandglass"
    GENE: ClassVar[str] = "sg"
    CODES: ClassVar[dict[str, str]] = {
        "out_channels": "c", "repeats": "n", "stride": "s", "reduction": "t",
        "identity_mult": "m", "keep_3x3": "k",
    }

    def __post_init__(self) -> None:
        _check_int("out_channels", self.out_channels, 1)
        _check_int("repeats", self.repeats, 1, MAX_REPEATS)
        _check_choice("stride", self.stride, (1, 2))
        _check_int("reduction", self.reduction, 1)
        _check_float("identity_mult", self.identity_mult, 0.0, 1.0, low_open=True)
        _check_choice("keep_3x3", self.keep_3x3, (False, True))
        object.__setattr__(self, "identity_mult", float(self.identity_mult))

    def unit_kwargs(self, index: int, *, first_in_network: bool) -> dict[str, Any]:
        """Keyword arguments of the stage's `index`-th Sandglass besides widths and stride."""
        return {"reduction": self.reduction, "identity_mult": self.identity_mult, "keep_3x3": self.keep_3x3}

    def check_input(self, in_channels: int, *, first_in_network: bool) -> None:
        if in_channels < self.reduction:
            raise ArchError(
                "reduction",
                f"{self.reduction} exceeds in_channels={in_channels}: the reduced width "
                "in_channels // reduction would be 0",
            )


# The stage types this package ships, for annotations; the registry holds every stage type.
Stage = Union[ShuffleStage, SandglassStage]


@dataclass(frozen=True)
class Head:
    """Global average pool -> dropout -> linear classifier."""

    dropout: float = 0.0

    GENE: ClassVar[str] = "head"
    CODES: ClassVar[dict[str, str]] = {"dropout": "d"}

    def __post_init__(self) -> None:
        _check_float("dropout", self.dropout, 0.0, 0.95)
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
        _check_int("num_classes", self.num_classes, 1)
        _check_int("in_channels", self.in_channels, 1)
        _check_int("resolution", self.resolution, 1)
        if not isinstance(self.stem, Stem):
            raise ArchError("stem", f"expected a Stem, got {type(self.stem).__name__}")
        if not isinstance(self.head, Head):
            raise ArchError("head", f"expected a Head, got {type(self.head).__name__}")
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.stages, tuple) or not self.stages:
            raise ArchError("stages", "expected a non-empty list of stages")
        _check_stage_count(len(self.stages))
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

    # -- plain data ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data with `_target_`, ready for YAML or `hydra.utils.instantiate`."""
        return {
            "_target_": TARGET,
            "format": FORMAT,
            "in_channels": self.in_channels,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "stem": dataclasses.asdict(self.stem),
            "stages": [{"block": s.block, **dataclasses.asdict(s)} for s in self.stages],
            "head": dataclasses.asdict(self.head),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build from plain data (as written by `to_dict`); unknown keys and bad values raise."""
        if not isinstance(data, Mapping):
            raise ArchError("", f"an architecture must be a mapping, got {type(data).__name__}")
        data = dict(data)
        target = data.pop("_target_", TARGET)
        if target != TARGET:
            # Checked before anything is imported: a spec names our network and nothing else.
            raise ArchError("_target_", f"{target!r} is not allowed (allowed: {TARGET})")
        version = data.pop("format", FORMAT)
        if version != FORMAT:
            raise ArchError("format", f"{version!r} is not supported (allowed: {FORMAT})")
        _reject_unknown("", data, ("in_channels", "resolution", "num_classes", "stem", "stages", "head"))
        if "stem" not in data or "stages" not in data:
            raise ArchError("", "an architecture needs 'stem' and 'stages'")
        stages_data = data.pop("stages")
        if isinstance(stages_data, (str, bytes)) or not isinstance(stages_data, Sequence):
            raise ArchError("stages", "expected a list of stages")
        _check_stage_count(len(stages_data))
        stages = tuple(_stage_from_dict(i, s) for i, s in enumerate(stages_data))
        stem = _section_from_dict("stem", Stem, data.pop("stem"))
        head = _section_from_dict("head", Head, data.pop("head", {}))
        return cls(stem=stem, stages=stages, head=head, **data)

    # -- YAML ----------------------------------------------------------------------------------

    def to_yaml(self) -> str:
        """YAML that `Arch.from_yaml` reads back to an equal Arch and Hydra instantiates."""
        header = f"# genotype: {self.genotype()}\n"
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Arch:
        """Read an Arch from YAML text or a file path (parsed with a safe loader)."""
        text = str(text_or_path)
        is_path = isinstance(text_or_path, Path) or (
            "\n" not in text
            and len(text) < 1024
            and (text.endswith((".yaml", ".yml")) or Path(text).is_file())
        )
        source = ""
        if is_path:
            path = Path(text_or_path)
            source = f"{path}: "
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise ArchError("", f"cannot read architecture file {path}: {getattr(err, 'strerror', None) or err}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ArchError("", f"{source}not valid YAML: {problem}{where}") from None
        return cls.from_dict(data)

    # -- genotype ------------------------------------------------------------------------------

    def genotype(self) -> str:
        """A short readable name that `Arch.from_genotype` parses back, e.g.

        `in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c240_n4_s2_g3_x1|...|head_d0`
        """
        tokens = [f"in_c{self.in_channels}_r{self.resolution}_k{self.num_classes}"]
        tokens.append(_encode(self.stem) + f"_{self.stem.act}")
        tokens.extend(_encode(stage) for stage in self.stages)
        tokens.append(_encode(self.head))
        return "|".join(tokens)

    @classmethod
    def from_genotype(cls, text: str) -> Arch:
        tokens = text.strip().split("|")
        if len(tokens) < 4:
            raise ArchError("genotype", f"{text!r} needs in|stem|stage...|head tokens")
        io = _GENE_IO.fullmatch(tokens[0])
        if not io:
            raise ArchError("genotype", f"first token {tokens[0]!r} is not like 'in_c3_r224_k1000'")
        stem_token, act = tokens[1].rsplit("_", 1) if "_" in tokens[1] else (tokens[1], "")
        stem = Stem(**_decode(Stem, stem_token), act=act)
        by_gene = {t.GENE: t for t in STAGE_TYPES.values()}
        _check_stage_count(len(tokens) - 3)
        stages = []
        for i, token in enumerate(tokens[2:-1]):
            gene = token.split("_", 1)[0]
            if gene not in by_gene:
                raise ArchError("genotype", f"unknown stage {gene!r} (allowed: {', '.join(by_gene)})")
            try:
                stages.append(by_gene[gene](**_decode(by_gene[gene], token)))
            except ArchError as err:
                raise err.under(f"stages[{i}]") if err.field != "genotype" else err from None
        head = Head(**_decode(Head, tokens[-1]))
        c, r, k = (int(v) for v in io.groups())
        return cls(stem=stem, stages=tuple(stages), head=head, num_classes=k, in_channels=c, resolution=r)


_GENE_IO = re.compile(r"in_c(\d+)_r(\d+)_k(\d+)")
_GENE_FIELD = re.compile(r"([a-z]+)(-?[0-9][0-9.e+-]*)")


def _check_stage_count(count: int) -> None:
    # Checked before the stages are read, so that a runaway list costs nothing.
    if count > MAX_STAGES:
        raise ArchError("stages", f"{count} stages is too many (allowed: 1..{MAX_STAGES})")


def _number(value: Any) -> str:
    """A field's value as the genotype writes it: integers in full (never 1e+06), floats in
    their short form when that reads back exactly, else in full precision."""
    if isinstance(value, (bool, int)):
        return str(int(value))
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _encode(section: Any) -> str:
    parts = [section.GENE]
    for name, code in section.CODES.items():
        parts.append(f"{code}{_number(getattr(section, name))}")
    return "_".join(parts)


def _decode(cls: Any, token: str) -> dict[str, Any]:
    gene, *parts = token.split("_")
    if gene != cls.GENE:
        raise ArchError("genotype", f"expected a {cls.GENE!r} token, got {token!r}")
    by_code = {code: name for name, code in cls.CODES.items()}
    types = {f.name: f.type for f in fields(cls)}
    values: dict[str, Any] = {}
    for part in parts:
        match = _GENE_FIELD.fullmatch(part)
        if not match or match.group(1) not in by_code:
            raise ArchError("genotype", f"cannot read {part!r} in {token!r} (codes: {', '.join(by_code)})")
        name = by_code[match.group(1)]
        raw = match.group(2)
        kind = types[name]
        try:
            values[name] = (
                bool(int(raw)) if kind == "bool" else int(raw) if kind == "int" else float(raw)
            )
        except ValueError:
            raise ArchError("genotype", f"cannot read {part!r} in {token!r}") from None
    return values


def _reject_unknown(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ArchError(
            f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(allowed)})"
        )


def _section_from_dict(where: str, cls: Any, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ArchError(where, f"expected a mapping, got {data!r}")
    _reject_unknown(where, data, [f.name for f in fields(cls)])
    try:
        return cls(**data)
    except ArchError as err:
        raise err.under(where) from None
    except TypeError as err:  # a required field is missing
        raise ArchError(where, str(err).split("__init__() ", 1)[-1]) from None


def _stage_from_dict(index: int, data: Any) -> Stage:
    where = f"stages[{index}]"
    if not isinstance(data, Mapping):
        raise ArchError(where, f"expected a mapping, got {data!r}")
    data = dict(data)
    kind = data.pop("block", None)
    if kind not in STAGE_TYPES:
        raise ArchError(f"{where}.block", f"{kind!r} is not allowed (allowed: {', '.join(STAGE_TYPES)})")
    return _section_from_dict(where, STAGE_TYPES[kind], data)
