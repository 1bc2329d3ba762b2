"""Retrying reads and listings: backoff on transient faults, patience on rate limits.

Only transient failures are retried: no answer at all (refused, unresolvable, timed out,
hung up), a short read, a 5xx, a 408 or a 429. A permanent one (a 4xx, a missing file, no
permission) becomes a one-line SourceError at once, and anything else (a bug in a read) is
raised as it is, at once: a bug must not look like a network fault.

Two budgets, because the two failures mean different things:

* A transient fault (5xx, a dropped connection, a timeout, a short read) costs one of
  `retry_attempts` (tuning.py) attempts, with exponential backoff between them. When they run out the
  error says so and that the run can be resumed.
* A rate limit (429 with `RateLimit: "resolvers";r=0;t=<s>` or `Retry-After: <s>`) is the
  server asking for patience, not failing: we wait as long as it asks (up to its window,
  `RATE_LIMIT_WINDOW_S`), say so through the wait reporter, and try again without using an
  attempt, so a conversion under a request budget finishes. A wait longer than the window
  ends the run with a one-line error (resumable). The Hub counts its quotas per bucket
  (`resolvers` for file resolves, `api` for listings): the message names the bucket, waits
  in one bucket are said once however many threads wait, and the hint that a token raises
  the limit is given only when the refused request carried none.

The Hub's storage answers that are not the range asked for (reader.py's
`StorageAnswerError`) say themselves whether they are transient: a 403 from storage, a
stale edge's 416 and a wrong `Content-Range` are retried, with the file resolved again.
`on_fault`, given to `with_retries`, hears every transient fault and rate limit: the fetch
streams (source/fetch.py) take fewer requests at once then.

The wait reporter is the only interface: `report_waits(callable)` sets, for the duration of
a `with` block, the callable that receives one line of text per wait (e.g.
`Progress.message`); without one, the line goes to stderr. It is called from fetch threads.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .. import tuning
from ..errors import RateLimitTooLong, RetriesExhausted, ShortReadError, SourceError, StorageAnswerError, describe

T = TypeVar("T")

RETRY_MAX_S = 30.0  # the longest backoff between attempts (tuning.py: how many, from what base)
# The Hub counts requests in fixed 5-minute windows: a wait up to that is normal; a server
# that asks for more is not going to let this run finish soon.
RATE_LIMIT_WINDOW_S = 300.0
# Rate-limit waits in a row for one call before giving up: an hour of full windows, which
# only a server that never lets us through would reach.
RATE_LIMIT_WAITS = 12
RESUME_HINT = "Run the same command again to resume from the last complete shard."
NETWORK_HINT = "Check HF_ENDPOINT and your network connection. "

WaitReporter = Callable[[str], None]
_reporter: WaitReporter | None = None
_reported_until: dict[str | None, float] = {}  # by bucket: monotonic time until which a reported wait covers the others
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


def report_wait(seconds: float, bucket: str | None = None, token_sent: bool | None = None) -> None:
    """Say once that we wait `seconds` for the Hub's rate limit on `bucket` (parallel readers
    wait together). `token_sent`: whether the refused request carried a token (None: unknown,
    then HF_TOKEN says); the hint that a token raises the limit is only for those without."""
    if seconds < 1:
        return  # a blink, not worth a line
    until = time.monotonic() + seconds
    with _report_lock:
        if until <= _reported_until.get(bucket, 0.0) + 1:
            return  # another thread already said so, for as long
        _reported_until[bucket] = until
    token_sent = bool(os.environ.get("HF_TOKEN")) if token_sent is None else token_sent
    hint = "" if token_sent else " (an HF_TOKEN raises the limit)"
    text = f"rate-limited by the Hub{f' ({bucket})' if bucket else ''}: waiting {seconds:.0f} s{hint}"
    if _reporter is not None:
        _reporter(text)
    else:
        print(text, file=sys.stderr, flush=True)


def too_long(what: str, wait: float) -> RateLimitTooLong:
    return RateLimitTooLong(
        f"the Hub rate-limits {what} and asks to wait {wait:.0f} s, beyond its "
        f"{RATE_LIMIT_WINDOW_S:.0f} s window. {RESUME_HINT}"
    )


def rate_limit_wait(exc: BaseException) -> float | None:
    """Seconds a 429 asks us to wait (`RateLimit` t= when r=0, else `Retry-After`), or None."""
    response = getattr(exc, "response", None)
    if response is None or getattr(response, "status_code", None) != 429:
        return None
    # Imported here: a local source never loads huggingface_hub (start-up time), and only an
    # HTTP answer has a status.
    from huggingface_hub.utils import parse_ratelimit_headers

    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return _retry_after(exc)


def rate_limit_bucket(exc: BaseException) -> str | None:
    """The Hub's name for the quota a 429 ran out of (`resolvers`, `api`), if it says."""
    from huggingface_hub.utils import parse_ratelimit_headers

    headers = getattr(getattr(exc, "response", None), "headers", None)
    info = parse_ratelimit_headers(headers) if headers is not None else None
    return info.resource_type if info is not None else None


def token_sent(exc: BaseException) -> bool | None:
    """Whether the request that failed carried a token (None: it cannot be told)."""
    try:
        return "authorization" in exc.response.request.headers  # type: ignore[attr-defined]
    except Exception:  # no response, or one with no request (not an HTTP answer)
        return None


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = str(headers.get("retry-after", "")).strip() if hasattr(headers, "get") else ""
    return float(value) if value.isdigit() else None


def _backoff(exc: BaseException, attempt: int) -> float:
    """Seconds before the next attempt: a 5xx's Retry-After (within the window), else exponential."""
    retry_after = _retry_after(exc)
    if retry_after is not None:
        return min(retry_after, RATE_LIMIT_WINDOW_S)
    exponential: float = tuning.current().retry_base_s * 2 ** (attempt - 1)
    return min(exponential, RETRY_MAX_S)


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def transport_failure(exc: BaseException) -> bool:
    """No answer, or an answer cut short: refused, unresolvable, timed out, hung up, a short read."""
    # httpx2 is checked only if something imported it: a local source's reads never do.
    httpx2 = sys.modules.get("httpx2")
    if httpx2 is not None and isinstance(exc, httpx2.TransportError):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, socket.timeout, ShortReadError))


def transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: a transport failure, a 5xx, a 408 or a 429, or an
    answer from storage that says it is (a 403, a stale 416, a wrong Content-Range)."""
    if isinstance(exc, StorageAnswerError):
        return exc.transient
    status = _status(exc)
    return transport_failure(exc) or (status is not None and (status >= 500 or status in (408, 429)))


def permanent(exc: BaseException) -> bool:
    """Failures of the source, not of shardsql, that another attempt cannot fix: missing
    things, refused access, offline mode, a 4xx other than 408 and 429."""
    if isinstance(exc, StorageAnswerError):
        return not exc.transient
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return True
    errors = sys.modules.get("huggingface_hub.errors")
    if errors is not None and isinstance(
        exc,
        (
            errors.RepositoryNotFoundError,  # includes GatedRepoError
            errors.RevisionNotFoundError,
            errors.EntryNotFoundError,
            errors.OfflineModeIsEnabled,  # HF_HUB_OFFLINE=1: no request will be sent (a ConnectionError)
        ),
    ):
        return True
    status = _status(exc)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def unreachable(exc: BaseException) -> bool:
    """The server could not be reached at all (refused, no route, name not found, connect timeout)."""
    names = {"ConnectError", "ConnectTimeout"}  # httpx2's, without importing it for local sources
    return isinstance(exc, (ConnectionRefusedError, socket.gaierror)) or type(exc).__name__ in names


def with_retries(
    action: Callable[[], T],
    what: str,
    explain: Callable[[BaseException], SourceError | None] | None = None,
    *,
    on_fault: Callable[[BaseException], None] | None = None,
) -> T:
    """Run `action`, waiting out rate limits and retrying transient faults; a SourceError when they
    persist or when the failure is permanent. Any other exception (a bug) is raised at once, unchanged.

    `explain(exc)` may turn a failure into a clearer SourceError (gated repo, invalid token),
    which is raised at once. `on_fault(exc)` hears each rate limit and transient fault.
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
                if on_fault is not None:
                    on_fault(exc)
                report_wait(wait, rate_limit_bucket(exc), token_sent(exc))
                time.sleep(wait + tuning.current().rate_limit_margin_s)
                continue
            if isinstance(exc, SourceError):
                raise
            if permanent(exc) or (not transient(exc) and isinstance(exc, OSError)):  # OSError: a local disk's
                raise SourceError(f"cannot read {what}: {describe(exc)}") from exc
            if not transient(exc):
                raise  # a bug: not retried, and not disguised as a network fault
            if on_fault is not None:
                on_fault(exc)
            attempts = tuning.current().retry_attempts
            if attempt >= attempts:
                elapsed = time.monotonic() - started
                hint = NETWORK_HINT if unreachable(exc) else ""
                raise RetriesExhausted(
                    f"cannot read {what} after {attempts} attempts over {elapsed:.0f} s: {describe(exc)}. "
                    + hint
                    + RESUME_HINT,
                    attempt,
                    elapsed,
                ) from exc
            time.sleep(_backoff(exc, attempt))
            attempt += 1
            waits = 0
