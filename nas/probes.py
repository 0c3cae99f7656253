"""Probes of the machine a run is about to use (folders it writes in, CUDA devices), run before
anything is created on disk. The rules of the values themselves are stated in their schemas
(`search_spaces.fields`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError

__all__ = ["check_device", "check_folder"]


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
