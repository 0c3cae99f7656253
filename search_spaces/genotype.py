"""The genotype: an architecture as one short readable line that reads back to the same spec.

Each section writes its `GENE` and its fields by their `CODES`; the spec classes come as arguments.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, TypeVar

from .checks import ArchError, check_stage_count
from .registry import STAGE_TYPES

__all__ = ["genotype_of", "parse_genotype"]

_A = TypeVar("_A")

_GENE_IO = re.compile(r"in_c(\d+)_r(\d+)_k(\d+)")
_GENE_FIELD = re.compile(r"([a-z]+)(-?[0-9][0-9.e+-]*)")


def genotype_of(arch: Any) -> str:
    """A short readable name that `parse_genotype` reads back, e.g.

    `in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c240_n4_s2_g3_x1|...|head_d0`
    """
    tokens = [f"in_c{arch.in_channels}_r{arch.resolution}_k{arch.num_classes}"]
    tokens.append(_encode(arch.stem) + f"_{arch.stem.act}")
    tokens.extend(_encode(stage) for stage in arch.stages)
    tokens.append(_encode(arch.head))
    return "|".join(tokens)


def parse_genotype(text: str, *, arch_cls: type[_A], stem_cls: Any, head_cls: Any) -> _A:
    """The architecture `text` names, built from `arch_cls`, `stem_cls`, `head_cls` and the stage
    types of the registry."""
    tokens = text.strip().split("|")
    if len(tokens) < 4:
        raise ArchError("genotype", f"{text!r} needs in|stem|stage...|head tokens")
    io = _GENE_IO.fullmatch(tokens[0])
    if not io:
        raise ArchError("genotype", f"first token {tokens[0]!r} is not like 'in_c3_r224_k1000'")
    stem_token, act = tokens[1].rsplit("_", 1) if "_" in tokens[1] else (tokens[1], "")
    stem = stem_cls(**_decode(stem_cls, stem_token), act=act)
    by_gene = {t.GENE: t for t in STAGE_TYPES.values()}
    check_stage_count(len(tokens) - 3)
    stages = []
    for i, token in enumerate(tokens[2:-1]):
        gene = token.split("_", 1)[0]
        if gene not in by_gene:
            raise ArchError("genotype", f"unknown stage {gene!r} (allowed: {', '.join(by_gene)})")
        try:
            stages.append(by_gene[gene](**_decode(by_gene[gene], token)))
        except ArchError as err:
            raise err.under(f"stages[{i}]") if err.field != "genotype" else err from None
    head = head_cls(**_decode(head_cls, tokens[-1]))
    c, r, k = (int(v) for v in io.groups())
    return arch_cls(stem=stem, stages=tuple(stages), head=head, num_classes=k, in_channels=c, resolution=r)


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
