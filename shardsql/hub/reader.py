"""The Hugging Face Hub: `hf://` URLs, listing a repo at a pinned commit, exact range reads.

Listings go through huggingface_hub (`HfApi.repo_info`, `HfFileSystem.glob`). File reads
do not go through `HfFileSystem.open`: its `_fetch_range` reads the whole response body
whatever the server sends, retries inside `http_backoff` (sleeping on 429 without telling
anyone, then again in our retries), and cannot tell a mirror that ignores Range from one
that honours it. So a read here is one GET through huggingface_hub's shared HTTP client
(same headers, offline mode, proxies), with the status checked before the body is read:

* a 200 (or a 206 longer than asked) for a partial range means the server ignores Range:
  a one-line error naming the host, at the first such answer, never a second download;
* redirects are followed by the client, which keeps the Range header and drops the
  Authorization header when the target is another origin (the Hub's storage hosts);
* 429s are waited out by `retries.with_retries`, which reports the wait.

Every Hub call has a timeout: huggingface_hub's shared client has none, and some calls
(tree pages) pass `timeout=None` explicitly, so a request hook fills in ours wherever a
request has none. huggingface_hub's own 429 sleeps (tree pages go through its
`http_backoff`) are reported through the same wait reporter, from its log records.

`hf://` URLs: `hf://datasets/<org>/<repo>[@<rev>]/<path glob>`, where `<rev>` is a branch,
tag or commit, `refs/convert/parquet` or `refs/pr/N` unquoted or quoted
(`refs%2Fconvert%2Fparquet`), or `~parquet` (= `refs/convert/parquet`). Unquoted refs are
split as huggingface_hub's `parse_hf_uri` splits them: `refs/convert/<name>` and
`refs/pr/<N>` take their segments, any other revision one segment.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import retries
from .errors import SourceError
from .retries import RetriesExhausted, describe, report_wait, too_long, with_retries

if TYPE_CHECKING:
    from .sources import SourceFile

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
# Seconds to connect, and to wait for each piece of an answer: a stalled server ends in a
# timeout, which is retried like a dropped connection.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
PARQUET_REF = "refs/convert/parquet"
REVISION_ALIASES = {"~parquet": PARQUET_REF}  # the alias DuckDB's hf:// reader accepts
HF_URL = re.compile(r"^hf://(?P<type>datasets|models|spaces)/(?P<repo>[^/@]+/[^/@]+)(?P<tail>[@/].*)?$")
# As huggingface_hub's parse_hf_uri: refs whose name spans several path segments.
SPECIAL_REF = re.compile(r"^refs/(?:convert/[\w.-]+|pr/\d+)(?=/|$)")
CONTENT_RANGE = re.compile(r"^bytes (\d+)-")
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"  # the real Hub's 401, even on public repos
# huggingface_hub's http_backoff logs these on a 429 (utils/_http.py, 2.x): the first, then
# the second before it sleeps. We say the wait ourselves, once, in our words.
HF_429_LOG = re.compile(r"^HTTP Error 429 thrown while requesting ")
HF_RATE_LIMIT_LOG = re.compile(r"^Rate limited\. Waiting (?P<s>[\d.]+)s before retry")
HF_SLEEP_MARGIN_S = 1.0  # it sleeps the server's t + 1 s


@dataclass(frozen=True)
class HubUrl:
    type: str  # datasets, models or spaces
    repo: str
    revision: str | None  # as the URL names it, unquoted and de-aliased
    pattern: str


def parse_url(url: str) -> HubUrl | None:
    """The parts of an `hf://` URL, or None for any other URL."""
    match = HF_URL.match(url)
    if match is None:
        return None
    tail, revision = match["tail"] or "", None
    path = tail.removeprefix("/")
    if tail.startswith("@"):
        rest = tail[1:]
        special = SPECIAL_REF.match(rest)
        revision, _, path = (special[0], "", rest[special.end() + 1 :]) if special else rest.partition("/")
        revision = REVISION_ALIASES.get(unquote(revision), unquote(revision))
    return HubUrl(match["type"], match["repo"], revision, path or "*.parquet")


def choose_revision(url: str, in_url: str | None, asked: str | None, override: bool) -> str:
    """The revision to read: `asked` if it overrides, else the URL's and `asked`, which must agree."""
    asked = REVISION_ALIASES.get(asked, asked) if asked else None
    if override and asked:
        return asked
    if in_url and asked and in_url != asked:
        raise SourceError(
            f"{url} names revision '{in_url}' but the definition's revision is '{asked}': make them agree "
            "(or pass --revision, which overrides both)"
        )
    return in_url or asked or "main"


# --- timeouts on every request -------------------------------------------------------------

_installed = False
_install_lock = threading.Lock()


def install_client_defaults() -> None:
    """Give huggingface_hub's shared HTTP client our timeouts and relay its rate-limit waits.

    Process-wide and idempotent: the shared client is huggingface_hub's, set through its
    public `set_client_factory`.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        import httpx2
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils import _http

        def factory() -> httpx2.Client:
            # huggingface_hub's own client (its request hook: offline mode, request ids), plus ours.
            # default_client_factory is not exported; the <3 bound in pyproject keeps it where it is.
            client = _http.default_client_factory()
            client.event_hooks["request"].append(_fill_timeouts)
            return client

        set_client_factory(factory)
        logging.getLogger(_http.__name__).addFilter(_relay_rate_limit_log)
        _installed = True


def _fill_timeouts(request) -> None:
    """A request hook: where a request has no timeout (None), use ours."""
    timeouts = dict(request.extensions.get("timeout") or {})
    defaults = {"connect": CONNECT_TIMEOUT_S, "read": READ_TIMEOUT_S, "write": READ_TIMEOUT_S, "pool": READ_TIMEOUT_S}
    request.extensions["timeout"] = {k: timeouts.get(k) or v for k, v in defaults.items()}


def _relay_rate_limit_log(record: logging.LogRecord) -> bool:
    """A log filter: huggingface_hub's own 429 sleeps (tree pages) become our wait message.

    A wait beyond the window raises here, in the thread about to sleep: huggingface_hub
    sleeps as long as the server asks, and this is the only point where we can stop it.
    """
    message = record.getMessage()
    if HF_429_LOG.match(message):
        return False
    match = HF_RATE_LIMIT_LOG.match(message)
    if match is None:
        return True
    wait = float(match["s"]) - HF_SLEEP_MARGIN_S
    if wait > retries.RATE_LIMIT_WINDOW_S:
        raise too_long("a listing", wait)
    report_wait(wait)
    return False


# --- listing ---------------------------------------------------------------------------------


@dataclass
class HubListing:
    revision: str  # as asked (a branch, tag, ref or commit)
    commit: str  # what it resolved to
    files: list[SourceFile]
    fs: Any  # the HfFileSystem that listed them
    reader: HubReader


def list_files(url: str, parsed: HubUrl, revision: str | None, override: bool) -> HubListing:
    """Resolve the revision to a commit and list the parquet files matching the URL's glob there."""
    from huggingface_hub import HfApi, HfFileSystem

    from .sources import SourceFile

    endpoint, token = _client_settings()
    revision = choose_revision(url, parsed.revision, revision, override)
    api = HfApi(endpoint=endpoint, token=token)
    fs = HfFileSystem(endpoint=endpoint, token=token, skip_instance_cache=True)
    kind = parsed.type.rstrip("s")
    explain = _explainer(parsed.repo, endpoint)
    try:
        info = with_retries(
            lambda: api.repo_info(parsed.repo, repo_type=kind, revision=revision, timeout=READ_TIMEOUT_S),
            f"{parsed.repo} at the Hub ({endpoint})",
            explain,
        )
        commit = info.sha
        prefix = f"{parsed.type}/{parsed.repo}@{commit}/"
        found = with_retries(lambda: fs.glob(prefix + parsed.pattern, detail=True), url, explain)
    except SourceError as exc:
        raise _listing_error(exc, parsed.repo, revision, endpoint) from exc
    files = [
        SourceFile(path=path, url=f"hf://{parsed.type}/{parsed.repo}/{path.removeprefix(prefix)}", size=int(i["size"]))
        for path, i in sorted(found.items())
        if i.get("type") == "file" and path.endswith(".parquet")
    ]
    return HubListing(revision, commit, files, fs, HubReader(endpoint, token, explain))


def open_reader(parsed: HubUrl) -> HubReader:
    """A reader for files already listed (by another process): this process's endpoint and token."""
    endpoint, token = _client_settings()
    return HubReader(endpoint, token, _explainer(parsed.repo, endpoint))


def _client_settings() -> tuple[str, str | None]:
    """The Hub endpoint and token of this process, with the client's defaults installed.

    Read from the environment now, not at import: huggingface_hub freezes HF_ENDPOINT when imported."""
    install_client_defaults()
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_HF_ENDPOINT, os.environ.get("HF_TOKEN") or None


def _listing_error(exc: SourceError, repo: str, revision: str, endpoint: str) -> SourceError:
    from huggingface_hub import errors

    cause = exc.__cause__
    if isinstance(exc, RetriesExhausted) and _network_failure(cause):
        return SourceError(
            f"cannot reach the Hub at {endpoint}: {exc.attempts} attempts over {exc.elapsed:.0f} s failed "
            f"({describe(cause)}). Check HF_ENDPOINT and your network connection."
        )
    if isinstance(cause, errors.RevisionNotFoundError):
        return SourceError(f"revision '{revision}' not found in dataset {repo}")
    if isinstance(cause, errors.RepositoryNotFoundError):
        return SourceError(f"dataset {repo} not found at {endpoint} (if it is private or gated, set HF_TOKEN)")
    return exc


def _network_failure(exc: BaseException | None) -> bool:
    """No answer at all: refused, unresolvable, timed out, hung up."""
    import httpx2

    return exc is not None and (isinstance(exc, httpx2.TransportError) or retries.unreachable(exc))


def _explainer(repo: str, endpoint: str):
    def explain(exc: BaseException) -> SourceError | None:
        return _gated_error(exc, repo) or _invalid_token_error(exc, endpoint)

    return explain


def _gated_error(exc: BaseException, what: str) -> SourceError | None:
    """A clear error for a gated or private repo that refused us, else None."""
    from huggingface_hub import errors

    if not isinstance(exc, errors.GatedRepoError):
        return None
    if os.environ.get("HF_TOKEN"):
        return SourceError(f"{what} is gated and your HF_TOKEN has no access: accept its terms on the Hub")
    return SourceError(f"{what} is gated: accept its terms on the Hub and set HF_TOKEN to a token with access")


def _invalid_token_error(exc: BaseException, endpoint: str) -> SourceError | None:
    """The Hub answers 401 "Invalid credentials" to a bad token, even for public repos."""
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) != 401:
        return None
    if response.headers.get("x-error-message", "") != INVALID_TOKEN_MESSAGE and INVALID_TOKEN_MESSAGE not in str(exc):
        return None
    return SourceError(
        f"the Hub ({endpoint}) rejects your HF_TOKEN as invalid: set a valid token, or unset HF_TOKEN "
        "(public datasets need none)"
    )


# --- reading ---------------------------------------------------------------------------------


class RangeIgnoredError(SourceError):
    """The server answered a range request with more than the range: it ignores Range."""


class HubReader:
    """Exact byte ranges of files in Hub repos, as single GETs with a Range header."""

    def __init__(self, endpoint: str, token: str | None, explain):
        from huggingface_hub.utils import build_hf_headers

        self.endpoint, self.explain = endpoint, explain
        self.headers = build_hf_headers(token=token)  # token None: HF_TOKEN or a saved login, as HfApi does

    def url(self, path: str) -> str:
        """The resolve URL of a pinned path `datasets/<org>/<repo>@<commit>/<file>`."""
        from huggingface_hub import hf_hub_url

        kind, rest = path.split("/", 1)
        repo, _, pinned = rest.partition("@")
        commit, _, filename = pinned.partition("/")
        return hf_hub_url(repo, filename, repo_type=kind.rstrip("s"), revision=commit, endpoint=self.endpoint)

    def read(self, file: SourceFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of `file`, or an error: the status is checked before the body is read."""
        from huggingface_hub.utils import get_session, hf_raise_for_status

        headers = {**self.headers, "Range": f"bytes={start}-{end - 1}"}
        with get_session().stream("GET", self.url(file.path), headers=headers, follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            _check_range(response, file, start, end)
            return _body(response, file, start, end)


def _check_range(response, file: SourceFile, start: int, end: int) -> None:
    """Refuse, before reading the body, an answer that is not the range asked for."""
    whole = start == 0 and end == file.size
    declared = response.headers.get("content-length")
    answered = CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if response.status_code == 200 and not whole:
        raise _range_ignored(response, file, start, end)
    if declared is not None and declared.isdigit() and int(declared) > end - start:
        raise _range_ignored(response, file, start, end)
    if response.status_code == 206 and answered and int(answered[1]) != start:
        raise _range_ignored(response, file, start, end)


def _body(response, file: SourceFile, start: int, end: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > end - start:  # no Content-Length, and more than asked: stop reading now
            raise _range_ignored(response, file, start, end)
        chunks.append(chunk)
    return b"".join(chunks)


def _range_ignored(response, file: SourceFile, start: int, end: int) -> RangeIgnoredError:
    host = urlsplit(str(response.url)).netloc
    return RangeIgnoredError(
        f"{host} ignores HTTP Range requests (asked for bytes {start}-{end - 1} of {file.url}, it answered "
        f"{response.status_code} with more): shardsql reads byte ranges only; use an endpoint that supports them"
    )
