"""A shuffled conversion (the default): a seeded, deduplicated sample spread over the whole source.

Two phases, each resumable: `Shuffled.prepare` selects, `Shuffled.batches` gives the rows that
the conversion's one shard writer writes (convert.py's pipeline, which chooses this `Selection`
unless `--no-shuffle` is given or a single dataset's definition has its own top-level ORDER BY).
What is drawn is a `Plan` of parts (commands/plan.py builds it): one for a dataset, one per
component of a mixture, and with --val-from the validation shard's parts, first.

1. **Select.** For each part in turn, units are drawn in the seed's random order over all
   its source's files (source/draw.py) and run through the executor as an in-order
   conversion's are, so their kept rows arrive in draw order whatever the workers or the
   engine; each unit's kept rows are staged by the unit's own work, where it ran (a worker
   thread, a Ray task: fingerprints, pile by shuffle key, compressed texts; output/staging/),
   and here only appended to the piles on disk, each row's ordinal g (its part in the high
   bits) counted in draw order. A whole-source definition (DISTINCT, GROUP BY, LIMIT, ...)
   stages its query's result the same way, here, in pieces of about a unit. Once a part's
   rows drawn reach its target, the distinct texts are counted from the piles' keys: a
   part's selection is its first `wanted` texts in draw order (a text drawn by two parts is
   the first part's). The parts' selections are then interleaved on the keys alone (`_count`,
   output/interleave.py) to see that each holds its share; a part short of distinct texts,
   or of its share, draws more (deterministically: how many depends only on the counts).
2. **Write.** The piles are read one leaf at a time in key order, each sorted by
   (key, fingerprint, g) and deduplicated; each part's rows, in that order, are interleaved
   by the weights (`_Merged`) and streamed into the shard writer: the training shards, then
   the validation shard of `--val-rows` rows (the last rows of the stream, or --val-from's
   parts interleaved the same way), pinned as shard_06542.parquet.

Checkpoints: in phase 1 at every flush of the piles (each part's next slot, rows staged and
target, the piles' sizes; a resume truncates the piles to those sizes and draws on from
there, so no staged unit is fetched again); in phase 2 after every shard (each part's rows
taken and their sizes so far: the interleave's exact state). A whole-source query cannot
stop midway: a rerun in its phase 1 runs it again from the start.
"""

from __future__ import annotations

import copy
import itertools
import math
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..definition.evaluator import Evaluator
from ..errors import ConversionError
from ..output import staging
from ..output.checkpoint import Checkpoint, MergePosition, PartDraw, PartOutcome, Selected, ShuffleState
from ..output.interleave import Batch, Merge
from ..output.shards import ShardSizes
from ..progress import Progress
from ..run.executor import Executor, RunRecord, available_cores
from ..run.local import SPILL_DIR, whole_source
from ..source.draw import Draw
from .options import ConvertOptions
from .plan import Plan, given_batches

PILES_DIR = "piles"  # in the staging folder
BATCH_ROWS = 8192  # rows per piece handed to the shard writer in phase 2
STAGE_QUEUE = 4  # staged units waiting for the stager thread, at most
# Rows staged on this machine (a whole-source query's result, --val-from live's rows) are staged
# in pieces of about a unit's size: batches gathered to STAGE_BYTES, staged STAGE_ROWS at a time.
STAGE_BYTES = 8 << 20
STAGE_ROWS = 16384
# When duplicates leave the selection short, the next round draws the rows missing, scaled by
# the rows drawn per distinct text so far, and this margin more.
REDRAW_MARGIN = 1.05
# A part's first draw is its wanted rows and this much more, for the duplicates most sources hold
# (the benchmark's FineWeb-Edu-like files: 0.6%): a second round costs another pass over the keys
# and a restart of the executor, about 1 s of the main job's 18; 1% more reading costs less.
FIRST_DRAW_MARGIN = 1.01
FIRST_MARGIN = 1.02  # a mixture's parts' first selections: their estimated shares, and this much more


class _Stager:
    """Appends staged units to the piles on a thread of its own, in order, while the draw goes
    on (each unit was fingerprinted, scattered and compressed where it ran: staging.stage_unit).
    A checkpoint is queued in line with the units, and saved once every unit before it is on
    disk (the piles flushed)."""

    def __init__(self, piles: staging.Piles, save: Callable[[ShuffleState], None]):
        self.piles, self.save = piles, save
        self.queue: queue.Queue = queue.Queue(maxsize=STAGE_QUEUE)
        self.error: BaseException | None = None
        self.aborted = False
        self.last: ShuffleState | None = None  # the last checkpoint saved
        self.thread = threading.Thread(target=self._run, name="shardsql-stage", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None or self.aborted:
                continue  # drained: nothing after a failure or an abort reaches the disk
            try:
                kind, value, first_g = item
                if kind == "unit":
                    self.piles.add_staged(value, first_g)
                else:
                    value.sizes = self.piles.flush()
                    self.save(value)
                    self.last = value
            except BaseException as exc:  # raised in the drawing thread, at its next put or close
                self.error = exc

    def _put(self, item: object) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def unit(self, staged: staging.StagedUnit, first_g: int) -> None:
        self._put(("unit", staged, first_g))

    def checkpoint(self, state: ShuffleState) -> None:
        self._put(("checkpoint", copy.deepcopy(state), None))  # a snapshot: the parts go on changing

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
        if self.error is not None and not abort:
            raise self.error
        return self.last


class _Select:
    """Phase 1: draw, run, stage, part by part; count; draw more for a part that is short.
    `state` is the checkpoint's: one PartDraw a part in `state.parts`."""

    def __init__(self, plan: Plan, executor: Executor, piles: staging.Piles, state: ShuffleState,
                 save: Callable[[ShuffleState], None], progress: Progress, workers: int, spill: Path):  # fmt: skip
        self.plan, self.executor, self.piles, self.state = plan, executor, piles, state
        self.save, self.progress, self.workers, self.spill = save, progress, workers, spill

    def _update(self) -> None:
        parts = self.state.parts
        fetched = sum(p.scan.source.counter.bytes for p in self.plan.parts if p.scan is not None)
        self.progress.update(sum(p.read for p in parts), sum(p.staged for p in parts), fetched)

    def _draw_units(self, index: int, seed: int) -> None:
        """Draw units of part `index` until its rows staged reach its target (or its draw is exhausted)."""
        part, s = self.plan.parts[index], self.state.parts[index]
        base = index << staging.PART_SHIFT
        draw = Draw.open(part.scan.source, part.scan.columns, seed)
        # Each unit is staged where it runs (a worker thread, a Ray task): only its keys and
        # compressed texts come here, to be appended to the piles.
        stream = self.executor.stage_units(
            part.scan, part.definition, lambda: s.target - s.staged, drawn=draw.units(s.slot), seed=seed
        )
        stager = _Stager(self.piles, self.save)
        buffered = 0
        try:
            for unit, staged in stream:
                s.read += unit.rows
                s.slot = draw.claim()
                stager.unit(staged, base + s.staged)
                s.staged += staged.rows
                buffered += staged.nbytes
                self._update()
                if s.staged >= s.target:
                    break
                if buffered >= staging.FLUSH_BYTES:
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
        part, s = self.plan.parts[index], self.state.parts[index]
        record = RunRecord()  # the query's: it reads the whole source, whatever read before it
        self.spill.mkdir(parents=True, exist_ok=True)
        evaluator = Evaluator(part.definition, spill_dir=self.spill)
        try:

            def tables() -> Iterator[pa.Table]:
                for table in whole_source(part.scan, evaluator, self.workers, record):
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
            staged = staging.stage_unit(table.column(0).slice(start, STAGE_ROWS), seed)
            self.piles.add_staged(staged, (index << staging.PART_SHIFT) + s.staged)
            s.staged += staged.rows
        self._update()
        if self.piles.buffered >= staging.FLUSH_BYTES:
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
        elif part.shape.row_by_row:
            self._draw_units(index, seed)
        else:
            self._run_query(index, seed)

    def run(self, seed: int, rows: int, val_rows: int) -> tuple[list[staging.Selection], dict[bool, _Count]]:
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
                counts = {v: _count(self.piles, seed, self.plan, cuts, n, v, selections) for v, n in groups.items()}
                for count in counts.values():
                    dry = count.dry
                    if dry is None or parts[dry].exhausted and selections[dry].rows < parts[dry].wanted:
                        continue  # enough, or as much as the source has
                    # The interleave needs more of this part than its selection holds: select more.
                    wanted = groups[self.plan.parts[dry].validation]
                    more = math.ceil(selections[dry].rows * wanted / max(1, count.rows) * REDRAW_MARGIN) + 16
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
                    f"{self.plan.parts[index].name}: {sel.rows:,} distinct texts selected of the {p.wanted:,} "
                    f"needed ({p.staged:,} rows drawn): drawing about {p.target - p.staged:,} more"
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


@dataclass
class _Count:
    """The interleave worked out on the keys alone: the rows it gives, per part, before the first part runs dry."""

    rows: int
    rows_by_part: list[int]
    chars_by_part: list[int]
    dry: int | None  # the part that ran out before `rows` (None: every part had enough)


class _Merged:
    """A group's parts' selected rows interleaved (output/interleave.py), at most `rows` of
    them, from `start` (a resume's position): the leaves are read in key order, each part's
    rows fed to the merge in that order. With texts, the next leaf is read and sorted on a
    thread while this one is merged; without, only sizes are (`_count`). `dry` is the part
    that ran out first, if any did."""

    def __init__(self, piles: staging.Piles, seed: int, plan: Plan, cuts: list[int], rows: int,
                 start: MergePosition | None, with_texts: bool, validation: bool = False):  # fmt: skip
        self.piles, self.seed, self.cuts, self.rows, self.with_texts = piles, seed, cuts, rows, with_texts
        self.members = plan.group(validation)
        by_chars = (plan.val_mix_by if validation else plan.mix_by) == "characters"
        spill = piles.folder / ("queue-val" if validation else "queue-train") if with_texts else None
        if spill is not None:
            spill.mkdir(exist_ok=True)
        weights = [plan.parts[i].weight for i in self.members]
        self.merge = Merge(weights, by_chars, start, spill, BATCH_ROWS)
        self.dry: int | None = None

    def _load(self, leaf: staging.Leaf) -> tuple[staging.Ordered, pa.Array | None]:
        order = staging.ordered(staging.leaf_keys(leaf), self.seed, self.cuts)
        return order, staging.leaf_texts(leaf, order) if self.with_texts else None

    def batches(self) -> Iterator[Batch]:
        merge = self.merge
        seen = [0] * len(self.members)  # each part's rows met in the leaves so far
        first_pile = 0
        if self.with_texts and any(merge.taken):  # a resume: no text of a pile written already is read
            first_pile, seen = self._resume_at()
        leaves = iter(self.piles.leaves(first_pile, keys_only=not self.with_texts))
        with ThreadPoolExecutor(1, thread_name_prefix="shardsql-sort") as pool:
            leaf = next(leaves, None)
            pending = pool.submit(self._load, leaf) if leaf is not None and sum(merge.taken) < self.rows else None
            while pending is not None:
                order, texts = pending.result()
                following = next(leaves, None)
                pending = pool.submit(self._load, following) if following is not None else None
                for j, p in enumerate(self.members):
                    mine = pc.indices_nonzero(pc.equal(order.part, p))
                    skip = max(0, min(len(mine), merge.taken[j] - seen[j]))  # rows written before a resume
                    seen[j] += len(mine)
                    if skip == 0 and len(mine) == len(order.part):  # the leaf is all this part's: no copy
                        merge.feed(j, texts, order.size)
                        continue
                    mine = mine.slice(skip)
                    merge.feed(j, texts.take(mine) if texts is not None else None, order.size.take(mine))
                yield from merge.batches(self.rows)
                if sum(merge.taken) >= self.rows:
                    break
            else:
                for j in range(len(self.members)):
                    merge.end(j)
                yield from merge.batches(self.rows)
                if sum(merge.taken) < self.rows and merge.interleave.dry is not None:
                    self.dry = self.members[merge.interleave.dry]
            if pending is not None:
                pending.cancel()

    def position(self, pending: int) -> MergePosition:
        return self.merge.position(pending)

    def _resume_at(self) -> tuple[int, list[int]]:
        """The first pile holding a row not yet written, and each part's rows in the piles
        before it: counted from the keys alone (32 bytes a row), pile by pile."""
        seen = [0] * len(self.members)
        leaves = self.piles.leaves(keys_only=True)
        for pile, group in itertools.groupby(leaves, key=lambda leaf: leaf.path[0]):
            counts = [0] * len(self.members)
            for leaf in group:
                part = staging.ordered(staging.leaf_keys(leaf), self.seed, self.cuts).part
                for j, p in enumerate(self.members):
                    counts[j] += pc.sum(pc.equal(part, p)).as_py() or 0
            if any(seen[j] + counts[j] > self.merge.taken[j] for j in range(len(counts))):
                leaves.close()
                return pile, seen
            seen = [a + b for a, b in zip(seen, counts, strict=True)]
        return 1 << staging.PILE_BITS, seen


def _count(piles: staging.Piles, seed: int, plan: Plan, cuts: list[int], rows: int, validation: bool,
           selections: list[staging.Selection]) -> _Count:  # fmt: skip
    """The interleave on the keys alone: how many rows and characters each part gives, and whether one runs dry."""
    if len(plan.parts) == 1:
        # Nothing to interleave: the rows are the selection's, up to `rows`, and their characters
        # are counted as they are written (Shuffled.finish), saving a pass over the keys.
        given = min(selections[0].rows, rows)
        return _Count(given, [given], [0], None if given == rows else 0)
    merged = _Merged(piles, seed, plan, cuts, rows, None, with_texts=False, validation=validation)
    for _ in merged.batches():
        pass
    by_part, chars = [0] * len(plan.parts), [0] * len(plan.parts)
    for j, p in enumerate(merged.members):
        by_part[p], chars[p] = merged.merge.taken[j], merged.merge.chars[j]
    return _Count(sum(merged.merge.taken), by_part, chars, merged.dry)


class _Output:
    """Phase 2's rows: the training parts interleaved, then (with --val-from) the validation parts'."""

    def __init__(self, piles: staging.Piles, seed: int, plan: Plan, cuts: list[int], merged_rows: int,
                 val_rows: int, start: MergePosition | None):  # fmt: skip
        self.piles, self.seed, self.plan, self.cuts, self.val_rows = piles, seed, plan, cuts, val_rows
        self.merged = _Merged(piles, seed, plan, cuts, merged_rows, start, with_texts=True)
        self.in_val = False

    def batches(self) -> Iterator[pa.Table]:
        for batch in self.merged.batches():
            yield batch.table
        val = self.plan.group(True)
        if not val:
            return
        self.in_val = True  # the validation shard is written whole: no position inside it
        if self.plan.parts[val[0]].given is not None:
            return  # the live validation shard: its file is kept as it is (Shuffled.live)
        merged = _Merged(self.piles, self.seed, self.plan, self.cuts, self.val_rows, None, True, validation=True)
        for batch in merged.batches():
            yield batch.table

    def position(self, pending: int) -> MergePosition:
        return self.merged.position(0 if self.in_val else pending)


def _wanted(plan: Plan, merged_rows: int, val_rows: int) -> list[int]:
    """Each part's first selection: its share of its group's rows, by documents, or by
    characters at its estimated characters a row. Where parts share a group, 2% and 16 rows
    more: the count that follows corrects a short one, and an excess costs reading."""
    wanted = []
    for part in plan.parts:
        group = plan.group(part.validation)
        rows = val_rows if part.validation else merged_rows
        if len(group) == 1:
            wanted.append(rows)
            continue
        if (plan.val_mix_by if part.validation else plan.mix_by) == "characters":
            scale = [float(plan.parts[i].weight) / max(1.0, plan.parts[i].row_chars) for i in group]
            share = float(part.weight) / max(1.0, part.row_chars) / sum(scale)
        else:
            share = float(part.weight)
        wanted.append(math.ceil(share * rows * FIRST_MARGIN) + 16)
    return wanted


class Shuffled:
    """A shuffled conversion's rows, as the pipeline (convert.py) writes them: `prepare` is phase 1
    (draw, stage, select), resuming from the checkpoint's `shuffle` where an interrupted run left
    it; `batches` is phase 2's output, from `position`; `finish`, each part's account."""

    def __init__(self, plan: Plan, executor: Executor, options: ConvertOptions, folder: Path, checkpoint: Checkpoint,
                 progress: Progress):  # fmt: skip
        self.plan, self.executor, self.options, self.folder = plan, executor, options, folder
        self.checkpoint, self.progress = checkpoint, progress
        self.val_rows = options.val_rows or options.rows_per_shard
        val = plan.group(True)
        self.live = plan.parts[val[0]].given if val else None  # --val-from live: that file is the validation shard
        if val and plan.parts[val[0]].given is not None:
            self.val_rows = plan.parts[val[0]].given_rows
        # Without --val-from, the validation shard's rows are merged with the training rows.
        self.merged_rows = options.num_shards * options.rows_per_shard + (0 if val else self.val_rows)
        whole_source = any(p.shape is not None and not p.shape.row_by_row for p in plan.parts)
        state = checkpoint.shuffle
        if state is None or (state.phase == "select" and whole_source):
            wanted = _wanted(plan, self.merged_rows, self.val_rows)
            state = ShuffleState([PartDraw(target=math.ceil(w * FIRST_DRAW_MARGIN), wanted=w) for w in wanted])
            checkpoint.write_at = None
        self.state = checkpoint.shuffle = state
        self.piles = staging.Piles(folder / PILES_DIR, options.seed, state.sizes)
        staged = sum(p.staged for p in state.parts)
        self.uses_executor = state.phase == "select"  # phase 2 reads the piles, here
        self.rows_here, self.digest = True, False
        progress.start(self.merged_rows + (self.val_rows if val else 0), options.num_shards + 1, kept=staged,
                       shards=len(checkpoint.shards))  # fmt: skip
        if state.phase == "select" and staged:
            progress.message(f"Resuming the selection after {staged:,} rows drawn.")
        self._output: _Output | None = None

    def _save(self, state: ShuffleState | None = None) -> None:
        """Save the checkpoint, with `state` as the shuffle's (a stager's snapshot, or the live one)."""
        self.checkpoint.shuffle = state if state is not None else self.state
        self.checkpoint.save(self.folder)

    def prepare(self) -> None:
        """Phase 1, unless an interrupted run finished it: the parts' selections, counted and checked."""
        state, plan, options = self.state, self.plan, self.options
        if state.selected is not None:
            return
        workers = self.executor.record.workers if self.executor.record.engine == "local" else available_cores()
        select = _Select(plan, self.executor, self.piles, state, self._save, self.progress, workers,
                         self.folder / SPILL_DIR)  # fmt: skip
        selections, counts = select.run(options.seed, self.merged_rows, self.val_rows)
        for validation, count in counts.items():
            _check_shares(plan, selections, count, self.val_rows if validation else self.merged_rows)
        if plan.group(True) and counts[False].rows < self.merged_rows:
            # Short training rows (--allow-short) end at a shard: the validation shard follows them.
            counts[False].rows -= counts[False].rows % options.rows_per_shard
        state.selected = Selected(
            cuts=[x.cut for x in selections],
            duplicates=[x.duplicates for x in selections],
            rows=counts[False].rows,
            written=[sum(c.rows_by_part[i] for c in counts.values()) for i in range(len(plan.parts))],
            chars=[sum(c.chars_by_part[i] for c in counts.values()) for i in range(len(plan.parts))],
            val_rows=counts[True].rows if True in counts else self.val_rows,
        )
        self._save()

    @property
    def sizes(self) -> ShardSizes:
        """The shards of phase 2: with --val-from, as many training shards as the selection fills."""
        selected, options = self._selected, self.options
        num_shards = options.num_shards if not self.plan.group(True) else selected.rows // options.rows_per_shard
        return ShardSizes(num_shards, options.rows_per_shard, options.row_group_size, selected.val_rows)

    @property
    def _selected(self) -> Selected:
        if self.state.selected is None:
            raise RuntimeError("the selection is not made: prepare() first")
        return self.state.selected

    def batches(self) -> Iterator[pa.Table]:
        start = self.checkpoint.write_at
        assert start is None or isinstance(start, MergePosition)
        selected = self._selected
        self._output = _Output(self.piles, self.options.seed, self.plan, selected.cuts, selected.rows,
                               selected.val_rows, start)  # fmt: skip
        return self._output.batches()

    def position(self, pending: int) -> MergePosition:
        assert self._output is not None
        return self._output.position(pending)

    def finish(self) -> list[PartOutcome]:
        """Each part's account; the piles removed (the staging folder becomes the data folder)."""
        selected = self._selected
        if len(self.plan.parts) == 1 and self._output is not None:  # its characters, not counted before (_count)
            selected.chars = list(self._output.merged.merge.chars)
        staging.clear(self.folder / PILES_DIR)
        return [
            PartOutcome(part.name, part.validation, p.read, p.staged, duplicates, written, chars)
            for part, p, duplicates, written, chars in zip(
                self.plan.parts, self.state.parts, selected.duplicates, selected.written, selected.chars, strict=True
            )
        ]


def _check_shares(plan: Plan, selections: list[staging.Selection], count: _Count, rows: int) -> None:
    """A part that cannot give its share stops a mixture (unless --allow-short): never other proportions."""
    if count.dry is None or plan.allow_short:
        return
    part = plan.parts[count.dry]
    raise ConversionError(
        f"component {part.name} ran out: its source gives only {selections[count.dry].rows:,} distinct rows, "
        f"so the mixture stops after {count.rows:,} of the {rows:,} rows wanted. Use fewer --num-shards, "
        "more source files (--num-source), or --allow-short to write the smaller output in the same proportions."
    )
