"""`python -m nas <command> [arguments]`: the same programs as `nas-<command>`."""

from __future__ import annotations

import sys

from .apps.cli import COMMANDS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m nas {{{','.join(COMMANDS)}}} [arguments]", file=sys.stderr)
        raise SystemExit(2)
    command = sys.argv.pop(1)
    sys.argv[0] = f"nas-{command}"
    COMMANDS[command]()


if __name__ == "__main__":
    main()
