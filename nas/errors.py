"""Errors a user can fix: the CLIs print them as one line and exit with status 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

from search_spaces.fields import FieldError

__all__ = ["ConfigError", "DataError", "SearchAborted", "USER_ERRORS", "report_user_errors"]


class ConfigError(FieldError):
    """A configuration value is invalid; the message starts with the field's dotted path."""


class DataError(RuntimeError):
    """A dataset cannot be found or read; the message says where it looked and what to do."""


class SearchAborted(RuntimeError):
    """The search stopped itself: too many failed trials in a row. The study is kept."""


#: Write errors a user fixes outside the program: a full disk or quota, a read-only filesystem.
FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

#: What the command-line entry points report in one line (exit status 2) instead of a traceback.
# FieldError covers ConfigError and the spec's ArchError.
USER_ERRORS: tuple[type[Exception], ...] = (FieldError, DataError)


def report_user_errors(main: Callable[[], Any], *, verbose: bool = False) -> Any:
    """Run `main`; a user error becomes `error: <field>: <what is allowed>` and exit status 2,
    a search that gave up (too many failed trials) one line and status 1."""
    verbose = verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        return main()
    except USER_ERRORS as err:
        if verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except SearchAborted as err:
        if verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as err:
        if verbose or err.errno not in FULL_OR_READ_ONLY or not err.filename:
            raise
        print(f"error: cannot write {err.filename}: {err.strerror}; the study is kept: free some space, then run "
              "the same command again (or nas-report) to write the outputs", file=sys.stderr)
        raise SystemExit(2) from None
