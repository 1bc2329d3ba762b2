"""The local engine: units on this machine's threads, shards compressed by this process's Polars.

* `LocalExecutor.row_by_row`: each unit is decoded and filtered on a worker thread
  (pyarrow's decoder and DuckDB release the GIL, so threads use the cores), with its own
  DuckDB connection; results come back in unit order. Its bytes are fetched on the source's
  fetch streams from the moment it is admitted (scheduling.fetching), while the workers
  decode the units admitted before it, so the network works while the cores do.
* `whole_source`: the units are fetched and decoded ahead on worker threads and streamed,
  in order, into one DuckDB query over the whole source. It runs here whatever the engine:
  one query is not split across machines.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pyarrow as pa

from ..definition.evaluator import Evaluator
from ..definition.model import Definition
from ..output.shards import WRITERS, write_pieces
from ..output.staging import StagedUnit
from ..output.text_check import check_text
from ..source.decode import read_unit
from ..source.scan import Scan
from ..source.units import Unit, units
from . import scheduling
from .executor import RunRecord
from .unit import work as unit_work

ENGINE = "local"


class LocalExecutor:
    """The local engine (executor.Executor): units on `workers` threads, shards compressed here."""

    def __init__(self, workers: int):
        self.workers = workers
        self.record = RunRecord(ENGINE, workers, nodes={ENGINE})

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def shards_in_flight(self) -> int:
        # A shard is compressed on Polars' threads while the next is fed; with many cores,
        # more shards at once keep them busy.
        return max(WRITERS, self.workers // 2)

    def encode(self, pieces: Iterator[pa.Table], path: Path, row_group_size: int) -> int:
        return write_pieces(pieces, path, row_group_size)

    def row_by_row(
        self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], drawn: Iterator[Unit] | None = None,
        stage: int | None = None,
    ) -> Iterator[tuple[Unit, pa.Table | StagedUnit]]:  # fmt: skip
        """(unit, the definition's rows from it) in order, computed on `workers` threads; the
        units are `drawn` when given (a shuffled draw), else the source's from `scan.start`.
        With `stage` (a seed), each unit's rows are staged on its worker thread (run/unit.py)."""
        local = threading.local()
        evaluators: list[Evaluator] = []
        lock = threading.Lock()

        def work(item: tuple[Unit, Future]) -> pa.Table | StagedUnit:
            evaluator = getattr(local, "evaluator", None)
            if evaluator is None:
                evaluator = local.evaluator = Evaluator(definition)
                with lock:
                    evaluators.append(evaluator)
            unit, data = item
            return unit_work(evaluator, scan, unit, data.result(), stage)

        ratio = scheduling.KeepRatio()
        window = scheduling.Window(self.workers, scan.source.fetcher.streams, rows_wanted, ratio)
        todo = (
            units(scan.source, scan.columns, scan.start, most_rows=window.admission.most_rows)
            if drawn is None
            else drawn
        )
        fetched = scheduling.fetching(scan.source, todo)
        try:
            for (unit, _), kept in scheduling.ordered(fetched, work, self.workers, window):
                ratio.add(unit.rows, kept.num_rows)
                self.record.rows_read += unit.rows
                self.record.tasks += 1
                yield unit, kept
        finally:
            for evaluator in evaluators:
                evaluator.close()

    def whole_source(self, scan: Scan, evaluator: Evaluator) -> Iterator[tuple[None, pa.Table]]:
        """(None, a batch of the definition's result) over the whole source, as DuckDB yields it."""
        rows = 0
        for table in evaluator.stream(self._source_stream(scan)):
            check_text(table, f"the definition's result over the whole source, rows {rows:,} to {rows + len(table):,}")
            rows += len(table)
            yield None, table

    def _source_stream(self, scan: Scan) -> pa.RecordBatchReader:
        """The whole source (from `scan.start`) as one Arrow stream, units decoded ahead on threads."""

        def batches() -> Iterator[pa.RecordBatch]:
            fetched = scheduling.fetching(scan.source, units(scan.source, scan.columns, scan.start))
            decode = lambda item: read_unit(scan, item[0], item[1].result())  # noqa: E731
            # The query decides how much it reads.
            window = scheduling.Window(self.workers, scan.source.fetcher.streams, lambda: math.inf)
            for (unit, _), table in scheduling.ordered(fetched, decode, self.workers, window):
                self.record.rows_read += unit.rows
                self.record.tasks += 1
                yield from table.to_batches()

        return pa.RecordBatchReader.from_batches(scan.schema, batches())
