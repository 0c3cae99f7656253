"""Writing a bench script's result: its file under bench/results/, and a generated section of a
hand-written Markdown file."""

from __future__ import annotations

from pathlib import Path


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
    (Path(__file__).resolve().parent / "results" / result).write_text(f"# {title}\n\n{text}")
    print(text)
    if doc:
        replace_section(doc, section, text)
