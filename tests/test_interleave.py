"""The interleave (output/interleave.py): exact shares at every point whatever the chunking,
a part that runs dry stops the merge, and a part's backlog read back from disk in order."""

from __future__ import annotations

import random
from fractions import Fraction

import pyarrow as pa
import pytest

from shardsql.output.checkpoint import MergePosition
from shardsql.output.interleave import Interleave, Merge, RowQueue


def _sizes(seed: int, n: int, low: int, high: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


def _merge_all(weights, parts: list[list[int]], chunk: int) -> list[int]:
    """Feed every part in chunks of `chunk` rows, round robin, and take every pick."""
    merge = Interleave(weights)
    picks: list[int] = []
    offsets = [0] * len(parts)
    while any(offsets[j] < len(parts[j]) for j in range(len(parts))):
        for j, sizes in enumerate(parts):
            merge.feed(j, pa.array(sizes[offsets[j] : offsets[j] + chunk], pa.int64()))
            offsets[j] += chunk
            if offsets[j] >= len(sizes):
                merge.end(j)
        picks += merge.emit(10**9).to_pylist()
    return picks


def test_the_merge_is_the_same_whatever_the_chunks_and_holds_the_weights_everywhere():
    weights = [Fraction(7, 10), Fraction(3, 10)]
    parts = [_sizes(1, 800, 500, 5000), _sizes(2, 2400, 100, 1000)]
    one = _merge_all(weights, parts, 10**6)
    assert one == _merge_all(weights, parts, 7) == _merge_all(weights, parts, 333)
    # Up to every point, each part's size is its weight's share of the total to within one row.
    taken, size = [0, 0], [0, 0]
    for pick in one:
        size[pick] += parts[pick][taken[pick]]
        taken[pick] += 1
        total = sum(size)
        for j in (0, 1):
            assert abs(size[j] - float(weights[j]) * total) <= max(parts[j]) + max(parts[1 - j])


def test_a_part_that_runs_dry_stops_the_merge_and_is_named():
    merge = Interleave([Fraction(1, 2), Fraction(1, 2)])
    merge.feed(0, pa.array([1] * 10, pa.int64()))
    merge.feed(1, pa.array([1] * 3, pa.int64()))
    merge.end(1)
    picks = merge.emit(100).to_pylist()
    assert picks.count(1) == 3 and picks.count(0) <= 4  # not 10: past part 1's end the shares would drift
    assert merge.emit(100).to_pylist() == [] and merge.dry == 1 and merge.waiting is None
    assert Interleave([Fraction(1)]).waiting == 0  # nothing fed yet: the merge waits on that part


def test_one_part_goes_out_as_fed_in_any_chunks_and_runs_dry_at_its_end():
    """A single dataset's shuffle: nothing to merge, every row fed is given in its order, at
    most `limit` at a time, its sizes added up as for many parts (what a resume's position says)."""
    merge = Interleave([Fraction(1)], sizes=[100])
    merge.feed(0, pa.array([5, 7, 9], pa.int64()))
    assert merge.emit(2).to_pylist() == [0, 0] and merge.waiting == 0  # it waits on its part for more
    merge.feed(0, pa.array([1], pa.int64()))
    assert merge.emit(10).to_pylist() == [0, 0]
    assert merge.sizes == [122] and merge.dry is None
    merge.end(0)
    assert merge.emit(10).to_pylist() == [] and merge.dry == 0 and merge.waiting is None


def test_a_row_queue_spills_past_its_budget_and_gives_the_rows_back_in_order(tune, tmp_path):
    tune(queue_bytes=1 << 10)
    queue = RowQueue(tmp_path / "q.arrow")
    texts = [f"text {i} " + "x" * (i % 50) for i in range(2000)]
    for start in range(0, 2000, 37):
        chunk = pa.array(texts[start : start + 37], pa.large_string())
        queue.put(chunk, pa.array([len(t) for t in texts[start : start + 37]], pa.int64()))
    assert queue.on_disk and (tmp_path / "q.arrow").exists() and queue.bytes <= 2 << 10
    got, chars = [], []
    for n in (1, 500, 3, 1496):
        pieces, sizes = queue.take(n)
        got += [t for piece in pieces for t in piece.to_pylist()]
        chars += sizes.to_pylist()
    assert got == texts and chars == [len(t) for t in texts]
    assert not (tmp_path / "q.arrow").exists()  # read back to the end: the file is gone


@pytest.mark.parametrize("pending", [0, 1, 17])
def test_a_merges_position_after_any_row_resumes_it_exactly(tmp_path, pending):
    """Stopped after any row of a batch, a merge rebuilt from `position` gives the same rows after it."""
    weights = [Fraction(2, 3), Fraction(1, 3)]
    rows = {j: [f"part {j} row {i} " + "y" * ((i * 7 + j) % 40) for i in range(300)] for j in (0, 1)}

    def run(start: MergePosition | None) -> tuple[list[str], Merge]:
        merge = Merge(weights, True, start, tmp_path, batch_rows=64)
        out = []
        for j in (0, 1):
            texts = rows[j][merge.taken[j] :]
            merge.feed(j, pa.array(texts, pa.large_string()), pa.array([len(t) for t in texts], pa.int64()))
            merge.end(j)
        for batch in merge.batches(400):
            out += batch.table.column(0).to_pylist()
            if start is None and len(out) >= 150:
                break
        return out, merge

    first, merge = run(None)
    whole, _ = run(MergePosition(taken=[0, 0], sizes=[0, 0], chars=[0, 0]))
    at = merge.position(pending)
    rest, _ = run(at)
    written = len(first) - pending
    assert first[:written] + rest == whole[: written + len(rest)] and len(whole) == 400
