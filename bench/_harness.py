"""What the bench scripts share: their `--size` presets, resumable JSON-lines results files, the
`nas` programs run in processes of their own, and publishing a result into a hand-written doc.

Imported as a sibling module (`import _harness`): a script run as `python bench/x.py` has bench/
on its path, and `nas` and `search_spaces` are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["HEADER", "RESULTS", "ROOT", "Finished", "ResultsFile", "Size", "add_size_argument", "invocation",
           "publish", "replace_section", "run_command"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HEADER = "header"  # the `kind` of a results line that describes the run rather than one result


# -- presets ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """A preset of a bench script, chosen with `--size` (cpu: a shared 2-core machine; gpu, full:
    a GPU). Each script extends it with the fields of its own study."""

    budget_mflops: float  # the MACs budget of the architectures the script compares, in MMACs


def add_size_argument(parser: argparse.ArgumentParser, sizes: Mapping[str, Size], default: str | None = "cpu",
                      help: str | None = None) -> None:
    """`--size NAME`, one of the script's `sizes`."""
    parser.add_argument("--size", choices=sorted(sizes), default=default, help=help)


def invocation(script: str) -> str:
    """The command line that ran `script` (its `__file__`), as its results record it."""
    return " ".join(["python", f"bench/{Path(script).name}", *sys.argv[1:]])


# -- resumable results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsFile:
    """A results file of one JSON object a line, appended as each result finishes, so that an
    interrupted run continues where it stopped: a re-run skips the results already there.

    Lines of `"kind": "header"` describe a run (a resumed one may append another); every other line
    is one result, named by the values of its `key` fields.
    """

    path: Path
    key: tuple[str, ...]  # the fields that name a result, e.g. ("arch", "column")

    def read(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The header lines and the results, each in file order (none when there is no file)."""
        headers: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        if not self.path.exists():
            return headers, results
        for line in self.path.read_text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # the torn last line of a killed run: that result runs again
                continue
            (headers if item.get("kind") == HEADER else results).append(item)
        return headers, results

    def name(self, result: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(result[k] for k in self.key)

    def done(self) -> set[tuple[Any, ...]]:
        """The names of the results already in the file."""
        return {self.name(r) for r in self.read()[1]}

    def append(self, record: Mapping[str, Any]) -> None:
        """Add `record` as one line, written at once: a run killed next keeps it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record) + "\n"
        # After a torn line, start a new one: appended to it, this record would be unreadable too.
        if not _ends_a_line(self.path):
            line = "\n" + line
        with self.path.open("a") as f:
            f.write(line)

    def append_header(self, fields: Mapping[str, Any]) -> None:
        """Add a line describing the run (the command, machine, settings)."""
        self.append({"kind": HEADER, **fields})


def _ends_a_line(path: Path) -> bool:
    """Whether `path` is missing, empty or ends with a newline."""
    if not path.exists() or path.stat().st_size == 0:
        return True
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


# -- entry points -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """How a program started by `run_command` ended."""

    returncode: int
    wall_s: float
    cpu_s: float  # its own user + system time, however many programs ran beside it
    stdout: str  # what it printed, when it was captured (no `log`); else empty
    stderr: str


def run_command(command: str, args: Sequence[str], *, cwd: Path, log: Path | None = None,
                env: Mapping[str, str] | None = None, check: bool = True) -> Finished:
    """Run `python -m nas COMMAND ARGS` (the program `nas-COMMAND`) in a process of its own, in `cwd`.

    Its stdout and stderr are appended to `log` or, without one, captured. `env` is its whole
    environment (default: this process's). With `check`, a non-zero exit ends the bench script
    with one line naming the program and where its output went.
    """
    argv = [sys.executable, "-m", "nas", command, *args]
    started = time.perf_counter()
    with ExitStack() as files:
        captured: IO[str] | None = None  # its stderr, when not in the log
        if log is not None:
            out = files.enter_context(log.open("a"))
        else:  # files rather than pipes: reading pipes takes `communicate`, which reaps the process itself
            out = files.enter_context(tempfile.TemporaryFile("w+"))
            captured = files.enter_context(tempfile.TemporaryFile("w+"))
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if captured is None else captured,
                                cwd=cwd, env=None if env is None else dict(env))
        try:
            # wait4 gives this child's own CPU time; RUSAGE_CHILDREN would add every other finished child.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C here: leave no program running on, as subprocess.run does
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        wall_s = time.perf_counter() - started
        stdout, stderr = ("", "") if captured is None else (_read(out), _read(captured))
    if check and proc.returncode != 0:
        last = stderr.strip().splitlines()
        where = f"see {log}" if log is not None else (last[-1] if last else "no output")
        raise SystemExit(f"nas-{command} {' '.join(args)} failed (exit {proc.returncode}); {where}")
    return Finished(proc.returncode, wall_s, usage.ru_utime + usage.ru_stime, stdout, stderr)


def _read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()


# -- publishing -------------------------------------------------------------------------------------


def replace_section(path: Path, name: str, text: str) -> None:
    """Replace what lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in `path`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: needs the markers {begin} and {end}")
    head, rest = doc.split(begin, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}")


def publish(text: str, result: str, title: str, doc: Path | None, section: str) -> None:
    """Write `text` as bench/results/`result` under a `title` heading, print it, and with `doc`
    replace that file's `section` with it."""
    (RESULTS / result).write_text(f"# {title}\n\n{text}")
    print(text)
    if doc:
        replace_section(doc, section, text)
