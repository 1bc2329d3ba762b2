"""Counting distinct texts: each part's cut, the last of its draw's rows the selection keeps.

The deduplication index is the piles' keys files: counting distinct texts reads KEY_BYTES a
row, a leaf at a time, never a text. The first occurrence (lowest g: the first part that drew
it, then the earliest draw) of each fingerprint is kept, so a part's first `wanted` distinct
texts are those whose first occurrence is in it with an ordinal up to its cut (`Selection`).
Two passes find every part's cut at once: a histogram of first occurrences by ordinal bucket,
then the ordinals of the bucket that holds the cut.
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


def select(piles: Piles, wanted: list[int], staged: list[int]) -> list[Selection]:
    """Each part's first `wanted` distinct texts among its `staged` rows (fewer if there are
    not so many): two passes over the keys, a few leaves at a time (the index held is theirs)."""
    parts = len(wanted)
    buckets = [[0] * (n // HISTOGRAM_WIDTH + 1) for n in staged]  # first occurrences by ordinal bucket
    for by_part in _firsts_by_leaf(piles, parts):
        for p, firsts in enumerate(by_part):
            if len(firsts):
                for entry in pc.value_counts(pc.divide(firsts, HISTOGRAM_WIDTH)).to_pylist():
                    buckets[p][entry["values"]] += entry["counts"]
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
        for firsts in _firsts_by_leaf(piles, parts):
            for p, (bucket, _) in bounds.items():
                low, high = bucket * HISTOGRAM_WIDTH, (bucket + 1) * HISTOGRAM_WIDTH
                mask = pc.and_(pc.greater_equal(firsts[p], low), pc.less(firsts[p], high))
                inside[p] += firsts[p].filter(mask).to_pylist()
        for p, (_, before) in bounds.items():
            ordinals = sorted(inside[p])
            selections[p] = Selection(wanted[p], ordinals[wanted[p] - before - 1], staged[p])
    return [s for s in selections if s is not None]
