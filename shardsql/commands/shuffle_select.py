"""A shuffled conversion's select phase: units drawn in the seed's order, staged into piles, counted.

For each part in turn, units are drawn in the seed's random order over all its source's files
(source/draw.py) and run through the executor (`stage_units`): each unit's kept rows are staged
where it ran, and here only appended to the piles on disk (`_Stager`, on a thread of its own),
each row's ordinal g (its part in the high bits) counted in draw order. A whole-source
definition stages its query's result the same way, here, in pieces of about a unit. Once a
part's rows drawn reach its target, the distinct texts are counted from the piles' keys; the
parts' selections are interleaved on the keys alone (commands/shuffle_merge.count_shares) to see that
each holds its share; a part short of distinct texts, or of its share, draws more.
"""

from __future__ import annotations

import copy
import math
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..definition.evaluator import Evaluator
from ..output import staging
from ..output.checkpoint import ShuffleState
from ..progress import Progress
from ..run.executor import Executor, RunRecord
from ..run.local import whole_source
from ..source.draw import Draw
from ..wording import count
from .plan import Plan, given_batches
from .shuffle_merge import Count, count_shares

STAGE_QUEUE = 4  # staged units waiting for the stager thread, at most
# Rows staged on this machine (a whole-source query's result, --val-from live's rows) are staged
# in pieces of about a unit's size: batches gathered to STAGE_BYTES, staged STAGE_ROWS at a time.
STAGE_BYTES = 8 << 20
STAGE_ROWS = 16384
# When duplicates leave the selection short, the next round draws the rows missing, scaled by
# the rows drawn per distinct text so far, and this margin more.
REDRAW_MARGIN = 1.05


# What the stager is handed, in order: a staged unit and its first row's ordinal g, or a
# checkpoint's snapshot, saved once every unit before it is on disk.
_Item = tuple[staging.StagedUnit, int] | ShuffleState


class _Stager:
    """Appends staged units to the piles on a thread of its own, in order, while the draw goes
    on (each unit was fingerprinted, scattered and compressed where it ran: staging.stage_unit).
    A checkpoint is queued in line with the units, and saved once every unit before it is on
    disk (the piles flushed), on a third thread: the piles go on growing while it is saved.
    (A save replaces a file, which can wait for the disk: ext4 writes out the new file's bytes,
    and where mounted with `discard`, trims the old one's before the rename returns. On the
    stager's thread that stalled the draw for 1 s of a 40-shard selection.)"""

    def __init__(self, piles: staging.Piles, save: Callable[[ShuffleState], None]):
        self.piles, self.save = piles, save
        self.queue: queue.Queue[_Item | None] = queue.Queue(maxsize=STAGE_QUEUE)
        self.error: BaseException | None = None
        self.aborted = False
        self.last: ShuffleState | None = None  # the last checkpoint saved
        self.saver = ThreadPoolExecutor(1, thread_name_prefix="shardsql-save")  # in order, one at a time
        self.thread = threading.Thread(target=self._run, name="shardsql-stage", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None or self.aborted:
                continue  # drained: nothing after a failure or an abort reaches the disk
            try:
                if isinstance(item, ShuffleState):
                    item.sizes = self.piles.flush()
                    self.saver.submit(self._save, item)
                else:
                    self.piles.add_staged(*item)
            except BaseException as exc:  # raised in the drawing thread, at its next put or close
                self.error = exc

    def _save(self, state: ShuffleState) -> None:
        if self.error is not None:
            return  # no checkpoint after a failure
        try:
            self.save(state)
            self.last = state
        except BaseException as exc:  # raised in the drawing thread, as the stager's are
            self.error = exc

    def _put(self, item: _Item | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def unit(self, staged: staging.StagedUnit, first_g: int) -> None:
        self._put((staged, first_g))

    def checkpoint(self, state: ShuffleState) -> None:
        self._put(copy.deepcopy(state))  # a snapshot: the parts go on changing

    def close(self, abort: bool = False) -> ShuffleState | None:
        """Wait for what is queued (all of it, or with `abort` none of it); the last checkpoint saved."""
        self.aborted = abort
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.05)
                break
            except queue.Full:
                continue
        self.thread.join()
        self.saver.shutdown(wait=True)  # the checkpoints queued are saved, even on an abort: their piles are
        if self.error is not None and not abort:
            raise self.error
        return self.last


class Select:
    """Phase 1: draw, run, stage, part by part; count; draw more for a part that is short.
    `state` is the checkpoint's: one PartDraw a part in `state.parts`."""

    def __init__(self, plan: Plan, executor: Executor[Any], piles: staging.Piles, state: ShuffleState,
                 save: Callable[[ShuffleState], None], progress: Progress, workers: int, spill: Path,
                 compress: bool = False):  # fmt: skip
        """`compress`: every staged text compressed (the disk is short: formats.must_compress)."""
        self.plan, self.executor, self.piles, self.state = plan, executor, piles, state
        self.save, self.progress, self.workers, self.spill = save, progress, workers, spill
        self.compress = compress
        self.used = 0  # the bytes of this run's units staged (the progress display's)

    def _update(self) -> None:
        parts = self.state.parts
        fetched = sum(p.scan.source.counter.bytes for p in self.plan.parts if p.scan is not None)
        # Rows read from sources, and those of them kept: a given file's (--val-from live) read none.
        drawn = [p for p, part in zip(parts, self.plan.parts, strict=True) if part.given is None]
        # A whole-source query or given rows stage no units: the whole is estimated from all bytes fetched.
        used = self.used or None
        self.progress.update(sum(p.read for p in drawn), sum(p.staged for p in drawn), fetched, used)

    def _draw_units(self, index: int, seed: int) -> None:
        """Draw units of part `index` until its rows staged reach its target (or its draw is exhausted)."""
        (definition, scan, _), s = self.plan.parts[index].read(), self.state.parts[index]
        base = index << staging.PART_SHIFT
        draw = Draw.open(scan.source, scan.columns, seed)
        # Each unit is staged where it runs (a worker thread, a Ray task): only its keys and
        # compressed texts come here, to be appended to the piles.
        stream = self.executor.stage_units(
            scan,
            definition,
            lambda: s.target - s.staged,
            drawn=draw.units(s.slot),
            seed=seed,
            pile_bits=self.state.pile_bits,
            compress=self.compress,
        )
        stager = _Stager(self.piles, self.save)
        buffered = 0
        try:
            for unit, staged in stream:
                s.read += unit.rows
                self.used += unit.fetch_bytes
                s.slot = draw.claim()
                stager.unit(staged, base + s.staged)
                s.staged += staged.rows
                buffered += staged.nbytes
                self._update()
                if s.staged >= s.target:
                    break
                if buffered >= self.piles.flush_bytes:
                    stager.checkpoint(self.state)
                    buffered = 0
            else:
                s.exhausted = True
            stager.checkpoint(self.state)
        except BaseException:
            stager.close(abort=True)
            raise
        finally:
            stream.close()  # stops the executor's threads now
        last = stager.close()
        self.state.sizes = last.sizes if last else self.state.sizes
        self.save(self.state)

    def _run_query(self, index: int, seed: int) -> None:
        """A whole-source definition: its whole result staged, in the query's order."""
        (definition, scan, _), s = self.plan.parts[index].read(), self.state.parts[index]
        record = RunRecord()  # the query's: it reads the whole source, whatever read before it
        self.spill.mkdir(parents=True, exist_ok=True)
        evaluator = Evaluator(definition, spill_dir=self.spill)
        try:

            def tables() -> Iterator[pa.Table]:
                for table in whole_source(scan, evaluator, self.workers, record):
                    s.read = record.rows_read
                    self._update()
                    yield table

            for table in _pieces(tables()):
                self._stage(index, table, seed)
        finally:
            evaluator.close()
            shutil.rmtree(self.spill, ignore_errors=True)  # the staging folder becomes the data folder
        s.read = record.rows_read
        s.exhausted = True
        self.state.sizes = self.piles.flush()
        self.save(self.state)

    def _stage(self, index: int, table: pa.Table, seed: int) -> None:
        """Rows staged here (a query's, or --val-from live's), as a unit's are where it runs."""
        s = self.state.parts[index]
        for start in range(0, table.num_rows, STAGE_ROWS):
            rows = table.column(0).slice(start, STAGE_ROWS)
            staged = staging.stage_unit(rows, seed, self.compress, bits=self.state.pile_bits)
            self.piles.add_staged(staged, (index << staging.PART_SHIFT) + s.staged)
            s.staged += staged.rows
        self._update()
        if self.piles.buffered >= self.piles.flush_bytes:
            self.piles.flush()  # not a checkpoint: a query or given rows cannot resume midway

    def _fill(self, index: int, seed: int) -> None:
        part, s = self.plan.parts[index], self.state.parts[index]
        if s.exhausted or s.staged >= s.target:
            return
        if part.given is not None:
            for table in _pieces(given_batches(part.given)):
                self._stage(index, table, seed)
            s.exhausted = True
            self.state.sizes = self.piles.flush()
            self.save(self.state)
        elif part.read()[2].row_by_row:
            self._draw_units(index, seed)
        else:
            self._run_query(index, seed)

    def run(self, seed: int, rows: int, val_rows: int) -> tuple[list[staging.Selection], dict[bool, Count]]:
        """Draw until every part's selection holds its share of `rows` training rows (with the
        validation shard's unless --val-from gives it) and of `val_rows` --val-from rows."""
        parts = self.state.parts
        groups = {False: rows} | ({True: val_rows} if self.plan.group(True) else {})
        while True:
            for index in range(len(parts)):
                self._fill(index, seed)
            selections = staging.select(self.piles, [p.wanted for p in parts], [p.staged for p in parts])
            short = [i for i, (p, sel) in enumerate(zip(parts, selections, strict=True))
                     if sel.rows < p.wanted and not p.exhausted]  # fmt: skip
            if not short:
                cuts = [x.cut for x in selections]
                counts = {
                    v: count_shares(self.piles, seed, self.plan, cuts, n, v, selections) for v, n in groups.items()
                }
                for counted in counts.values():
                    dry = counted.dry
                    if dry is None or parts[dry].exhausted and selections[dry].rows < parts[dry].wanted:
                        continue  # enough, or as much as the source has
                    # The interleave needs more of this part than its selection holds: select more.
                    wanted = groups[self.plan.parts[dry].validation]
                    more = math.ceil(selections[dry].rows * wanted / max(1, counted.rows) * REDRAW_MARGIN) + 16
                    parts[dry].wanted = max(parts[dry].wanted + 1, more)
                    short.append(dry)
                if not short:
                    return selections, counts
            for index in short:
                p, sel = parts[index], selections[index]
                missing = p.wanted - sel.rows
                per_distinct = p.staged / max(1, sel.rows)
                more = max(missing, math.ceil(missing * per_distinct * REDRAW_MARGIN))
                p.target = max(p.target, p.staged + more)
                self.progress.message(
                    f"{self.plan.parts[index].name}: {count(sel.rows, 'distinct text')} selected of the {p.wanted:,} "
                    f"needed ({count(p.staged)} drawn): drawing about {p.target - p.staged:,} more"
                )
            self.save(self.state)


def _pieces(tables: Iterator[pa.Table | pa.RecordBatch]) -> Iterator[pa.Table]:
    """Tables gathered into pieces of about STAGE_BYTES (rows staged on this machine, about a unit at a time)."""
    batches: list[pa.Table] = []
    for table in tables:
        batches.append(table if isinstance(table, pa.Table) else pa.Table.from_batches([table]))
        if sum(t.nbytes for t in batches) >= STAGE_BYTES:
            yield pa.concat_tables(batches)
            batches = []
    if batches:
        yield pa.concat_tables(batches)
