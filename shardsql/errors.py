"""Every error class shardsql raises, in one place.

The CLI catches `ShardsqlError` and prints its message without a traceback, so every
message here is written for a person: it names the file or dataset involved and, where
it can, says what to do next. Anything else that escapes is a bug: the CLI says so in one
line (`--debug` shows the traceback).
"""

from __future__ import annotations

import difflib
import errno
import re
from pathlib import Path
from typing import Any


def describe(exc: BaseException) -> str:
    """The first line of an error's text, or its type when it has none: the one helper that
    turns an exception (DuckDB's, Arrow's, an HTTP client's) into the text of a one-line message.

    A C extension's message that is not valid UTF-8 (DuckDB's, when it quotes bytes of the
    data) cannot become a str. Since Python 3.11.5 (CPython gh-107915) the extension raises
    a UnicodeDecodeError holding the message's bytes instead of its own error; before, its
    own error with no message at all (Debian 12's python3 is 3.11.2). Both are said here."""
    try:
        text = str(exc).strip()
    except Exception:  # a broken __str__ must not hide the error being reported
        text = ""
    name = type(exc).__name__
    # The bytes of DuckDB's message ("Conversion Error: ..."), shown with \xNN for the bad ones.
    if isinstance(exc, UnicodeDecodeError) and re.match(rb"[A-Za-z ]+ Error: ", exc.object or b""):
        message = exc.object.decode("utf-8", "backslashreplace").strip().splitlines()[0]
        return f"{message} (the message holds bytes that are not valid UTF-8, shown as \\xNN)"
    if not text and type(exc).__module__.lstrip("_") == "duckdb":
        # DuckDB's errors always have a message: an empty one is one that Python dropped.
        return (f"{name} (DuckDB's message was not valid UTF-8, as it quotes such bytes, "
                "and Python 3.11.4 or older drops such a message)")  # fmt: skip
    return text.splitlines()[0] if text else name


def unexpected(exc: Exception) -> str:
    """The one line the CLI prints for an error that is not a `ShardsqlError` (a bug, or an OS
    error no layer turned into one): an OS error's own words and file, else its type and text."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text, name = describe(exc), type(exc).__name__
    what = text if text.startswith(name) else f"{name}: {text}"  # describe names the type when there is no text
    return f"unexpected {what} (shardsql --debug COMMAND ... shows the traceback; please report it)"


class ShardsqlError(Exception):
    """Base class: a problem the user can act on (bad input, missing data, network)."""

    exit_code = 1


# --- definitions and queries ----------------------------------------------------------------


class DefinitionError(ShardsqlError):
    """A dataset definition (a .sql file) is malformed or its SQL is not acceptable."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class UnknownDatasetError(ShardsqlError):
    """A name that is neither a known dataset nor an existing .sql file."""

    def __init__(self, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(
            f"Unknown dataset '{name}'.{hint} Known datasets: {', '.join(known) or '(none)'}. "
            "A path to your own .sql file works too."
        )
        self.name = name


class QueryError(ShardsqlError):
    """An ad-hoc query (`shardsql sql`) is invalid or failed."""


class OptionsError(ShardsqlError):
    """An option value that cannot work (e.g. zero shards)."""

    exit_code = 2


# --- reading the source ---------------------------------------------------------------------


class SourceError(ShardsqlError):
    """The source data cannot be listed or read (missing repo, revision, files, bad parquet)."""


class RetriesExhausted(SourceError):
    """Transient faults that persisted through every attempt."""

    def __init__(self, message: str, attempts: int, elapsed: float):
        super().__init__(message)
        self.attempts, self.elapsed = attempts, elapsed


class RateLimitTooLong(SourceError):
    """The server asks for a wait beyond its rate-limit window."""


class RangeIgnoredError(SourceError):
    """The server answered a range request with more than the range: it ignores Range."""


class StorageAnswerError(Exception):
    """An answer that is not the range asked for, from the Hub's storage or a mirror: a 403
    from storage, a 416 or a `Content-Range` that disagrees with the file's listed size, an
    error status from storage. Not a ShardsqlError: hub/retries.py retries it when
    `transient` and words the error when it persists; its message names the host."""

    def __init__(self, message: str, response: Any, transient: bool):  # response: an httpx2.Response
        super().__init__(message)
        self.response, self.transient = response, transient


class ShortReadError(OSError):
    """A range read returned fewer bytes than asked for: transient, retried (not a ShardsqlError)."""


# --- writing the output ---------------------------------------------------------------------


class ConversionError(ShardsqlError):
    """The conversion ran but its output is not usable (e.g. no rows survived the filter)."""


class BusyError(ShardsqlError):
    """Another conversion or restore holds the cache folder."""


class CacheDirError(ShardsqlError):
    """The cache folder cannot be created or written (a file in its place, read-only, no permission)."""

    def __init__(self, root: Path, exc: OSError):
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = "it, or a folder on its path, is a file, not a folder"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            why = f"it is not writable ({exc.strerror})"
        else:
            why = exc.strerror or str(exc)
        super().__init__(f"cannot use {root} as the cache folder: {why}. Choose another with --cache-dir.")


class BackupError(ShardsqlError):
    """A backup that does not exist or cannot be restored."""


class VerifyError(ShardsqlError):
    """A data folder that cannot be verified (missing, or holding no shards)."""
