"""Source parquet files, read lazily: only the footers, columns and row groups needed.

A source is a URL with a glob: `hf://datasets/<org>/<repo>[@<rev>]/<path glob>` on the Hugging
Face Hub (listed through huggingface_hub, so `HF_ENDPOINT` mirrors and `HF_TOKEN` work; read
through hub.py, which checks every answer is the range asked for and waits out rate limits),
a local folder or glob, or any other fsspec URL. Every read goes through `Source.fetch`,
retried by retries.py.

Reading the data is planned elsewhere: plan.py says which byte ranges of which row groups a
unit of work needs, reader.py fetches them through `Source.fetch` and decodes them. Here:
listing the files at a pinned revision, exact range reads with retries, and footers.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import hub
from .errors import SourceError
from .retries import describe as _describe
from .retries import with_retries

if TYPE_CHECKING:
    import pyarrow.parquet as pq

FETCH_THREADS = 4  # footers read in parallel by a dry run: hides network latency without hammering the Hub
PARQUET_MAGIC = b"PAR1"


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

    def add(self, n: int, requests: int = 1) -> None:
        with self._lock:
            self.bytes += n
            self.requests += requests


@dataclass(frozen=True)
class SourceSpec:
    """What reopens a source elsewhere (a Ray worker): picklable, and holds no credentials.

    The Hub's endpoint and token come from the reopening process's environment.
    """

    url: str
    revision: str | None
    commit: str | None
    files: tuple[SourceFile, ...]


@dataclass
class Source:
    url: str
    revision: str | None
    commit: str | None
    files: list[SourceFile]
    fs: Any = field(repr=False)
    counter: ByteCounter = field(default_factory=ByteCounter)
    footers: dict[str, ParquetFooter] = field(default_factory=dict, repr=False)  # read once per file
    # Hub sources read through hub.HubReader (exact ranges, Range checked, rate limits waited
    # out); any other source through its fsspec filesystem.
    reader: hub.HubReader | None = field(default=None, repr=False)

    def spec(self) -> SourceSpec:
        return SourceSpec(self.url, self.revision, self.commit, tuple(self.files))

    def fetch(self, file: SourceFile, start: int, end: int) -> bytes:
        """Exactly the bytes [start, end) of a file: retried on transient faults, rate limits
        waited out, counted in `counter`; or a SourceError."""

        def read() -> bytes:
            data = self.reader.read(file, start, end) if self.reader else self._read_fs(file, start, end)
            if len(data) != end - start:
                # A short read must never pass silently: it would decode into wrong rows.
                raise ShortReadError(f"short read: asked for {end - start} bytes at {start}, got {len(data)}")
            return data

        explain = self.reader.explain if self.reader else None
        data = with_retries(read, f"{file.url} (bytes {start}-{end})", explain)
        self.counter.add(len(data))
        return data

    def _read_fs(self, file: SourceFile, start: int, end: int) -> bytes:
        with self.fs.open(file.path, "rb", cache_type="none") as handle:
            handle.seek(start)
            return handle.read(end - start)


class ShortReadError(OSError):
    """A range read returned fewer bytes than asked for."""


def open_source(url: str, revision: str | None = None, max_files: int | None = None, override: bool = False) -> Source:
    """List the files of a source URL (sorted by path, at most `max_files`) and pin its revision.

    For an `hf://` URL that names a revision (`@rev`), `revision` must agree with it unless
    `override` (the command line's --revision, which wins over both); see hub.py.
    """
    parsed = hub.parse_url(url)
    if parsed:
        listing = hub.list_files(url, parsed, revision, override)
        source = Source(url, listing.revision, listing.commit, listing.files, listing.fs, reader=listing.reader)
    else:
        source = _open_fsspec(url)
    if not source.files:
        at = f" at revision {source.revision}" if source.revision else ""
        raise SourceError(f"no parquet files match {url}{at}")
    if max_files is not None:
        source.files = source.files[:max_files]
    return source


def reopen(spec: SourceSpec) -> Source:
    """The source `spec` describes, without listing it again: the files are the spec's, pinned
    to its commit. Hub reads use this process's HF_ENDPOINT and HF_TOKEN."""
    parsed = hub.parse_url(spec.url)
    if parsed:
        fs, reader = None, hub.open_reader(parsed)
    else:
        import fsspec

        fs, reader = fsspec.core.url_to_fs(os.path.expanduser(spec.url))[0], None
    return Source(spec.url, spec.revision, spec.commit, list(spec.files), fs, reader=reader)


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
