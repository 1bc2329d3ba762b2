"""A text's fingerprint: xxh3-128 over its UTF-8 bytes, read from the Arrow buffers.

Strings are read through their offsets; string views (as text is decoded: source/decode.py)
through their views, in place, as the Arrow format lays them out: 16 bytes a row, its length
(int32) first, then the text itself if it is at most 12 bytes, else a 4-byte prefix, the
index of the data buffer holding it and its offset there (int32 each). A cast of views to
strings would copy every text first: 0.13 CPU-s of 0.24 for 555 MB of the benchmark's prose.

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
    16-byte digests, joined and read as pairs of little-endian uint64 (hi, lo). A NULL's
    are those of the empty text."""
    his, los = [], []
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    for chunk in chunks:
        if not len(chunk):
            continue
        if pa.types.is_string_view(chunk.type) and not chunk.null_count:  # a NULL's view is undefined
            joined = _of_views(chunk)
        else:
            joined = _of_strings(chunk.cast(pa.large_string()))
        words = pa.Array.from_buffers(pa.uint64(), 2 * len(chunk), [None, pa.py_buffer(joined)])
        pairs = pa.FixedSizeListArray.from_arrays(words, 2)
        his.append(pc.list_element(pairs, 0))
        los.append(pc.list_element(pairs, 1))
    if not his:
        return pa.array([], pa.uint64()), pa.array([], pa.uint64())
    return pa.concat_arrays(his), pa.concat_arrays(los)


def _of_strings(chunk: pa.Array) -> bytes:
    """The joined digests of a large_string array's texts, read through its offsets."""
    digest = xxhash.xxh3_128_digest
    offsets = memoryview(chunk.buffers()[1]).cast("q")[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
    data = chunk.buffers()[2]
    view = memoryview(data) if data is not None else memoryview(b"")
    return b"".join([digest(view[start:end]) for start, end in zip(offsets, offsets[1:], strict=False)])


def _of_views(chunk: pa.Array) -> bytes:
    """The joined digests of a string_view array's texts (no NULLs), read in place through its views."""
    digest = xxhash.xxh3_128_digest
    raw = memoryview(chunk.buffers()[1])[chunk.offset * 16 : (chunk.offset + len(chunk)) * 16]
    words = raw.cast("i")  # per row: length, then the inline text or (prefix, buffer, offset)
    lengths, buffers, offsets = words[0::4].tolist(), words[2::4].tolist(), words[3::4].tolist()
    data = [memoryview(buffer) if buffer is not None else memoryview(b"") for buffer in chunk.buffers()[2:]]
    return b"".join(
        [
            digest(data[b][o : o + n]) if n > 12 else digest(raw[16 * i + 4 : 16 * i + 4 + n])
            for i, (n, b, o) in enumerate(zip(lengths, buffers, offsets, strict=True))
        ]
    )
