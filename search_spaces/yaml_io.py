"""An architecture as plain data and YAML: what export writes and `Arch.from_yaml` reads back.

The layout (`_target_`, `format`, the sections) is checked field by field; the spec classes come as arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .checks import ArchError, check_stage_count
from .fields import shown
from .registry import STAGE_TYPES

__all__ = ["FORMAT", "TARGET", "arch_from_dict", "arch_to_dict", "arch_to_yaml", "load_yaml"]

_A = TypeVar("_A")

#: The Hydra `_target_` written into every architecture YAML; instantiating it returns the model.
TARGET = "search_spaces.build_network"
#: Version of the YAML layout, written as `format:`; bumped when a field changes meaning.
FORMAT = 1
#: Limits checked before a spec is built (one of the largest networks is a few kilobytes, 5 levels deep).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 16


def arch_to_dict(arch: Any) -> dict[str, Any]:
    """Plain data with `_target_`, ready for YAML or `hydra.utils.instantiate`."""
    return {
        "_target_": TARGET,
        "format": FORMAT,
        "in_channels": arch.in_channels,
        "resolution": arch.resolution,
        "num_classes": arch.num_classes,
        "stem": dataclasses.asdict(arch.stem),
        "stages": [{"block": s.block, **dataclasses.asdict(s)} for s in arch.stages],
        "head": dataclasses.asdict(arch.head),
    }


def arch_from_dict(data: Mapping[str, Any], *, arch_cls: type[_A], stem_cls: Any, head_cls: Any) -> _A:
    """Build from plain data (as written by `arch_to_dict`); unknown keys and bad values raise."""
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
    check_stage_count(len(stages_data))
    stages = tuple(_stage_from_dict(i, s) for i, s in enumerate(stages_data))
    stem = _section_from_dict("stem", stem_cls, data.pop("stem"))
    head = _section_from_dict("head", head_cls, data.pop("head", {}))
    return arch_cls(stem=stem, stages=stages, head=head, **data)


def arch_to_yaml(arch: Any) -> str:
    """YAML that `Arch.from_yaml` reads back to an equal Arch and Hydra instantiates."""
    header = f"# genotype: {arch.genotype()}\n"
    return header + yaml.safe_dump(arch_to_dict(arch), sort_keys=False, default_flow_style=None)


def load_yaml(text_or_path: str | Path) -> Any:
    """The plain data of YAML text or a file path (parsed with a safe loader)."""
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
            size = path.stat().st_size
            if size > MAX_YAML_BYTES:
                raise ArchError("", f"{source}{size} bytes is too large for an architecture (allowed: up to "
                                    f"{MAX_YAML_BYTES} bytes)")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ArchError("", f"cannot read architecture file {path}: {getattr(err, 'strerror', None) or err}") from None
    if len(text) > MAX_YAML_BYTES:
        raise ArchError("", f"{len(text)} characters is too large for an architecture (allowed: up to {MAX_YAML_BYTES})")
    try:
        _check_shape(text, source)
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ArchError("", f"{source}not valid YAML: {problem}{where}") from None
    except ArchError:
        raise
    except ValueError as err:  # Python refuses to read an integer of more than 4300 digits
        raise ArchError("", f"{source}a value cannot be read: {str(err).split(':')[0]}") from None


def _check_shape(text: str, source: str) -> None:
    """Refuse, from the parser's events and before anything is built, what no architecture has and
    what would cost memory or recursion to build: aliases (`*name`, which can expand a small file
    into billions of entries) and nesting deeper than MAX_YAML_DEPTH."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = f" (line {event.start_mark.line + 1})"
        if isinstance(event, yaml.AliasEvent):
            raise ArchError("", f"{source}YAML aliases (*{event.anchor}) are not allowed in an architecture{line}")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ArchError("", f"{source}nested more than {MAX_YAML_DEPTH} levels deep (allowed: up to "
                                    f"{MAX_YAML_DEPTH}){line}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _reject_unknown(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ArchError(
            f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(allowed)})"
        )


def _section_from_dict(where: str, cls: Any, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ArchError(where, f"expected a mapping, got {shown(data)}")
    _reject_unknown(where, data, [f.name for f in dataclasses.fields(cls)])
    try:
        return cls(**data)
    except ArchError as err:
        raise err.under(where) from None
    except TypeError as err:  # a required field is missing
        raise ArchError(where, str(err).split("__init__() ", 1)[-1]) from None


def _stage_from_dict(index: int, data: Any) -> Any:
    where = f"stages[{index}]"
    if not isinstance(data, Mapping):
        raise ArchError(where, f"expected a mapping, got {shown(data)}")
    data = dict(data)
    kind = data.pop("block", None)
    if kind not in STAGE_TYPES:
        raise ArchError(f"{where}.block", f"{kind!r} is not allowed (allowed: {', '.join(STAGE_TYPES)})")
    return _section_from_dict(where, STAGE_TYPES[kind], data)
