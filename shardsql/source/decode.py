"""Reading units of the source: fetch a unit's planned byte ranges, decode its row groups.

Why plan byte ranges ourselves instead of handing pyarrow an fsspec file: fsspec's
read-ahead fetches far more than the needed column chunks, and pyarrow's own coalescing
is tuned for local disks. `plan.units` says which ranges a unit needs; here they are
fetched (one request each) and pyarrow decodes the unit from memory. A read outside the
planned ranges still works (it is fetched and counted), so the plan is an optimisation,
never a correctness risk.

`prefetched` fetches a few units ahead on I/O threads, and `ordered` runs any per-unit
work on a few threads and hands the results back in source order, with a bounded window:
the conversion's executors and the whole-source stream are built on them.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import SourceError
from .retries import describe

if TYPE_CHECKING:
    import pyarrow as pa

    from .plan import Unit
    from .sources import ParquetFooter, Source, SourceFile

T = TypeVar("T")
R = TypeVar("R")
# Units in flight (running, or done and waiting for the consumer): a unit per worker and
# WAITING_UNITS more, and at most BYTES_PER_WORKER compressed bytes a worker. Decoded units
# and their kept rows are most of a conversion's memory; more would not be faster, since
# the shard writer is the slowest stage.
WAITING_UNITS = 1
BYTES_PER_WORKER = 24 << 20
FETCH_THREADS = 4  # range requests at once: hides the network's latency without hammering the Hub
FETCH_AHEAD = 2  # units fetched ahead of the work started on them
# A unit is decoded and filtered this many bytes of rows (or one row group) at a time: a
# worker's memory is a part's, not a unit's, and a DuckDB call has a fixed cost to amortise.
PART_BYTES = 4 << 20


class RangeFile(io.RawIOBase):
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


def fetch_unit(source: Source, unit: Unit) -> dict[int, bytes]:
    """The unit's planned byte ranges, fetched: {start: bytes}."""
    return {start: source.fetch(unit.file, start, end) for start, end in unit.ranges}


def decode_parts(
    source: Source, unit: Unit, footer: ParquetFooter, columns: list[str], data: dict[int, bytes]
) -> Iterator[tuple[tuple[int, ...], pa.Table]]:
    """The unit's rows (only `columns`) from fetched ranges, a few row groups at a time:
    (row group indexes, their rows), in parts of PART_BYTES decoded bytes or more."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = {c.lower() for c in columns}
    names = [n for n in footer.metadata.schema.to_arrow_schema().names if n.lower() in wanted]
    # pre_buffer=False: pyarrow's coalescing would read its own ranges, not the planned ones.
    parquet = pq.ParquetFile(RangeFile(source, unit.file, data), metadata=footer.metadata, pre_buffer=False)
    indexes: list[int] = []
    tables: list[pa.Table] = []
    for index in unit.row_groups:
        # Row group by row group: one call for many grows a single buffer by reallocation
        # and costs up to twice the CPU (measured with pyarrow 26).
        try:
            tables.append(parquet.read_row_group(index, columns=names, use_threads=False))
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{unit.file.url}: row group {index} is corrupt: {describe(exc)}") from exc
        indexes.append(index)
        if sum(t.nbytes for t in tables) >= PART_BYTES:
            yield tuple(indexes), pa.concat_tables(tables)
            indexes, tables = [], []
    if indexes:
        yield tuple(indexes), pa.concat_tables(tables)


def decode_unit(source: Source, unit: Unit, footer: ParquetFooter, columns: list[str], data: dict[int, bytes]):
    """The unit's rows (only `columns`), decoded from fetched ranges."""
    import pyarrow as pa

    return pa.concat_tables([table for _, table in decode_parts(source, unit, footer, columns, data)])


def read_unit(source: Source, unit: Unit, columns: list[str]) -> pa.Table:
    """Fetch and decode one unit."""
    from .sources import read_footer

    return decode_unit(source, unit, read_footer(source, unit.file), columns, fetch_unit(source, unit))


def in_order(
    items: Iterator[T],
    start: Callable[[T], Any],
    finish: Callable[[Any], R],
    may_start: Callable[[list[T]], bool],
    cancel: Callable[[Any], None],
) -> Iterator[tuple[T, R]]:
    """(item, finish(start(item))) for each item, in the items' order, with work started ahead.

    `may_start(in_flight)` says whether another item may start while `in_flight` (items
    started and not yet yielded) are pending; with nothing in flight an item always starts,
    since the consumer is asking for one. Stopping the iteration cancels what is pending.
    Both engines run units this way: threads here (`ordered`), Ray tasks in ray_engine.py.
    """
    pending: deque[tuple[T, Any]] = deque()
    try:
        while True:
            while not pending or may_start([item for item, _ in pending]):
                item = next(items, None)
                if item is None:
                    break
                pending.append((item, start(item)))
            if not pending:
                return
            item, handle = pending.popleft()
            result = finish(handle)
            del handle  # a Ray result is held only until it is handed on
            yield item, result
    finally:
        for _, handle in pending:
            cancel(handle)


def ordered(
    items: Iterator[T],
    work: Callable[[T], R],
    workers: int,
    may_submit: Callable[[list[T]], bool],
) -> Iterator[tuple[T, R]]:
    """`work(item)` for each item on `workers` threads, yielded in the items' order (see
    `in_order`). Stopping the iteration cancels what has not started and waits for what has."""
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="shardsql-unit")
    try:
        yield from in_order(items, lambda item: pool.submit(work, item), Future.result, may_submit, Future.cancel)
    finally:
        pool.shutdown(wait=True)


def prefetched(source: Source, units: Iterator[Unit], ahead: int | None = None) -> Iterator[tuple[Unit, Future]]:
    """(unit, the future of its fetched ranges), with the fetches of up to `ahead` more units
    already under way: the network works while the cores decode and filter.

    Items are pulled as work starts, so at most `ahead` units are fetched beyond the work
    started (the bound on reading past what the shards need).
    """
    ahead = FETCH_AHEAD if ahead is None else ahead
    pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="shardsql-fetch")
    waiting: deque[tuple[Unit, Future]] = deque()
    try:
        for unit in units:
            waiting.append((unit, pool.submit(fetch_unit, source, unit)))
            if len(waiting) > ahead:
                yield waiting.popleft()
        while waiting:
            yield waiting.popleft()
    finally:
        for _, future in waiting:
            future.cancel()
        pool.shutdown(wait=True)
