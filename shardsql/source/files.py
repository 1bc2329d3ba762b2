"""A source: its parquet files listed at a pinned revision, and exact range reads of them.

A source is a URL with a glob: `hf://datasets/<org>/<repo>[@<rev>]/<path glob>` on the Hugging
Face Hub (listed and read through hub/, so `HF_ENDPOINT` mirrors and `HF_TOKEN` work, every
answer is checked to be the range asked for and rate limits are waited out), a local folder
or glob (listed with Python's glob: `LocalFiles`), or any other fsspec URL. Every read goes
through `Source.fetch`, retried by hub/retries.py and counted; `Source.fetch_ranges` fetches
many ranges at once, as pieces on the source's fetch streams (fetch.py). A source keeps each
file's `ParquetFooter` once read (footers.py reads them through `Source.fetch`, so it imports
this module, never the reverse).
"""

from __future__ import annotations

import functools
import glob
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ShortReadError, SourceError, describe
from ..hub.retries import with_retries
from ..hub.storage import Location
from ..hub.urls import parse_url
from .fetch import Fetcher, Parts

# For annotations only, as they are slow to import: a local source never needs huggingface_hub
# (hub.reader), and listing a source's files (`shardsql show`) needs no pyarrow.
if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..hub.reader import HubReader


@dataclass(frozen=True)
class SourceFile:
    path: str  # as the filesystem knows it (for the Hub: pinned to the resolved commit)
    url: str  # as shown to people and written to the manifest
    size: int


@dataclass
class ParquetFooter:
    """A file's parquet footer: its row groups, their column chunks and the schema (footers.py reads it)."""

    file: SourceFile
    metadata: pq.FileMetaData
    tail: bytes = b""  # the file's last bytes as read: the footer, its length and the magic
    _leaves: dict[frozenset[str], tuple[int, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_rows(self) -> int:
        rows: int = self.metadata.num_rows
        return rows

    @property
    def schema(self) -> pa.Schema:
        """The file's columns as Arrow types."""
        return self.metadata.schema.to_arrow_schema()

    def first_row(self, row_group: int) -> int:
        """The number, in the file, of a row group's first row (the file's row count after the last)."""
        return self._row_starts[row_group]

    def group_rows(self, row_group: int) -> int:
        """A row group's rows (from the starts worked out once: its metadata object is slow to make)."""
        return self._row_starts[row_group + 1] - self._row_starts[row_group]

    @functools.cached_property
    def _row_starts(self) -> list[int]:
        starts = [0]
        for i in range(self.metadata.num_row_groups):
            starts.append(starts[-1] + self.metadata.row_group(i).num_rows)
        return starts

    def cheapest_column(self) -> str:
        """The top-level column with the fewest compressed bytes (to count rows cheaply)."""
        names: list[str] = self.metadata.schema.to_arrow_schema().names
        owner = {j: name for name in names for j in self.leaves([name])}  # each chunk's column
        sizes = dict.fromkeys(names, 0)
        for i in range(self.metadata.num_row_groups):
            group = self.metadata.row_group(i)
            for j, name in owner.items():
                sizes[name] += group.column(j).total_compressed_size
        return min(names, key=sizes.__getitem__)

    def chunks(self, columns: list[str] | None = None) -> Iterator[pq.ColumnChunkMetaData]:
        """Every column chunk of every row group, in order (with `columns`, only theirs: `leaves`)."""
        for i in range(self.metadata.num_row_groups):
            yield from self.row_group_chunks(i, columns)

    def row_group_chunks(self, row_group: int, columns: list[str] | None = None) -> list[pq.ColumnChunkMetaData]:
        """One row group's column chunks, in order (with `columns`, only theirs: `leaves`)."""
        group = self.metadata.row_group(row_group)
        return [group.column(j) for j in (range(group.num_columns) if columns is None else self.leaves(columns))]

    def leaves(self, columns: list[str]) -> tuple[int, ...]:
        """The positions of the column chunks that hold the top-level `columns` (names matched
        ignoring case; every leaf of a nested one: `a.b`, `a.list.element`), the same in every
        row group: worked out once a set of columns from the schema, not from each row group's
        chunks (a unit's ranges went through every chunk of each of its row groups: 14% of a
        shuffle's GIL-held time)."""
        wanted = frozenset(c.lower() for c in columns)
        found = self._leaves.get(wanted)
        if found is None:
            schema = self.metadata.schema
            found = tuple(j for j in range(len(schema)) if schema.column(j).path.split(".")[0].lower() in wanted)
            self._leaves[wanted] = found
        return found

    def uncompressed_bytes(self, columns: list[str]) -> int:
        """Uncompressed bytes of `columns` in every row group: the size of their text, roughly
        (a dry run's estimates, a mixture's first guess at a component's characters a row)."""
        return sum(chunk.total_uncompressed_size for chunk in self.chunks(columns))


class LocalFiles:
    """This machine's files, as a local source's `fs`: listed with Python's glob, not fsspec's
    (importing fsspec cost 45 to 80 ms of every fresh process, asyncio among it), and read
    with Python's files. A symbolic link to a file is listed as the file: huggingface_hub's
    cache (`snapshots/<commit>/`) is links into `blobs/`, and fsspec listed none of them. A
    file reached twice (through a linked folder, with `**`) is listed once."""

    def glob(self, pattern: str) -> list[SourceFile]:
        """The parquet files matching `pattern` (a folder: its own *.parquet), sorted by path."""
        if os.path.isdir(pattern):
            pattern = os.path.join(glob.escape(pattern), "*.parquet")
        seen, files = set(), []
        for path in sorted(glob.glob(pattern, recursive=True, include_hidden=True)):
            if not path.endswith(".parquet") or not os.path.isfile(path):
                continue
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                files.append(SourceFile(path=path, url=path, size=os.stat(path).st_size))
        return files

    def open(self, path: str, mode: str = "rb", **_: Any) -> Any:
        return open(path, mode)


def _local_path(url: str) -> str | None:
    """The absolute path that a local source URL names (a path, or `file://`), else None."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url:
        return None
    return os.path.abspath(os.path.expanduser(url))


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
    # Hub sources read through hub.reader.HubReader (exact ranges, Range checked, rate limits
    # waited out); any other source through its fsspec filesystem.
    reader: HubReader | None = field(default=None, repr=False)
    fs: Any = field(default=None, repr=False)
    counter: ByteCounter = field(default_factory=ByteCounter)
    # Read once per file, by path: filled by footers.read_footer (and by a Ray worker, with those its driver sent).
    footers: dict[str, ParquetFooter] = field(default_factory=dict, repr=False)
    fetcher: Fetcher = field(default_factory=Fetcher, repr=False)  # its streams: as many as the link rewards

    @property
    def local(self) -> bool:
        """Files on this machine's disk: read by the decoder itself, with no copy into memory first."""
        return isinstance(self.fs, LocalFiles)

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
        data = with_retries(read, f"{file.url} (bytes {start}-{end})", explain, on_fault=self.fetcher.streams.fault)
        self.counter.add(len(data))
        return data

    def fetch_ranges(self, file: SourceFile, ranges: tuple[tuple[int, int], ...]) -> Future[Parts]:
        """A future of {start: bytes} for each piece of `ranges` of `file` (fetch.pieces), fetched on
        the source's streams, each by `fetch` (retried, counted); the first failure fails it."""
        return self.fetcher.submit(lambda start, end: self.fetch(file, start, end), ranges)

    def location(self, file: SourceFile) -> Location | None:
        """A Hub file's storage location, resolved now unless one is fresh (retried); None elsewhere."""
        reader = self.reader
        if reader is None:
            return None
        return with_retries(lambda: reader.location(file), f"{file.url} (resolve)", reader.explain)

    def adopt(self, file: SourceFile, location: Location | None) -> None:
        """Read `file` from `location`, resolved by another process (the Ray driver), while it is fresh."""
        if self.reader is not None and location is not None:
            self.reader.adopt(file, location)

    def _read_fs(self, file: SourceFile, start: int, end: int) -> bytes:
        with self.fs.open(file.path, "rb", cache_type="none") as handle:
            handle.seek(start)
            data: bytes = handle.read(end - start)
            return data


def open_source(
    url: str, revision: str | None = None, *, max_files: int | None = None, override: bool = False
) -> Source:
    """List the files of a source URL (sorted by path, at most `max_files`) and pin its revision.

    For an `hf://` URL that names a revision (`@rev`), `revision` must agree with it unless
    `override` (the command line's --revision, which wins over both); see hub/urls.py.
    """
    parsed = parse_url(url)
    if parsed:
        # Imported here: huggingface_hub takes about half a second to import, which a local
        # source never needs.
        from ..hub import repo

        listing = repo.list_files(url, parsed, revision, override)
        files = [SourceFile(f.path, f.url, f.size) for f in listing.files]
        source = Source(url, listing.revision, listing.commit, files, reader=listing.reader)
    elif (path := _local_path(url)) is not None:
        source = _open_local(url, path)
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
    parsed = parse_url(spec.url)
    if parsed:
        from ..hub import repo  # a Hub source only: see open_source

        return Source(spec.url, spec.revision, spec.commit, list(spec.files), reader=repo.open_reader(parsed))
    if _local_path(spec.url) is not None:
        return Source(spec.url, spec.revision, spec.commit, list(spec.files), fs=LocalFiles())
    import fsspec

    fs = fsspec.core.url_to_fs(os.path.expanduser(spec.url))[0]
    return Source(spec.url, spec.revision, spec.commit, list(spec.files), fs=fs)


def _open_local(url: str, path: str) -> Source:
    fs = LocalFiles()
    try:
        files = fs.glob(path)
    except OSError as exc:
        raise SourceError(f"cannot list {url}: {describe(exc)}") from exc
    return Source(url=url, revision=None, commit=None, files=files, fs=fs)


def _open_fsspec(url: str) -> Source:
    import fsspec  # (a remote filesystem's only: slow to import)

    expanded = os.path.expanduser(url)
    try:
        fs, path = fsspec.core.url_to_fs(expanded)
        if fs.isdir(path):
            path = path.rstrip("/") + "/*.parquet"
        found = fs.glob(path, detail=True)
    except Exception as exc:
        raise SourceError(f"cannot list {url}: {describe(exc)}") from exc
    files = [
        SourceFile(path=p, url=p if "://" not in url else fs.unstrip_protocol(p), size=int(info["size"]))
        for p, info in sorted(found.items())
        if info.get("type") == "file" and p.endswith(".parquet")
    ]
    return Source(url=url, revision=None, commit=None, files=files, fs=fs)
