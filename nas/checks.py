"""Checks of configuration values, shared by the search, nas-train and the sweeper: each raises
`ConfigError` naming the field and what is allowed, before anything is created on disk; and
`redact`, which hides a URL's password in those messages."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["check_device", "check_folder", "redact", "require_fraction", "require_positive"]


def require_positive(field: str, value: Any, *, integer: bool = False) -> None:
    """Raise `ConfigError` unless `value` is a positive (integer) number."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value <= 0 or (integer and int(value) != value):
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(field, f"{value!r} is not allowed (allowed: {kind})")


def require_fraction(field: str, value: Any, *, closed: bool = True) -> None:
    """Raise `ConfigError` unless 0 < value <= 1 (< 1 when not `closed`)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and value > 0.0 and (value <= 1.0 if closed else value < 1.0)):
        bound = "<=" if closed else "<"
        raise ConfigError(field, f"{value!r} is out of range (allowed: 0 < {field.split('.')[-1]} {bound} 1)")


def check_folder(field: str, path: str | Path) -> None:
    """A folder a run creates or writes in: refuse a file in its place or in its path, and a folder
    this user cannot write in, before anything is written."""
    path = Path(path).expanduser()
    for part in (path, *path.parents):
        if not part.exists():
            continue
        if not part.is_dir():
            where = "" if part == path else f" ({part} is a file)"
            raise ConfigError(field, f"{path} is not a folder{where} (allowed: a folder, or a path that does not exist yet)")
        if not os.access(part, os.W_OK | os.X_OK):
            raise ConfigError(field, f"cannot write in {part}: permission denied")
        return


def check_device(field: str, name: str) -> None:
    """Refuse a device name torch does not know, or a CUDA device this machine does not have, before
    anything is written (otherwise every trial fails on it)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ConfigError(field, f"{name!r} is not allowed (allowed: auto, cpu, cuda, cuda:N)")
    if not name.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(name.partition(":")[2] or 0) >= count:
        have = "no CUDA device" if count == 0 else f"{count} CUDA device{'s' if count > 1 else ''}"
        allowed = "auto, cpu" + ("" if count == 0 else f", cuda, cuda:0..cuda:{count - 1}")
        raise ConfigError(field, f"{name!r} is not available: this machine has {have} (allowed here: {allowed})")


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
