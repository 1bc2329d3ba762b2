"""The shuffle's staging: kept rows scattered into piles on disk, then deduplicated, cut and sorted.

A shuffled conversion (commands/shuffle.py) never holds its selection in memory. Each job
has a module of its own:

- keys.py: what a row is known by (its text's fingerprint, its ordinal g with its part, its
  length) and the seeded shuffle key that orders it;
- formats.py: the files' formats, keys as rows of 64-bit words, texts as frames (their
  lengths, then their bytes), compressed where it pays;
- piles.py: a unit's rows staged where it ran (`stage_unit`) and the pile store they are
  appended to, a pile split on disk when it is too large to sort in memory (`Piles.leaves`);
- selection.py: counting distinct texts, from the keys alone: each part's cut (`select`);
- order.py: a leaf's selected rows in output order (`ordered`), their texts taken in it and
  checked against a fingerprint collision (`leaf_texts`).

The names below are what the rest of shardsql uses (`staging.Piles`, `staging.select`, ...).
A test that replaces a function replaces it in the module that reads it (`staging.formats.read_texts`);
the sizes it works by are tuning.py's (`leaf_bytes`, `flush_bytes`, `pile_flush_bytes`, `repack_bytes`).
"""

from __future__ import annotations

from .formats import expected_bytes, must_compress
from .keys import KEY_BYTES, PART_SHIFT, shuffle_keys
from .order import Ordered, leaf_texts, ordered
from .piles import (
    PILE_BITS,
    Leaf,
    Piles,
    StagedUnit,
    clear,
    disk_bytes,
    leaf_keys,
    pile_bits,
    stage_unit,
)
from .selection import Selection, select

__all__ = [
    "KEY_BYTES",
    "PART_SHIFT",
    "PILE_BITS",
    "pile_bits",
    "Leaf",
    "Ordered",
    "Piles",
    "Selection",
    "StagedUnit",
    "clear",
    "disk_bytes",
    "expected_bytes",
    "leaf_keys",
    "leaf_texts",
    "must_compress",
    "ordered",
    "select",
    "shuffle_keys",
    "stage_unit",
]
