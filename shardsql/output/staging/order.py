"""The output order: a leaf's selected rows sorted by (key, fingerprint, g), and the check that no two texts collide.

The output is the rows sorted by (key, fingerprint, g): a seeded uniformly random order that
is a total order (g is unique), so it is the same however the rows were chunked or the piles
split. `ordered` works it out on a leaf's keys alone, with each selected row's part and length
(the interleave of parts is commands/shuffle.py's), so that the texts are read once and taken
in that order (`leaf_texts`). Rows with the same fingerprint sort side by side: only the first
is kept, and `leaf_texts` checks each repeat's text against the one before it, so a 128-bit
collision between different texts stops the run rather than drop one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import ConversionError
from .. import views
from . import formats
from .keys import shuffle_keys, split_g
from .piles import Leaf


@dataclass
class Ordered:
    """A leaf's selected rows in output order, by their keys: `take` indexes the leaf's rows as staged."""

    take: pa.Array
    part: pa.Array
    size: pa.Array  # characters
    check: tuple[pa.Array, pa.Array] | None  # rows that repeat the text before them: (repeats, previous)


def ordered(keys: pa.Table, seed: int, cuts: list[int]) -> Ordered:
    """The selected rows of a leaf (first occurrences within their part's cut) in output
    order, by (key, fp, g): a total order, whatever the chunking. Worked out on the keys
    alone, so that the texts are taken once, in that order."""
    table = pa.table({"key": shuffle_keys(keys["fp_lo"], seed), "fp_hi": keys["fp_hi"], "fp_lo": keys["fp_lo"],
                      "g": keys["g"], "n": keys["n"]})  # fmt: skip
    order = pc.sort_indices(table, [("key", "ascending"), ("fp_hi", "ascending"), ("fp_lo", "ascending"),
                                    ("g", "ascending")])  # fmt: skip
    table = table.take(order).combine_chunks()
    hi, lo = table["fp_hi"].combine_chunks(), table["fp_lo"].combine_chunks()
    n = len(table)
    if n > 1:
        same = pc.and_(pc.equal(hi.slice(1), hi.slice(0, n - 1)), pc.equal(lo.slice(1), lo.slice(0, n - 1)))
        repeat = pa.concat_arrays([pa.array([False]), same])
    else:
        repeat = pa.array([False] * n, pa.bool_())
    check = None
    if n > 1 and pc.any(repeat).as_py():
        positions = pc.indices_nonzero(repeat)
        check = (order.take(positions), order.take(pc.subtract(positions, pa.scalar(1, pa.uint64()))))
    part, local = split_g(table["g"].combine_chunks())
    cut = pa.array(cuts, pa.int64()).take(part)
    keep = pc.and_(pc.invert(repeat), pc.less_equal(local, cut))
    return Ordered(order.filter(keep), part.filter(keep), table["n"].combine_chunks().filter(keep), check)


def leaf_texts(leaf: Leaf, rows: Ordered) -> pa.Array:
    """A leaf's selected texts, in output order, as string views over its staged batches
    (output/views.py: the batches staged as they are are read in place, memory-mapped, and the
    shard writer reads each text from there). Exact: a repeat's text must equal the text before
    it (the same fingerprint); a 128-bit collision between different texts stops the run
    rather than drop one."""
    column = views.as_views(formats.read_texts(leaf.text).column(0))
    if rows.check is not None:
        repeats, previous = rows.check
        if not views.equal(views.take(column, repeats), views.take(column, previous)):
            raise ConversionError("two different texts share a 128-bit fingerprint; run again with another --seed")
    return views.take(column, rows.take)
