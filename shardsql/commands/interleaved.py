"""A mixture with --no-shuffle: each component's first kept rows, in source order, interleaved.

Nothing is staged: every component runs as an in-order conversion runs one dataset (units
in source order through the executor), and the interleave (output/interleave.py) takes
rows from whichever component it waits on, so each shard carries the mix by the same
exact rule as a shuffled mixture. No deduplication (as --no-shuffle for one dataset).

A checkpoint after every shard records, for each component, where its next row is (the
unit's first row group and the unit's kept rows already written, as an in-order run's
Position) and its size so far in the interleave; a rerun starts each component's units
there, so nothing written is read again.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import shutil
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..autoresearch import TEXT_COLUMN
from ..errors import ConversionError, OptionsError
from ..invocation import explain_command
from ..output.checkpoint import Checkpoint, InterleavePosition, PartOutcome, Position, WritePosition
from ..output.interleave import Merge
from ..output.shards import char_counts
from ..progress import Progress
from ..run.executor import Executor
from ..wording import count
from .options import ConvertOptions
from .plan import Part, kept_nothing


@dataclass
class _Fed:
    """A unit's rows handed to the interleave: where the unit starts, its rows skipped (a
    resume's), and the part's ordinal of its first row handed over."""

    file: int
    row_group: int
    skipped: int
    first: int


class _Stream:
    """One component's kept rows in source order, pulled a unit at a time, with what is needed
    to say where any of its rows came from."""

    def __init__(self, part: Part, executor: Executor[Any], at: Position, taken: int,
                 rows_wanted: Callable[[], int]):  # fmt: skip
        self.part, self.executor = part, executor
        definition, scan, _ = part.read()
        self.source = scan.source
        self.units = executor.row_by_row(dataclasses.replace(scan, start=(at.file, at.row_group)), definition,
                                         rows_wanted)  # fmt: skip
        self.skip, self.start = at.unit_rows_written, at
        self.read, self.kept = at.rows_read, at.rows_kept
        self.used = 0  # the bytes of this run's units pulled (the progress display's)
        self.fed: list[_Fed] = []
        self.handed = taken  # rows handed to the merge, from the start of the component's stream

    def pull(self) -> pa.Array | None:
        """The next unit's texts (those a resume has written skipped), or None when the source is done."""
        while True:
            item = next(self.units, None)
            if item is None:
                return None
            unit, rows = item
            self.read += unit.rows
            self.kept += rows.num_rows
            self.used += unit.fetch_bytes
            # The kept rows that shards before a restart hold, from where the scan starts: a unit of
            # this run may keep fewer (its size follows the rows still wanted), and the next skips the rest.
            skip = self.skip
            self.skip = max(0, skip - rows.num_rows)
            if rows.num_rows <= skip:
                continue
            # The interleave reads every text here, wherever the unit ran (Ray: from its object store).
            table = self.executor.to_table(rows)
            # Copied: string views would hold their unit's whole decoded texts (the rows the
            # definition dropped too) while they wait in the merge's queue.
            texts = table.column(TEXT_COLUMN).combine_chunks().cast(pa.large_string()).slice(skip)
            if not len(texts):
                continue
            self.fed.append(_Fed(unit.file_index, unit.row_groups[0], skip, self.handed))
            self.handed += len(texts)
            return texts

    def position(self, taken: int) -> Position:
        """Where this component resumes when its first `taken` rows (of its stream) are written."""
        index = bisect.bisect_right([f.first for f in self.fed], taken) - 1
        if index < 0:
            return self.start
        unit = self.fed[index]
        # The rows read and kept before the unit are not tracked per unit: the ones at its
        # start are only for the progress display, so the latest count is kept.
        return Position(unit.file, unit.row_group, unit.skipped + taken - unit.first, self.read, self.kept)


class _Interleaved:
    """The components' rows interleaved (output/interleave.py's Merge), at most `rows` of them,
    resuming from `start`; a component's next unit is pulled when the merge waits on it."""

    def __init__(self, parts: list[Part], executor: Executor[Any], by_chars: bool, rows: int,
                 start: InterleavePosition | None, spill: Path, progress: Progress):  # fmt: skip
        self.rows, self.progress = rows, progress
        self.merge = Merge([p.weight for p in parts], by_chars, start, spill)
        positions = start.positions if start else [Position() for _ in parts]
        self.streams = [_Stream(part, executor, at, taken, functools.partial(self._wanted, j)) for j, (part, at, taken)
                        in enumerate(zip(parts, positions, self.merge.taken, strict=True))]  # fmt: skip
        self.dry: int | None = None

    def _wanted(self, j: int) -> int:
        """Rows component j is still likely to give: its share of the rows left, by its share of
        the rows so far (at first, its weight), less those handed to the merge and not taken."""
        taken = self.merge.taken
        share = taken[j] / sum(taken) if sum(taken) > 1000 else float(self.merge.interleave.weights[j])
        return max(1, int((self.rows - sum(taken)) * share) - (self.streams[j].handed - taken[j]))

    def batches(self) -> Generator[pa.Table, None, None]:
        merge = self.merge
        while sum(merge.taken) < self.rows:
            for batch in merge.batches(self.rows):
                yield batch.table
            if sum(merge.taken) >= self.rows:
                return
            j = merge.interleave.waiting
            if j is None:  # a component ran dry: the merge cannot go on in the weights
                self.dry = merge.interleave.dry
                return
            texts = self.streams[j].pull()
            if texts is None:
                merge.end(j)
            else:
                merge.feed(j, texts, char_counts(texts))
            read = sum(s.read for s in self.streams)
            fetched = sum(s.source.counter.bytes for s in self.streams)
            used = sum(s.used for s in self.streams)
            self.progress.update(read, sum(s.kept for s in self.streams), fetched, used)

    def position(self, pending: int) -> InterleavePosition:
        """Each component's rows, sizes and characters taken and its resume position, `pending`
        rows of the last batch unwritten."""
        at = self.merge.position(pending)
        positions = [s.position(t) for s, t in zip(self.streams, at.taken, strict=True)]
        return InterleavePosition(at.taken, at.sizes, at.chars, positions)


class Interleaved:
    """A --no-shuffle mixture's rows, as the pipeline (convert.py) writes them: the components'
    first kept rows interleaved, from where the checkpoint's `write_at` says they resume."""

    uses_executor = True
    rows_here = True  # the interleave reads every text here: the local writer encodes its batches
    digest = False
    live = None

    def __init__(self, parts: list[Part], *, by: str, executor: Executor[Any], options: ConvertOptions,
                 folder: Path, checkpoint: Checkpoint, progress: Progress):  # fmt: skip
        for part in parts:
            _, _, shape = part.read()
            if not shape.row_by_row:
                raise OptionsError(
                    f"{part.name} is a whole-source definition ({shape.reason}): it cannot be interleaved in "
                    "source order. Drop --no-shuffle to shuffle the mixture."
                )
        self.parts, self.options, self.checkpoint = parts, options, checkpoint
        self.sizes = options.shard_sizes
        self.rows = self.rows_wanted = options.rows_wanted
        start = checkpoint.write_at
        assert start is None or isinstance(start, InterleavePosition)
        # Where a resume's components start counting (the progress display's): their rows read and kept before.
        positions = start.positions if start else []
        self.read_before = sum(p.rows_read for p in positions)
        self.kept_before = sum(p.rows_kept for p in positions)
        self.spill = folder / "queues"  # a component's backlog, past what the merge holds in memory
        self.spill.mkdir(exist_ok=True)
        self.merged = _Interleaved(parts, executor, by == "characters", self.rows, start, self.spill, progress)

    def prepare(self) -> None:
        pass  # nothing is selected ahead: the components' rows stream from the executor

    def batches(self) -> Generator[pa.Table, None, None]:
        try:
            yield from self.merged.batches()
        finally:
            for stream in self.merged.streams:
                stream.units.close()  # stops the executor's threads now

    def position(self, pending: int) -> InterleavePosition:
        return self.merged.position(pending)

    def saved(self, position: WritePosition) -> None:
        pass  # nothing staged to let go of

    def finish(self) -> list[PartOutcome]:
        """Each component's account; a component that ran dry stops the mixture (unless --allow-short,
        and even so where its filter kept nothing)."""
        merged, written = self.merged, sum(x.rows for x in self.checkpoint.shards)
        if merged.dry is not None and written < self.rows:
            short, stream, num_source = self.parts[merged.dry], merged.streams[merged.dry], self.options.num_source
            explain = explain_command(short.name, short.definition.path) if short.definition else "shardsql explain"
            if stream.kept == 0:  # only its filter can help: not fewer shards, nor --allow-short's nothing
                raise kept_nothing(f"component {short.name}'s filter", stream.read, explain)
            if not self.options.allow_short:
                more_files = "" if num_source is None else f", more source files (--num-source, now {num_source})"
                raise ConversionError(
                    f"component {short.name} ran out after {count(stream.handed)} in source order (of "
                    f"{stream.read:,} read, {stream.read - stream.kept:,} were removed by its filter), so the mixture "
                    f"stops after {written:,} of the {self.rows:,} rows wanted. See what its filter removes with "
                    f"`{explain}`; use fewer --num-shards or --rows-per-shard{more_files}, or --allow-short to keep "
                    "the smaller output."
                )
        shutil.rmtree(self.spill, ignore_errors=True)  # the staging folder becomes the data folder
        final = merged.position(0)
        return [PartOutcome(p.name, False, stream.read, stream.kept, 0, taken, chars)
                for p, stream, taken, chars in zip(self.parts, merged.streams, final.taken, final.chars,
                                                   strict=True)]  # fmt: skip
