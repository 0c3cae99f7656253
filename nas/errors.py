"""Errors a user can fix: the CLIs print them as one line and exit with status 2."""

from __future__ import annotations

from search_spaces import ArchError

__all__ = ["ArchError", "ConfigError", "DataError", "SearchAborted", "USER_ERRORS"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DataError(RuntimeError):
    """A dataset cannot be found or read; the message says where it looked and what to do."""


class SearchAborted(RuntimeError):
    """The search stopped itself: too many failed trials in a row. The study is kept."""


#: What the command-line entry points report in one line (exit status 2) instead of a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, ArchError)
