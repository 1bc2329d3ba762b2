"""Source parquet files, read lazily: only the footers, columns and row groups needed.

A source is a URL with a glob: `hf://datasets/<org>/<repo>/<path glob>` on the Hugging Face
Hub (through huggingface_hub's `HfFileSystem`, so `HF_ENDPOINT` mirrors and `HF_TOKEN`
work), a local folder or glob, or any other fsspec URL.

Reading the data is planned elsewhere: plan.py says which byte ranges of which row groups a
unit of work needs, reader.py fetches them through `Source.fetch` and decodes them. Here:
listing the files at a pinned revision, exact range reads with retries, and footers.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SourceError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

FETCH_THREADS = 4  # footers read in parallel by a dry run: hides network latency without hammering the Hub
# Our own retries, around huggingface_hub's (which already backs off on 429, 5xx and dropped
# connections for file reads). Ours add: any fsspec filesystem, the listing calls, and short
# reads, which must never pass as data. Bounded: then a clear error, and the run resumes.
RETRY_ATTEMPTS = 6
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
RETRY_AFTER_MAX_S = 300.0  # honour a server's Retry-After, within reason
PARQUET_MAGIC = b"PAR1"
HF_URL = re.compile(r"^hf://(?P<type>datasets|models|spaces)/(?P<repo>[^/@]+/[^/@]+)(@(?P<rev>[^/]+))?/?(?P<path>.*)$")
DEFAULT_HF_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class SourceFile:
    path: str  # as the filesystem knows it (for the Hub: pinned to the resolved commit)
    url: str  # as shown to people and written to the manifest
    size: int


@dataclass
class ByteCounter:
    """Bytes and requests fetched, shared by every reader of one source (thread-safe)."""

    bytes: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            self.requests += 1


@dataclass
class Source:
    url: str
    revision: str | None
    commit: str | None
    files: list[SourceFile]
    fs: Any = field(repr=False)
    counter: ByteCounter = field(default_factory=ByteCounter)
    footers: dict[str, ParquetFooter] = field(default_factory=dict, repr=False)  # read once per file

    def fetch(self, file: SourceFile, start: int, end: int) -> bytes:
        """Exactly the bytes [start, end) of a file, retried on transient faults, or a SourceError."""

        def read() -> bytes:
            with self.fs.open(file.path, "rb", cache_type="none") as handle:
                handle.seek(start)
                data = handle.read(end - start)
            if len(data) != end - start:
                # A short read must never pass silently: it would decode into wrong rows.
                raise ShortReadError(f"short read: asked for {end - start} bytes at {start}, got {len(data)}")
            return data

        data = with_retries(read, f"{file.url} (bytes {start}-{end})")
        self.counter.add(len(data))
        return data


class ShortReadError(OSError):
    """A range read returned fewer bytes than asked for."""


def _permanent(exc: BaseException) -> bool:
    """Errors that another attempt cannot fix: missing things, refused access, bad requests."""
    import sys

    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError, TypeError)):
        return True
    errors = sys.modules.get("huggingface_hub.errors")
    if errors is not None and isinstance(
        exc, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError)
    ):
        return True  # includes GatedRepoError, a RepositoryNotFoundError
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _retry_wait(exc: BaseException, attempt: int) -> float:
    """Seconds to wait: as the server's Retry-After says, else exponential backoff."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    retry_after = headers.get("retry-after") if hasattr(headers, "get") else None
    if retry_after is not None and str(retry_after).strip().isdigit():
        return min(float(retry_after), RETRY_AFTER_MAX_S)
    return min(RETRY_BASE_S * 2 ** (attempt - 1), RETRY_MAX_S)


def with_retries(action: Callable[[], Any], what: str) -> Any:
    """Run `action`, retrying transient failures with backoff; a SourceError when they persist."""
    import time

    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return action()
        except Exception as exc:  # the filesystems raise many kinds; sort them into permanent and not
            gated = _gated_error(exc, what)
            if gated:
                raise gated from exc
            if _permanent(exc):
                raise SourceError(f"cannot read {what}: {_describe(exc)}") from exc
            if attempt == RETRY_ATTEMPTS:
                raise SourceError(
                    f"cannot read {what} after {RETRY_ATTEMPTS} attempts: {_describe(exc)}. "
                    "Run the same command again to resume from the last complete shard."
                ) from exc
            time.sleep(_retry_wait(exc, attempt))
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _gated_error(exc: Exception, what: str) -> SourceError | None:
    """A clear error for a gated or private repo that refused us, else None."""
    import sys

    errors = sys.modules.get("huggingface_hub.errors")  # only loaded if the Hub was used
    if errors is None or not isinstance(exc, errors.GatedRepoError):
        return None
    if os.environ.get("HF_TOKEN"):
        return SourceError(f"{what} is gated and your HF_TOKEN has no access: accept its terms on the Hub")
    return SourceError(f"{what} is gated: accept its terms on the Hub and set HF_TOKEN to a token with access")


def _hf_error(exc: BaseException, repo: str, revision: str | None, endpoint: str) -> SourceError:
    from huggingface_hub import errors

    if isinstance(exc, SourceError):
        return exc
    gated = _gated_error(exc, repo)
    if gated:
        return gated
    if isinstance(exc, errors.RevisionNotFoundError):
        return SourceError(f"revision '{revision}' not found in dataset {repo}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return SourceError(f"dataset {repo} not found at {endpoint} (if it is private or gated, set HF_TOKEN)")
    return SourceError(f"cannot list {repo} at the Hub ({endpoint}): {_describe(exc)}")


def open_source(url: str, revision: str | None = None, max_files: int | None = None) -> Source:
    """List the files of a source URL (sorted by path, at most `max_files`) and pin its revision."""
    match = HF_URL.match(url)
    source = _open_hub(url, match, revision) if match else _open_fsspec(url)
    if not source.files:
        at = f" at revision {source.revision}" if source.revision else ""
        raise SourceError(f"no parquet files match {url}{at}")
    if max_files is not None:
        source.files = source.files[:max_files]
    return source


def _open_hub(url: str, match: re.Match, revision: str | None) -> Source:
    from huggingface_hub import HfApi, HfFileSystem

    # Read the environment now, not at import: huggingface_hub freezes HF_ENDPOINT when imported.
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_HF_ENDPOINT
    token = os.environ.get("HF_TOKEN") or None
    repo_type, repo = match.group("type"), match.group("repo")
    revision = revision or (match.group("rev") and _unquote(match.group("rev"))) or "main"
    pattern = match.group("path") or "*.parquet"
    api = HfApi(endpoint=endpoint, token=token)
    fs = HfFileSystem(endpoint=endpoint, token=token, skip_instance_cache=True)
    try:
        info = with_retries(lambda: api.repo_info(repo, repo_type=repo_type.rstrip("s"), revision=revision), repo)
        commit = info.sha
        found = with_retries(lambda: fs.glob(f"{repo_type}/{repo}@{commit}/{pattern}", detail=True), url)
    except SourceError as exc:
        raise _hf_error(exc.__cause__ or exc, repo, revision, endpoint) from exc
    prefix = f"{repo_type}/{repo}@{commit}/"
    files = [
        SourceFile(path=path, url=f"hf://{repo_type}/{repo}/{path.removeprefix(prefix)}", size=int(info["size"]))
        for path, info in sorted(found.items())
        if info.get("type") == "file" and path.endswith(".parquet")
    ]
    return Source(url=url, revision=revision, commit=commit, files=files, fs=fs)


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _open_fsspec(url: str) -> Source:
    import fsspec

    expanded = os.path.expanduser(url)
    try:
        fs, path = fsspec.core.url_to_fs(expanded)
        if fs.isdir(path):
            path = path.rstrip("/") + "/*.parquet"
        found = fs.glob(path, detail=True)
    except Exception as exc:
        raise SourceError(f"cannot list {url}: {_describe(exc)}") from exc
    files = [
        SourceFile(path=p, url=p if "://" not in url else fs.unstrip_protocol(p), size=int(info["size"]))
        for p, info in sorted(found.items())
        if info.get("type") == "file" and p.endswith(".parquet")
    ]
    return Source(url=url, revision=None, commit=None, files=files, fs=fs)


@dataclass
class ParquetFooter:
    file: SourceFile
    metadata: pq.FileMetaData

    @property
    def num_rows(self) -> int:
        return self.metadata.num_rows

    def cheapest_column(self) -> str:
        """The top-level column with the fewest compressed bytes (to count rows cheaply)."""
        sizes: dict[str, int] = {}
        for i in range(self.metadata.num_row_groups):
            rg = self.metadata.row_group(i)
            for j in range(rg.num_columns):
                name = rg.column(j).path_in_schema.split(".")[0]
                sizes[name] = sizes.get(name, 0) + rg.column(j).total_compressed_size
        names = self.metadata.schema.to_arrow_schema().names
        return min(names, key=lambda n: sizes.get(n, 0))


def read_footer(source: Source, file: SourceFile) -> ParquetFooter:
    """The parquet footer of a file, in two exact range reads (length, then metadata); cached."""
    if file.path not in source.footers:
        source.footers[file.path] = _fetch_footer(source, file)
    return source.footers[file.path]


def _fetch_footer(source: Source, file: SourceFile) -> ParquetFooter:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if file.size < 12:
        raise SourceError(f"{file.url} is not a parquet file ({file.size} bytes)")
    tail = source.fetch(file, file.size - 8, file.size)
    if tail[4:] != PARQUET_MAGIC:
        raise SourceError(f"{file.url} is not a parquet file (no PAR1 footer); it may be truncated")
    length = struct.unpack("<I", tail[:4])[0]
    if length + 12 > file.size:
        raise SourceError(f"{file.url} has a corrupt parquet footer (length {length} > file size)")
    start = file.size - 8 - length
    footer = source.fetch(file, start, file.size - 8)
    try:
        # The footer alone parses as a parquet "file": pyarrow only needs its last 8 bytes
        # and the metadata before them, and so reads nothing more from the network.
        metadata = pq.ParquetFile(pa.BufferReader(footer + tail)).metadata
    except Exception as exc:
        raise SourceError(f"{file.url} has a corrupt parquet footer: {_describe(exc)}") from exc
    return ParquetFooter(file, metadata)


def read_footers(source: Source, files: list[SourceFile]) -> list[ParquetFooter]:
    """The footers of `files`, fetched in parallel (for dry runs and estimates)."""
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        return list(pool.map(lambda f: read_footer(source, f), files))
