"""Counting distinct texts: each part's cut, the last of its draw's rows the selection keeps.

The deduplication index is the piles' keys files: counting distinct texts reads KEY_BYTES a
row, a leaf at a time, never a text. The first occurrence (lowest g: the first part that drew
it, then the earliest draw) of each fingerprint is kept, so a part's first `wanted` distinct
texts are those whose first occurrence is in it with an ordinal up to its cut (`Selection`).
A histogram of first occurrences by ordinal bucket finds the bucket that holds each part's
cut, then that bucket's ordinals give the cut. A part's cut lies between its `wanted`-th
ordinal (no repeat before it) and its last, so the first pass keeps the first occurrences in
that range where they are few (KEEP_ROWS): one pass over the keys, not two.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from .keys import first_occurrences, split_g
from .piles import Piles, leaf_keys

HISTOGRAM_WIDTH = 1 << 16  # first occurrences are counted in buckets of this many ordinals
FIRSTS_AHEAD = 2  # leaves whose first occurrences are found ahead of the count that reads them
# First occurrences the first pass keeps, at most, where a part's cut can lie (8 bytes each):
# beyond, a second pass reads the keys again. A draw is a few percent more than it wants.
KEEP_ROWS = 1 << 23


@dataclass
class Selection:
    """One part's cut: its first `rows` distinct texts in draw order are those whose first
    occurrence (over every part, earlier parts first) is in this part with an ordinal
    <= `cut`; `staged` rows were drawn for it in all."""

    rows: int
    cut: int
    staged: int

    @property
    def duplicates(self) -> int:
        """Rows drawn up to the cut that repeat a text drawn before them (by this part or an earlier one)."""
        return self.cut + 1 - self.rows


def _firsts_by_part(keys: pa.Table, parts: int) -> list[pa.Array]:
    """Each part's first occurrences in a leaf's keys: their ordinals within the part's draw."""
    part, local = split_g(first_occurrences(keys))
    return [local.filter(pc.equal(part, p)) for p in range(parts)]


def _firsts_by_leaf(piles: Piles, parts: int) -> Iterator[list[pa.Array]]:
    """`_firsts_by_part` of every leaf in key order, two leaves at a time on threads (Arrow's
    group-by runs without the GIL): at most FIRSTS_AHEAD leaves' results wait to be read.
    A leaf's keys are read here, before the next leaf is asked for: that removes a split
    leaf's files (`Piles._split`)."""
    with ThreadPoolExecutor(2, thread_name_prefix="shardsql-count") as pool:
        pending: deque[Future[list[pa.Array]]] = deque()
        for leaf in piles.leaves(keys_only=True):
            pending.append(pool.submit(_firsts_by_part, leaf_keys(leaf), parts))
            if len(pending) > FIRSTS_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def select(piles: Piles, wanted: list[int], staged: list[int], *, keep_rows: int = KEEP_ROWS) -> list[Selection]:
    """Each part's first `wanted` distinct texts among its `staged` rows (fewer if there are
    not so many), a few leaves at a time (the index held is theirs): one pass over the keys,
    keeping the first occurrences where a cut can lie if at most `keep_rows`, else two."""
    parts = len(wanted)
    buckets = [[0] * (n // HISTOGRAM_WIDTH + 1) for n in staged]  # first occurrences by ordinal bucket
    # Where each part's cut can lie: from the bucket of its wanted-th ordinal to its last.
    lowest = [max(0, w - 1) // HISTOGRAM_WIDTH * HISTOGRAM_WIDTH for w in wanted]
    keep = sum(max(0, n - low) for n, low in zip(staged, lowest, strict=True)) <= keep_rows
    kept: list[list[pa.Array]] = [[] for _ in range(parts)]
    for by_part in _firsts_by_leaf(piles, parts):
        for p, firsts in enumerate(by_part):
            if len(firsts):
                for entry in pc.value_counts(pc.divide(firsts, HISTOGRAM_WIDTH)).to_pylist():
                    buckets[p][entry["values"]] += entry["counts"]
                if keep:
                    kept[p].append(firsts.filter(pc.greater_equal(firsts, lowest[p])))
    selections: list[Selection | None] = [None] * parts
    bounds: dict[int, tuple[int, int]] = {}  # part -> (the bucket holding its cut, distinct texts before it)
    for p in range(parts):
        distinct = sum(buckets[p])
        if distinct <= wanted[p]:
            selections[p] = Selection(distinct, staged[p] - 1, staged[p])
            continue
        before = bucket = 0
        while before + buckets[p][bucket] < wanted[p]:  # the first bucket reaching `wanted`
            before += buckets[p][bucket]
            bucket += 1
        bounds[p] = (bucket, before)
    if bounds:
        inside: dict[int, list[int]] = {p: [] for p in bounds}
        if keep:  # each part's candidates, kept by the first pass, as one leaf of firsts
            passes: Iterator[list[pa.Array]] = iter([[pa.concat_arrays(k) if k else pa.array([], pa.int64())
                                                       for k in kept]])  # fmt: skip
        else:
            passes = _firsts_by_leaf(piles, parts)
        for firsts in passes:
            for p, (bucket, _) in bounds.items():
                low, high = bucket * HISTOGRAM_WIDTH, (bucket + 1) * HISTOGRAM_WIDTH
                mask = pc.and_(pc.greater_equal(firsts[p], low), pc.less(firsts[p], high))
                inside[p] += firsts[p].filter(mask).to_pylist()
        for p, (_, before) in bounds.items():
            ordinals = sorted(inside[p])
            selections[p] = Selection(wanted[p], ordinals[wanted[p] - before - 1], staged[p])
    return [s for s in selections if s is not None]
