"""A Hub repo at a pinned commit: its revision resolved, its parquet files listed, and a
reader for them, with errors a person can act on (gated, invalid token, not found).

Listings go through huggingface_hub (`HfApi.repo_info`, `HfFileSystem.glob`); reads go
through reader.py. Both are retried by retries.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from huggingface_hub import HfApi, HfFileSystem, errors

from ..errors import RetriesExhausted, SourceError, describe
from . import client
from .reader import HubReader
from .retries import transport_failure, with_retries
from .urls import HubUrl, choose_revision

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
    fs = HfFileSystem(endpoint=endpoint, token=token, skip_instance_cache=True)
    kind = parsed.type.rstrip("s")
    explain = _explainer(parsed.repo, endpoint)
    try:
        info = with_retries(
            lambda: api.repo_info(parsed.repo, repo_type=kind, revision=revision, timeout=client.READ_TIMEOUT_S),
            f"{parsed.repo} at the Hub ({endpoint})",
            explain,
        )
        commit = info.sha
        prefix = f"{parsed.type}/{parsed.repo}@{commit}/"
        listed = with_retries(lambda: fs.glob(prefix + parsed.pattern, detail=True), url, explain)
        # {path: info}, as fsspec's glob returns with detail=True; HfFileSystem.glob is annotated `-> list[str]`.
        found = cast(dict[str, dict[str, Any]], listed)
    except SourceError as exc:
        raise _listing_error(exc, parsed.repo, revision, endpoint) from exc
    files = [
        RepoFile(path, f"hf://{parsed.type}/{parsed.repo}/{path.removeprefix(prefix)}", int(i["size"]))
        for path, i in sorted(found.items())
        if i.get("type") == "file" and path.endswith(".parquet")
    ]
    return Listing(revision, commit, files, HubReader(endpoint, token, explain))


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
