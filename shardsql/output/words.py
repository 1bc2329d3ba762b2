"""Rows of 64-bit words, laid side by side in one buffer, as one Arrow column a word.

A fingerprint is two words a row (fingerprints.py: the digests, joined) and a staged key four
(staging/formats.py: a pile's keys file, read whole). Arrow has no strided arrays, so each
column is a take of every `width`-th word: a tenth of the time of `list_element` over a
fixed-size list of them (0.10 against 1.08 ms for four columns of 15,000 rows). The positions
it takes are `positions`, which also numbers a staged unit's rows (staging/piles.py).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def word_columns(data: pa.Buffer, width: int, rows: int) -> list[pa.Array]:
    """The `width` columns (uint64) of the first `rows` rows of `width` little-endian 64-bit
    words each in `data`, one array a word of the row."""
    words = pa.Array.from_buffers(pa.uint64(), rows * width, [None, data.slice(0, rows * width * 8)])
    return [pc.take(words, positions(first, width, rows)) for first in range(width)]


def positions(first: int, step: int, count: int) -> pa.Array:
    """first, first + step, first + 2 * step, ...: `count` of them, as int64 (made by Polars:
    `pa.array(range(...))` goes through Python ints, 3 ms for 20,000)."""
    return pl.int_range(first, first + count * step, step, dtype=pl.Int64, eager=True).to_arrow()
