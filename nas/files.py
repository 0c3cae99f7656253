"""Files a run writes: atomically, so that a reader (a dashboard, another worker) or a crash never
sees one half-written, and with the mode any new file would get."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "exclusive"]


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the file `path` (created if missing) for the `with` block; yields
    False at once, holding nothing, when another process holds it. The lock goes with the process
    (a killed holder leaves nothing to clean up); POSIX only (`fcntl.flock`)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _umask() -> int:
    """The process's umask. Linux tells it in /proc; elsewhere it can only be read by setting it
    (for an instant, which is why /proc comes first)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that a reader (or a crash) never sees it half-written.

    The file gets the mode any new file would (0666 less the umask), or keeps the mode of the file
    it replaces: other users, workers and a dashboard reading a shared run folder need to read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        _write_replacing(path, data, mode)
    except OSError as err:
        if err.filename is None:  # os.write and fsync do not name the file: say which it was
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def _write_replacing(path: Path, data: str | bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes its files private (0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
