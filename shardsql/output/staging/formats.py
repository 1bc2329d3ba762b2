"""The staging's file formats: keys as rows of 64-bit words, texts as frames, compressed where it pays.

A pile's two files (`NN.keys`, `NN.text`: piles.py) are appended to and never rewritten: a
checkpoint records the files' sizes and a resume truncates them to those sizes.

A keys file is the rows' keys one after the other, KEY_BYTES a row: fp_hi, fp_lo, g and n as
little-endian 64-bit words (`key_rows`), with nothing between them, so it is read whole as one
array (`read_keys`), whatever the number of appends. (Each append was an IPC stream of its own,
opened on its own: 1.1 s of the 1.9 s count of a 40-shard selection.) Keys are never
compressed (hashes do not compress).

A text file is frames one after the other, each appended whole (`append_pieces`), so a
resume's truncation (at a flush's end) leaves whole frames. A frame is a FRAME header (its
codec, rows, payload bytes stored and payload bytes once decompressed: four little-endian
64-bit words), then its payload, padded with zeros to a multiple of 8 bytes (every frame, and
the lengths that open its payload, start 8-byte aligned). The payload is the rows' lengths in
bytes (int64, 8 bytes a row), then their texts' UTF-8 bytes one after the other: as they are
(RAW), or the whole payload compressed with zstd level 1 (ZSTD). A frame reads back as one
chunk of strings: for a frame as it is, over the file's bytes where they lie, memory-mapped
(`text_batches`). (Each unit's texts were an Arrow IPC record batch a pile: at 40 shards, 256
piles, writing them took a quarter of a unit's staging, 13 microseconds a batch.)

Texts are compressed only where it is needed to keep the staging within the disk budget,
about 2.5x the shards: a unit's texts are probed (lz4 over their first PROBE_BYTES) and staged
as they are when it shrinks them less than RAW_BELOW (`compresses`). The shards (snappy) shrink
such texts about as much as lz4 does (the benchmark's prose: 1.84x both; real FineWeb-Edu:
2.03x with snappy), so raw staging stays under about 2.2x the output; texts that compress
better (code, boilerplate, the tests' repetitive samples: 3.8x) are compressed. Where the disk
has too little room for the staging as it is (`must_compress`), every text is compressed.
Compression was the shuffle's largest cost: on the benchmark's machine zstd-1 compresses about
125 MB/s a core in a unit's small per-pile pieces and decompresses 700 MB/s, so the main job
(1.6 GB of texts) spent 13 CPU-seconds staging and 5.7 reading back.

A staged unit carries a `Piece` a pile (`pieces`): its rows' lengths and texts, slices of the
unit's buffers, or them compressed. A flush appends a pile's pieces (`append_pieces`): those as
they are, one after the other, as one frame, written from where they lie.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ... import tuning
from ...autoresearch import TEXT_COLUMN
from ...errors import ConversionError
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
_PROBE = pa.Codec("lz4_raw")
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024  # buffers a writev takes at most
FRAME = struct.Struct("<4Q")  # a frame's header: codec, rows, payload bytes stored, payload bytes
RAW, ZSTD = 0, 1  # a frame's codecs
_PADDING = [pa.py_buffer(bytes(n)) for n in range(8)]  # zeros that end a frame on a multiple of 8 bytes
_EMPTY = pa.py_buffer(b"")
_AFRESH = "remove the staging folder's checkpoint.json to start afresh"


def compresses(texts: pa.Table) -> bool:
    """Whether to stage these texts compressed: lz4 shrinks a sample of them RAW_BELOW or more."""
    chunks = [chunk for chunk in texts.column(0).chunks if len(chunk)]
    if not chunks:
        return False
    chunk = chunks[0] if chunks[0].type == pa.large_string() else chunks[0].cast(pa.large_string())  # (a cast copies)
    offsets = memoryview(chunk.buffers()[1]).cast("q")
    start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
    size = min(PROBE_BYTES, end - start)
    if size <= 0:
        return False
    sample = chunk.buffers()[2].slice(start, size)
    return bool(size >= RAW_BELOW * _PROBE.compress(sample).size)


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


def read_keys(path: Path) -> pa.Table:
    """A keys file, whole, as KEYS_SCHEMA (empty if it does not exist). Memory-mapped: the
    columns are taken from the page cache, 8 bytes a row each."""
    if not path.exists() or not path.stat().st_size:
        return KEYS_SCHEMA.empty_table()
    data = pa.memory_map(str(path)).read_buffer()
    columns = word_columns(data, _WORDS, data.size // KEY_BYTES)
    return pa.table([column.view(field.type) for column, field in zip(columns, KEYS_SCHEMA, strict=True)],
                    schema=KEYS_SCHEMA)  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """Some rows' texts, ready to append to a text file (`append_pieces`): `parts` are their
    lengths (int64) and their UTF-8 bytes, or (`compressed`) that payload compressed; `raw` is
    the payload's size."""

    rows: int
    raw: int
    parts: tuple[pa.Buffer, ...]
    compressed: bool


def pieces(texts: pa.Table, counts: list[int], compress: bool) -> list[Piece]:
    """`texts` cut into consecutive runs of `counts` rows, a `Piece` each: slices of one buffer
    of lengths and of the texts' bytes (not copied), or each run's compressed."""
    chunks = texts.column(0).chunks
    column = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks) if chunks else pa.array([], pa.large_string())
    if column.type != pa.large_string():  # (a cast or a join of one chunk copies it)
        column = column.cast(pa.large_string())
    if column.null_count:  # (kept texts are checked before they are staged: output/text_check.py)
        raise ValueError("a NULL text cannot be staged")
    offsets = memoryview(column.buffers()[1]).cast("q")[column.offset :]
    length_bytes, data = pc.binary_length(column).buffers()[1], column.buffers()[2]  # (int64 for large strings)
    result, start = [], 0
    for count in counts:
        first, last = offsets[start], offsets[start + count]
        parts: tuple[pa.Buffer, ...] = (
            length_bytes.slice(start * 8, count * 8),
            data.slice(first, last - first) if data is not None else _EMPTY,
        )
        raw = count * 8 + last - first
        if compress:
            packed = COMPRESSION.compress(b"".join(parts), asbytes=False)
            parts = (packed.slice(0, packed.size),)  # (a resizable buffer's memoryview spans its capacity)
        result.append(Piece(count, raw, parts, compress))
        start += count
    return result


def append(path: Path, parts: Sequence[pa.Buffer]) -> int:
    """`parts` appended to `path` (created if missing); the file's size after. A system call
    writes up to IOV_MAX parts (writev): a flush appends a piece a unit to every pile, and a
    write call a piece took a quarter of the staging thread's time at 40 shards."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        pending = list(parts)
        i = 0
        while i < len(pending):
            written = os.writev(fd, pending[i : i + _IOV_MAX])
            while i < len(pending) and written >= len(pending[i]):  # (a short write: rare, on a full disk)
                written -= len(pending[i])
                i += 1
            if written:
                pending[i] = pending[i].slice(written)
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def append_keys(path: Path, rows: list[pa.Buffer]) -> int:
    """Rows of keys (`key_rows`, or slices of them) appended to `path`, as they are; the file's size after."""
    return append(path, rows)


def _frame(codec: int, rows: int, raw: int, parts: Sequence[pa.Buffer]) -> list[pa.Buffer]:
    """A frame's header, payload `parts` and padding."""
    stored = sum(part.size for part in parts)
    return [pa.py_buffer(FRAME.pack(codec, rows, stored, raw)), *parts, _PADDING[-stored % 8]]


def append_pieces(path: Path, staged: Sequence[Piece]) -> int:
    """Pieces appended, in order, to the text file `path`; the file's size after. Consecutive
    pieces as they are make one frame (their lengths, then their texts, written from where they
    lie). Compressed ones are a frame each, or, where they average fewer than `repack_bytes`
    (units that kept few rows: too small for zstd), joined and compressed again as one."""
    frames: list[pa.Buffer] = []
    run: list[Piece] = []

    def end_run() -> None:
        if not run:
            return
        rows, raw = sum(p.rows for p in run), sum(p.raw for p in run)
        if not run[0].compressed:
            frames.extend(_frame(RAW, rows, raw, [p.parts[0] for p in run] + [p.parts[1] for p in run]))
        elif len(run) > 1 and sum(len(p.parts[0]) for p in run) < tuning.current().repack_bytes * len(run):
            table = pa.Table.from_batches([_batch(p.rows, _payload(ZSTD, p.parts[0], p.raw)) for p in run])
            frames.extend(_frame(ZSTD, rows, raw, pieces(table, [rows], compress=True)[0].parts))
        else:
            for p in run:
                frames.extend(_frame(ZSTD, p.rows, p.raw, p.parts))
        run.clear()

    for piece in staged:
        if run and (piece.compressed != run[0].compressed):
            end_run()
        run.append(piece)
    end_run()
    if frames:
        return append(path, frames)
    return path.stat().st_size if path.exists() else 0


def append_texts(path: Path, table: pa.Table) -> int:
    """Texts appended to the text file `path` as one frame, compressed where it pays
    (`compresses`); the file's size after."""
    if table.num_rows:
        return append_pieces(path, pieces(table, [table.num_rows], compresses(table)))
    return path.stat().st_size if path.exists() else 0


def _payload(codec: int, stored: pa.Buffer, raw: int) -> pa.Buffer:
    if codec == RAW:
        return stored
    try:
        return COMPRESSION.decompress(stored, decompressed_size=raw, asbytes=False)
    except OSError as exc:  # (zstd's own check of its frame)
        raise ConversionError(f"a staged text file is damaged ({exc}): {_AFRESH}") from None


_ZERO = pa.array([0], pa.int64())


def _batch(rows: int, payload: pa.Buffer) -> pa.RecordBatch:
    """A frame's rows, from its payload (their lengths, then their bytes): strings over those
    bytes, once the lengths are checked to cover them exactly (the strings are not validated
    again: a wrong offset would read outside the file)."""
    if rows * 8 > payload.size:
        raise ConversionError(f"a staged text file is damaged (a frame shorter than its lengths): {_AFRESH}")
    lengths = pa.Array.from_buffers(pa.int64(), rows, [None, payload.slice(0, rows * 8)])
    offsets = pa.concat_arrays([_ZERO, pc.cumulative_sum(lengths)])
    data = payload.slice(rows * 8)
    if offsets[-1].as_py() != data.size or (rows and pc.min(lengths).as_py() < 0):
        raise ConversionError(f"a staged text file is damaged (its lengths and bytes disagree): {_AFRESH}")
    texts = pa.LargeStringArray.from_buffers(rows, offsets.buffers()[1], data)
    return pa.record_batch([texts], schema=TEXT_SCHEMA)


def text_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A text file's frames in order, a record batch each (none if the file is missing or
    empty). Memory-mapped: texts staged as they are are read in place from the page cache,
    not copied first (the write phase reads every staged text once). What is read keeps the
    mapping alive; a pile's file is only ever appended to or deleted while mapped, never cut
    shorter (truncated at a resume, before any reads)."""
    if not path.exists() or not path.stat().st_size:
        return
    data = pa.memory_map(str(path)).read_buffer()
    view, at = memoryview(data), 0
    while at < data.size:
        if at + FRAME.size > data.size:
            raise ConversionError(f"a staged text file is cut short ({path.name}): {_AFRESH}")
        codec, rows, stored, raw = FRAME.unpack_from(view, at)
        at += FRAME.size
        if codec not in (RAW, ZSTD) or at + stored > data.size:
            raise ConversionError(f"a staged text file is damaged ({path.name}): {_AFRESH}")
        yield _batch(rows, _payload(codec, data.slice(at, stored), raw))
        at += stored + -stored % 8


def read_texts(path: Path) -> pa.Table:
    """A text file's texts, whole (TEXT_SCHEMA, a chunk a frame; empty if the file is missing or empty)."""
    return pa.Table.from_batches(list(text_batches(path)), schema=TEXT_SCHEMA)
