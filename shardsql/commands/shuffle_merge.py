"""A shuffled conversion's parts interleaved from its piles (output/interleave.py's Merge over the staged keys).

Both phases of a shuffle read the piles this way (commands/shuffle.py): the select phase on the
keys alone, to count what each part gives before any text is read (`count_shares`), and the write phase
with the texts, for the shards (`Merged`). The leaves are read in key order, each sorted by
(key, fingerprint, g) and deduplicated by output/staging; each part's rows are fed to the merge
in that order.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..output import staging, views
from ..output.checkpoint import MergePosition
from ..output.interleave import Batch, Merge
from .plan import Plan


@dataclass
class Count:
    """The interleave worked out on the keys alone: the rows it gives, per part, before the first part runs dry."""

    rows: int
    rows_by_part: list[int]
    chars_by_part: list[int]
    dry: int | None  # the part that ran out before `rows` (None: every part had enough)


class Merged:
    """A group's parts' selected rows interleaved (output/interleave.py), at most `rows` of
    them, from `start` (a resume's position): the leaves are read in key order, each part's
    rows fed to the merge in that order. With texts, the next leaf is read and sorted on a
    thread while this one is merged; without, only sizes are (`count_shares`). `dry` is the part
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
        self.merge = Merge(weights, by_chars, start, spill)
        self.dry: int | None = None
        # Each pile fed in full, in order, with each part's rows met in the piles up to its end:
        # once the rows taken pass those, every row of the pile is written (Shuffled.saved).
        self.pile_ends: deque[tuple[int, list[int]]] = deque()

    def _load(self, leaf: staging.Leaf) -> tuple[staging.Ordered, pa.Array | None]:
        order = staging.ordered(staging.leaf_keys(leaf), self.seed, self.cuts)
        return order, staging.leaf_texts(leaf, order) if self.with_texts else None

    def batches(self) -> Generator[Batch, None, None]:
        merge = self.merge
        seen = [0] * len(self.members)  # each part's rows met in the leaves so far
        first_pile = 0
        if self.with_texts and any(merge.taken):  # a resume: no text of a pile written already is read
            first_pile, seen = self._resume_at()
        leaves = iter(self.piles.leaves(first_pile, keys_only=not self.with_texts))
        with ThreadPoolExecutor(1, thread_name_prefix="shardsql-sort") as pool:
            leaf = next(leaves, None)
            pending = pool.submit(self._load, leaf) if leaf is not None and sum(merge.taken) < self.rows else None
            while pending is not None and leaf is not None:
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
                    merge.feed(j, views.take(texts, mine) if texts is not None else None, order.size.take(mine))
                if following is None or following.path[0] != leaf.path[0]:
                    self.pile_ends.append((leaf.path[0], list(seen)))
                leaf = following
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
        return 1 << self.piles.bits, seen


def count_shares(piles: staging.Piles, seed: int, plan: Plan, cuts: list[int], rows: int, validation: bool,
                 selections: list[staging.Selection]) -> Count:  # fmt: skip
    """The interleave on the keys alone: how many rows and characters each part gives, and whether one runs dry."""
    if len(plan.parts) == 1:
        # Nothing to interleave: the rows are the selection's, up to `rows`, and their characters
        # are counted as they are written (Shuffled.finish), saving a pass over the keys.
        given = min(selections[0].rows, rows)
        return Count(given, [given], [0], None if given == rows else 0)
    merged = Merged(piles, seed, plan, cuts, rows, None, with_texts=False, validation=validation)
    for _ in merged.batches():
        pass
    by_part, chars = [0] * len(plan.parts), [0] * len(plan.parts)
    for j, p in enumerate(merged.members):
        by_part[p], chars[p] = merged.merge.taken[j], merged.merge.chars[j]
    return Count(sum(merged.merge.taken), by_part, chars, merged.dry)
