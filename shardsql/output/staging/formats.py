"""The staging's file formats: keys as rows of 64-bit words, texts as Arrow IPC streams, compressed where it pays.

A pile's two files (`NN.keys`, `NN.text`: piles.py) are appended to and never rewritten: a
checkpoint records the files' sizes and a resume truncates them to those sizes.

A keys file is the rows' keys one after the other, KEY_BYTES a row: fp_hi, fp_lo, g and n as
little-endian 64-bit words (`key_rows`), with nothing between them, so it is read whole as one
array (`read_keys`), whatever the number of appends. (Each append was an IPC stream of its own,
opened on its own: 1.1 s of the 1.9 s count of a 40-shard selection.) Keys are never
compressed (hashes do not compress).

A text file is one Arrow IPC stream, appended to: its schema message (TEXT_HEAD, written with
the first append), then record batch messages, each compressed or not (each says), and no
end-of-stream marker: the stream ends where the file does, so it is read whole, in one call
(`read_texts`), and a resume's truncation (at a flush's end) leaves a whole stream. (Each
flush was a stream of its own, read on its own.) Texts are compressed (zstd level 1) only where
it is needed to keep the staging within the disk budget, about 2.5x the shards: a unit's
texts are probed (lz4 over their first PROBE_BYTES) and staged as they are when it shrinks them
less than RAW_BELOW (`text_options`). The shards (snappy) shrink such texts about as much as lz4
does (the benchmark's prose: 1.84x both; real FineWeb-Edu: 2.03x with snappy), so raw staging
stays under about 2.2x the output; texts that compress better (code, boilerplate, the tests'
repetitive samples: 3.8x) are compressed. Where the disk has too little room for the staging
as it is (`must_compress`), every text is compressed. Compression was the shuffle's largest cost: on the
benchmark's machine zstd-1 compresses about 125 MB/s a core in a unit's small per-pile pieces
and decompresses 700 MB/s, so the main job (1.6 GB of texts) spent 13 CPU-seconds staging and
5.7 reading back.

A staged unit carries only its record batch messages (`record_batches`), one a pile, and a
flush appends them to the piles' streams as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from ...autoresearch import TEXT_COLUMN
from ..words import word_columns
from .keys import KEY_BYTES, KEYS_SCHEMA

TEXT_SCHEMA = pa.schema([(TEXT_COLUMN, pa.large_string())])
COMPRESSION = pa.Codec("zstd", 1)
RAW_BELOW = 2.2
# Every staged text is compressed, whatever it is, when the disk holding the staging has less
# free space than DISK_MARGIN times the staging's expected size uncompressed (`must_compress`):
# zstd-1 shrinks prose 2.6x to 2.8x, so a shuffle that would fill the disk fits, at about 1.3x
# (10 shards) to 1.4x (40 shards) its time on 2 cores (bench/README.md, "Shards scaling").
DISK_MARGIN = 1.25
PROBE_BYTES = 256 << 10
COMPRESSED = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
_PROBE = pa.Codec("lz4_raw")
_BATCH_OVERHEAD = 1024  # bytes a record batch message adds at most to its rows' (`_buffer`)


def text_options(texts: pa.Table) -> pa.ipc.IpcWriteOptions | None:
    """How to stage these texts: compressed when lz4 shrinks a sample of them RAW_BELOW or more, else as they are."""
    chunks = [chunk for chunk in texts.column(0).chunks if len(chunk)]
    if not chunks:
        return None
    chunk = chunks[0].cast(pa.large_string())
    offsets = memoryview(chunk.buffers()[1]).cast("q")
    start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
    size = min(PROBE_BYTES, end - start)
    if size <= 0:
        return None
    sample = chunk.buffers()[2].slice(start, size)
    return COMPRESSED if size >= RAW_BELOW * _PROBE.compress(sample).size else None


def expected_bytes(rows: float, text_bytes: float) -> float:
    """The staging's size on disk for `rows` rows of `text_bytes` bytes of text each, staged as
    they are: their texts and their keys (what the dry run says and `must_compress` weighs)."""
    return rows * (text_bytes + KEY_BYTES)


def must_compress(staged_bytes: float, free_bytes: float) -> bool:
    """Whether to compress every staged text: the disk's `free_bytes` would not hold the
    staging's expected `staged_bytes` uncompressed, with the shards written beside it."""
    return free_bytes < DISK_MARGIN * staged_bytes


_WORDS = len(KEYS_SCHEMA)  # 64-bit words a row of keys


def key_rows(keys: pa.Table) -> pa.Buffer:
    """`keys` (KEYS_SCHEMA) as a keys file holds them: row after row, each row's columns as
    little-endian 64-bit words side by side (Polars lays them out: one call, however many rows)."""
    words = pl.from_arrow(keys, rechunk=True)
    assert isinstance(words, pl.DataFrame)
    rows = words.select(pl.concat_arr(pl.all().cast(pl.UInt64))).to_series().to_arrow()
    values = rows.values  # the words, row-major
    return values.buffers()[1].slice(values.offset * 8, len(values) * 8)


def append_keys(path: Path, rows: list[pa.Buffer]) -> int:
    """Rows of keys (`key_rows`, or slices of them) appended to `path`, as they are; the file's size after."""
    with open(path, "ab") as handle:
        for part in rows:
            handle.write(part)
        return handle.tell()


def read_keys(path: Path) -> pa.Table:
    """A keys file, whole, as KEYS_SCHEMA (empty if it does not exist). Memory-mapped: the
    columns are taken from the page cache, 8 bytes a row each."""
    if not path.exists() or not path.stat().st_size:
        return KEYS_SCHEMA.empty_table()
    data = pa.memory_map(str(path)).read_buffer()
    columns = word_columns(data, _WORDS, data.size // KEY_BYTES)
    return pa.table([column.view(field.type) for column, field in zip(columns, KEYS_SCHEMA, strict=True)],
                    schema=KEYS_SCHEMA)  # fmt: skip


def stream(table: pa.Table, options: pa.ipc.IpcWriteOptions | None = None) -> pa.Buffer:
    """`table` as one Arrow IPC stream, its buffers compressed with `options`."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


TEXT_HEAD = stream(TEXT_SCHEMA.empty_table()).to_pybytes()[:-8]  # a text stream's schema message
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the end-of-stream marker (a text file has none)


def append_batches(path: Path, batches: list[pa.Buffer]) -> int:
    """Record batch messages (`record_batches`) appended to the text stream in `path`, after
    its schema message if the file is new (or empty); the file's size after."""
    with open(path, "ab") as handle:
        if handle.tell() == 0:
            handle.write(TEXT_HEAD)
        for batch in batches:
            handle.write(batch)
        return handle.tell()


def append_texts(path: Path, table: pa.Table) -> int:
    """Texts appended to the stream in `path` as one batch, compressed where it pays
    (`text_options`); the file's size after (0 if it holds nothing)."""
    if table.num_rows:
        return append_batches(path, record_batches(table, [table.num_rows], text_options(table)))
    return path.stat().st_size if path.exists() else 0


def record_batches(table: pa.Table, counts: list[int], options: pa.ipc.IpcWriteOptions | None) -> list[pa.Buffer]:
    """The record batch messages of `table`'s texts cut into consecutive runs of `counts` rows,
    one buffer a run: one IPC stream written, without its schema and end, sliced at each run's
    messages (not copied). One writer a unit, not one a pile: 256 piles made a stream each
    a quarter of staging a unit's time."""
    buffer = _buffer(table, len(counts), options)
    sink = pa.FixedSizeBufferWriter(buffer) if buffer is not None else pa.BufferOutputStream()
    ends, start = [], 0
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:  # the schema goes with the first batch
        for count in counts:
            writer.write_table(table.slice(start, count))
            ends.append(sink.tell())
            start += count
    data = buffer.slice(0, sink.tell()) if buffer is not None else sink.getvalue()
    head, tail = len(TEXT_HEAD), len(EOS)
    last = ends[-1] if ends else head
    if not (data.size == last + tail and data[:head].to_pybytes() == TEXT_HEAD
            and data[last:].to_pybytes() == EOS):  # fmt: skip
        raise AssertionError("an Arrow IPC stream of texts that is not its schema, batches and end")
    return [data.slice(begin, end - begin) for begin, end in zip([head, *ends[:-1]], ends, strict=True)]


def _buffer(table: pa.Table, batches: int, options: pa.ipc.IpcWriteOptions | None) -> pa.Buffer | None:
    """Where `record_batches` writes texts as they are: one buffer of at least their stream's
    size, allocated once (a growing buffer copied the texts again as it grew: twice the time).
    None for compressed ones, whose size is not known before: a growing buffer."""
    if options is not None and options.compression is not None:
        return None
    # The texts and their offsets, and for each batch its own first offset, its message's
    # header (about 200 bytes) and each buffer's padding to 8 bytes.
    return pa.allocate_buffer(len(TEXT_HEAD) + len(EOS) + table.nbytes + batches * _BATCH_OVERHEAD)


def _stream(path: Path) -> pa.ipc.RecordBatchStreamReader | None:
    """The text stream in `path`, memory-mapped (None if the file is missing or empty): texts
    staged as they are are read in place from the page cache, not copied into fresh memory
    first (the write phase reads every staged text once). What is read keeps the mapping
    alive; a pile's file is only ever appended to or deleted while mapped, never cut shorter
    (truncated at a resume, before any reads)."""
    if not path.exists() or not path.stat().st_size:
        return None
    return pa.ipc.open_stream(pa.memory_map(str(path)).read_buffer())


def read_texts(path: Path) -> pa.Table:
    """A text file's texts, whole (TEXT_SCHEMA; empty if the file is missing or empty)."""
    reader = _stream(path)
    return reader.read_all() if reader is not None else TEXT_SCHEMA.empty_table()


def text_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A text file's record batches in order, one at a time (a split reads a pile this way)."""
    reader = _stream(path)
    if reader is not None:
        yield from reader
