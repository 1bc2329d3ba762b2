"""The local engine: units on this machine's threads, shards compressed by this process's Polars.

* `LocalExecutor.row_by_row`: each unit is decoded and filtered on a worker thread
  (pyarrow's decoder and DuckDB release the GIL, so threads use the cores), with its own
  DuckDB connection; results come back in unit order. Its bytes are fetched on the source's
  fetch streams from the moment it is admitted (scheduling.fetching), while the workers
  decode the units admitted before it, so the network works while the cores do.
* `whole_source` (not the executor's: every engine's whole-source query runs here): the units
  are fetched and decoded ahead on worker threads and streamed, in order, into one DuckDB query
  over the whole source. One query is not split across machines.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Self, TypeVar

import pyarrow as pa

from ..definition.evaluator import Evaluator
from ..definition.model import Definition
from ..output.shards import WRITERS, Written, write_pieces
from ..output.staging import StagedUnit
from ..output.text_check import check_text
from ..source.decode import read_unit
from ..source.scan import Scan
from ..source.units import Unit, units
from . import scheduling
from . import unit as unit_work
from .executor import RunRecord

ENGINE = "local"
SPILL_DIR = "spill"  # in the staging folder: where a whole-source query may spill (`whole_source`)
Result = TypeVar("Result", pa.Table, StagedUnit)  # what a unit's work hands on: its kept rows, or them staged
UnitWork = Callable[[Evaluator, Scan, Unit, dict[int, bytes]], Result]


class LocalExecutor:
    """The local engine (executor.Executor): units on `workers` threads, shards compressed here."""

    def __init__(self, workers: int):
        self.workers = workers
        self.record = RunRecord(ENGINE, workers, nodes={ENGINE})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def shards_in_flight(self) -> int:
        # A shard is compressed on Polars' threads while the next is fed; with many cores,
        # more shards at once keep them busy.
        return max(WRITERS, self.workers // 2)

    def encode(self, pieces: Iterator[pa.Table], path: Path, row_group_size: int) -> Written:
        return write_pieces(pieces, path, row_group_size)

    def to_table(self, rows: pa.Table) -> pa.Table:
        return rows  # already here

    def row_by_row(
        self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], *, drawn: Iterator[Unit] | None = None
    ) -> Generator[tuple[Unit, pa.Table], None, None]:
        """(unit, the definition's rows from it) in order, computed on `workers` threads; the
        units are `drawn` when given, else the source's from `scan.start`."""
        return self._run(scan, definition, rows_wanted, drawn, unit_work.keep, staging=False)

    def stage_units(
        self,
        scan: Scan,
        definition: Definition,
        rows_wanted: Callable[[], int],
        *,
        drawn: Iterator[Unit],
        seed: int,
        pile_bits: int,
        compress: bool = False,
    ) -> Generator[tuple[Unit, StagedUnit], None, None]:
        """As `row_by_row`, each unit's kept rows staged on its worker thread (run/unit.py)."""

        def stage(evaluator: Evaluator, scan: Scan, unit: Unit, data: dict[int, bytes]) -> StagedUnit:
            return unit_work.stage(evaluator, scan, unit, data, seed, pile_bits, compress)

        return self._run(scan, definition, rows_wanted, drawn, stage, staging=True)

    def _run(self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], drawn: Iterator[Unit] | None,
             work: UnitWork[Result], *, staging: bool) -> Generator[tuple[Unit, Result], None, None]:  # fmt: skip
        local = threading.local()
        evaluators: list[Evaluator] = []
        lock = threading.Lock()

        def run(item: tuple[Unit, Future[dict[int, bytes]]]) -> Result:
            evaluator = getattr(local, "evaluator", None)
            if evaluator is None:
                evaluator = local.evaluator = Evaluator(definition)
                with lock:
                    evaluators.append(evaluator)
            unit, data = item
            return work(evaluator, scan, unit, data.result())

        ratio = scheduling.KeepRatio()
        window = scheduling.Window(self.workers, scan.source.fetcher.streams, rows_wanted, ratio, staging=staging)
        todo = (
            units(scan.source, scan.columns, scan.start, most_rows=window.admission.most_rows)
            if drawn is None
            else drawn
        )
        fetched = scheduling.fetching(scan.source, todo)
        try:
            for (unit, _), kept in scheduling.ordered(fetched, run, self.workers, window):
                ratio.add(unit.rows, kept.num_rows)
                self.record.rows_read += unit.rows
                self.record.tasks += 1
                yield unit, kept
        finally:
            for evaluator in evaluators:
                evaluator.close()


def whole_source(scan: Scan, evaluator: Evaluator, workers: int, record: RunRecord) -> Iterator[pa.Table]:
    """Batches of the definition's result over the whole source, as DuckDB yields them: one query,
    on this machine whatever the engine, fed by `workers` threads that fetch and decode the units
    ahead, in order. The source rows it reads are counted in `record`."""
    rows = 0
    for table in evaluator.stream(_source_stream(scan, workers, record)):
        check_text(table, f"the definition's result over the whole source, rows {rows:,} to {rows + len(table):,}")
        rows += len(table)
        yield table


def _source_stream(scan: Scan, workers: int, record: RunRecord) -> pa.RecordBatchReader:
    """The whole source (from `scan.start`) as one Arrow stream, units decoded ahead on threads."""

    def batches() -> Iterator[pa.RecordBatch]:
        fetched = scheduling.fetching(scan.source, units(scan.source, scan.columns, scan.start))
        decode = lambda item: read_unit(scan, item[0], item[1].result())  # noqa: E731
        # The query decides how much it reads.
        window = scheduling.Window(workers, scan.source.fetcher.streams, lambda: math.inf)
        for (unit, _), table in scheduling.ordered(fetched, decode, workers, window):
            record.rows_read += unit.rows
            record.tasks += 1
            yield from table.to_batches()

    return pa.RecordBatchReader.from_batches(scan.schema, batches())
