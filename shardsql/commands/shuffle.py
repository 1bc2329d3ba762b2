"""A shuffled conversion (the default): a seeded, deduplicated sample spread over the whole source.

Two phases, each resumable, both driven from here; convert.py chooses this path unless
`--no-shuffle` is given or the definition has its own top-level ORDER BY.

1. **Select.** Units are drawn in the seed's random order over all the source's files
   (source/draw.py) and run through the executor as an in-order conversion's are, so
   their kept rows arrive in draw order whatever the workers or the engine; each kept row
   gets its ordinal g in that order and is staged on disk in piles by its shuffle key
   (output/staging.py). A whole-source definition (DISTINCT, GROUP BY, LIMIT, ...) stages
   its query's result the same way, in the query's order. Once the rows drawn reach the
   rows wanted, the distinct texts are counted from the piles' keys; if duplicates leave
   the selection short, more units are drawn (deterministically: how many depends only on
   the counts) and the count is made again. The selection is the first `wanted` distinct
   texts in draw order: those whose first occurrence has g <= the cut.
2. **Write.** The piles are read one leaf at a time in key order, each sorted by
   (key, fingerprint, g) and deduplicated, and streamed into the shard writer: the
   training shards, then the validation shard of `--val-rows` rows (the last rows of the
   shuffled stream), pinned as shard_06542.parquet.

Checkpoints: in phase 1 at every flush of the piles (the draw's next slot, the rows staged,
the piles' sizes; a resume truncates the piles to those sizes and draws on from there, so
no staged unit is fetched again); in phase 2 after every shard (the leaf and the offset in
it where the next shard starts). A whole-source query cannot stop midway: a rerun in its
phase 1 runs it again from the start.
"""

from __future__ import annotations

import math
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..definition.analysis import Shape
from ..definition.catalog import Definition
from ..definition.evaluator import Evaluator
from ..output import staging
from ..output.shards import WRITERS, ShardInfo, write_pieces, write_shards
from ..progress import Progress
from ..run.executor import Executor
from ..run.local import LocalExecutor
from ..source.draw import Draw
from ..source.scan import Scan

PILES_DIR = "piles"  # in the staging folder
SPILL_DIR = "spill"  # where a whole-source query may spill
BATCH_ROWS = 8192  # rows per piece handed to the shard writer in phase 2
STAGE_QUEUE = 4  # units' rows waiting for the stager thread, at most
# When duplicates leave the selection short, the next round draws the rows missing, scaled by
# the rows drawn per distinct text so far, and this margin more.
REDRAW_MARGIN = 1.05


@dataclass
class Outcome:
    shards: list[ShardInfo]
    rows_read: int
    rows_kept: int  # rows staged (kept by the definition, duplicates included)
    duplicates: int  # rows up to the cut that repeat a text drawn before them
    selected: int  # distinct rows selected (fewer than wanted only if the source ran out)


def _table(rows: Any) -> pa.Table:
    """A unit's kept rows here: the local engine's table, or the Ray engine's rows fetched from its object store."""
    return rows if isinstance(rows, pa.Table) else rows.fetch()


class _Stager:
    """Stages rows on a thread of its own, in order: fingerprinting, scattering and compressing
    the rows drawn so far while the draw goes on. A checkpoint is queued in line with the
    rows, and saved once every row before it is on disk (the piles flushed)."""

    def __init__(self, piles: staging.Piles, save: Callable[[dict], None]):
        self.piles, self.save = piles, save
        self.queue: queue.Queue = queue.Queue(maxsize=STAGE_QUEUE)
        self.error: BaseException | None = None
        self.aborted = False
        self.last: dict | None = None  # the last checkpoint saved
        self.thread = threading.Thread(target=self._run, name="shardsql-stage", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None or self.aborted:
                continue  # drained: nothing after a failure or an abort reaches the disk
            try:
                kind, value, first_g = item
                if kind == "rows":
                    self.piles.add(value, first_g)
                else:
                    value["sizes"] = self.piles.flush()
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

    def rows(self, table: pa.Table, first_g: int) -> None:
        self._put(("rows", table, first_g))

    def checkpoint(self, state: dict) -> None:
        self._put(("checkpoint", dict(state), None))

    def close(self, abort: bool = False) -> dict | None:
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
    """Phase 1: draw, run, stage; count; draw more if short. `state` is the checkpoint's dict."""

    def __init__(self, definition: Definition, scan: Scan, shape: Shape, executor: Executor, piles: staging.Piles,
                 state: dict, save: Callable[[dict], None], progress: Progress, spill: Path):  # fmt: skip
        self.definition, self.scan, self.shape, self.executor = definition, scan, shape, executor
        self.piles, self.state, self.save, self.progress, self.spill = piles, state, save, progress, spill

    def checkpoint(self) -> None:
        self.state["sizes"] = self.piles.flush()
        self.save(self.state)

    def _stage(self, table: pa.Table) -> None:
        s = self.state
        self.piles.add(table, s["staged"])
        s["staged"] += table.num_rows
        self.progress.update(s["read"], s["staged"], self.scan.source.counter.bytes)

    def _draw_units(self, seed: int) -> None:
        """Draw units until the rows staged reach the target (or the draw is exhausted)."""
        s = self.state
        draw = Draw.open(self.scan.source, self.scan.columns, seed)
        stream = self.executor.row_by_row(
            self.scan, self.definition, lambda: s["target"] - s["staged"], drawn=draw.units(s["slot"])
        )
        stager = _Stager(self.piles, self.save)
        buffered = 0
        try:
            for unit, rows in stream:
                table = _table(rows)
                s["read"] += unit.rows
                s["slot"] = draw.claim()
                stager.rows(table, s["staged"])
                s["staged"] += table.num_rows
                buffered += table.nbytes
                self.progress.update(s["read"], s["staged"], self.scan.source.counter.bytes)
                if s["staged"] >= s["target"]:
                    break
                if buffered >= staging.FLUSH_BYTES:
                    stager.checkpoint(s)
                    buffered = 0
            else:
                s["exhausted"] = True
            stager.checkpoint(s)
        except BaseException:
            stager.close(abort=True)
            raise
        finally:
            stream.close()  # stops the executor's threads now
        last = stager.close()
        s["sizes"] = last["sizes"] if last else s["sizes"]
        self.save(s)

    def _run_query(self) -> None:
        """A whole-source definition: its whole result staged, in the query's order."""
        s = self.state
        assert isinstance(self.executor, LocalExecutor)  # a whole-source query runs here (convert._choose_engine)
        self.spill.mkdir(parents=True, exist_ok=True)
        evaluator = Evaluator(self.definition, spill_dir=self.spill)
        try:
            for _, table in self.executor.whole_source(self.scan, evaluator):
                s["read"] = self.executor.record.rows_read
                self._stage(table)
                if self.piles.buffered >= staging.FLUSH_BYTES:
                    self.piles.flush()  # not a checkpoint: a query cannot resume midway
        finally:
            evaluator.close()
            shutil.rmtree(self.spill, ignore_errors=True)  # the staging folder becomes the data folder
        s["read"] = self.executor.record.rows_read
        s["exhausted"] = True
        self.checkpoint()

    def run(self, wanted: int, seed: int) -> staging.Selection:
        s = self.state
        while True:
            if not s["exhausted"] and s["staged"] < s["target"]:
                if self.shape.row_by_row:
                    self._draw_units(seed)
                else:
                    self._run_query()
            selection = staging.select(self.piles, wanted, s["staged"])
            if selection.rows >= wanted or s["exhausted"]:
                return selection
            missing = wanted - selection.rows
            per_distinct = s["staged"] / max(1, selection.rows)
            s["target"] = s["staged"] + max(missing, math.ceil(missing * per_distinct * REDRAW_MARGIN))
            self.progress.message(
                f"{s['staged'] - selection.rows:,} duplicate texts among {s['staged']:,} rows drawn: "
                f"drawing about {s['target'] - s['staged']:,} more"
            )
            self.save(s)


class _Sorted:
    """Phase 2's rows: the leaves in key order, each sorted and deduplicated, from a position."""

    def __init__(self, piles: staging.Piles, seed: int, cut: int, start: dict | None):
        self.piles, self.seed, self.cut = piles, seed, cut
        self.start_leaf = tuple(start["leaf"]) if start else ()
        self.start_offset = start["offset"] if start else 0
        self.leaf: tuple[int, ...] = self.start_leaf
        self.yielded = self.start_offset

    def batches(self) -> Iterator[pa.Table]:
        """The rows in output order. The next leaf is read and sorted on a thread while this
        one is fed to the writer (two leaves in memory at most); a leaf's files are left
        alone until it is loaded (the split removes them once the iteration moves on)."""
        first_pile = self.start_leaf[0] if self.start_leaf else 0
        leaves = (leaf for leaf in self.piles.leaves(first_pile) if leaf.path >= self.start_leaf)
        load = lambda leaf: (leaf, staging.sorted_rows(leaf, self.seed, self.cut))  # noqa: E731
        with ThreadPoolExecutor(1, thread_name_prefix="shardsql-sort") as pool:
            leaf = next(leaves, None)
            pending = pool.submit(load, leaf) if leaf is not None else None
            while pending is not None:
                leaf, rows = pending.result()
                following = next(leaves, None)
                pending = pool.submit(load, following) if following is not None else None
                skip = self.start_offset if leaf.path == self.start_leaf else 0
                self.leaf, self.yielded = leaf.path, skip
                for offset in range(skip, rows.num_rows, BATCH_ROWS):
                    piece = rows.slice(offset, BATCH_ROWS)
                    self.yielded += piece.num_rows
                    yield piece

    def position(self, pending: int) -> dict:
        return {"leaf": list(self.leaf), "offset": self.yielded - pending}


def convert_shuffled(definition: Definition, scan: Scan, shape: Shape, executor: Executor, options, folder: Path,
                     checkpoint, progress: Progress) -> Outcome:  # fmt: skip
    """Both phases, resuming from `checkpoint.shuffle` where an interrupted run left it."""
    val_rows = options.val_rows or options.rows_per_shard
    wanted = options.num_shards * options.rows_per_shard + val_rows
    s = checkpoint.shuffle
    if not s or (s["phase"] == "select" and not shape.row_by_row):
        s.clear()
        s.update(phase="select", slot=0, staged=0, read=0, target=wanted, exhausted=False, sizes={})

    def save(state: dict | None = None) -> None:
        """Save the checkpoint, with `state` as the shuffle's (a stager's snapshot, or the live one)."""
        checkpoint.shuffle = state if state is not None else s
        checkpoint.save(folder)

    piles = staging.Piles(folder / PILES_DIR, options.seed, s["sizes"])
    progress.start(wanted, options.num_shards + 1, kept=s["staged"], shards=len(checkpoint.shards))
    if s["phase"] == "select":
        if s["staged"]:
            progress.message(f"Resuming the selection after {s['staged']:,} rows drawn.")
        with executor:
            selection = _Select(definition, scan, shape, executor, piles, s, save, progress, folder / SPILL_DIR).run(
                wanted, options.seed
            )
        s.update(phase="write", cut=selection.cut, selected=selection.rows, write=None)
        save(s)
    duplicates = s["cut"] + 1 - s["selected"]
    s["duplicates"] = duplicates
    rows = _Sorted(piles, options.seed, s["cut"], s.get("write"))

    def on_shard(info: ShardInfo, position: dict) -> None:
        checkpoint.shards.append(info)
        s["write"] = position
        save()
        progress.shard(info)

    done = list(checkpoint.shards)
    batches = rows.batches()
    try:
        # The local writer, whatever the engine: the rows are here, and its bytes are the Ray engine's too.
        write_shards(
            batches, folder, options.num_shards, options.rows_per_shard, options.row_group_size, on_shard, done,
            rows.position, writers=WRITERS, encode=write_pieces, last_rows=val_rows,
        )  # fmt: skip
    finally:
        batches.close()
    staging.clear(folder / PILES_DIR)  # the staging folder becomes the data folder: no piles in it
    return Outcome(list(checkpoint.shards), s["read"], s["staged"], duplicates, s["selected"])
