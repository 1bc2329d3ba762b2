"""Texts as Arrow string views, put in a new order by Polars: the rows move, the texts stay where they lie.

A shuffle's write phase takes every staged text in a new order twice: a leaf's rows in output
order (staging/order.py), then a mixture's parts interleaved (interleave.py). A take of strings
copies every text each time; a take of string views copies 16 bytes a row and shares the texts,
which the shard writer (Polars) then reads once, where they were staged. A cast of strings to
views shares their bytes too, so the staged chunks, memory-mapped, are never copied before the
shard writer reads them. pyarrow 26 has no take, comparison or byte length of string views:
Polars does these.

A view array's `nbytes` counts every buffer its views may point into (for a leaf's slice, the
whole leaf): `byte_lengths` counts the texts themselves.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def as_views(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`texts` (strings, large or view) as one string-view array that shares their bytes:
    only the 16-byte views are made, and joining chunks joins their lists of buffers."""
    if not pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.string_view())  # every chunk in one call: a leaf has hundreds
    views = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    if len(views) == 1:
        return views[0]
    return pa.concat_arrays(views) if views else pa.array([], pa.string_view())


def take(texts: pa.Array | pa.ChunkedArray, indices: pa.Array) -> pa.Array:
    """`texts.take(indices)` as string views sharing the texts' bytes (a take of strings copies them)."""
    import polars as pl  # loaded by the shard writer's thread anyway

    taken = pl.Series(as_views(texts)).gather(pl.Series(indices))
    return taken.to_arrow(compat_level=pl.CompatLevel.newest())


def equal(left: pa.Array, right: pa.Array) -> bool:
    """Whether two arrays of texts (of any string type) hold the same texts, row by row."""
    import polars as pl

    if len(left) != len(right):
        return False
    return bool((pl.Series(as_views(left)) == pl.Series(as_views(right))).all())


def byte_lengths(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each text's UTF-8 bytes, as int64 (NULL for NULL)."""
    if pa.types.is_string_view(texts.type):
        import polars as pl

        return pl.Series(texts).str.len_bytes().cast(pl.Int64).to_arrow()
    return pc.binary_length(texts).cast(pa.int64())


def utf8_bytes(texts: pa.Array | pa.ChunkedArray) -> int:
    """The UTF-8 bytes of some texts (nulls count none): what the token estimates divide."""
    return pc.sum(byte_lengths(texts)).as_py() or 0
