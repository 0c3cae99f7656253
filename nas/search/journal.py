"""A study's journal file that a full disk or a killed writer cannot corrupt for good: a record cut
short at the end is removed before the next one is appended, and a damaged record inside the file
is refused with one line saying where it is and how to repair it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalStorage

from ..errors import ConfigError

__all__ = ["JournalFile", "open_journal"]

log = logging.getLogger(__name__)

#: How every record Optuna writes begins (`{"op_code": ...}`), which tells where a record starts.
_RECORD_START = b'{"op_code"'


class JournalFile(JournalFileBackend):
    """Optuna's journal file, with one change: before appending, under the journal's own lock (so
    that no other worker is writing), a last line without its newline, a record the writer never
    finished, is cut off. Optuna's reader skips such a line while it is last, but appending to it
    would glue the next record onto it and make the file unreadable from then on."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Optuna's own append, with the cut inside the same hold of the lock (its lock is not reentrant,
        # so calling super() after the cut would leave a moment for another writer in between).
        self._lock.acquire()
        try:
            _cut_torn_tail(Path(self._file_path))
            data = ("\n".join(json.dumps(r, separators=(",", ":")) for r in logs) + "\n").encode("utf-8")
            with open(self._file_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        finally:
            self._lock.release()


def _cut_torn_tail(path: Path) -> None:
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Find the end of the last complete line, reading backwards in blocks.
        end, block = size, 1 << 16
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: removed a record cut short at its end (%d bytes; the write that made it never finished)",
                path, size - keep)


def open_journal(path: Path) -> JournalStorage:
    """The study storage in the journal file `path`. A record damaged inside it raises ConfigError
    naming its line and how to repair the file (Optuna's reader would stop there at the next
    append, with a traceback); one cut short at the end is left to `JournalFile` to remove."""
    damage = _damage(path) if path.is_file() else None
    if damage is not None:
        raise ConfigError("storage.path", f"{path} is damaged: {damage}")
    return JournalStorage(JournalFile(str(path)))


def _damage(path: Path) -> str | None:
    """Where the first unreadable complete record is, and what to do about it; None when there is none."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return None  # the last line, cut short: removed before the next append
            try:
                json.loads(line)
            except ValueError:
                start = line.rfind(_RECORD_START)
                if start > 0:
                    return (f"line {number} begins with {start} bytes of a record cut short, glued to the "
                            f"next one; delete those first {start} bytes of the line to repair it")
                return f"line {number} is not a journal record; remove the line (its change is lost) to repair it"
    return None
