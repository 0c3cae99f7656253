"""Field errors and field rules: what a value may be, stated once beside the field it governs.

A schema dataclass (a spec section, a config group) lists its fields' rules in a `RULES` class
attribute; `check_fields` applies them, then the schema's own `check()` for rules that span fields,
and names the offending field by its dotted path. No torch, no Optuna: config schemas that Hydra
imports on every plugin discovery use these too.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SEED", "FieldError", "Rule", "at_least", "check_fields", "fraction", "integer_in", "interval", "one_of",
           "positive", "shown"]


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, shortened (a long list or string from a
    user's file must not make the message itself long)."""
    try:
        return reprlib.repr(value)
    except ValueError:  # an integer too long for Python to print
        return f"an integer of {value.bit_length()} bits"


class FieldError(ValueError):
    """An invalid value. `field` is the dotted path of the offending value ("" for the whole
    object), `reason` says what is wrong and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message

    def under(self, prefix: str) -> FieldError:
        """The same error (same type) with its field path placed under `prefix` (e.g. `stages[2]`)."""
        return type(self)(f"{prefix}.{self.field}" if self.field and prefix else self.field or prefix, self.reason)


#: A field's rule: given the field's name and value, the reason it is refused, or None.
Rule = Callable[[str, Any], "str | None"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(*, integer: bool = False, optional: bool = False) -> Rule:
    """A finite number > 0 (an integer when `integer`); None too when `optional`."""
    kind = "a positive integer" if integer else "a positive number"

    def rule(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        ok = _is_number(value) and math.isfinite(value) and value > 0 and (not integer or int(value) == value)
        return None if ok else f"{value!r} is not allowed (allowed: {kind})"

    return rule


def at_least(low: float, *, optional: bool = False) -> Rule:
    """A finite number >= `low` (None too when `optional`)."""

    def rule(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        ok = _is_number(value) and math.isfinite(value) and value >= low
        return None if ok else f"{value!r} is not allowed (allowed: >= {low:g})"

    return rule


def integer_in(low: int, high: int) -> Rule:
    """An integer from `low` to `high`, both included."""

    def rule(name: str, value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"{value!r} is not allowed (allowed: an integer {low}..{high})"

    return rule


#: A seed: what NumPy's generators and Optuna's samplers take (32 bits, not negative).
SEED = integer_in(0, 2**32 - 1)


def fraction(*, closed: bool = True, optional: bool = False) -> Rule:
    """0 < value <= 1 (< 1 when not `closed`); None too when `optional`."""

    def rule(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        ok = _is_number(value) and value > 0.0 and (value <= 1.0 if closed else value < 1.0)
        return None if ok else f"{value!r} is out of range (allowed: 0 < {name} {'<=' if closed else '<'} 1)"

    return rule


def interval(low: float, high: float) -> Rule:
    """low <= value < high."""

    def rule(name: str, value: Any) -> str | None:
        ok = _is_number(value) and low <= value < high
        return None if ok else f"{value!r} is out of range (allowed: {low:g} <= {name} < {high:g})"

    return rule


def one_of(choices: Sequence[Any] | Callable[[], Sequence[Any]], *, optional: bool = False, noun: str = "") -> Rule:
    """One of `choices` (or of what calling it returns, for tables that fill at run time); `noun`
    names what is chosen ("unknown dataset 'x'") where a plain "'x' is not allowed" says less."""

    def rule(name: str, value: Any) -> str | None:
        allowed = list(choices() if callable(choices) else choices)
        if (value is None and optional) or value in allowed:
            return None
        listed = f"{', '.join(map(str, allowed))}{', or null' if optional else ''}"
        return f"unknown {noun} {value!r} (allowed: {listed})" if noun else f"{value!r} is not allowed (allowed: {listed})"

    return rule


def check_fields(obj: Any, prefix: str = "", error: type[FieldError] = FieldError) -> None:
    """Apply the `RULES` of `obj` (a dataclass instance) and of every dataclass it holds, then
    their `check()` methods (rules that span fields, raising `FieldError` with a relative path),
    and raise `error` naming the first invalid field by its path under `prefix`."""
    rules: dict[str, Rule] = getattr(obj, "RULES", {})
    for f in dataclasses.fields(obj):
        path = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if f.name in rules and (reason := rules[f.name](f.name, value)) is not None:
            raise error(path, reason)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, path, error)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except FieldError as err:
            raise error(err.under(prefix).field, err.reason) from None
