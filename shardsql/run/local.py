"""Executors: run a definition over the plan's units and hand its output on, in source order.

* `row_by_row`: each unit is decoded and filtered on a worker thread (pyarrow's decoder
  and DuckDB release the GIL, so threads use the cores), with its own DuckDB connection;
  results come back in unit order. Its bytes are fetched on I/O threads a couple of units
  ahead (reader.prefetched), so the network works while the cores do. A unit starts only
  while the source rows in flight are fewer than the rows still wanted, so nothing is read
  that the shards cannot need, beyond the units already started or fetched ahead.
* `whole_source`: the units are fetched and decoded ahead on worker threads and streamed,
  in order, into one DuckDB query over the whole source.

Every kept text is checked (validate.py) before it leaves the executor.

Both yield (unit or None, kept rows): the caller tracks positions for checkpoints. Each
records what ran in `scan.record`, which the manifest keeps. `LocalRun` and the Ray
engine's `RayRun` (ray_engine.py) are what convert.py chooses between: the same
`row_by_row` signature and yield shape, and where shards are compressed.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import plan, reader
from .engine import Engine
from .errors import ConversionError
from .schemas import conform
from .shards import WRITERS
from .validate import check_text

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition
    from .plan import Unit
    from .sources import Source


def available_cores() -> int:
    """The CPUs this process may run on: its affinity set where the OS has one (taskset, a
    container's cpuset), so `--workers` defaults to the cores we can use, not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


DEFAULT_WORKERS = available_cores()


@dataclass
class EngineRecord:
    """Which engine ran a conversion, on how many workers and nodes, in how many tasks (units)."""

    name: str = "local"
    workers: int = DEFAULT_WORKERS
    tasks: int = 0  # units run by this run (a resumed run counts its own)
    nodes: set[str] = field(default_factory=set)  # where tasks ran

    def to_dict(self) -> dict:
        return {"name": self.name, "workers": self.workers, "tasks": self.tasks, "nodes": max(1, len(self.nodes))}


@dataclass
class Scan:
    """What the executors read: the source, its columns and schema, and where to start."""

    source: Source
    columns: list[str]
    schema: pa.Schema  # of `columns`, the same for every file
    start: tuple[int, int] = (0, 0)  # (file index, row group)
    workers: int = DEFAULT_WORKERS
    read: int = 0  # source rows of the units handed on so far
    record: EngineRecord = field(default_factory=EngineRecord)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def units(self) -> Iterator[Unit]:
        return plan.units(self.source, self.columns, self.start)

    def prefetched(self) -> Iterator[tuple[Unit, Future]]:
        """The units in order, each with the future of its fetched byte ranges (fetched ahead)."""
        return reader.prefetched(self.source, self.units())

    def decode(self, item: tuple[Unit, Future]) -> pa.Table:
        """A prefetched unit's rows, with the scan's schema."""
        import pyarrow as pa

        unit, data = item
        parts = _parts(self.source, unit, self.columns, self.schema, data.result())
        return pa.concat_tables([table for _, table in parts])


def _parts(source: Source, unit: Unit, columns: list[str], schema: pa.Schema, data: dict[int, bytes]):
    """A unit's rows with `schema`, a few row groups at a time: (row group indexes, rows)."""
    from .sources import read_footer

    footer = read_footer(source, unit.file)
    for groups, table in reader.decode_parts(source, unit, footer, columns, data):
        yield groups, conform(table, schema, unit.file.url)


def keep(engine: Engine, source: Source, unit: Unit, columns: list[str], schema: pa.Schema,
         data: dict[int, bytes]) -> pa.Table:  # fmt: skip
    """The definition's rows from one unit's fetched bytes, checked for prepare.py (no NULL,
    valid UTF-8) before anything is written. Both engines run units through this."""
    import pyarrow as pa

    kept = []
    for groups, table in _parts(source, unit, columns, schema, data):
        out = engine.run(table)
        try:
            check_text(out, unit.file.url)
        except ConversionError:
            _raise_first_invalid(engine, source, unit.file, groups, table)
        kept.append(out)
    return pa.concat_tables(kept) if len(kept) != 1 else kept[0]


def row_by_row(scan: Scan, definition: Definition, rows_wanted: Callable[[], int]) -> Iterator[tuple[Unit, pa.Table]]:
    """(unit, the definition's rows from it) in order, computed on `scan.workers` threads.

    `rows_wanted()` is how many more kept rows the consumer can use; it may stop early.
    """
    local = threading.local()
    engines: list[Engine] = []

    def work(item: tuple[Unit, Future]) -> pa.Table:
        engine = getattr(local, "engine", None)
        if engine is None:
            engine = local.engine = Engine(definition)
            with scan._lock:
                engines.append(engine)
        unit, data = item
        return keep(engine, scan.source, unit, scan.columns, scan.schema, data.result())

    scan.record = EngineRecord("local", scan.workers, nodes={"local"})
    try:
        for (unit, _), kept in reader.ordered(scan.prefetched(), work, scan.workers, _window(scan, rows_wanted)):
            scan.read += unit.rows
            scan.record.tasks += 1
            yield unit, kept
    finally:
        for engine in engines:
            engine.close()


class LocalRun:
    """The local engine as a conversion uses it (ray_engine.RayRun has the same shape): units
    on `workers` threads here, and shards compressed here by the shard writer's threads."""

    encode = None  # shards.write_shards compresses with this process's Polars

    def __init__(self, workers: int):
        self.workers = workers

    def __enter__(self) -> LocalRun:
        return self

    def __exit__(self, *exc) -> None:
        pass

    @property
    def shards_in_flight(self) -> int:
        # A shard is compressed on Polars' threads while the next is fed; with many cores,
        # more shards at once keep them busy.
        return max(WRITERS, self.workers // 2)

    def row_by_row(self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int]):
        return row_by_row(scan, definition, rows_wanted)


def _raise_first_invalid(engine: Engine, source: Source, file, groups: tuple[int, ...], table: pa.Table) -> None:
    """The definition kept a NULL or invalid text from these row groups: name the one it came from."""
    from .sources import read_footer

    metadata, start = read_footer(source, file).metadata, 0
    for index in groups:
        rows = metadata.row_group(index).num_rows
        check_text(engine.run(table.slice(start, rows)), f"{file.url}, row group {index}")
        start += rows
    check_text(engine.run(table), f"{file.url}, row groups {groups[0]}-{groups[-1]}")
    raise AssertionError("rows with invalid text come from one of their row groups")


def may_submit(rows_wanted: Callable[[], int], window: int, limit: int) -> Callable[[list[Unit]], bool]:
    """Whether another unit may start after the units in flight: fewer than `window` of them,
    fewer than `limit` bytes fetched, and fewer source rows than the kept rows still wanted (a
    unit keeps at most its rows). Both engines start units by this rule."""
    return lambda units: (
        len(units) < window and sum(u.fetch_bytes for u in units) < limit and sum(u.rows for u in units) < rows_wanted()
    )


def _window(scan: Scan, rows_wanted: Callable[[], float]) -> Callable[[list[tuple[Unit, Future]]], bool]:
    """`may_submit` for the (unit, fetched data) items of the local executors."""
    allowed = may_submit(rows_wanted, scan.workers + reader.WAITING_UNITS, scan.workers * reader.BYTES_PER_WORKER)
    return lambda flight: allowed([unit for unit, _ in flight])


def source_stream(scan: Scan) -> pa.RecordBatchReader:
    """The whole source (from `scan.start`) as one Arrow stream, units decoded ahead on threads."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        scan.record = EngineRecord("local", scan.workers, nodes={"local"})
        window = _window(scan, lambda: math.inf)  # the query decides how much it reads
        for (unit, _), table in reader.ordered(scan.prefetched(), scan.decode, scan.workers, window):
            scan.read += unit.rows
            scan.record.tasks += 1
            yield from table.to_batches()

    return pa.RecordBatchReader.from_batches(scan.schema, batches())


def whole_source(scan: Scan, engine: Engine) -> Iterator[tuple[None, pa.Table]]:
    """(None, a batch of the definition's result) over the whole source, as DuckDB yields it."""
    rows = 0
    for table in engine.stream(source_stream(scan)):
        check_text(table, f"the definition's result over the whole source, rows {rows:,} to {rows + len(table):,}")
        rows += len(table)
        yield None, table
