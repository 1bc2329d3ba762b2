"""Source parquet files, read lazily: only the footers, columns and row groups needed.

A source is a URL with a glob: `hf://datasets/<org>/<repo>[@<rev>]/<path glob>` on the Hugging
Face Hub (listed through huggingface_hub, so `HF_ENDPOINT` mirrors and `HF_TOKEN` work; read
through hub.py, which checks every answer is the range asked for and waits out rate limits),
a local folder or glob, or any other fsspec URL. Every read goes through `Source.fetch`,
retried by retries.py.

Why plan byte ranges ourselves instead of handing pyarrow an fsspec file: fsspec's default
read-ahead fetches far more than one column chunk, and a parquet reader's own coalescing
is tuned for local disks. We read the footer (two small ranges), compute the exact byte
range of each needed column chunk of a row group, fetch those ranges (in parallel, ahead
of the consumer but never past what it can still use), and let pyarrow decode them from
memory. A read outside the planned ranges still works (it is fetched and counted), so the
plan is an optimisation, never a correctness risk.
"""

from __future__ import annotations

import io
import os
import queue
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import hub
from .errors import SourceError
from .retries import describe as _describe
from .retries import with_retries

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

FETCH_THREADS = 4  # parallel range requests: hides network latency without hammering the Hub
MAX_AHEAD = 8  # row groups fetched ahead of the consumer, at most
# ... and at most this many compressed bytes of them: fetched row groups waiting for the
# writer are most of a conversion's memory, so the window is bounded in bytes too.
MAX_BYTES_AHEAD = 48 << 20
BATCH_ROWS = 2048  # a row group is decoded in batches of this many rows, to keep memory small
PIECES_AHEAD = 2  # decoded batches waiting for the consumer: decoding overlaps the SQL and the writer
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
    # Hub sources read through hub.HubReader (exact ranges, Range checked, rate limits waited
    # out); any other source through its fsspec filesystem.
    reader: hub.HubReader | None = field(default=None, repr=False)

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


class _RangeFile(io.RawIOBase):
    """A read-only file that serves reads from prefetched ranges, fetching anything else."""

    def __init__(self, source: Source, file: SourceFile, ranges: dict[int, bytes]):
        self._source, self._file, self._ranges, self._pos = source, file, ranges, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._file.size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self._file.size if n is None or n < 0 else min(self._pos + n, self._file.size)
        for start, data in self._ranges.items():
            if start <= self._pos and end <= start + len(data):
                out = data[self._pos - start : end - start]
                break
        else:
            out = self._source.fetch(self._file, self._pos, end) if end > self._pos else b""
        self._pos += len(out)
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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

    def chunk_ranges(self, row_group: int, columns: list[str]) -> list[tuple[int, int]]:
        """Byte ranges [start, end) of the column chunks of `columns` in one row group."""
        rg = self.metadata.row_group(row_group)
        wanted = {c.lower() for c in columns}
        ranges = []
        for j in range(rg.num_columns):
            chunk = rg.column(j)
            if chunk.path_in_schema.split(".")[0].lower() not in wanted:
                continue
            start = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
                start = min(start, chunk.dictionary_page_offset)
            ranges.append((start, start + chunk.total_compressed_size))
        return _merge(sorted(ranges))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


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


@dataclass
class RowGroup:
    """One row group's needed column chunks, fetched; decoded on demand, in batches."""

    file: SourceFile
    file_index: int
    index: int
    num_rows: int
    footer: ParquetFooter = field(repr=False)
    columns: list[str] = field(repr=False)
    ranges: dict[int, bytes] = field(repr=False)
    source: Source = field(repr=False)

    def batches(self, rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """The rows in order, `rows` at a time: decoding a whole row group at once would hold
        it in memory several times over (pages, arrays, the SQL result, the writer's copy)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        wanted = {c.lower() for c in self.columns}
        names = [n for n in self.footer.metadata.schema.to_arrow_schema().names if n.lower() in wanted]
        try:
            # pre_buffer=False: pyarrow's coalescing would merge the planned ranges across the
            # unneeded column chunks between them and read those too.
            parquet = pq.ParquetFile(
                _RangeFile(self.source, self.file, self.ranges), metadata=self.footer.metadata, pre_buffer=False
            )
            for batch in parquet.iter_batches(batch_size=rows, row_groups=[self.index], columns=names):
                yield pa.Table.from_batches([batch])
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{self.file.url}: row group {self.index} is corrupt: {_describe(exc)}") from exc

    @property
    def table(self) -> pa.Table:
        import pyarrow as pa

        return pa.concat_tables(self.batches())


def _fetch_row_group(
    source: Source, footer: ParquetFooter, file_index: int, index: int, columns: list[str]
) -> RowGroup:
    ranges = {start: source.fetch(footer.file, start, end) for start, end in footer.chunk_ranges(index, columns)}
    rows = footer.metadata.row_group(index).num_rows
    return RowGroup(footer.file, file_index, index, rows, footer, columns, ranges, source)


def iter_row_groups(
    source: Source, columns: list[str], rows_wanted: Callable[[], int], start: tuple[int, int] = (0, 0)
) -> Iterator[RowGroup]:
    """Row groups in file order from `start` (file index, row group), with only `columns`,
    fetched ahead in parallel (and decoded by the consumer, batch by batch).

    `rows_wanted()` says how many more rows the consumer can still use. A row group is only
    fetched ahead while the rows already in flight are fewer than that, so the reader never
    downloads a row group that the conversion cannot need. The consumer stops pulling when
    it has enough.
    """

    def tasks() -> Iterator[tuple[ParquetFooter, int, int]]:
        for file_index in range(start[0], len(source.files)):
            footer = read_footer(source, source.files[file_index])
            first = start[1] if file_index == start[0] else 0
            for index in range(first, footer.metadata.num_row_groups):
                yield footer, file_index, index

    pending: deque[tuple[int, int, Future[RowGroup]]] = deque()  # (rows, compressed bytes, future)

    def room() -> bool:
        if not pending:
            return True
        rows, size = sum(p[0] for p in pending), sum(p[1] for p in pending)
        return len(pending) < MAX_AHEAD and size < MAX_BYTES_AHEAD and rows < rows_wanted()

    todo = tasks()
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        try:
            while True:
                while room():
                    task = next(todo, None)
                    if task is None:
                        break
                    footer, file_index, index = task
                    rows = footer.metadata.row_group(index).num_rows
                    size = sum(end - start for start, end in footer.chunk_ranges(index, columns))
                    future = pool.submit(_fetch_row_group, source, footer, file_index, index, columns)
                    pending.append((rows, size, future))
                if not pending:
                    return
                yield pending.popleft()[2].result()
        finally:
            for *_, future in pending:
                future.cancel()


_DONE = object()


def iter_pieces(
    source: Source, columns: list[str], rows_wanted: Callable[[], int], start: tuple[int, int] = (0, 0)
) -> Iterator[tuple[RowGroup, pa.Table]]:
    """(row group, decoded batch of it) in order, decoded on a background thread.

    Decoding a few batches ahead overlaps it with the consumer's work. Rows decoded but not
    yet consumed count as wanted already, so the fetcher still never reads a row group
    that could not be needed.
    """
    pieces: queue.Queue = queue.Queue(maxsize=PIECES_AHEAD)
    stop = threading.Event()
    hungry = threading.Event()  # the consumer waits on an empty queue: it wants more, whatever the count says
    lock = threading.Lock()
    unconsumed = [0]  # source rows handed to the decoder and not yet taken by the consumer

    def still_wanted() -> int:
        with lock:
            return rows_wanted() - unconsumed[0]

    def put(item) -> bool:
        while not stop.is_set():
            try:
                pieces.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        groups = iter_row_groups(source, columns, still_wanted, start)
        try:
            while True:
                # Ask for the next row group only once the consumer may need it: the rows
                # decoded so far might all be kept.
                while still_wanted() <= 0 and not hungry.is_set() and not stop.is_set():
                    stop.wait(0.005)
                if stop.is_set():
                    return
                group = next(groups, None)
                if group is None:
                    break
                with lock:
                    unconsumed[0] += group.num_rows
                for piece in group.batches():
                    if not put((group, piece)):
                        return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        finally:
            groups.close()

    worker = threading.Thread(target=produce, name="shardsql-decode", daemon=True)
    worker.start()
    try:
        while True:
            if pieces.empty():
                hungry.set()
            item = pieces.get()
            hungry.clear()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            with lock:
                unconsumed[0] -= item[1].num_rows
            yield item
    finally:
        stop.set()
        worker.join()
