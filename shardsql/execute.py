"""Executors: run a definition over the plan's units and hand its output on, in source order.

* `row_by_row`: each unit is fetched, decoded and filtered on a worker thread (pyarrow's
  decoder and DuckDB release the GIL, so threads use the cores), with its own DuckDB
  connection; results come back in unit order. A unit starts only while the source rows
  in flight are fewer than the rows still wanted, so nothing is read that the shards
  cannot need, beyond the units already started.
* `whole_source`: the units are fetched and decoded ahead on worker threads and streamed,
  in order, into one DuckDB query over the whole source.

Both yield (unit or None, kept rows): the caller tracks positions for checkpoints. The
Ray engine (ray_engine.py) has `row_by_row`'s signature and yield shape: convert.py only
chooses between them. Each records what ran in `scan.record`, which the manifest keeps.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import plan, reader
from .engine import Engine

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition
    from .plan import Unit
    from .sources import Source

DEFAULT_WORKERS = os.cpu_count() or 1


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

    def table(self, unit: Unit) -> pa.Table:
        """One unit's rows, with the scan's schema."""
        table = reader.read_unit(self.source, unit, self.columns)
        return conform(table, self.schema, unit)


def conform(table: pa.Table, schema: pa.Schema, unit: Unit) -> pa.Table:
    """A unit's table with the scan's column order and types (files may differ in both)."""
    from .errors import SourceError

    if table.schema.equals(schema):
        return table
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise SourceError(f"{unit.file.url} has no column {', '.join(missing)}, which the first file has")
    try:
        return table.select(schema.names).cast(schema)
    except Exception as exc:  # pyarrow's cast errors come in several kinds
        raise SourceError(f"{unit.file.url}: its columns do not match the first file's: {exc}") from exc


def row_by_row(scan: Scan, definition: Definition, rows_wanted: Callable[[], int]) -> Iterator[tuple[Unit, pa.Table]]:
    """(unit, the definition's rows from it) in order, computed on `scan.workers` threads.

    `rows_wanted()` is how many more kept rows the consumer can use; it may stop early.
    """
    local = threading.local()
    engines: list[Engine] = []

    def work(unit: Unit) -> pa.Table:
        engine = getattr(local, "engine", None)
        if engine is None:
            engine = local.engine = Engine(definition)
            with scan._lock:
                engines.append(engine)
        return engine.run(scan.table(unit))

    scan.record = EngineRecord("local", scan.workers, nodes={"local"})
    try:
        for unit, kept in reader.ordered(scan.units(), work, scan.workers, may_submit(rows_wanted)):
            scan.read += unit.rows
            scan.record.tasks += 1
            yield unit, kept
    finally:
        for engine in engines:
            engine.close()


def may_submit(rows_wanted: Callable[[], int], window: int = 8, limit: int = reader.MAX_BYTES_AHEAD):
    """Whether another unit may start: the window has room, and the source rows in flight are
    fewer than the kept rows still wanted (a unit keeps at most its rows)."""
    in_window = reader.within_bytes(limit, window)
    return lambda flight: in_window(flight) and sum(u.rows for u in flight) < rows_wanted()


def source_stream(scan: Scan) -> pa.RecordBatchReader:
    """The whole source (from `scan.start`) as one Arrow stream, units decoded ahead on threads."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        scan.record = EngineRecord("local", scan.workers, nodes={"local"})
        for unit, table in reader.ordered(scan.units(), scan.table, scan.workers, reader.within_bytes()):
            scan.read += unit.rows
            scan.record.tasks += 1
            yield from table.to_batches()

    return pa.RecordBatchReader.from_batches(scan.schema, batches())


def whole_source(scan: Scan, engine: Engine) -> Iterator[tuple[None, pa.Table]]:
    """(None, a batch of the definition's result) over the whole source, as DuckDB yields it."""
    for table in engine.stream(source_stream(scan)):
        yield None, table
