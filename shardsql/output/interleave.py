"""A mixture's interleave: its components' rows merged so that every stretch of the output carries the weights.

Each component (a "part") gives its rows in its own order (shuffled, or source order with
--no-shuffle). A row of part p whose part's cumulative size, itself included, is S gets
the virtual time S / w_p, where the size is the row's characters when mixing by
characters and 1 when mixing by documents. The output is every row in (time, part)
order, each part's rows keeping their own order. Up to any point of the output, part p
has then given w_p of the total size to within one of its rows: the whole output and
every shard hold the weights, not just on average.

`Interleave` is the merge, online and exact whatever the chunking: rows are fed to it per
part in any chunks, and a row is emitted once no row still to come can precede it, that
is once its (time, part) is at most every part's last fed (time, part). A part whose rows
have ended stays in that minimum: past its last row the output would drift from the
weights, so the merge stops there and says which part ran dry. Times are float64
quotients of exact integer sums: the same on every machine.

`Merge` is what both mixture paths use (commands/shuffle.py, commands/interleaved.py): the
rows fed wait per part in a `RowQueue` (past `queue_bytes`, tuning.py, in a file: a part read ahead of
the others waits on disk, not on the heap), each batch is taken from the queues in the
interleave's order, and the rows, sizes and characters taken per part say where the next
shard starts after any row (`position`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import tuning
from ..autoresearch import TEXT_COLUMN
from . import views
from .checkpoint import MergePosition

NEVER = float("inf")
BATCH_ROWS = 8192  # rows per batch the merge hands on (to the shard writer)
_SPILL_WRITE = pa.ipc.IpcWriteOptions(compression=pa.Codec("lz4"))  # read back soon: the cheap codec
_EMPTY = pa.array([], pa.int64())


class Interleave:
    """The merge of `len(weights)` parts; `sizes` are each part's cumulative sizes already emitted (a resume's)."""

    def __init__(self, weights: Sequence[Fraction], sizes: Sequence[int] | None = None):
        self.weights = [float(w) for w in weights]
        self.sizes = list(sizes) if sizes is not None else [0] * len(weights)  # fed so far, per part
        self._times: list[pa.Array] = [pa.array([], pa.float64()) for _ in weights]  # fed, not yet emitted
        self._last = [-NEVER if s == 0 else s / w for s, w in zip(self.sizes, self.weights, strict=True)]
        self._ended = [False] * len(weights)
        # One part (a single dataset's shuffle): nothing to merge, its rows go out as they are fed.
        # Only their count is kept: times and their sort took 0.3 of the main thread's 1.3 CPU-s
        # in a 10-shard shuffle (bench's scaling source).
        self._single = len(weights) == 1
        self._pending = 0  # with one part: its rows fed and not yet emitted

    def feed(self, part: int, sizes: pa.Array) -> None:
        """Rows of `part`, in its order, by size (characters, or 1 each)."""
        if not len(sizes):
            return
        if self._single:
            self.sizes[0] += pc.sum(sizes.cast(pa.int64())).as_py() or 0
            self._last[0] = self.sizes[0] / self.weights[0]
            self._pending += len(sizes)
            return
        total = pc.cumulative_sum(sizes.cast(pa.int64()), start=self.sizes[part])
        self.sizes[part] = total[-1].as_py()
        times = pc.divide(total.cast(pa.float64()), self.weights[part])
        self._times[part] = pa.concat_arrays([self._times[part], times])
        self._last[part] = times[-1].as_py()

    def end(self, part: int) -> None:
        """`part` has no more rows."""
        self._ended[part] = True

    def _bound(self) -> int:
        return min(range(len(self.weights)), key=lambda p: (self._last[p], p))

    @property
    def waiting(self) -> int | None:
        """The part whose next rows the merge needs before it can emit more (None: that part has ended)."""
        part = self._bound()
        return None if self._ended[part] else part

    @property
    def dry(self) -> int | None:
        """The part that ran out of rows and holds the merge (None while every part has rows to come)."""
        part = self._bound()
        pending = self._pending if self._single else len(self._times[part])
        return part if self._ended[part] and not pending else None

    def emit(self, limit: int) -> pa.Array:
        """The parts of the next rows of the output, at most `limit` of them, in order (may be none:
        the merge waits for rows of the part behind, or is stuck on a part that ran dry)."""
        if limit <= 0:
            return pa.array([], pa.int32())
        if self._single:
            count = min(limit, self._pending)
            self._pending -= count
            return pa.repeat(pa.scalar(0, pa.int32()), count)
        bound = self._bound()
        bound_time = self._last[bound]
        times, parts = [], []
        for part, pending in enumerate(self._times):
            # (t, part) <= (bound_time, bound): at or before the bound's time, ties by part. A
            # part's times never decrease, so those rows are a prefix of its pending ones.
            if part == bound:
                count = len(pending)
            else:
                before = pc.less_equal if part < bound else pc.less
                count = pc.sum(before(pending, bound_time)).as_py() or 0 if len(pending) else 0
            times.append(pending.slice(0, count))
            parts.append(pa.array([part] * count, pa.int32()))
        table = pa.table({"t": pa.concat_arrays(times), "p": pa.concat_arrays(parts)})
        # Arrow's sort is stable: a part's rows, equal in (t, p), stay in their order.
        order = pc.sort_indices(table, [("t", "ascending"), ("p", "ascending")])
        picks = table["p"].take(order.slice(0, limit)).combine_chunks()
        for part in range(len(self._times)):
            taken = pc.sum(pc.equal(picks, part)).as_py() or 0
            self._times[part] = self._times[part].slice(taken)
        return picks


class RowQueue:
    """A part's rows fed to the merge and not yet taken, in order: (texts or None, chars)
    chunks, in memory up to `queue_bytes` (tuning.py) of texts and past that in the file `spill`.
    Texts are counted by their own bytes (views.byte_lengths): a slice of string views holds
    the buffers of all the rows it was cut from, which its `nbytes` counts."""

    def __init__(self, spill: Path | None):
        self.memory: deque[_Queued] = deque()
        self.bytes = 0  # of the texts in memory
        self.spill, self.on_disk, self.read_at = spill, 0, 0  # chunks in the file, not read back yet
        if spill is not None:
            spill.unlink(missing_ok=True)

    def put(self, texts: pa.Array | None, chars: pa.Array) -> None:
        if not len(chars):
            return
        lengths = views.byte_lengths(texts) if texts is not None else None
        size = (pc.sum(lengths).as_py() or 0) if lengths is not None else 0
        beyond = self.bytes + size > tuning.current().queue_bytes
        if texts is not None and self.spill is not None and (self.on_disk or beyond):
            self._write(texts, chars)
            return
        self.memory.append(_Queued(texts, chars, lengths))
        self.bytes += size

    def _write(self, texts: pa.Array, chars: pa.Array) -> None:
        assert self.spill is not None  # put() spills only where there is a file
        sink = pa.BufferOutputStream()
        # As strings: a file of string views would hold every buffer they point into.
        table = pa.table({TEXT_COLUMN: texts.cast(pa.large_string()), "chars": chars})
        with pa.ipc.new_stream(sink, table.schema, options=_SPILL_WRITE) as writer:
            writer.write_table(table)
        data = sink.getvalue()
        with open(self.spill, "ab") as handle:
            handle.write(len(data).to_bytes(8, "little"))
            handle.write(data)
        self.on_disk += 1

    def _read(self) -> None:
        assert self.spill is not None  # only what was spilled is read back
        with open(self.spill, "rb") as handle:
            handle.seek(self.read_at)
            length = int.from_bytes(handle.read(8), "little")
            table = pa.ipc.open_stream(pa.py_buffer(handle.read(length))).read_all()
            self.read_at = handle.tell()
        self.on_disk -= 1
        if not self.on_disk:
            self.spill.unlink(missing_ok=True)
            self.read_at = 0
        texts = table.column(TEXT_COLUMN).combine_chunks()
        lengths = views.byte_lengths(texts)
        self.memory.append(_Queued(texts, table.column("chars").combine_chunks(), lengths))
        self.bytes += pc.sum(lengths).as_py() or 0

    def take(self, rows: int) -> tuple[list[pa.Array], pa.Array]:
        """The next `rows` rows: their texts (in pieces; none without texts) and their characters."""
        texts, chars = [], []
        while rows:
            if not self.memory:
                self._read()
            head = self.memory[0]
            n = min(rows, len(head.chars))
            if head.texts is not None:
                texts.append(head.texts.slice(0, n))
            chars.append(head.chars.slice(0, n))
            if head.lengths is not None:
                self.bytes -= pc.sum(head.lengths.slice(0, n)).as_py() or 0
            if n == len(head.chars):
                self.memory.popleft()
            else:
                self.memory[0] = head.rest(n)
            rows -= n
        return texts, pa.concat_arrays(chars) if chars else _EMPTY


@dataclass
class _Queued:
    """Rows waiting in a RowQueue: their texts (None when merging sizes alone), characters and
    texts' bytes."""

    texts: pa.Array | None
    chars: pa.Array
    lengths: pa.Array | None

    def rest(self, n: int) -> _Queued:
        """The rows after the first `n`."""
        texts = self.texts.slice(n) if self.texts is not None else None
        lengths = self.lengths.slice(n) if self.lengths is not None else None
        return _Queued(texts, self.chars.slice(n), lengths)


@dataclass
class Batch:
    picks: pa.Array  # each row's part
    chars: list[pa.Array]  # each part's rows' characters, in order
    table: pa.Table | None  # the texts in output order (None when merging sizes alone)


class Merge:
    """Parts' rows merged by the interleave into batches of at most `batch_rows`.

    `start` is a resume's position (each part's rows, sizes and characters taken). With
    `spill` (a folder), texts are merged and a part's backlog may wait there; without, only
    sizes are (a count of what each part would give)."""

    def __init__(self, weights: Sequence[Fraction], by_chars: bool, start: MergePosition | None,
                 spill: Path | None, batch_rows: int = BATCH_ROWS):  # fmt: skip
        n = len(weights)
        self.by_chars, self.batch_rows = by_chars, batch_rows
        self.taken = list(start.taken) if start else [0] * n
        self.sizes = list(start.sizes) if start else [0] * n
        self.chars = list(start.chars) if start else [0] * n
        self.interleave = Interleave(weights, self.sizes)
        self.queues = [RowQueue(spill / f"queue-{j}.arrow" if spill else None) for j in range(n)]
        self._before = (list(self.taken), list(self.sizes), list(self.chars))
        self._last: Batch | None = None

    def feed(self, part: int, texts: pa.Array | None, chars: pa.Array) -> None:
        """Rows of `part` in its order: their texts (None when merging sizes alone) and characters."""
        self.queues[part].put(texts, chars)
        self.interleave.feed(part, chars if self.by_chars else pa.repeat(pa.scalar(1, pa.int64()), len(chars)))

    def end(self, part: int) -> None:
        self.interleave.end(part)

    def batches(self, rows: int) -> Iterator[Batch]:
        """The next batches the merge can give, until `rows` rows are taken in all."""
        while (taken := sum(self.taken)) < rows:
            picks = self.interleave.emit(min(rows - taken, self.batch_rows))
            if not len(picks):
                return
            self._before = (list(self.taken), list(self.sizes), list(self.chars))
            texts, chars = [], []
            for j, queue in enumerate(self.queues):
                count = pc.sum(pc.equal(picks, j)).as_py() or 0
                part_texts, part_chars = queue.take(count)
                texts.append(part_texts)
                chars.append(part_chars)
                self._account((self.taken, self.sizes, self.chars), j, count, part_chars)
            table = None
            if any(texts):
                # The parts' rows joined part after part, then put in the picks' order: the
                # k-th row of that joined array goes to the k-th place of the picks sorted by part.
                # As string views (output/views.py): putting them in order copies no text.
                joined = pa.chunked_array([views.as_views(a) for part in texts for a in part], pa.string_view())
                if sum(1 for part in texts if part) > 1:  # one part's rows are in order already
                    grouped = pc.sort_indices(picks)  # stable: each part's rows in their order
                    joined = pa.chunked_array([views.take(joined, pc.sort_indices(grouped))])
                table = pa.table({TEXT_COLUMN: joined})
            self._last = Batch(picks, chars, table)
            yield self._last

    def _account(self, totals: tuple[list[int], list[int], list[int]], part: int, count: int,
                 chars: pa.Array) -> None:  # fmt: skip
        """Add `count` rows of `part` and their characters `chars` to (taken, sizes, chars)."""
        taken, sizes, characters = totals
        total = pc.sum(chars).as_py() or 0
        taken[part] += count
        characters[part] += total
        sizes[part] += total if self.by_chars else count

    def position(self, pending: int) -> MergePosition:
        """Each part's rows, sizes and characters taken once the last batch is written but its
        last `pending` rows: where the next shard starts."""
        if self._last is None:
            return MergePosition(list(self.taken), list(self.sizes), list(self.chars))
        taken, sizes, chars = (list(x) for x in self._before)
        used = self._last.picks.slice(0, len(self._last.picks) - pending)
        for j in range(len(taken)):
            count = pc.sum(pc.equal(used, j)).as_py() or 0
            self._account((taken, sizes, chars), j, count, self._last.chars[j].slice(0, count))
        return MergePosition(taken, sizes, chars)
