"""One dataset in order: its first kept rows in source order (--no-shuffle), or in its own ORDER BY's.

Nothing is staged and nothing is deduplicated: a row-by-row definition's units run through
the executor in source order from where the checkpoint says the next shard starts (a unit's
first row group, and how many of its kept rows the shards before already hold: `Position`).
A whole-source definition is one DuckDB query on this machine (run/local.whole_source); it
cannot stop midway, so a rerun runs it again from the start, checks the rows of the shards
already written against their texts' digests, and does not write them again.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..definition.evaluator import Evaluator
from ..errors import ConversionError
from ..output.checkpoint import Checkpoint, PartOutcome, Position, WritePosition
from ..output.shards import Rows, RowStream, TextDigest
from ..progress import Progress
from ..run.executor import Executor
from ..run.local import SPILL_DIR, whole_source
from ..source.units import Unit
from .options import ConvertOptions
from .plan import Part


class InOrder:
    """One dataset's kept rows in order, as the pipeline (convert.py) writes them, tracking where
    each batch came from, so that `position(pending)` turns "the last batch still has `pending`
    unwritten rows" into the checkpoint position where the next shard starts."""

    uses_executor = True
    rows_here = False
    live = None

    def __init__(self, part: Part, *, executor: Executor[Any], options: ConvertOptions, folder: Path,
                 checkpoint: Checkpoint, progress: Progress):  # fmt: skip
        start = checkpoint.write_at or Position()
        assert isinstance(start, Position)
        self.part, self.executor, self.progress = part, executor, progress
        self.definition, scan, shape = part.read()
        self.row_by_row = shape.row_by_row
        self.scan = dataclasses.replace(scan, start=(start.file, start.row_group) if self.row_by_row else (0, 0))
        self.start, self.checkpoint, self.done = start, checkpoint, list(checkpoint.shards)
        self.rows_wanted, self.spill = options.rows_wanted, folder / SPILL_DIR
        self.sizes = options.shard_sizes
        self.digest = not self.row_by_row  # each shard's texts' digest: what a rerun of the query checks
        self.read, self.kept = start.rows_read, start.rows_kept
        self._last = Position(start.file, start.row_group, 0, self.read, self.kept)
        self._last_kept = 0
        self.read_before, self.kept_before = self.read, self.kept  # a resumed run's rows, before this run
        self.used = 0  # the bytes of this run's units whose rows are counted (the progress display's)

    def prepare(self) -> None:
        pass  # nothing is selected ahead: the rows stream from the executor

    def batches(self) -> Generator[Rows, None, None]:
        """The definition's output over the source, on the path its shape allows."""
        if self.row_by_row:
            units = self.executor.row_by_row(self.scan, self.definition, lambda: self.rows_wanted - self.kept)
            try:
                yield from self._from_units(units)
            finally:
                units.close()  # stops the executor's threads now, not when garbage collected
            return
        self.spill.mkdir(parents=True, exist_ok=True)
        evaluator = Evaluator(self.definition, spill_dir=self.spill)
        try:
            yield from self._from_query(whole_source(self.scan, evaluator, self.executor.record.workers,
                                                     self.executor.record))  # fmt: skip
        finally:
            evaluator.close()
            shutil.rmtree(self.spill, ignore_errors=True)

    def _from_units(self, pairs: Iterator[tuple[Unit, Rows]]) -> Generator[Rows, None, None]:
        """The kept rows of each unit, less those the shards before a restart already hold."""
        # The kept rows that shards before a restart already hold, from where the scan starts: the
        # first units of this run may keep fewer (a unit's size follows the rows still wanted), so
        # what one unit cannot skip is skipped from the next.
        skip = self.start.unit_rows_written
        for unit, out in pairs:
            self._last = Position(unit.file_index, unit.row_groups[0], 0, self.read, self.kept)
            self._last_kept = 0
            self.read += unit.rows
            self._last_kept += out.num_rows
            self.kept += out.num_rows
            self.used += unit.fetch_bytes
            self.progress.update(self.read, self.kept, self.scan.source.counter.bytes, self.used)
            if skip:
                cut = min(skip, out.num_rows)
                out, skip = out.slice(cut), skip - cut
            if out.num_rows:
                yield out

    def _from_query(self, batches: Iterator[pa.Table]) -> Generator[pa.Table, None, None]:
        """The query's result, less the rows of the shards written before a restart: the query
        runs again from the start, so those rows are recomputed, checked against the shards'
        digests, and not written again."""
        stream = RowStream(batches)
        for shard in self.done:
            digest = TextDigest()
            for piece in stream.take(shard.rows):
                digest.update(piece)
            if digest.hexdigest() != shard.texts_sha256:
                raise ConversionError(
                    f"the definition's query gave other rows for {shard.name} than the interrupted run wrote; "
                    "remove the staging folder's checkpoint.json to start afresh"
                )
            self.kept += shard.rows
        while pieces := list(stream.take(1 << 16)):
            for piece in pieces:
                self.read = self.executor.record.rows_read
                self.kept += piece.num_rows
                self.progress.update(self.read, self.kept, self.scan.source.counter.bytes)
                yield piece

    def position(self, pending: int) -> Position:
        if not self.row_by_row:
            return Position()
        last = self._last
        return Position(last.file, last.row_group, self._last_kept - pending, last.rows_read, last.rows_kept)

    def saved(self, position: WritePosition) -> None:
        pass  # nothing staged to let go of

    def finish(self) -> list[PartOutcome]:
        """The dataset's account: what it read and kept, and wrote."""
        written = sum(shard.rows for shard in self.checkpoint.shards)
        return [PartOutcome(self.part.name, False, self.read, self.kept, 0, written, 0)]
