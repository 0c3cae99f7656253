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
# A query parameter that holds a password (`?password=...`, `&pw=...`).
_QUERY = re.compile(r"(?P<head>(?P<sep>[?&])(?:password|passwd|pw)=)(?P<password>[^&\s'\"]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every password replaced by ***."""
    return _QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", text))


#: URL schemes that never take a password.
_NO_PASSWORD = ("sqlite:", "file:", "unix:")


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): from the user info
    (`scheme://user:password@host`) or from a `password=` query parameter."""
    match = _USERINFO.match(url)
    if match is not None:
        return match["head"] + "@" + url[match.end():], match["password"]
    query = _QUERY.search(url)
    if query is None:
        return url, None
    before, after = url[: query.start()], url[query.end():]
    if query["sep"] == "?" and after.startswith("&"):  # ?password=x&a=1 -> ?a=1
        after = "?" + after[1:]
    return before + after, query["password"]


def with_password(url: str) -> str:
    """The URL with the password of `PASSWORD_ENV` put back: into the user info when the URL names
    a user but no password, as a `password=` query parameter when it names no user."""
    password = os.environ.get(PASSWORD_ENV)
    if not password or url.startswith(_NO_PASSWORD) or split_password(url)[1] is not None:
        return url
    match = re.match(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*)@", url)
    if match is not None:
        return f"{match['head']}:{password}@{url[match.end():]}"
    return f"{url}{'&' if '?' in url else '?'}password={password}"


def hide_passwords(args: list[str], keys: tuple[str, ...]) -> list[str]:
    """Command-line overrides with the password of each `keys` URL moved into `PASSWORD_ENV`, before
    Hydra records them anywhere. A sweep over several such URLs (`storage.url=A,B`) is refused
    (`ValueError`, naming the key): one variable cannot carry two passwords."""
    hidden = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in keys:
            quote = value[:1] if value[:1] in "'\"" and value[-1:] == value[:1] else ""
            url, password = split_password(value[len(quote):len(value) - len(quote)])
            if password is not None and url.count("://") + password.count("://") > 1:
                shown = ",".join(map(redact, value.split(",")))
                raise ValueError(f"{key.lstrip('+~')}: {shown} sweeps over several URLs with a password (allowed: "
                                 f"one storage per run; put its password in {PASSWORD_ENV} and leave it out of the URLs)")
            if password is not None:
                os.environ[PASSWORD_ENV] = password
                arg = f"{key}={quote}{url}{quote}"
        hidden.append(arg)
    return hidden
