"""Exact byte ranges of files in Hub repos: one GET each, the answer checked before its body is read.

File reads do not go through `HfFileSystem.open`: its `_fetch_range` reads the whole
response body whatever the server sends, retries inside `http_backoff` (sleeping on 429
without telling anyone, then again in our retries), and cannot tell a mirror that ignores
Range from one that honours it. So a read here is one GET through huggingface_hub's shared
HTTP client (same headers, offline mode, proxies, our timeouts: client.py), with the
status checked before the body is read:

* a 200 (or a 206 longer than asked) for a partial range means the server ignores Range:
  a one-line error naming the host, at the first such answer, never a second download;
* redirects are followed by the client, which keeps the Range header and drops the
  Authorization header when the target is another origin (the Hub's storage hosts);
* 429s are waited out by `retries.with_retries`, which reports the wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from huggingface_hub import hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from ..errors import RangeIgnoredError, SourceError

CONTENT_RANGE = re.compile(r"^bytes (\d+)-")


class File(Protocol):
    """What a read needs to know of a file (source.files.SourceFile is one)."""

    path: str  # pinned to the commit: datasets/<org>/<repo>@<commit>/<file>
    url: str  # for messages
    size: int


class HubReader:
    """Exact byte ranges of files in Hub repos, as single GETs with a Range header."""

    def __init__(self, endpoint: str, token: str | None, explain: Callable[[BaseException], SourceError | None]):
        self.endpoint, self.explain = endpoint, explain
        self.headers = build_hf_headers(token=token)  # token None: HF_TOKEN or a saved login, as HfApi does

    def url(self, path: str) -> str:
        """The resolve URL of a pinned path `datasets/<org>/<repo>@<commit>/<file>`."""
        kind, rest = path.split("/", 1)
        repo, _, pinned = rest.partition("@")
        commit, _, filename = pinned.partition("/")
        return hf_hub_url(repo, filename, repo_type=kind.rstrip("s"), revision=commit, endpoint=self.endpoint)

    def read(self, file: File, start: int, end: int) -> bytes:
        """Bytes [start, end) of `file`, or an error: the status is checked before the body is read."""
        headers = {**self.headers, "Range": f"bytes={start}-{end - 1}"}
        with get_session().stream("GET", self.url(file.path), headers=headers, follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            _check_range(response, file, start, end)
            return _body(response, file, start, end)


def _check_range(response, file: File, start: int, end: int) -> None:
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


def _body(response, file: File, start: int, end: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > end - start:  # no Content-Length, and more than asked: stop reading now
            raise _range_ignored(response, file, start, end)
        chunks.append(chunk)
    return b"".join(chunks)


def _range_ignored(response, file: File, start: int, end: int) -> RangeIgnoredError:
    host = urlsplit(str(response.url)).netloc
    return RangeIgnoredError(
        f"{host} ignores HTTP Range requests (asked for bytes {start}-{end - 1} of {file.url}, it answered "
        f"{response.status_code} with more): shardsql reads byte ranges only; use an endpoint that supports them"
    )
