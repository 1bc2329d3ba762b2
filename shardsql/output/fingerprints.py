"""A text's fingerprint: xxh3-128 over its UTF-8 bytes, read from the Arrow buffers.

Stable across versions and processes. The shuffle's staging keys rows by it (staging/keys.py:
deduplication, the seeded order) and `verify` compares validation and training texts by it.
It needs pyarrow and xxhash only, so `verify` and an in-order conversion load nothing more.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import xxhash


def fingerprints(texts: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each text's xxh3-128 over its UTF-8 bytes (no str decoding), as two 64-bit halves: the
    16-byte digests, joined and read as pairs of little-endian uint64 (hi, lo)."""
    his, los = [], []
    digest = xxhash.xxh3_128_digest
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string())
        if not len(chunk):
            continue
        offsets = memoryview(chunk.buffers()[1]).cast("q")[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
        data = chunk.buffers()[2]
        view = memoryview(data) if data is not None else memoryview(b"")
        joined = b"".join([digest(view[start:end]) for start, end in zip(offsets, offsets[1:], strict=False)])
        words = pa.Array.from_buffers(pa.uint64(), 2 * len(chunk), [None, pa.py_buffer(joined)])
        pairs = pa.FixedSizeListArray.from_arrays(words, 2)
        his.append(pc.list_element(pairs, 0))
        los.append(pc.list_element(pairs, 1))
    if not his:
        return pa.array([], pa.uint64()), pa.array([], pa.uint64())
    return pa.concat_arrays(his), pa.concat_arrays(los)
