"""Retrying reads and listings: backoff on transient faults, patience on rate limits.

Two budgets, because the two failures mean different things:

* A transient fault (5xx, a dropped connection, a timeout, a short read) costs one of
  `RETRY_ATTEMPTS` attempts, with exponential backoff between them. When they run out the
  error says so and that the run can be resumed.
* A rate limit (429 with `RateLimit: "resolvers";r=0;t=<s>` or `Retry-After: <s>`) is the
  server asking for patience, not failing: we wait as long as it asks (up to its window,
  `RATE_LIMIT_WINDOW_S`), say so through the wait reporter, and try again without using an
  attempt, so a conversion under a request budget finishes. A wait longer than the window
  ends the run with a one-line error (resumable).

The wait reporter is the only interface: `report_waits(callable)` sets, for the duration of
a `with` block, the callable that receives one line of text per wait (e.g.
`Progress.message`); without one, the line goes to stderr. It is called from fetch threads.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import SourceError

RETRY_ATTEMPTS = 6
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
# The Hub counts requests in fixed 5-minute windows: a wait up to that is normal; a server
# that asks for more is not going to let this run finish soon.
RATE_LIMIT_WINDOW_S = 300.0
# Added to the server's wait: `t=` is rounded to whole seconds (huggingface_hub adds 1 s too).
RATE_LIMIT_MARGIN_S = 1.0
# Rate-limit waits in a row for one call before giving up: an hour of full windows, which
# only a server that never lets us through would reach.
RATE_LIMIT_WAITS = 12
RESUME_HINT = "Run the same command again to resume from the last complete shard."
NETWORK_HINT = "Check HF_ENDPOINT and your network connection. "

WaitReporter = Callable[[str], None]
_reporter: WaitReporter | None = None
_reported_until = 0.0  # monotonic time until which a reported wait already covers the others
_report_lock = threading.Lock()


@contextmanager
def report_waits(reporter: WaitReporter | None) -> Iterator[None]:
    """Send rate-limit wait messages to `reporter` (one line each) inside the block."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous


def report_wait(seconds: float) -> None:
    """Say once that we wait `seconds` for the Hub's rate limit (parallel readers wait together)."""
    global _reported_until
    if seconds < 1:
        return  # a blink, not worth a line
    until = time.monotonic() + seconds
    with _report_lock:
        if until <= _reported_until + 1:
            return  # another thread already said so, for as long
        _reported_until = until
    hint = "" if os.environ.get("HF_TOKEN") else " (an HF_TOKEN raises the limit)"
    text = f"rate-limited by the Hub: waiting {seconds:.0f} s{hint}"
    if _reporter is not None:
        _reporter(text)
    else:
        print(text, file=sys.stderr, flush=True)


class RetriesExhausted(SourceError):
    """Transient faults that persisted through every attempt."""

    def __init__(self, message: str, attempts: int, elapsed: float):
        super().__init__(message)
        self.attempts, self.elapsed = attempts, elapsed


class RateLimitTooLong(SourceError):
    """The server asks for a wait beyond its rate-limit window."""


def too_long(what: str, wait: float) -> RateLimitTooLong:
    return RateLimitTooLong(
        f"the Hub rate-limits {what} and asks to wait {wait:.0f} s, beyond its "
        f"{RATE_LIMIT_WINDOW_S:.0f} s window. {RESUME_HINT}"
    )


def rate_limit_wait(exc: BaseException) -> float | None:
    """Seconds a 429 asks us to wait (`RateLimit` t= when r=0, else `Retry-After`), or None."""
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) != 429:
        return None
    from huggingface_hub.utils import parse_ratelimit_headers

    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return _retry_after(exc)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = str(headers.get("retry-after", "")).strip() if hasattr(headers, "get") else ""
    return float(value) if value.isdigit() else None


def _backoff(exc: BaseException, attempt: int) -> float:
    """Seconds before the next attempt: a 5xx's Retry-After (within the window), else exponential."""
    retry_after = _retry_after(exc)
    if retry_after is not None:
        return min(retry_after, RATE_LIMIT_WINDOW_S)
    return min(RETRY_BASE_S * 2 ** (attempt - 1), RETRY_MAX_S)


def permanent(exc: BaseException) -> bool:
    """Errors that another attempt cannot fix: missing things, refused access, bad requests."""
    if isinstance(exc, (SourceError, FileNotFoundError, PermissionError, IsADirectoryError, ValueError, TypeError)):
        return True
    errors = sys.modules.get("huggingface_hub.errors")
    if errors is not None and isinstance(
        exc,
        (
            errors.RepositoryNotFoundError,  # includes GatedRepoError
            errors.RevisionNotFoundError,
            errors.EntryNotFoundError,
            errors.OfflineModeIsEnabled,  # HF_HUB_OFFLINE=1: no request will be sent
        ),
    ):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def unreachable(exc: BaseException) -> bool:
    """The server could not be reached at all (refused, no route, name not found, connect timeout)."""
    import socket

    names = {"ConnectError", "ConnectTimeout"}  # httpx2's, without importing it for local sources
    return isinstance(exc, (ConnectionRefusedError, socket.gaierror)) or type(exc).__name__ in names


def describe(exc: BaseException) -> str:
    """The first line of an error's text, or its type when it has none: the one helper that
    turns an exception into the text of a one-line message.

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


def with_retries(
    action: Callable[[], Any], what: str, explain: Callable[[BaseException], SourceError | None] | None = None
) -> Any:
    """Run `action`, waiting out rate limits and retrying transient faults; a SourceError when they persist.

    `explain(exc)` may turn a failure into a clearer SourceError (gated repo, invalid token),
    which is raised at once.
    """
    started, attempt, waits = time.monotonic(), 1, 0
    while True:
        try:
            return action()
        except Exception as exc:  # the filesystems raise many kinds; sort them into permanent and not
            clear = explain(exc) if explain else None
            if clear is not None:
                raise clear from exc
            wait = rate_limit_wait(exc)
            if wait is not None and waits < RATE_LIMIT_WAITS:
                if wait > RATE_LIMIT_WINDOW_S:
                    raise too_long(what, wait) from exc
                waits += 1
                report_wait(wait)
                time.sleep(wait + RATE_LIMIT_MARGIN_S)
                continue
            if isinstance(exc, SourceError):
                raise
            if permanent(exc):
                raise SourceError(f"cannot read {what}: {describe(exc)}") from exc
            if attempt == RETRY_ATTEMPTS:
                elapsed = time.monotonic() - started
                hint = NETWORK_HINT if unreachable(exc) else ""
                raise RetriesExhausted(
                    f"cannot read {what} after {RETRY_ATTEMPTS} attempts over {elapsed:.0f} s: {describe(exc)}. "
                    + hint
                    + RESUME_HINT,
                    attempt,
                    elapsed,
                ) from exc
            time.sleep(_backoff(exc, attempt))
            attempt += 1
            waits = 0
