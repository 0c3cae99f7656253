"""Passwords in storage URLs: hidden in every message and log line (`redact`), and kept out of
what Hydra writes for us (multirun.yaml, overrides, its launch lines) by travelling in an
environment variable instead of the command line (`hide_passwords`, `with_password`)."""

from __future__ import annotations

import os
import re

__all__ = ["PASSWORD_ENV", "hide_passwords", "redact", "split_password", "with_password"]

#: Where a storage URL's password travels to the processes of a run (workers a launcher starts
#: inherit it); users may set it themselves instead of writing the password in the URL.
PASSWORD_ENV = "NAS_STORAGE_PASSWORD"

# scheme://user:password@host..., the password running to the token's last "@" (so it may hold "/"
# or "@"); a token ends at whitespace or a quote.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s'\"]*):(?P<password>[^\s'\"]*)@(?=[^@\s'\"]*(?:[\s'\"]|$))")
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pw)=)[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every password replaced by ***."""
    return _QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", text))


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None)."""
    match = _USERINFO.match(url)
    if match is None:
        return url, None
    return match["head"] + "@" + url[match.end():], match["password"]


def with_password(url: str) -> str:
    """The URL with the password of `PASSWORD_ENV` put back, when it names a user but no password."""
    password = os.environ.get(PASSWORD_ENV)
    match = re.match(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*)@", url)
    if not password or match is None:
        return url
    return f"{match['head']}:{password}@{url[match.end():]}"


def hide_passwords(args: list[str], keys: tuple[str, ...]) -> list[str]:
    """Command-line overrides with the password of each `keys` URL moved into `PASSWORD_ENV`, before
    Hydra records them anywhere."""
    hidden = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in keys:
            quote = value[:1] if value[:1] in "'\"" and value[-1:] == value[:1] else ""
            url, password = split_password(value[len(quote):len(value) - len(quote)])
            if password is not None:
                os.environ[PASSWORD_ENV] = password
                arg = f"{key}={quote}{url}{quote}"
        hidden.append(arg)
    return hidden
