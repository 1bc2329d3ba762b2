"""A Hub repo at a pinned commit: its revision resolved, its parquet files listed, and a
reader for them, with errors a person can act on (gated, invalid token, not found).

Listings go through huggingface_hub's `HfApi`: `repo_info` pins the revision to a commit, then
one `list_repo_tree` of the glob's fixed folder (recursive only where the glob reaches deeper)
lists the files, matched by fsspec's glob rules, as `HfFileSystem.glob` matches them. Two API
calls, each a round trip: `HfFileSystem.glob` asks for the repo's info again and lists the
folder's parent too. Reads go through reader.py. Both are retried by retries.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from fsspec.utils import glob_translate
from huggingface_hub import HfApi, errors
from huggingface_hub import RepoFile as TreeFile

from .. import tuning
from ..errors import RetriesExhausted, SourceError, describe
from . import client
from .reader import HubReader
from .retries import transport_failure, with_retries
from .urls import HubUrl, choose_revision

WILDCARD = re.compile(r"[*?[]")  # a glob segment with any of these matches by pattern (fsspec's has_magic)
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"  # the real Hub's 401, even on public repos


@dataclass(frozen=True)
class RepoFile:
    path: str  # pinned to the commit: datasets/<org>/<repo>@<commit>/<file>
    url: str  # as shown to people: hf://datasets/<org>/<repo>/<file>
    size: int


@dataclass
class Listing:
    revision: str  # as asked (a branch, tag, ref or commit)
    commit: str | None  # what it resolved to (huggingface_hub types the Hub's answer Optional)
    files: list[RepoFile]
    reader: HubReader


def list_files(url: str, parsed: HubUrl, revision: str | None, override: bool) -> Listing:
    """Resolve the revision to a commit and list the parquet files matching the URL's glob there."""
    endpoint, token = client.settings()
    revision = choose_revision(url, parsed.revision, revision, override)
    api = HfApi(endpoint=endpoint, token=token)
    kind = parsed.type.rstrip("s")
    explain = _explainer(parsed.repo, endpoint)
    timeout = tuning.current().read_timeout_s
    try:
        info = with_retries(
            lambda: api.repo_info(parsed.repo, repo_type=kind, revision=revision, timeout=timeout),
            f"{parsed.repo} at the Hub ({endpoint})",
            explain,
        )
        commit = info.sha
        found = with_retries(lambda: _matching(api, parsed, kind, commit or revision), url, explain)
    except SourceError as exc:
        raise _listing_error(exc, parsed.repo, revision, endpoint) from exc
    files = [
        RepoFile(f"{parsed.type}/{parsed.repo}@{commit}/{path}", f"hf://{parsed.type}/{parsed.repo}/{path}", size)
        for path, size in sorted(found.items())
        if path.endswith(".parquet")
    ]
    return Listing(revision, commit, files, HubReader(endpoint, token, explain))


def _matching(api: HfApi, parsed: HubUrl, kind: str, revision: str) -> dict[str, int]:
    """{path in the repo: size} of the files that the URL's glob matches at `revision`: one
    listing of the glob's fixed folder, recursive only if the glob reaches below it."""
    pattern = parsed.pattern.strip("/")
    parts = pattern.split("/")
    fixed = 0
    while fixed < len(parts) and not WILDCARD.search(parts[fixed]):
        fixed += 1
    fixed = min(fixed, len(parts) - 1)  # a glob without wildcards names a file: list its folder
    folder, below = "/".join(parts[:fixed]), parts[fixed:]
    recursive = len(below) > 1 or "**" in below[0]
    match = re.compile(glob_translate(pattern)).match
    try:
        tree = api.list_repo_tree(parsed.repo, path_in_repo=folder or None, recursive=recursive, revision=revision,
                                  repo_type=kind)  # fmt: skip
        return {e.path: e.size for e in tree if isinstance(e, TreeFile) and match(e.path)}
    except errors.RemoteEntryNotFoundError:
        return {}  # no such folder: nothing matches


def open_reader(parsed: HubUrl) -> HubReader:
    """A reader for files already listed (by another process): this process's endpoint and token."""
    endpoint, token = client.settings()
    return HubReader(endpoint, token, _explainer(parsed.repo, endpoint))


def _listing_error(exc: SourceError, repo: str, revision: str, endpoint: str) -> SourceError:
    cause = exc.__cause__
    if isinstance(exc, RetriesExhausted) and cause is not None and transport_failure(cause):
        return SourceError(
            f"cannot reach the Hub at {endpoint}: {exc.attempts} attempts over {exc.elapsed:.0f} s failed "
            f"({describe(cause)}). Check HF_ENDPOINT and your network connection."
        )
    if isinstance(cause, errors.RevisionNotFoundError):
        return SourceError(f"revision '{revision}' not found in dataset {repo}")
    if isinstance(cause, errors.RepositoryNotFoundError):
        return SourceError(f"dataset {repo} not found at {endpoint} (if it is private or gated, set HF_TOKEN)")
    return exc


def _explainer(repo: str, endpoint: str) -> Callable[[BaseException], SourceError | None]:
    def explain(exc: BaseException) -> SourceError | None:
        return _gated_error(exc, repo) or _invalid_token_error(exc, endpoint)

    return explain


def _gated_error(exc: BaseException, what: str) -> SourceError | None:
    """A clear error for a gated or private repo that refused us, else None."""
    if not isinstance(exc, errors.GatedRepoError):
        return None
    if os.environ.get("HF_TOKEN"):
        return SourceError(f"{what} is gated and your HF_TOKEN has no access: accept its terms on the Hub")
    return SourceError(f"{what} is gated: accept its terms on the Hub and set HF_TOKEN to a token with access")


def _invalid_token_error(exc: BaseException, endpoint: str) -> SourceError | None:
    """The Hub answers 401 "Invalid credentials" to a bad token, even for public repos."""
    response = getattr(exc, "response", None)
    if response is None or getattr(response, "status_code", None) != 401:
        return None
    if response.headers.get("x-error-message", "") != INVALID_TOKEN_MESSAGE and INVALID_TOKEN_MESSAGE not in str(exc):
        return None
    return SourceError(
        f"the Hub ({endpoint}) rejects your HF_TOKEN as invalid: set a valid token, or unset HF_TOKEN "
        "(public datasets need none)"
    )
