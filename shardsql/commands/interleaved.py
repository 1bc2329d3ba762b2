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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..autoresearch import TEXT_COLUMN
from ..errors import ConversionError, OptionsError
from ..output.checkpoint import Checkpoint, Position
from ..output.interleave import Interleave
from ..output.shards import ShardInfo, write_shards
from ..progress import Progress
from ..run.executor import Executor
from .shuffle import BATCH_ROWS, Part, PartOutcome


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

    def __init__(self, part: Part, executor: Executor, start: dict, rows_wanted):
        self.part = part
        at = Position(**start["position"])
        scan = dataclasses.replace(part.scan, start=(at.file, at.row_group))
        self.units = executor.row_by_row(scan, part.definition, rows_wanted)
        self.skip, self.start = at.unit_rows_written, at
        self.read, self.kept = at.rows_read, at.rows_kept
        self.fed: list[_Fed] = []
        self.handed = self.taken = start["taken"]  # rows handed to the interleave; rows written
        self.texts: list[pa.Array] = []  # handed, not yet taken
        self.chars: list[np.ndarray] = []

    def pull(self) -> np.ndarray | None:
        """The next unit's rows' characters (its texts kept here), or None when the source is done."""
        while True:
            item = next(self.units, None)
            if item is None:
                return None
            unit, table = item
            self.read += unit.rows
            self.kept += table.num_rows
            skip = self.skip if (unit.file_index, unit.row_groups[0]) == (self.start.file, self.start.row_group) else 0
            self.skip = 0
            texts = table.column(TEXT_COLUMN).combine_chunks().cast(pa.large_string()).slice(skip)
            if not len(texts):
                continue
            self.fed.append(_Fed(unit.file_index, unit.row_groups[0], skip, self.handed))
            self.handed += len(texts)
            chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
            self.texts.append(texts)
            self.chars.append(chars)
            return chars

    def take(self, rows: int) -> tuple[list[pa.Array], np.ndarray]:
        texts, chars = [], []
        while rows:
            n = min(rows, len(self.chars[0]))
            texts.append(self.texts[0].slice(0, n))
            chars.append(self.chars[0][:n])
            if n == len(self.chars[0]):
                self.texts.pop(0)
                self.chars.pop(0)
            else:
                self.texts[0], self.chars[0] = self.texts[0].slice(n), self.chars[0][n:]
            rows -= n
            self.taken += n
        return texts, np.concatenate(chars) if chars else np.empty(0, dtype=np.int64)

    def position(self, taken: int) -> dict:
        """Where this component resumes when its first `taken` rows (of its stream) are written."""
        index = bisect.bisect_right([f.first for f in self.fed], taken) - 1
        if index < 0:
            return dataclasses.asdict(self.start)
        unit = self.fed[index]
        # The rows read and kept before the unit are not tracked per unit: the ones at its
        # start are only for the progress display, so the latest count is kept.
        return dataclasses.asdict(
            Position(unit.file, unit.row_group, unit.skipped + taken - unit.first, self.read, self.kept)
        )


class _Interleaved:
    """The components' rows interleaved, at most `rows` of them, resuming from `start`."""

    def __init__(self, parts: list[Part], executor: Executor, by_chars: bool, rows: int, start: dict | None,
                 progress: Progress):  # fmt: skip
        self.by_chars, self.rows, self.progress = by_chars, rows, progress
        fresh = {"position": dataclasses.asdict(Position()), "taken": 0, "size": 0, "chars": 0}
        starts = start["parts"] if start else [fresh] * len(parts)
        self.sizes = [s["size"] for s in starts]  # each part's size in the interleave, of the rows taken
        self.chars = [s["chars"] for s in starts]  # and its characters
        self.merge = Interleave([p.weight for p in parts], self.sizes)
        self.streams = [_Stream(part, executor, s, lambda j=j: self._wanted(j)) for j, (part, s) in
                        enumerate(zip(parts, starts, strict=True))]  # fmt: skip
        self.dry: int | None = None
        self._last: tuple[np.ndarray, list[np.ndarray]] | None = None
        self._before = ([s.taken for s in self.streams], list(self.sizes), list(self.chars))

    def _wanted(self, j: int) -> int:
        """Rows component j is still likely to give: its weight's share of those left, by rows
        so far (by documents, its weight)."""
        taken = [s.taken for s in self.streams]
        share = taken[j] / sum(taken) if sum(taken) > 1000 else float(self.merge.weights[j])
        return max(1, int((self.rows - sum(taken)) * share) - (self.streams[j].handed - taken[j]))

    def batches(self) -> Iterator[pa.Table]:
        while (emitted := sum(s.taken for s in self.streams)) < self.rows:
            picks = self.merge.emit(min(self.rows - emitted, BATCH_ROWS))
            if not len(picks):
                j = self.merge.waiting
                if j is None:  # a component ran dry: the merge cannot go on in the weights
                    self.dry = self.merge.dry
                    return
                chars = self.streams[j].pull()
                if chars is None:
                    self.merge.end(j)
                else:
                    self.merge.feed(j, chars if self.by_chars else np.ones(len(chars), dtype=np.int64))
                read = sum(s.read for s in self.streams)
                fetched = sum(s.part.scan.source.counter.bytes for s in self.streams)
                self.progress.update(read, sum(s.kept for s in self.streams), fetched)
                continue
            self._before = ([s.taken for s in self.streams], list(self.sizes), list(self.chars))
            texts, chars = [], []
            for j, stream in enumerate(self.streams):
                count = int(np.count_nonzero(picks == j))
                part_texts, part_chars = stream.take(count)
                texts.append(part_texts)
                chars.append(part_chars)
                self.sizes[j] += int(part_chars.sum()) if self.by_chars else count
                self.chars[j] += int(part_chars.sum())
            self._last = (picks, chars)
            index = np.empty(len(picks), dtype=np.int64)
            base = 0
            for j, part_chars in enumerate(chars):
                index[picks == j] = base + np.arange(len(part_chars))
                base += len(part_chars)
            joined = pa.chunked_array([a for part in texts for a in part], pa.large_string())
            yield pa.table({TEXT_COLUMN: joined.take(pa.array(index))})

    def position(self, pending: int) -> dict:
        """Each component's resume position and interleave size, `pending` rows of the last batch unwritten."""
        taken, sizes, chars = (list(x) for x in self._before)
        if self._last is not None:
            picks, batch_chars = self._last
            used = picks[: len(picks) - pending]
            for j in range(len(self.streams)):
                count = int(np.count_nonzero(used == j))
                taken[j] += count
                chars[j] += int(batch_chars[j][:count].sum())
                sizes[j] += int(batch_chars[j][:count].sum()) if self.by_chars else count
        return {"parts": [{"position": s.position(t), "taken": t, "size": z, "chars": c}
                          for s, t, z, c in zip(self.streams, taken, sizes, chars, strict=True)]}  # fmt: skip


def convert_interleaved(parts: list[Part], by: str, executor: Executor, options, folder, state: Checkpoint,
                        progress: Progress) -> list[PartOutcome]:  # fmt: skip
    """Write the shards of a --no-shuffle mixture; each part's account."""
    for part in parts:
        if not part.shape.row_by_row:
            raise OptionsError(
                f"{part.name} is a whole-source definition ({part.shape.reason}): it cannot be interleaved in "
                "source order. Drop --no-shuffle to shuffle the mixture."
            )
    rows = options.rows_wanted
    progress.start(rows, options.num_shards + 1, shards=len(state.shards))
    s = state.interleave
    merged = _Interleaved(parts, executor, by == "characters", rows, s.get("write"), progress)

    def on_shard(info: ShardInfo, position: dict) -> None:
        state.shards.append(info)
        s["write"] = position
        state.save(folder)
        progress.shard(info)

    with executor:
        batches = merged.batches()
        try:
            write_shards(
                batches, folder, options.num_shards, options.rows_per_shard, options.row_group_size, on_shard,
                list(state.shards), merged.position, writers=executor.shards_in_flight, encode=executor.encode,
                last_rows=options.val_rows,
            )  # fmt: skip
        finally:
            batches.close()
            for stream in merged.streams:
                stream.units.close()  # stops the executor's threads now
    if merged.dry is not None and sum(x.rows for x in state.shards) < rows and not options.allow_short:
        short = parts[merged.dry]
        raise ConversionError(
            f"component {short.name} ran out after {merged.streams[merged.dry].taken:,} rows in source order, "
            f"so the mixture stops after {sum(x.rows for x in state.shards):,} of the {rows:,} rows wanted. Use "
            "fewer --num-shards, more source files (--num-source), or --allow-short to keep the smaller output."
        )
    final = merged.position(0)["parts"]
    return [PartOutcome(p.name, False, stream.read, stream.kept, 0, entry["taken"], entry["chars"])
            for p, stream, entry in zip(parts, merged.streams, final, strict=True)]  # fmt: skip
