"""A unit's rows: its planned byte ranges fetched, then decoded, the one way every reader does.

Why plan byte ranges ourselves instead of handing pyarrow an fsspec file: fsspec's
read-ahead fetches far more than the needed column chunks, and pyarrow's own coalescing
is tuned for local disks. units.py says which ranges a unit needs; here they are fetched
(one request each) and decoded from memory: text columns by Polars, from a sparse copy of
the file that holds the fetched ranges and the footer (sparse.py: one a file, scanned once;
`decode` says why Polars), the other columns by pyarrow, through `RangeFile`. A read outside
the planned ranges still works: for pyarrow it is fetched and counted, and Polars, finding
zeros there, fails, so that pyarrow decodes that part instead. The plan is an optimisation,
never a correctness risk. A local file is the exception: both read the column chunks from
it themselves (the page cache is already memory), so its bytes are not copied into Python
first.

`decode` is the one decode of a unit: conversions (both engines), `sql` and `explain` all
read units through it, with the scan's one schema (schemas.py).
"""

from __future__ import annotations

import bisect
import contextlib
import io
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceError, describe
from .fetch import Parts
from .files import ParquetFooter, Source, SourceFile
from .footers import read_footer
from .scan import Scan
from .schemas import conform, is_text
from .sparse import polars_scan
from .units import Unit

if TYPE_CHECKING:
    import polars as pl
    from _typeshed import WriteableBuffer

# A unit is decoded (and filtered) this many bytes of rows (or one row group) at a time: a
# worker's memory is a part's, not a unit's, and a DuckDB call has a fixed cost to amortise
# (about 1 ms: at 4 MiB, a part of one 1,000-row FineWeb-Edu group, the definition's mask
# cost 0.25 CPU-s a 555 MB file; at 16 MiB, 0.07).
PART_BYTES = 16 << 20


class RangeFile(io.RawIOBase):
    """A read-only file that serves reads from prefetched pieces (a read may span adjacent
    ones: a column chunk cut into pieces by the fetch), fetching anything else."""

    def __init__(self, source: Source, file: SourceFile, pieces: dict[int, bytes]):
        self._source, self._file, self._pos = source, file, 0
        self._starts = sorted(pieces)
        self._pieces = pieces

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

    def read(self, n: int = -1) -> bytes | memoryview:
        end = self._file.size if n is None or n < 0 else min(self._pos + n, self._file.size)
        out = self._held(self._pos, end)
        if out is None:
            out = self._source.fetch(self._file, self._pos, end) if end > self._pos else b""
        self._pos += len(out)
        return out

    def _held(self, start: int, end: int) -> bytes | memoryview | None:
        """Bytes [start, end) from the pieces held, if they hold all of them: within one piece a
        view of it (pyarrow reads any buffer, so a column chunk is not copied on its way to the
        decoder), across adjacent pieces joined."""
        index = bisect.bisect_right(self._starts, start) - 1
        parts, at = [], start
        while index >= 0 and index < len(self._starts) and at < end:
            begin = self._starts[index]
            piece = self._pieces[begin]
            if not begin <= at < begin + len(piece):
                return None
            parts.append(memoryview(piece)[at - begin : end - begin])
            at = begin + len(piece)
            index += 1
        if at < end:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)  # typed as any writable buffer: a bytearray, a memoryview...
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def start_fetch(source: Source, unit: Unit) -> Future[Parts]:
    """The unit's planned byte ranges, being fetched: a future of {start: bytes} for each of
    their pieces, fetched on the source's streams (fetch.py). A local file's are read by the decoder itself
    (nothing is fetched ahead; they are counted as read)."""
    if source.local:
        source.counter.add(unit.fetch_bytes, len(unit.ranges))
        done: Future[Parts] = Future()
        done.set_result({})
        return done
    return source.fetch_ranges(unit.file, unit.ranges)


def fetch_unit(source: Source, unit: Unit) -> dict[int, bytes]:
    """The unit's planned byte ranges, fetched: {start: bytes} for each piece (see `start_fetch`)."""
    return start_fetch(source, unit).result()


class Part(NamedTuple):
    """Some consecutive row groups of a unit, decoded."""

    row_groups: tuple[int, ...]
    rows: pa.Table  # the scan's columns, with its schema
    # Every text among the rows is valid UTF-8: each text column was decoded by Polars, which
    # checks, and no other column holds text (a struct of strings, a list of them).
    utf8_checked: bool


def decode(scan: Scan, unit: Unit, data: dict[int, bytes]) -> Iterator[Part]:
    """The unit's rows (the scan's columns, with its schema) from fetched ranges, a few row
    groups at a time, in parts of about PART_BYTES decoded.

    Text columns are decoded by Polars, into string views: pyarrow's decode of the same text
    cost about 0.45 CPU-s more a 555 MB file (measured with pyarrow 26 and Polars 2.1, one
    thread), and a conversion's peak memory fell by 120 to 150 MB with Polars'. Polars also
    checks that the text is UTF-8 as it decodes; where it is not, the part is decoded by
    pyarrow instead, and output/text_check.py stops the conversion only if the definition
    keeps such a text. Other columns are decoded by pyarrow, whose types are the ones a
    definition is written against.
    """
    source, footer = scan.source, read_footer(scan.source, unit.file)
    wanted = {c.lower() for c in scan.columns}
    schema = footer.schema
    names = [n for n in schema.names if n.lower() in wanted]
    texts = [n for n in names if is_text(schema.field(n).type)]
    # pre_buffer=False: pyarrow's coalescing would read its own ranges, not the planned ones.
    handle = unit.file.path if source.local else RangeFile(source, unit.file, data)
    parquet = pq.ParquetFile(handle, metadata=footer.metadata, pre_buffer=False)
    # (a sparse copy is made only for Polars: a unit with no text column is pyarrow's alone)
    with polars_scan(source, unit, footer, data) if texts else contextlib.nullcontext(None) as texts_scan:
        for indexes in _parts(footer, unit.row_groups, names):
            columns = _read_texts(texts_scan, footer, indexes, texts) if texts_scan is not None else None
            others = [n for n in names if columns is None or n not in texts]
            table = _read_columns(parquet, unit, indexes, others) if others else None
            rows = conform(_joined(names, columns, table), scan.schema, unit.file.url)
            yield Part(indexes, rows, not any(_holds_text(schema.field(n).type) for n in others))


def _parts(footer: ParquetFooter, row_groups: tuple[int, ...], names: list[str]) -> Iterator[tuple[int, ...]]:
    """`row_groups` in runs of about PART_BYTES of the columns' decoded size (the footer's)."""
    part, size = [], 0
    for index in row_groups:
        part.append(index)
        size += sum(c.total_uncompressed_size for c in footer.row_group_chunks(index, names))
        if size >= PART_BYTES:
            yield tuple(part)
            part, size = [], 0
    if part:
        yield tuple(part)


def _read_texts(
    scan: pl.LazyFrame, footer: ParquetFooter, indexes: tuple[int, ...], texts: list[str]
) -> pa.Table | None:
    """The text columns of consecutive row groups, decoded by Polars as string views (from
    `scan`: sparse.py's); None where Polars cannot (a text that is not UTF-8, a corrupt page:
    pyarrow then says which)."""
    import polars as pl  # (imported by the shard writers too; loading it costs 0.15 s)

    first = footer.first_row(indexes[0])
    rows = footer.first_row(indexes[-1] + 1) - first
    # A slice of the file's rows reads only the row groups that hold them (tested).
    try:
        decoded = scan.select([pl.col(n).cast(pl.String) for n in texts]).slice(first, rows).collect()
    except pl.exceptions.PolarsError:
        return None
    return decoded.to_arrow(compat_level=pl.CompatLevel.newest())


def _read_columns(parquet: pq.ParquetFile, unit: Unit, indexes: tuple[int, ...], names: list[str]) -> pa.Table:
    """Columns of consecutive row groups, decoded by pyarrow."""
    tables = []
    for index in indexes:
        # Row group by row group: one call for many grows a single buffer by reallocation
        # and costs up to twice the CPU (measured with pyarrow 26).
        try:
            tables.append(parquet.read_row_group(index, columns=names, use_threads=False))
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{unit.file.url}: row group {index} is corrupt: {describe(exc)}") from exc
    return pa.concat_tables(tables)


def _holds_text(type_: pa.DataType) -> bool:
    """Whether a column of this type is or holds text (in a struct, a list, a map...)."""
    if is_text(type_):
        return True
    return any(_holds_text(type_.field(i).type) for i in range(type_.num_fields))


def _joined(names: list[str], first: pa.Table | None, second: pa.Table | None) -> pa.Table:
    """One table of `names` from the columns of two tables of the same rows."""
    found = {n: t.column(n) for t in (first, second) if t is not None for n in t.column_names}
    return pa.table({n: found[n] for n in names})


def read_unit(scan: Scan, unit: Unit, data: dict[int, bytes] | None = None) -> pa.Table:
    """A unit's rows, whole: fetched now unless `data` holds its fetched ranges."""
    data = fetch_unit(scan.source, unit) if data is None else data
    return pa.concat_tables([part.rows for part in decode(scan, unit, data)])
