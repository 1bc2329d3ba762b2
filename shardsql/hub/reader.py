"""Exact byte ranges of files in Hub repos: one resolve per file, then ranges straight from storage,
every answer checked before its body is read.

The Hub answers `/resolve/` with a 302 to a signed URL on its storage, another origin
(storage.py). The first read of a file asks `/resolve/` without following that redirect and
keeps the URL; every later range of the file is one GET on storage, until the URL is about
to expire or storage refuses it (403), when the file is resolved again. Redirects within
the Hub's own origin (a renamed repo, `/api/resolve-cache/`) are followed, with the token; a
mirror that answers `/resolve/` with the bytes themselves is read that way every time. The
token goes to the Hub's origin only, never to storage.

File reads do not go through `HfFileSystem.open`: it resolves every read, reads the whole
body whatever the server sends, and cannot tell a mirror that ignores Range from one that
honours it. Every answer is checked before its body is read:

* a 200 (or a 206 longer than asked) for a partial range: the server ignores Range, a
  one-line error naming the host at the first such answer, never a second download;
* a 206's `Content-Range` must be the range asked for, of a file of the listed size; a 416
  whose total is not the listed size is a stale copy in the CDN's edge; both are transient
  (retried, with the file resolved again), an error naming the host when they persist;
* a 403 from storage: the URL ran out or storage refused it. A URL that has served before
  is resolved again at no cost to the retry budget; one that never served counts an attempt,
  and when they run out the error names the storage host, not the token;
* every request asks for `Accept-Encoding: identity`: a CDN that compresses ignores Range.

Failures are raised for `retries.with_retries` to sort (Source.fetch runs every read in it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from .. import tuning
from ..errors import RangeIgnoredError, SourceError, StorageAnswerError
from . import client
from .storage import Location, Locations, locate, same_origin

CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")
XML_FIELD = "<{0}>([^<]*)</{0}>"
MAX_REDIRECTS = 5  # within the Hub's origin: a renamed repo, then /api/resolve-cache/


class File(Protocol):
    """What a read needs to know of a file (source.files.SourceFile is one)."""

    # Properties: read-only, as a frozen dataclass's (SourceFile's) fields are.
    @property
    def path(self) -> str: ...  # pinned to the commit: datasets/<org>/<repo>@<commit>/<file>
    @property
    def url(self) -> str: ...  # for messages
    @property
    def size(self) -> int: ...


class HubReader:
    """Exact byte ranges of files in Hub repos: each file resolved once per URL lifetime."""

    def __init__(self, endpoint: str, token: str | None, explain: Callable[[BaseException], SourceError | None]):
        self.endpoint, self.explain = endpoint, explain
        # token None: HF_TOKEN or a saved login, as HfApi does. Storage gets none of these
        # headers but the user agent: the token is for the Hub only.
        self.headers = {**build_hf_headers(token=token), "Accept-Encoding": "identity"}
        self.storage_headers = {"User-Agent": self.headers.get("user-agent", ""), "Accept-Encoding": "identity"}
        self.locations = Locations()
        self.resolves = 0  # /resolve/ requests this reader sent (a redirect within the Hub counts again)

    def url(self, path: str) -> str:
        """The resolve URL of a pinned path `datasets/<org>/<repo>@<commit>/<file>`."""
        kind, rest = path.split("/", 1)
        repo, _, pinned = rest.partition("@")
        commit, _, filename = pinned.partition("/")
        return hf_hub_url(repo, filename, repo_type=kind.rstrip("s"), revision=commit, endpoint=self.endpoint)

    def read(self, file: File, start: int, end: int) -> bytes:
        """Bytes [start, end) of `file`, or an error; the answer is checked before its body is read."""
        while True:
            location = self._located(file, start, end)
            if isinstance(location, (bytes, bytearray)):  # the resolve itself answered with them
                return location
            if location is None:  # no redirect: this endpoint serves the bytes itself, every time
                return self._get(self.url(file.path), file, start, end, self.headers, storage=False)
            try:
                data = self._get(location.url, file, start, end, self.storage_headers, storage=True)
            except StorageAnswerError as exc:
                self.locations.drop(file.path, location)  # a refusal or a stale copy: resolve again next time
                if exc.response.status_code == 403 and (location.served or not location.fresh()):
                    continue  # the URL ran out (or storage forgot it): resolving again is not a failed attempt
                raise
            location.served = True
            return data

    def location(self, file: File) -> Location | None:
        """The file's storage location, resolved now if it has none that is fresh (the Ray driver
        passes it to the tasks that read the file); None for an endpoint that serves the bytes itself."""
        known = self._located(file, file.size - 1, file.size)
        return known if isinstance(known, Location) else None

    def adopt(self, file: File, location: Location) -> None:
        """Read `file` from `location` (resolved by another process) while it is fresh, unless
        this reader knows that URL already (it may have served here) or storage refused it here."""
        self.locations.offer(file.path, location)

    def _located(self, file: File, start: int, end: int) -> Location | None | bytes:
        """The file's fresh location (None: no redirect), resolving it by asking for [start, end)
        if it has none; then the bytes, when the endpoint answered the resolve with them."""
        known = self.locations.get(file.path)
        if known is not False:
            return known
        with self.locations.resolving(file.path):  # the file's other first reads wait for this one
            known = self.locations.get(file.path)
            if known is not False:
                return known
            answer = self._resolve(file, start, end)
            self.locations.put(file.path, None if isinstance(answer, (bytes, bytearray)) else answer)
            return answer

    def _resolve(self, file: File, start: int, end: int) -> bytes | Location:
        """Ask `/resolve/` for the range, following redirects within the Hub's origin only: the
        storage location it redirects to, or the bytes if it answers with them."""
        url = self.url(file.path)
        for _ in range(MAX_REDIRECTS):
            self.resolves += 1
            headers, timeout = {**self.headers, "Range": _range(start, end)}, client.timeouts()
            with get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=False) as response:
                if not response.has_redirect_location:
                    return self._answer(response, file, start, end, storage=False)
                target = urljoin(url, response.headers["location"])
                response.read()  # the redirect's small body: the connection goes back to the pool
                if not same_origin(url, target):
                    return locate(target, response.headers.get("date"))
                url = target
        raise SourceError(f"{file.url}: more than {MAX_REDIRECTS} redirects within {urlsplit(url).netloc}")

    def _get(self, url: str, file: File, start: int, end: int, headers: dict[str, str], storage: bool) -> bytes:
        headers = {**headers, "Range": _range(start, end)}
        first_byte = tuning.current().first_byte_timeout_s if storage else None
        timeout = client.timeouts(first_byte)
        with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=timeout) as response:
            return self._answer(response, file, start, end, storage)

    def _answer(self, response: httpx2.Response, file: File, start: int, end: int, storage: bool) -> bytes:
        """The body of an answer to a range request, once its status and headers say it is that range."""
        if response.status_code >= 400 and response.status_code != 416:
            response.read()
            if storage:
                raise _storage_error(response, file, start, end)
            hf_raise_for_status(response)
        _check_range(response, file, start, end)
        if storage:
            client.stream_body_within(response, tuning.current().read_timeout_s)
        return _body(response, file, start, end)


def _range(start: int, end: int) -> str:
    return f"bytes={start}-{end - 1}"


def _host(response: httpx2.Response) -> str:
    return urlsplit(str(response.url)).netloc


def _storage_error(response: httpx2.Response, file: File, start: int, end: int) -> StorageAnswerError:
    """An error status from storage, in words that name the storage host (not the token)."""
    status, host = response.status_code, _host(response)
    code, message = (re.search(XML_FIELD.format(f), response.text) for f in ("Code", "Message"))
    said = ": ".join(m[1] for m in (code, message) if m) or response.reason_phrase
    what = f"bytes {start}-{end - 1} of {file.url}"
    if status == 403:
        text = f"the storage host {host} refuses {what} ({status} {said}), also after resolving the file again"
        return StorageAnswerError(text, response, transient=True)
    transient = status >= 500 or status in (408, 429)
    return StorageAnswerError(f"the storage host {host} answered {status} {said} for {what}", response, transient)


def _check_range(response: httpx2.Response, file: File, start: int, end: int) -> None:
    """Refuse, before reading the body, an answer that is not the range asked for."""
    status, host = response.status_code, _host(response)
    what = f"bytes {start}-{end - 1} of {file.url} ({file.size:,} bytes as listed)"
    if status == 416:
        held = UNSATISFIED_RANGE.match(response.headers.get("content-range", ""))
        response.read()
        if held and int(held[1]) != file.size:  # a stale object in the CDN's edge cache: another try may miss it
            raise StorageAnswerError(f"{host} answered 416 for {what}: it holds a copy of {int(held[1]):,} bytes",
                                     response, transient=True)  # fmt: skip
        raise SourceError(f"{host} answered 416 (range not satisfiable) for {what}")
    whole = start == 0 and end == file.size
    declared = response.headers.get("content-length")
    if status == 200 and not whole:
        raise _range_ignored(response, file, start, end)
    if declared is not None and declared.isdigit() and int(declared) > end - start:
        raise _range_ignored(response, file, start, end)
    if status == 200:
        return
    answered = CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if status != 206 or answered is None:
        said = response.headers.get("content-range", "no Content-Range")
        raise StorageAnswerError(f"{host} answered {status} ({said}) for {what}", response, transient=True)
    first, last, total = int(answered[1]), int(answered[2]), answered[3]
    if (first, last + 1) != (start, end) or (total != "*" and int(total) != file.size):
        raise StorageAnswerError(f"{host} answered bytes {first}-{last}/{total} for {what}", response, transient=True)


def _body(response: httpx2.Response, file: File, start: int, end: int) -> bytes:
    """The body, read into one buffer the size of the range (a bytearray): chunks joined at the
    end would hold every byte twice, for each of the pieces arriving at once."""
    out, size = bytearray(end - start), 0
    for chunk in response.iter_bytes():
        if size + len(chunk) > end - start:  # no Content-Length, and more than asked: stop reading now
            raise _range_ignored(response, file, start, end)
        out[size : size + len(chunk)] = chunk
        size += len(chunk)
    return out if size == end - start else out[:size]  # short: Source.fetch refuses it


def _range_ignored(response: httpx2.Response, file: File, start: int, end: int) -> RangeIgnoredError:
    return RangeIgnoredError(
        f"{_host(response)} ignores HTTP Range requests (asked for bytes {start}-{end - 1} of {file.url}, it answered "
        f"{response.status_code} with more): shardsql reads byte ranges only; use an endpoint that supports them"
    )
